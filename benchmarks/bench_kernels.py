"""Convolution speed against sgemm and PyTorch (issue 3), plus batch norm and pooling.

Run: ``python -m benchmarks.bench_kernels`` (``--quick`` for fewer repeats, ``--no-twin``
to skip the slow NumPy twin, ``--cases bd`` for a subset).

Cases (NCHW float32, 3x3 kernel, stride 1, padding 1, N already including T):
(a) N=64 C=3->64 32x32, (b) N=64 64->64 32x32, (c) N=64 128->128 16x16,
(d) N=64 256->256 8x8, (e) N=128 32->32 8x8.

For each: forward and forward+backward (gradients of x, weight and bias) of ours
(``ops.conv2d`` on the Numba backend), the NumPy twin, ``np.matmul`` sgemm of the
forward's GEMM in one call (``[C_out, 9 C_in] @ [9 C_in, N H W]``: the practical
peak; x3 for forward+backward, which is three such GEMMs), and
``torch.nn.functional.conv2d`` when torch is importable (imported first, so its
OpenMP runtime keeps its own defaults). Median of ``--repeats`` calls after two
warm-up calls, with ``[min, max]``. The columns of a case are timed in rounds (one
call of each per round), and the ratios are the median of the per-round ratios, so
load from other processes on this shared machine hits both sides of a ratio alike.

Targets (issue 3): forward+backward <= 1.5x PyTorch on (b), (c), (d) and <= 2.5x on
(a), (e); forward >= 50% of sgemm throughput on (b)-(d).

Network shapes (issue 21, ``--nets W1,W3``, ``--nets none`` to skip): every convolution of
W1 (``digits_net``, batch 64, 8x8 inputs; ``W1-16``: 16x16 inputs) and W3 (spiking
ResNet-18, width 0.25, batch 32, 32x32 inputs), on **one thread** (Numba and BLAS):
forward, input gradient and weight gradient, each as GFLOP/s over the single-thread
sgemm GFLOP/s of the same round (``np.matmul`` of two 512x512 float32 matrices, and,
for context, of the forward's GEMM ``[C_out, C_in k k] @ [C_in k k, N Ho Wo]``). These
rounds use the calling thread's CPU time (``time.thread_time``): with one thread it
excludes the time another process held the core, which wall time on this shared machine
does not. A line per network sums its convolutions weighted by how often one training
step calls them (forward, weight gradient, and the input gradient except for the
analog first layer). Target (issue 21): >= 0.70 of sgemm.
"""
from __future__ import annotations

import argparse
import json
import os
import time

# torch's libgomp and Numba's OpenMP pool share one runtime when torch is imported first (the
# dynamic loader finds torch's copy by its soname, libgomp.so.1), and the runtime reads
# OMP_WAIT_POLICY when it loads: the project's policy (docs/performance.md, "Thread policy") must
# be in the environment before torch is imported, or Numba's threads inherit torch's spinning
# workers (measured: a 2-thread batch norm 8x slower than 1 thread, a convolution 25x).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:  # before hdlif_ref, as in the end-to-end benchmark; the environment above is already set
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - optional
    torch = None

import numpy as np

import hdlif_ref
from benchmarks._timing import Timing, machine_description, measure
from hdlif_ref.autograd import Tensor, ops
from hdlif_ref.kernels import conv as conv_kernels
from hdlif_ref.kernels._threads import numba_threads, threading_info

CASES = {
    "a": (64, 3, 64, 32),
    "b": (64, 64, 64, 32),
    "c": (64, 128, 128, 16),
    "d": (64, 256, 256, 8),
    "e": (128, 32, 32, 8),
}
FB_LIMIT = {"a": 2.5, "b": 1.5, "c": 1.5, "d": 1.5, "e": 2.5}
SGEMM_FRACTION = 0.5
PAUSE = 0.1


def conv_flops(n, c_in, c_out, hw, k=3):
    return 2.0 * n * c_out * c_in * k * k * hw * hw


#: The convolutions of one training step (issue 21): ``(N, C_in, C_out, H = W, k, stride,
#: calls per step, analog input)``, padding ``k // 2``. Calls per step: T = 4 forward steps;
#: a first layer on analog input needs no input gradient.
NET_SHAPES = {
    "W1": [(64, 1, 16, 8, 3, 1, 4, True), (64, 16, 32, 8, 3, 1, 4, False), (64, 32, 64, 4, 3, 1, 4, False)],
    "W1-16": [(64, 1, 16, 16, 3, 1, 4, True), (64, 16, 32, 16, 3, 1, 4, False), (64, 32, 64, 8, 3, 1, 4, False)],
    "W3": [(32, 3, 16, 32, 3, 1, 4, True), (32, 16, 16, 32, 3, 1, 16, False), (32, 16, 32, 32, 3, 2, 4, False),
           (32, 16, 32, 32, 1, 2, 4, False), (32, 32, 32, 16, 3, 1, 12, False), (32, 32, 64, 16, 3, 2, 4, False),
           (32, 32, 64, 16, 1, 2, 4, False), (32, 64, 64, 8, 3, 1, 12, False), (32, 64, 128, 8, 3, 2, 4, False),
           (32, 64, 128, 8, 1, 2, 4, False), (32, 128, 128, 4, 3, 1, 12, False)],
}
#: Issue 21's floor for the network convolutions, as a fraction of single-thread sgemm GFLOP/s.
NET_SGEMM_FRACTION = 0.70
PEAK_GEMM = 512


def thread_rounds(fns: dict, repeats: int, warmup: int = 1, inner: int = 2) -> list:
    """Rounds of ``{name: CPU seconds of the calling thread per call}`` (order reversed every round)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    rounds = []
    names = list(fns)
    for r in range(repeats):
        row = {}
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.thread_time()
            for _ in range(inner):
                fns[name]()
            row[name] = (time.thread_time() - start) / inner
        rounds.append(row)
    return rounds


def run_net_shapes(nets: list, repeats: int) -> dict:
    """Each network convolution on one thread, as a fraction of sgemm (module doc)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(2)
    peak_a = rng.standard_normal((PEAK_GEMM, PEAK_GEMM), dtype=np.float32)
    peak_b = rng.standard_normal((PEAK_GEMM, PEAK_GEMM), dtype=np.float32)
    peak_flops = 2.0 * PEAK_GEMM ** 3
    out = {}
    with threadpool_limits(1, "blas"), numba_threads(1):
        for net in nets:
            rows = []
            for (n, c_in, c_out, hw, k, s, calls, analog) in NET_SHAPES[net]:
                p = k // 2
                ho = (hw + 2 * p - k) // s + 1
                x = rng.standard_normal((n, c_in, hw, hw), dtype=np.float32)
                w = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)
                g = rng.standard_normal((n, c_out, ho, ho), dtype=np.float32)
                a_mat = rng.standard_normal((c_out, c_in * k * k), dtype=np.float32)
                b_mat = rng.standard_normal((c_in * k * k, n * ho * ho), dtype=np.float32)
                st, pd = (s, s), (p, p)
                fns = {"peak": lambda: np.matmul(peak_a, peak_b), "shape": lambda: np.matmul(a_mat, b_mat),
                       "fwd": lambda: conv_kernels.conv2d_forward(x, w, None, st, pd, 1),
                       "dW": lambda: conv_kernels.conv2d_backward(g, x, w, st, pd, 1, False, True, False)}
                if not analog:
                    fns["dx"] = lambda: conv_kernels.conv2d_backward(g, x, w, st, pd, 1, True, False, False)
                rounds = thread_rounds(fns, repeats)
                flops = 2.0 * n * c_out * c_in * k * k * ho * ho
                rel = {name: float(np.median([r[name] / r["peak"] for r in rounds])) for name in fns}
                rows.append(dict(shape=(n, c_in, c_out, hw, k, s), calls=calls, analog=analog, flops=flops,
                                 peak_gflops=peak_flops / float(np.median([r["peak"] for r in rounds])) / 1e9,
                                 # GFLOP/s over sgemm GFLOP/s = (flops / t) / (peak_flops / t_peak)
                                 ratio={name: flops / (rel[name] * peak_flops) for name in fns if name != "peak"}))
            work = sum(r["calls"] * r["flops"] * (2 if r["analog"] else 3) for r in rows)
            rel_time = sum(r["calls"] * r["flops"] / (r["ratio"][name] * peak_flops) for r in rows
                           for name in ("fwd", "dx", "dW") if name in r["ratio"])
            out[net] = dict(rows=rows, step_ratio=work / (rel_time * peak_flops))
    return out


def _short_kernels(rng) -> dict:
    """``{name: (public call, raw static-prange call)}`` at W1's and W3's per-step sizes (float32)."""
    from hdlif_ref.kernels import hdlif as hd
    from hdlif_ref.kernels import norm, pool

    out = {}
    for label, (n, c, hw) in {"W1 [64,32,8x8]": (64, 32, 64), "W3 [32,16,32x32]": (32, 16, 1024)}.items():
        f = c * hw
        current = rng.standard_normal((1, n, f)).astype(np.float32)
        u0 = np.zeros((n, f), np.float32)
        lam, theta = np.full((1, 1), 0.5, np.float32), np.ones((1, 1), np.float32)
        s, u_last, mask = np.empty_like(current), np.empty_like(u0), np.empty(current.shape, np.bool_)
        out[f"hdlif forward {label}"] = (
            lambda current=current, u0=u0, lam=lam, theta=theta: hd.hdlif_forward(current, u0, lam, theta),
            lambda current=current, u0=u0, lam=lam, theta=theta, s=s, u_last=u_last, mask=mask:
                hd._hdlif_fwd(current, u0, lam, theta, 2048, s, u_last, mask))
        x = rng.standard_normal((n, c, hw)).astype(np.float32)
        w, b = np.ones(c), np.zeros(c)
        y, mean, var = np.empty_like(x), np.zeros(c), np.zeros(c)
        out[f"batch norm train fwd {label}"] = (
            lambda x=x: norm.batch_norm_train_forward(x, None, None, 1e-5),
            lambda x=x, w=w, b=b, y=y, mean=mean, var=var: norm._bn_train_fwd(x, w, b, 1e-5, y, mean, var))
        side = int(round(hw ** 0.5))
        planes = x.reshape(n, c, side, side)
        o = np.empty((n * c, side // 2, side // 2), np.float32)
        out[f"avg pool 2x2 fwd {label}"] = (
            lambda planes=planes: pool.avg_pool2d_forward(planes, 2, 2, 2, 2, 0, 0),
            lambda planes=planes, o=o, n=n, c=c, side=side: pool._avg_pool_fwd(
                planes.reshape(n * c, side, side), 2, 2, 2, 2, 0, 0, o))
    return out


def run_threads_under_load(repeats: int) -> list:
    """Two threads over one, wall time, without and with a competing busy process (started here,
    stopped by its process id): the short kernels as launched now (one thread below
    ``PARALLEL_MIN_ELEMENTS``, dynamic chunks above) and as a static two-thread ``prange``,
    and the network convolutions (forward + backward)."""
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    cases = _short_kernels(rng)
    for net, idx in (("W1", 1), ("W3", 1), ("W3", 7)):
        n, c_in, c_out, hw, k, s_, _, _ = NET_SHAPES[net][idx]
        p = k // 2
        x = rng.standard_normal((n, c_in, hw, hw), dtype=np.float32)
        w = rng.standard_normal((c_out, c_in, k, k), dtype=np.float32)
        ho = (hw + 2 * p - k) // s_ + 1
        g = rng.standard_normal((n, c_out, ho, ho), dtype=np.float32)

        def conv_step(x=x, w=w, g=g, st=(s_, s_), pd=(p, p)):
            conv_kernels.conv2d_forward(x, w, None, st, pd, 1)
            conv_kernels.conv2d_backward(g, x, w, st, pd, 1, True, True, False)

        cases[f"conv fwd+bwd {net} {c_in}->{c_out} {hw}x{hw}"] = (conv_step, None)
    rows = []
    for loaded in (False, True):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
        try:
            for name, (public, raw) in cases.items():
                fns = {}
                for threads in (1, 2):
                    def call(fn=public, threads=threads):
                        with numba_threads(threads):
                            fn()
                    fns[f"ours{threads}"] = call
                if raw is not None:
                    def static(fn=raw):
                        with numba_threads(2):
                            fn()
                    fns["static2"] = static
                for fn in fns.values():
                    fn()
                rounds = []
                for r in range(repeats):
                    row = {}
                    for key in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                        start = time.perf_counter()
                        fns[key]()
                        row[key] = time.perf_counter() - start
                    rounds.append(row)
                one = float(np.median([r["ours1"] for r in rounds]))
                rows.append((loaded, name, one, median_ratio(rounds, "ours2", "ours1"),
                             median_ratio(rounds, "static2", "ours1") if raw is not None else None))
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    return rows


def print_threads_under_load(rows: list) -> None:
    print()
    print("Two threads over one thread (wall time, median of per-round ratios; > 1: two threads are slower):")
    print()
    print("| competing process | kernel | 1 thread | ours, 2 threads / 1 | static prange, 2 threads / 1 |")
    print("|---|---|---|---|---|")
    for loaded, name, one, ours, static in rows:
        print(f"| {'yes' if loaded else 'no'} | {name} | {one * 1e6:.0f} us | {ours:.2f} | "
              f"{'-' if static is None else f'{static:.2f}'} |")


def print_net_shapes(results: dict) -> None:
    print()
    print(f"Network convolutions, one thread, float32: GFLOP/s over single-thread sgemm GFLOP/s "
          f"({PEAK_GEMM}^3) in the same rounds, median of per-round ratios (target >= {NET_SGEMM_FRACTION}).")
    print()
    print("| net | N | C_in->C_out | HxW | k | s | calls | sgemm GFLOP/s | same-shape GEMM / sgemm "
          "| fwd / sgemm | dx / sgemm | dW / sgemm |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for net, res in results.items():
        for r in res["rows"]:
            n, c_in, c_out, hw, k, s = r["shape"]
            q = r["ratio"]
            dx = f"{q['dx']:.2f}" if "dx" in q else "-"
            print(f"| {net} | {n} | {c_in}->{c_out} | {hw}x{hw} | {k} | {s} | {r['calls']} | {r['peak_gflops']:.1f} "
                  f"| {q['shape']:.2f} | {q['fwd']:.2f} | {dx} | {q['dW']:.2f} |")
    print()
    for net, res in results.items():
        verdict = "holds" if res["step_ratio"] >= NET_SGEMM_FRACTION else "MISSES"
        print(f"{net}: all convolutions of a step (fwd + dx + dW, weighted by calls) at "
              f"{res['step_ratio']:.2f} of sgemm ({verdict} >= {NET_SGEMM_FRACTION})")


def ours_calls(x, w, b, g):
    xt, wt, bt = Tensor(x), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    xg = Tensor(x, requires_grad=True)

    def fwd():
        return ops.conv2d(xt, wt.detach(), bt.detach(), padding=1)

    def fwd_bwd():
        xg.grad = wt.grad = bt.grad = None
        ops.conv2d(xg, wt, bt, padding=1).backward(g)

    return fwd, fwd_bwd


def twin_calls(x, w, b, g):
    fwd, fwd_bwd = ours_calls(x, w, b, g)

    def on_numpy(fn):
        def run():
            with hdlif_ref.backend("numpy"):
                return fn()
        return run

    return on_numpy(fwd), on_numpy(fwd_bwd)


def torch_calls(x, w, b, g):
    xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))

    def fwd():
        with torch.no_grad():
            return F.conv2d(xt, wt, bt, padding=1)

    def fwd_bwd():
        xg.grad = wg.grad = bg.grad = None
        F.conv2d(xg, wg, bg, padding=1).backward(gt)

    return fwd, fwd_bwd


def measure_interleaved(fns: dict, repeats: int, warmup: int = 2) -> tuple[dict, list]:
    """Time several functions in rounds (one call of each per round, in turn).

    Load from other processes changes within seconds on a shared machine; taking the
    calls of all columns in the same rounds exposes them to the same load, and the
    per-round ratios (returned as a list of ``{name: seconds}``) cancel most of it.
    Each call starts after a pause of ``PAUSE`` s: idle worker threads of the previous
    call's library (PyTorch's OpenMP pool spins by default, OpenBLAS's threads for up
    to ~0.1 s) would otherwise take cores from the next column.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    rounds = []
    for _ in range(repeats):
        row = {}
        for name, fn in fns.items():
            time.sleep(PAUSE)
            start = time.perf_counter()
            fn()
            row[name] = time.perf_counter() - start
        rounds.append(row)
    timings = {}
    for name in fns:
        samples = sorted(r[name] for r in rounds)
        n = len(samples)
        median = samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2])
        timings[name] = Timing(median, samples[0], samples[-1], n)
    return timings, rounds


def median_ratio(rounds: list, num: str, den: str) -> float:
    return float(np.median([r[num] / r[den] for r in rounds]))


def run_conv(cases: str, repeats: int, twin: bool) -> dict:
    rng = np.random.default_rng(0)
    results = {}
    for key in cases:
        n, c_in, c_out, hw = CASES[key]
        x = rng.standard_normal((n, c_in, hw, hw), dtype=np.float32)
        w = (rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32) / np.sqrt(9 * c_in)).astype(np.float32)
        b = rng.standard_normal(c_out, dtype=np.float32)
        g = rng.standard_normal((n, c_out, hw, hw), dtype=np.float32)
        a_mat = rng.standard_normal((c_out, 9 * c_in), dtype=np.float32)
        b_mat = rng.standard_normal((9 * c_in, n * hw * hw), dtype=np.float32)
        fns = {"sgemm": lambda: np.matmul(a_mat, b_mat)}
        fns["ours_f"], fns["ours_fb"] = ours_calls(x, w, b, g)
        if torch is not None:
            fns["torch_f"], fns["torch_fb"] = torch_calls(x, w, b, g)
        timings, rounds = measure_interleaved(fns, repeats)
        row = {"flops": conv_flops(n, c_in, c_out, hw), "timings": timings,
               "fwd_vs_sgemm": median_ratio(rounds, "sgemm", "ours_f")}
        if torch is not None:
            row["fb_vs_torch"] = median_ratio(rounds, "ours_fb", "torch_fb")
            row["f_vs_torch"] = median_ratio(rounds, "ours_f", "torch_f")
        if twin:
            f, fb = twin_calls(x, w, b, g)
            row["twin"] = (measure(f, repeats=max(3, repeats // 3), warmup=1),
                           measure(fb, repeats=max(3, repeats // 3), warmup=1))
        results[key] = row
    return results


def run_others(repeats: int) -> list:
    """Batch norm (training), max/avg pooling, linear: ours vs torch, forward+backward."""
    rng = np.random.default_rng(1)
    rows = []
    x = rng.standard_normal((64, 128, 16, 16), dtype=np.float32)
    g = rng.standard_normal(x.shape, dtype=np.float32)
    gp = rng.standard_normal((64, 128, 8, 8), dtype=np.float32)
    xl = rng.standard_normal((512, 1024), dtype=np.float32)
    wl = rng.standard_normal((256, 1024), dtype=np.float32)
    gl = rng.standard_normal((512, 256), dtype=np.float32)
    ones, zeros = np.ones(128, np.float32), np.zeros(128, np.float32)

    def ours_bn():
        xt, wt, bt = Tensor(x, requires_grad=True), Tensor(ones, requires_grad=True), Tensor(zeros, requires_grad=True)
        ops.batch_norm(xt, wt, bt, zeros.copy(), ones.copy(), True).backward(g)

    def ours_pool(op):
        def run():
            xt = Tensor(x, requires_grad=True)
            op(xt, 2).backward(gp)
        return run

    def ours_linear():
        xt, wt = Tensor(xl, requires_grad=True), Tensor(wl, requires_grad=True)
        ops.linear(xt, wt, Tensor(np.zeros(256, np.float32), requires_grad=True)).backward(gl)

    cases = [("batch_norm train [64,128,16,16]", ours_bn), ("max_pool2d 2x2 [64,128,16,16]", ours_pool(ops.max_pool2d)),
             ("avg_pool2d 2x2 [64,128,16,16]", ours_pool(ops.avg_pool2d)),
             ("linear [512,1024]x[256,1024]^T", ours_linear)]
    torch_fns = [None] * 4
    if torch is not None:
        tx, tg, tgp = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(gp)
        txl, twl, tgl = torch.from_numpy(xl), torch.from_numpy(wl), torch.from_numpy(gl)

        def t_bn():
            xt = tx.clone().requires_grad_(True)
            wt, bt = torch.ones(128, requires_grad=True), torch.zeros(128, requires_grad=True)
            F.batch_norm(xt, torch.zeros(128), torch.ones(128), wt, bt, training=True).backward(tg)

        def t_pool(fn):
            def run():
                xt = tx.clone().requires_grad_(True)
                fn(xt, 2).backward(tgp)
            return run

        def t_linear():
            xt, wt = txl.clone().requires_grad_(True), twl.clone().requires_grad_(True)
            F.linear(xt, wt, torch.zeros(256, requires_grad=True)).backward(tgl)

        torch_fns = [t_bn, t_pool(F.max_pool2d), t_pool(F.avg_pool2d), t_linear]
    for (label, fn), tfn in zip(cases, torch_fns):
        rows.append((label, measure(fn, repeats=repeats), measure(tfn, repeats=repeats) if tfn else None))
    return rows


def _gf(flops: float, t: Timing) -> str:
    return f"{flops / t.median / 1e9:.1f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="abcde")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="5 repeats (below the issue's 10)")
    parser.add_argument("--no-twin", action="store_true", help="skip the NumPy twin (slow)")
    parser.add_argument("--no-others", action="store_true", help="skip batch norm / pooling / linear")
    parser.add_argument("--nets", default="W1,W1-16,W3",
                        help=f"network shapes on one thread, comma-separated from {', '.join(NET_SHAPES)}, or 'none'")
    parser.add_argument("--json", default=None, help="also write the network-shape results to this JSON file")
    parser.add_argument("--threads-load", action="store_true",
                        help="1 vs 2 threads for short kernels and convolutions, with and without a competing process")
    args = parser.parse_args(argv)
    nets = [] if args.nets.strip().lower() == "none" else [x.strip() for x in args.nets.split(",") if x.strip()]
    unknown = [x for x in nets if x not in NET_SHAPES]
    if unknown:
        parser.error(f"--nets: unknown {unknown}; allowed: {', '.join(NET_SHAPES)} or 'none'")
    repeats = 5 if args.quick else args.repeats
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    info = threading_info()
    print(f"# conv2d 3x3 s1 p1 float32 NCHW; median of {repeats} [min, max] after warm-up "
          f"(NumPy twin: {max(3, repeats // 3)})")
    print(f"# {machine_description()}; load average {os.getloadavg()[0]:.2f} at start")
    torch_desc = "not installed" if torch is None else f"{torch.__version__}, {torch.get_num_threads()} threads"
    print(f"# numba {info['num_threads']} threads ({info['threading_layer']}, OMP_WAIT_POLICY="
          f"{info['omp_wait_policy']}, policy applied: {info['policy_applied']}); torch {torch_desc}")
    if nets:
        net_results = run_net_shapes(nets, repeats)
        print_net_shapes(net_results)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"machine": machine_description(), "nets": net_results}, fh, indent=1)
    if args.threads_load:
        print_threads_under_load(run_threads_under_load(max(repeats, 9)))
    results = run_conv(args.cases, repeats, not args.no_twin) if args.cases else {}
    if results:
        print_conv(results)
    if not args.no_others:
        print()
        print("| op, forward+backward | ours ms | torch ms | ours / torch |")
        print("|---|---|---|---|")
        for label, ours_t, torch_t in run_others(repeats):
            ratio = f"{ours_t.median / torch_t.median:.2f}" if torch_t else "-"
            print(f"| {label} | {ours_t.ms()} | {torch_t.ms() if torch_t else '-'} | {ratio} |")
    print(f"\n# load average {os.getloadavg()[0]:.2f} at end")


def print_conv(results: dict) -> None:
    print()
    print("| case | GFLOP fwd | sgemm ms (GFLOP/s) | ours fwd ms (GFLOP/s) | torch fwd ms (GFLOP/s) "
          "| twin fwd ms | ours fwd+bwd ms (GFLOP/s) | torch fwd+bwd ms (GFLOP/s) | twin fwd+bwd ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        fl, t = r["flops"], r["timings"]
        twin_f, twin_fb = r.get("twin", (None, None))
        cells = [
            f"({key}) N={CASES[key][0]} {CASES[key][1]}->{CASES[key][2]} {CASES[key][3]}x{CASES[key][3]}",
            f"{fl / 1e9:.3f}",
            f"{t['sgemm'].ms()} ({_gf(fl, t['sgemm'])})",
            f"{t['ours_f'].ms()} ({_gf(fl, t['ours_f'])})",
            f"{t['torch_f'].ms()} ({_gf(fl, t['torch_f'])})" if "torch_f" in t else "-",
            twin_f.ms() if twin_f else "-",
            f"{t['ours_fb'].ms()} ({_gf(3 * fl, t['ours_fb'])})",
            f"{t['torch_fb'].ms()} ({_gf(3 * fl, t['torch_fb'])})" if "torch_fb" in t else "-",
            twin_fb.ms() if twin_fb else "-",
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    print("Ratios: median over the rounds of the per-round ratio (columns timed in the same rounds).")
    print()
    print("| case | fwd+bwd ours / torch (limit) | fwd ours / torch | fwd throughput ours / sgemm (floor) | verdict |")
    print("|---|---|---|---|---|")
    for key, r in results.items():
        verdicts = []
        fb_cell = f_cell = "-"
        if "fb_vs_torch" in r:
            ratio = r["fb_vs_torch"]
            fb_cell = f"{ratio:.2f} (<= {FB_LIMIT[key]})"
            f_cell = f"{r['f_vs_torch']:.2f}"
            verdicts.append("fwd+bwd " + ("holds" if ratio <= FB_LIMIT[key] else "MISSES"))
        frac = r["fwd_vs_sgemm"]
        frac_cell = f"{frac:.2f}" + (f" (>= {SGEMM_FRACTION})" if key in "bcd" else "")
        if key in "bcd":
            verdicts.append("fwd " + ("holds" if frac >= SGEMM_FRACTION else "MISSES"))
        print(f"| ({key}) | {fb_cell} | {f_cell} | {frac_cell} | {', '.join(verdicts)} |")


if __name__ == "__main__":
    main()
