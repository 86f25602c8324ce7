"""P1-P3 of issue 21: the digits LIF network in SpikingJelly, snnTorch and Norse against ours.

Optional (``pip install -e .[peers]``): a library that is not installed is skipped
with a note. The network is the one of ``digits_net(neuron="lif")``: 16C3-BN-LIF,
32C3-BN-LIF, AP2, 64C3-BN-LIF, AP2, FC (convolutions without bias, float32
synapses, binary spikes, hard reset, threshold 1, leak 0.5), batch 64 of 8x8x1
random images (direct encoding: the same image at every step), ``T = 4``, float32,
``SGD(lr=0.1, momentum=0.9)`` on both sides, the loss ``mean_t CE(o_t, y)``.
Each peer is written as its documentation shows:

* P1 SpikingJelly 2.0 (``activation_based``): ``layer.*`` modules and ``LIFNode``
  (tau = 2, decay_input: ``v = 0.5 v + 0.5 x``) in multi-step mode, BPTT; and
  ``SLTTLIFNode`` in single-step mode, SLTT with ``K = 1`` (one step drawn per batch
  backpropagated, the others under ``no_grad``, the membrane detached by the neuron),
  as the SLTT paper's code;
* P2 snnTorch 1.0: ``nn.Conv2d``/``BatchNorm2d`` and ``snn.Leaky(beta=0.5,
  reset_mechanism="zero")`` in a loop over steps, BPTT; and the same loop with the
  membranes detached at every step and only the drawn step backpropagated (K = 1;
  snnTorch has no SLTT neuron, so the loop does it);
* P3 Norse 1.1: ``LIFBoxCell`` (``dt * tau_mem_inv = 0.5``), BPTT, and K = 1 as for snnTorch.

Ours: ``digits_net(neuron="lif")`` (triangle surrogate; per-layer learnable ``lam``,
``theta``; per-step BN statistics) with ``STBPTrainer`` and ``OnlineTrainer(steps=1)``.
The peers keep their default surrogates (SpikingJelly: sigmoid, snnTorch: atan,
Norse: SuperSpike); the cost of a surrogate is one element-wise pass. Every callable
of one thread count is timed in the same interleaved rounds (``_timing.interleaved``).
"""
from __future__ import annotations

import importlib.metadata
from typing import Callable

import numpy as np

from benchmarks._timing import interleaved
from benchmarks.e2e_threads import pinned_threads, torch

LR, MOMENTUM = 0.1, 0.9
LIBRARIES = {"spikingjelly": "spikingjelly.activation_based.neuron", "snntorch": "snntorch",
             "norse": "norse.torch"}
#: (key, library, what); the K = 1 rows are compared with our online K = 1, the others with our STBP.
PEER_ROWS = (
    ("spikingjelly_bptt", "spikingjelly", "SpikingJelly LIFNode, BPTT"),
    ("spikingjelly_sltt_k1", "spikingjelly", "SpikingJelly SLTTLIFNode, SLTT K=1"),
    ("snntorch_bptt", "snntorch", "snnTorch Leaky, BPTT"),
    ("snntorch_k1", "snntorch", "snnTorch Leaky, K=1 (state detached)"),
    ("norse_bptt", "norse", "Norse LIFBoxCell, BPTT"),
    ("norse_k1", "norse", "Norse LIFBoxCell, K=1 (state detached)"),
)
OURS_ROWS = (("ours_stbp", "ours LIF, STBP"), ("ours_online_k1", "ours LIF, online K=1"))
#: issue 21 targets, 1 thread: ours / peer time.
TARGETS = {"spikingjelly_bptt": ("ours_stbp", 0.7), "spikingjelly_sltt_k1": ("ours_online_k1", 0.6),
           "snntorch_bptt": ("ours_stbp", 0.7), "snntorch_k1": ("ours_online_k1", 0.6),
           "norse_bptt": ("ours_stbp", 0.7), "norse_k1": ("ours_online_k1", 0.6)}
TARGET_THREADS = 1


def available() -> dict:
    """``{library: version}`` of the importable peers, or ``{library: None}`` with ``notes`` saying why not."""
    versions, notes = {}, {}
    for name, module in LIBRARIES.items():
        if torch is None:
            versions[name], notes[name] = None, "torch is not installed"
            continue
        try:
            importlib.import_module(module)
            versions[name] = importlib.metadata.version(name)
        except Exception as exc:  # ImportError, or a dependency failing at import
            versions[name] = None
            notes[name] = (f"not installed or not importable ({type(exc).__name__}: {exc}); "
                           f"pip install -e .[peers]")
    return {"versions": versions, "notes": notes}


# ----------------------------------------------------------------------------- the networks
def _stateless(nn, channels, out_features):
    """The convolutions, BNs, poolings and classifier of the digits network (plain torch modules)."""
    c1, c2, c3 = channels
    return (nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2),
            nn.Conv2d(c2, c3, 3, padding=1, bias=False), nn.BatchNorm2d(c3),
            nn.Linear(c3 * out_features, 10))


def spikingjelly_net(sltt: bool):
    """SpikingJelly's sequential digits network; multi-step LIFNode (BPTT) or single-step SLTTLIFNode."""
    from spikingjelly.activation_based import functional, layer, neuron

    node = (lambda: neuron.SLTTLIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0)) if sltt else \
        (lambda: neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0))
    net = torch.nn.Sequential(
        layer.Conv2d(1, 16, 3, padding=1, bias=False), layer.BatchNorm2d(16), node(),
        layer.Conv2d(16, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), node(),
        layer.AvgPool2d(2),
        layer.Conv2d(32, 64, 3, padding=1, bias=False), layer.BatchNorm2d(64), node(),
        layer.AvgPool2d(2),
        layer.Flatten(), layer.Linear(64 * 2 * 2, 10))
    functional.set_step_mode(net, "s" if sltt else "m")
    return net, functional.reset_net


class LoopNet:
    """The digits network stepped by hand (snnTorch's and Norse's idiom): ``cell(I, state) -> (s, state)``."""

    def __init__(self, cell_factory: Callable, detach: Callable):
        nn = torch.nn
        self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3, self.fc = _stateless(nn, (16, 32, 64), 4)
        self.cells = [cell_factory() for _ in range(3)]
        self.detach = detach
        self.modules = torch.nn.ModuleList([self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3,
                                            self.fc, *self.cells])
        self.state = [None] * 3

    def reset(self):
        self.state = [None] * 3

    def detach_state(self):
        self.state = [None if s is None else self.detach(s) for s in self.state]

    def step(self, x):
        F = torch.nn.functional
        s, self.state[0] = self.cells[0](self.bn1(self.conv1(x)), self.state[0])
        s, self.state[1] = self.cells[1](self.bn2(self.conv2(s)), self.state[1])
        s = F.avg_pool2d(s, 2)
        s, self.state[2] = self.cells[2](self.bn3(self.conv3(s)), self.state[2])
        return self.fc(F.avg_pool2d(s, 2).flatten(1))


def snntorch_net() -> LoopNet:
    import snntorch as snn

    class Cell(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero")

        def forward(self, current, mem):
            mem = torch.zeros_like(current) if mem is None else mem
            return self.lif(current, mem)

    return LoopNet(Cell, lambda mem: mem.detach())


def norse_net() -> LoopNet:
    from norse.torch import LIFBoxCell, LIFBoxParameters

    def cell():  # v <- v + dt tau_mem_inv (i - v) = 0.5 v + 0.5 i
        return LIFBoxCell(p=LIFBoxParameters(tau_mem_inv=torch.as_tensor(500.0)), dt=0.001)

    return LoopNet(cell, lambda state: type(state)(*(s.detach() for s in state)))


# ----------------------------------------------------------------------------- the training steps
def _draws(T: int, seed: int):
    """One step per batch, drawn uniformly (as ours: ``OnlineTrainer(steps=1)``)."""
    rng = np.random.default_rng(seed)
    return lambda: int(rng.integers(T))


def _sgd(params):
    return torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)


def peer_step(key: str, x: np.ndarray, y: np.ndarray, T: int, seed: int = 2) -> Callable[[], float]:
    """One training step of peer ``key`` (a :data:`PEER_ROWS` key) on the fixed batch ``(x, y)``."""
    torch.manual_seed(seed)
    F = torch.nn.functional
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    draw = _draws(T, seed)
    if key.startswith("spikingjelly"):
        net, reset_net = spikingjelly_net(sltt=key.endswith("k1"))
        net.train()
        optimizer = _sgd(net.parameters())
        if key == "spikingjelly_bptt":
            x_seq, y_seq = xt.unsqueeze(0).repeat(T, 1, 1, 1, 1), yt.repeat(T)

            def step():
                optimizer.zero_grad(set_to_none=True)
                out = net(x_seq)  # [T, N, 10]
                loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y_seq)  # mean over t of the step CE
                loss.backward()
                optimizer.step()
                reset_net(net)
                return loss.item()
            return step

        def step():
            optimizer.zero_grad(set_to_none=True)
            chosen, loss_value = draw(), 0.0
            for t in range(T):
                if t == chosen:
                    loss = F.cross_entropy(net(xt), yt)
                    loss.backward()
                    loss_value = loss.item()
                else:
                    with torch.no_grad():
                        net(xt)
            optimizer.step()
            reset_net(net)
            return loss_value
        return step

    net = snntorch_net() if key.startswith("snntorch") else norse_net()
    net.modules.train()
    optimizer = _sgd(net.modules.parameters())
    if key.endswith("bptt"):
        def step():
            optimizer.zero_grad(set_to_none=True)
            net.reset()
            out = torch.stack([net.step(xt) for _ in range(T)])
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), yt.repeat(T))
            loss.backward()
            optimizer.step()
            net.reset()
            return loss.item()
        return step

    def step():
        optimizer.zero_grad(set_to_none=True)
        net.reset()
        chosen, loss_value = draw(), 0.0
        for t in range(T):
            net.detach_state()
            if t == chosen:
                loss = F.cross_entropy(net.step(xt), yt)
                loss.backward()
                loss_value = loss.item()
            else:
                with torch.no_grad():
                    net.step(xt)
        optimizer.step()
        net.reset()
        return loss_value
    return step


def ours_step(key: str, x: np.ndarray, y: np.ndarray, T: int, seed: int = 2) -> Callable[[], float]:
    """Our LIF digits network, ``"ours_stbp"`` or ``"ours_online_k1"``, one training step on ``(x, y)``."""
    from hdlif_ref.models import digits_net
    from hdlif_ref.training.optim import SGD
    from hdlif_ref.training.trainer import OnlineTrainer, STBPTrainer

    model = digits_net(neuron="lif", T=T, rng=np.random.default_rng(seed))
    optimizer = SGD(list(model.parameters()), lr=LR, momentum=MOMENTUM)
    trainer = STBPTrainer(model, optimizer) if key == "ours_stbp" else \
        OnlineTrainer(model, optimizer, steps=1, rng=np.random.default_rng(seed))
    return lambda: trainer.train_batch(x, y)[0]


def data(batch: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, batch)


# ----------------------------------------------------------------------------- the measurement
def run(batch: int, T: int, threads: tuple[int, ...], repeats: int, warmup: int, log=print) -> dict:
    """Time ours and every available peer at each thread count; ratios other / ours (higher: we are faster)."""
    found = available()
    result = {"versions": found["versions"], "notes": found["notes"], "batch": batch, "T": T, "dtype": "float32",
              "lr": LR, "momentum": MOMENTUM, "by_threads": {}}
    rows = [(k, what) for k, lib, what in PEER_ROWS if found["versions"][lib] is not None]
    result["rows"] = {k: what for k, what in OURS_ROWS + tuple(rows)}
    x, y = data(batch)
    for n in threads:
        log(f"# P1-P3: the digits LIF network, ours and {len(rows)} peer rows, {n} thread(s) ...")
        with pinned_threads(n) as info:
            names = [k for k, _ in OURS_ROWS] + [k for k, _ in rows]
            fns = [ours_step(k, x, y, T) for k, _ in OURS_ROWS] + [peer_step(k, x, y, T) for k, _ in rows]
            timings = dict(zip(names, interleaved(fns, repeats=repeats, warmup=warmup)))
        entry = {"threads": {k: info.get(k) for k in ("requested", "numba", "torch_intra_op", "ours_set_by")},
                 "ms": {k: {"median": t.median * 1e3, "min": t.low * 1e3, "max": t.high * 1e3,
                            "repeats": t.repeats} for k, t in timings.items()},
                 "other_over_ours": {}}
        for k, _ in rows:
            entry["other_over_ours"][k] = {o: timings[k].median / timings[o].median for o, _ in OURS_ROWS}
        result["by_threads"][str(n)] = entry
    return result


def targets(result: dict) -> list[dict]:
    """The issue-21 peer targets (ours / peer time at :data:`TARGET_THREADS` thread) with holds/missed."""
    entry = result["by_threads"].get(str(TARGET_THREADS))
    out = []
    for key, (ours, limit) in TARGETS.items():
        what = f"{dict(OURS_ROWS)[ours]} / {dict((k, w) for k, _, w in PEER_ROWS)[key]}, {TARGET_THREADS} thread"
        value = None
        if entry is not None and key in entry["other_over_ours"]:
            value = 1.0 / entry["other_over_ours"][key][ours]
        out.append({"name": f"P_{key}", "what": what, "value": value, "op": "<=", "limit": limit,
                    "holds": None if value is None else value <= limit,
                    "note": None if value is not None else "peer not installed or not run at 1 thread"})
    return out


# ----------------------------------------------------------------------------- why: the profiles
def torch_profile(fn: Callable, steps: int = 3, top: int = 10) -> dict:
    """torch's profiler over ``steps`` calls of ``fn`` (after one warm-up): the ``top`` ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.bench_e2e import _quiet_stderr  # the C++ profiler's start/stop lines

    fn()
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / steps / 1e3
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return {"total_ms_per_step": total,
            "top": [{"function": e.key, "calls": e.count / steps, "own_ms_per_step": e.self_cpu_time_total / steps / 1e3,
                     "cumulative_ms_per_step": e.cpu_time_total / steps / 1e3,
                     "share": e.self_cpu_time_total / steps / 1e3 / total if total else 0.0} for e in rows]}


def profiles(batch: int, T: int, quick: bool = False, log=print) -> dict:
    """One thread: cProfile of our two rows, torch's profiler of SpikingJelly's two (when installed), top 10."""
    from benchmarks.bench_e2e import profile_ours

    x, y = data(batch)
    out = {}
    log("# P1-P3: profiles of ours and SpikingJelly's steps, one thread ...")
    with pinned_threads(1):
        for key, _ in OURS_ROWS:
            out[key] = profile_ours(ours_step(key, x, y, T), calls=2 if quick else 5, top=10)
        if available()["versions"]["spikingjelly"] is not None:
            for key in ("spikingjelly_bptt", "spikingjelly_sltt_k1"):
                out[key] = torch_profile(peer_step(key, x, y, T), steps=2 if quick else 5)
    return out
