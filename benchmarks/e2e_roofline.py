"""The roofline line of issue 21: achieved GFLOP/s over single-thread sgemm, measured in the same rounds.

* The machine's limit: ``np.matmul`` of two ``[1024, 1024]`` float32 matrices with
  NumPy's BLAS held to one thread (threadpoolctl, around each call only), timed in the
  same interleaved rounds as what it is compared with.
* W3 step: its FLOPs are counted by torch's flop counter on the PyTorch peer's step
  (convolutions and matrix products, forward and backward; the element-wise work is
  not counted), and analytically from the layer shapes our step runs (forward hooks on
  every ``Conv2d`` and ``Linear``: ``2 N C_out C_in kh kw Ho Wo`` per call, three times
  that for the backpropagated step, less ``dx`` of the first, analog, layer). Our W3
  step (at the run's thread count) and sgemm alternate round by round.
* Conv shapes: every distinct convolution shape of W1's and W3's step, forward and
  forward + backward (``dx``, ``dW``; ``dW`` only for the analog first layer, whose input needs no
  gradient in training) of ``ops.conv2d`` at **one** thread against the
  one-thread sgemm, in the same rounds. The aggregate of a workload weights each shape
  by its calls per step. Target (issue 21): >= 70% of sgemm on every shape.
  Beside each shape, in the same rounds: PyTorch's ``conv2d`` (oneDNN) on one thread, forward
  and forward + backward alike (``torch_*``, over the same NumPy sgemm), when torch is there;
  and once, the fixed cost of a call: ``ops.conv2d`` on a ``[1, 1, 1, 1]`` input and weight
  (``call_floor``; its backward ``dW`` only for the analog rows). A shape whose FLOPs at 70% of sgemm take less than that floor
  (``floor_over_budget`` > 1) cannot reach the target through this API, however fast its kernel.

When the kernel developer's ``benchmarks.bench_kernels`` grows a per-shape helper
this module can call it; until then it measures the shapes itself.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from benchmarks import e2e_workloads as wl
from benchmarks._timing import interleaved
from benchmarks.e2e_threads import pinned_threads, torch
from hdlif_ref.kernels import conv_lanes

SGEMM_N = 1024
CONV_FRACTION = 0.7  # issue 21: conv kernels >= 70% of sgemm GFLOP/s on the W1 and W3 shapes
STEP_FRACTION = 0.5  # issue 21: the W3 step >= 50% of sgemm


def sgemm_one_thread(n: int = SGEMM_N) -> tuple[Callable[[], None], float]:
    """A callable running one ``[n, n] @ [n, n]`` float32 product on one BLAS thread, and its FLOPs."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)

    def run():
        with controller.limit(limits=1, user_api="blas"):
            np.matmul(a, b, out=out)
    return run, 2.0 * n ** 3


def _conv_flops(x_shape, w_shape, stride, padding) -> float:
    n, _, h, w = x_shape
    c_out, c_in, kh, kw = w_shape
    ho = (h + 2 * padding[0] - kh) // stride[0] + 1
    wo = (w + 2 * padding[1] - kw) // stride[1] + 1
    return 2.0 * n * c_out * c_in * kh * kw * ho * wo


def layer_calls(net: str, sizes: wl.Sizes) -> tuple[Counter, dict]:
    """Per online K = 1 step of ``net``: ``Counter`` of ``(kind, x_shape, w_shape, stride, padding, analog)``."""
    from hdlif_ref.layers.synapses import Conv2d, Linear

    ours, _ = wl.training_pair(net, "online_k1", sizes, with_torch=False)
    model = ours.model
    calls: Counter = Counter()
    handles = []
    for m in model.modules():
        if isinstance(m, (Conv2d, Linear)):
            def hook(mod, inputs, output):
                x = inputs[0]
                if isinstance(mod, Conv2d):
                    key = ("conv", tuple(x.shape), tuple(mod.weight.shape), tuple(mod.stride), tuple(mod.padding),
                           not getattr(mod, "input_is_spikes", True))
                else:
                    key = ("linear", tuple(x.shape), tuple(mod.weight.shape), None, None, False)
                calls[key] += 1
            handles.append(m.register_forward_hook(hook))
    ours()
    for h in handles:
        h.remove()
    return calls, {"T": sizes.T}


def analytic_step_flops(calls: Counter, T: int) -> float:
    """FLOPs of an online K = 1 step: every call's forward, and the backward (dx, dW) of one step's calls."""
    total = 0.0
    for (kind, x, w, stride, padding, analog), count in calls.items():
        fwd = _conv_flops(x, w, stride, padding) if kind == "conv" else 2.0 * x[0] * w[0] * w[1]
        backward_calls = count / T
        total += count * fwd + backward_calls * fwd * (1 if analog else 2)
    return total


def torch_step_flops(net: str, sizes: wl.Sizes) -> float | None:
    """torch's flop counter on the PyTorch peer's online K = 1 step, or ``None`` without torch."""
    if torch is None:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    _, theirs = wl.training_pair(net, "online_k1", sizes, with_torch=True)
    theirs()
    with FlopCounterMode(display=False) as counter:
        theirs()
    return float(counter.get_total_flops())


def _conv_calls(x_shape, w_shape, stride, padding, analog=False):
    """``(fwd, fwd_bwd)`` callables; the backward of an analog (first) layer computes ``dW`` only, as in
    training, where the image needs no gradient."""
    from hdlif_ref.autograd import Tensor, ops

    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = (rng.standard_normal(w_shape, dtype=np.float32) * 0.1).astype(np.float32)
    xt, wt = Tensor(x), Tensor(w)
    xg, wg = Tensor(x, requires_grad=not analog), Tensor(w, requires_grad=True)
    out_shape = ops.conv2d(xt, wt, stride=stride, padding=padding).shape
    g = rng.standard_normal(out_shape, dtype=np.float32)

    def fwd():
        return ops.conv2d(xt, wt, stride=stride, padding=padding)

    def fwd_bwd():
        xg.grad = wg.grad = None
        ops.conv2d(xg, wg, stride=stride, padding=padding).backward(g)
    return fwd, fwd_bwd


def _torch_conv_calls(x_shape, w_shape, stride, padding, analog=False):
    """PyTorch's ``(fwd, fwd_bwd)`` for the shape, as :func:`_conv_calls` (no bias; ``dW`` only when analog)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=gen)
    w = torch.randn(w_shape, generator=gen) * 0.1
    xg, wg = x.clone().requires_grad_(not analog), w.clone().requires_grad_(True)
    conv = torch.nn.functional.conv2d
    g = torch.randn(conv(x, w, stride=stride, padding=padding).shape, generator=gen)

    def fwd():
        with torch.no_grad():
            return conv(x, w, stride=stride, padding=padding)

    def fwd_bwd():
        xg.grad = wg.grad = None
        conv(xg, wg, stride=stride, padding=padding).backward(g)
    return fwd, fwd_bwd


def _passes(row: dict) -> int:
    """Forward + backward FLOPs over the forward's: 3 (dx, dW), 2 for an analog first layer (dW only)."""
    return 2 if row.get("analog") else 3


def conv_shapes(calls_by_net: dict, repeats: int, warmup: int, log=print, sgemm_n: int = SGEMM_N) -> dict:
    """One thread: GFLOP/s of every distinct conv shape (forward, forward + backward) over sgemm's, same rounds."""
    sgemm, sgemm_flops = sgemm_one_thread(sgemm_n)
    rows, seen = [], {}
    for net, calls in calls_by_net.items():
        for (kind, x, w, stride, padding, analog), count in calls.items():
            if kind != "conv":
                continue
            key = (x, w, stride, padding)
            if key in seen:
                seen[key]["workloads"].append(net)
                continue
            seen[key] = row = {"workloads": [net], "x": list(x), "w": list(w), "stride": list(stride),
                               "padding": list(padding), "analog": bool(analog), "calls_per_step": {}}
            rows.append(row)
        for (kind, x, w, stride, padding, analog), count in calls.items():
            if kind == "conv":
                seen[(x, w, stride, padding)]["calls_per_step"][net] = count
    with pinned_threads(1):
        floor_fwd, floor_fb = _conv_calls((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0))
        floor_fb_analog = _conv_calls((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0), analog=True)[1]
        t_floor = interleaved([floor_fwd, floor_fb, floor_fb_analog], repeats=repeats, warmup=warmup)
        floor = {"fwd_ms": t_floor[0].median * 1e3, "fwd_bwd_ms": t_floor[1].median * 1e3,
                 "fwd_bwd_analog_ms": t_floor[2].median * 1e3}
        for row in rows:
            log(f"#   conv x{row['x']} w{row['w']} stride {row['stride'][0]}, one thread ...")
            shape = (tuple(row["x"]), tuple(row["w"]), tuple(row["stride"]), tuple(row["padding"]), row["analog"])
            fns = [*_conv_calls(*shape), sgemm] + (list(_torch_conv_calls(*shape)) if torch is not None else [])
            t_fwd, t_fb, t_gemm, *t_torch = interleaved(fns, repeats=repeats, warmup=warmup)
            flops = _conv_flops(row["x"], row["w"], row["stride"], row["padding"])
            peak = sgemm_flops / t_gemm.median / 1e9
            row.update({"gflop_fwd": flops / 1e9, "fwd_ms": t_fwd.median * 1e3, "fwd_bwd_ms": t_fb.median * 1e3,
                        "sgemm_gflops": peak, "fwd_gflops": flops / t_fwd.median / 1e9,
                        "fwd_bwd_gflops": _passes(row) * flops / t_fb.median / 1e9})
            row["fwd_fraction"] = row["fwd_gflops"] / peak
            row["fwd_bwd_fraction"] = row["fwd_bwd_gflops"] / peak
            row["holds"] = min(row["fwd_fraction"], row["fwd_bwd_fraction"]) >= CONV_FRACTION
            # the target's time budget (70% of sgemm) against the fixed cost of a call
            budget_fwd = flops / (CONV_FRACTION * peak * 1e9) * 1e3
            budget_fb = _passes(row) * budget_fwd
            floor_fb_ms = floor["fwd_bwd_analog_ms" if row["analog"] else "fwd_bwd_ms"]
            row["floor_over_budget"] = {"fwd": floor["fwd_ms"] / budget_fwd, "fwd_bwd": floor_fb_ms / budget_fb}
            if t_torch:
                torch_fwd, torch_fb = t_torch
                row.update({"torch_fwd_ms": torch_fwd.median * 1e3, "torch_fwd_bwd_ms": torch_fb.median * 1e3,
                            "torch_fwd_fraction": flops / torch_fwd.median / 1e9 / peak,
                            "torch_fwd_bwd_fraction": _passes(row) * flops / torch_fb.median / 1e9 / peak})
    aggregate = {}
    for net in calls_by_net:
        mine = [r for r in rows if net in r["calls_per_step"]]
        flops = sum(r["gflop_fwd"] * _passes(r) * r["calls_per_step"][net] for r in mine)
        secs = sum(r["fwd_bwd_ms"] / 1e3 * r["calls_per_step"][net] for r in mine)
        peak = float(np.median([r["sgemm_gflops"] for r in mine])) if mine else None
        fractions = [min(r["fwd_fraction"], r["fwd_bwd_fraction"]) for r in mine]
        aggregate[net] = {"fwd_bwd_gflops": flops / secs if secs else None, "sgemm_gflops": peak,
                          "fraction": (flops / secs / peak) if secs and peak else None,
                          "worst_shape_fraction": min(fractions) if fractions else None,
                          "holds": all(r["holds"] for r in mine) if mine else None}
    return {"shapes": rows, "by_workload": aggregate, "target_fraction": CONV_FRACTION, "sgemm_n": sgemm_n,
            "call_floor": floor if rows else None}


def every_block(fn: Callable) -> Callable:
    """``fn`` run with the convolutions' silent-block skip off (the FLOPs counted are the FLOPs done)."""
    def run():
        before = conv_lanes.SKIP_SILENT_BLOCKS
        conv_lanes.SKIP_SILENT_BLOCKS = False
        try:
            return fn()
        finally:
            conv_lanes.SKIP_SILENT_BLOCKS = before
    return run


def step_roofline(net: str, sizes: wl.Sizes, flops: float, repeats: int, warmup: int,
                  sgemm_n: int = SGEMM_N) -> dict:
    """Our ``net`` online K = 1 step (the run's threads, every block computed) and one-thread sgemm in the same
    rounds: GFLOP/s, fraction."""
    ours, _ = wl.training_pair(net, "online_k1", sizes, with_torch=False)
    sgemm, sgemm_flops = sgemm_one_thread(sgemm_n)
    t_step, t_gemm = interleaved([every_block(ours), sgemm], repeats=repeats, warmup=warmup)
    peak = sgemm_flops / t_gemm.median / 1e9
    achieved = flops / t_step.median / 1e9
    return {"step_ms": t_step.median * 1e3, "silent_blocks_skipped": False, "gflop": flops / 1e9,
            "gflops": achieved, "sgemm_gflops": peak,
            "fraction": achieved / peak, "target_fraction": STEP_FRACTION, "holds": achieved / peak >= STEP_FRACTION}


def run(sizes: wl.Sizes, repeats: int, warmup: int, log=print, sgemm_n: int = SGEMM_N) -> dict:
    """The roofline section: W3 step and the W1/W3 conv shapes against one-thread sgemm."""
    calls = {}
    for name, net in (("W1", "digits"), ("W3", "resnet")):
        calls[name], _ = layer_calls(net, sizes)
    analytic = analytic_step_flops(calls["W3"], sizes.T)
    counted = torch_step_flops("resnet", sizes)
    flops = counted if counted is not None else analytic
    log("# roofline: W3 step against one-thread sgemm ...")
    step = step_roofline("resnet", sizes, flops, repeats, warmup, sgemm_n)
    step.update({"flop_source": "torch flop counter on the peer" if counted is not None else "analytic",
                 "gflop_torch_counter": None if counted is None else counted / 1e9, "gflop_analytic": analytic / 1e9})
    log("# roofline: conv shapes of W1 and W3, one thread, against one-thread sgemm ...")
    convs = conv_shapes(calls, repeats, warmup, log, sgemm_n)
    return {"W3_step": step, "convs": convs}
