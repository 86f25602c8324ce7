"""End-to-end performance against PyTorch in the same run (issues 9 and 21): training, inference, memory.

Run: ``python -m benchmarks`` (or ``hdlif-ref bench``); ``--help`` lists the options.

Workloads (``e2e_workloads``: ternary synapses SPEC E12 and 4-bit spikes E13 throughout;
every training step is real training, ``SGD(lr=0.1, momentum=0.9)``, on both sides):

* W1: online step (E16), ``digits_net``, batch 64, ``T = 4``, ``K = 1``;
* W2: the same with ``K = T`` (``W2_online_all``) and with STBP (E17, ``W2_stbp``);
* W3: online step, ``spiking_resnet(18, stem="cifar", width=0.25)``, 32x32x3, batch 32, ``T = 4``, ``K = 1``;
* W4: images per second of the frozen model (``deploy.freeze``, ``FrozenModel.run``)
  against PyTorch ``no_grad`` inference of the training-form network, W1's and W3's;
* W5: peak memory of one training step of W1's network for ``T`` in 1..32, online
  ``K = 1``, online ``K = T`` and STBP: ours by ``tracemalloc`` (NumPy and Numba
  arrays and Python objects), PyTorch by its profiler's allocator events. Peak =
  the largest increase over the memory in use when the step starts.

Issue 21 adds, each skippable (``--skip``): P1-P3, the peers (:mod:`benchmarks.peers`),
the roofline (:mod:`benchmarks.e2e_roofline`), T and batch scaling
(:mod:`benchmarks.e2e_scaling`), the per-op breakdown of W3 (cProfile, top 10), the
cost of the non-finite checks (:mod:`benchmarks.bench_checks`), and the targets table
(:mod:`benchmarks.e2e_report`).

Timing: ours and PyTorch alternate call by call (the order flips every round, so
load from other processes hits both alike), warm-up first, then the median of
``--repeats`` samples with ``[min, max]``. Ratios are ours / PyTorch medians
(W4: ours / PyTorch images per second). Threads: both sides are pinned to the
same count (``--threads``, default 2; :mod:`benchmarks.e2e_threads`): torch's,
ours (Numba's, or the kernels' own ``set_num_threads`` where it exists) and the
BLAS libraries' through ``threadpoolctl``; torch is imported before our kernels,
so its OpenMP runtime keeps its own wait policy while ours applies the project's
(``OMP_WAIT_POLICY=PASSIVE``, see ``docs/performance.md``). Before timing, three
float64 SGD steps of every training workload must give the same losses, gradients
and parameters on both sides (to 1e-9 relative).
"""
from __future__ import annotations

import os

from benchmarks.e2e_threads import pinned_threads, torch  # first: torch loads before our kernels

import contextlib
import cProfile
import io
import json
import platform
import pstats
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numba
import numpy as np

from benchmarks import _placement, _timing, e2e_workloads as wl
from benchmarks._timing import Timing, interleaved, machine_description
from hdlif_ref._safe_files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"

TIME_WORKLOADS = (  # name, network, algorithm, what
    ("W1", "digits", "online_k1", "online step, digits_net, K = 1"),
    ("W2_online_all", "digits", "online_all", "online step, digits_net, K = T"),
    ("W2_stbp", "digits", "stbp", "STBP step, digits_net"),
    ("W3", "resnet", "online_k1", "online step, spiking ResNet-18, K = 1"),
)
INFERENCE_WORKLOADS = (("W4_digits", "digits", "frozen inference, digits_net"),
                       ("W4_resnet", "resnet", "frozen inference, spiking ResNet-18"))
#: issue 21, at 2 threads, against PyTorch eager (ours / PyTorch time; W4: ours / PyTorch images per second).
TARGETS = {"W1": ("<=", 0.5), "W2_online_all": ("<=", 0.6), "W2_stbp": ("<=", 0.7), "W3": ("<=", 0.7),
           "W4_digits": (">=", 3.0), "W4_resnet": (">=", 2.0)}
TARGET_THREADS = 2
MEMORY_ALGORITHMS = ("online_k1", "online_kT", "stbp")
ONLINE_K1_GROWTH_LIMIT = 1.1
#: The parts of a run besides W1-W4, each skippable with ``--skip``.
PARTS = ("memory", "peers", "roofline", "scaling", "breakdown", "checks")


# ----------------------------------------------------------------------------- timing
def alternate(ours: Callable, theirs: Callable | None, repeats: int, warmup: int,
              before_round: Callable[[], object] | None = None) -> tuple[Timing, Timing | None]:
    """Time both callables, interleaved; the order flips every round. Per-call seconds."""
    timings = interleaved([ours] + ([theirs] if theirs is not None else []), repeats=repeats, warmup=warmup,
                          before_round=before_round)
    return timings[0], (timings[1] if theirs is not None else None)


def by_placement(ours: Timing, theirs: Timing | None, round_trips: list, per_second: bool) -> dict:
    """The ratio of the rounds timed with near cores and of those with far ones (:mod:`._placement`).

    ``round_trips[r]``: the round trip measured before round ``r`` (``None``: not measured).
    For each placement: how many rounds, and ours / theirs of the medians over those rounds
    (``per_second``: theirs / ours, W4's images per second), ``None`` without rounds or a peer.
    """
    out = {}
    for name in ("near", "far"):
        rounds = [r for r, ns in enumerate(round_trips) if _placement.placement(ns) == name]
        ratio = None
        if rounds and theirs is not None:
            a = _timing.median([ours.samples[r] for r in rounds])
            b = _timing.median([theirs.samples[r] for r in rounds])
            ratio = b / a if per_second else a / b
        out[name] = {"rounds": len(rounds), "ratio": ratio}
    return out


def _timing_dict(t: Timing | None, scale: float = 1.0) -> dict | None:
    if t is None:
        return None
    return {"median": t.median * scale, "min": t.low * scale, "max": t.high * scale, "repeats": t.repeats,
            "samples": [x * scale for x in t.samples]}  # round by round (with the placement's round trips)


def _per_second(t: Timing | None, images: int) -> dict | None:
    """Images per second from per-call seconds (the slowest call gives the minimum)."""
    if t is None:
        return None
    return {"median": images / t.median, "min": images / t.high, "max": images / t.low, "repeats": t.repeats,
            "samples": [images / x for x in t.samples]}


def _holds(name: str, ratio: float | None) -> bool | None:
    if ratio is None:
        return None
    op, limit = TARGETS[name]
    return ratio <= limit if op == "<=" else ratio >= limit


# ----------------------------------------------------------------------------- memory
@contextlib.contextmanager
def _quiet_stderr():
    """Silence the C++ profiler's start/stop lines on file descriptor 2."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_ours(step: Callable) -> int:
    """Largest increase of traced memory over its level at the start of ``step()`` (bytes).

    The kernels' scratch buffers (``kernels._workspace.scratch``, kept from call to call) are
    released before the measured step, so that it allocates them again under tracing and the peak
    includes them, as PyTorch's includes its temporaries. (Until issue 21's third round they were
    allocated in the warm-up step, before tracing started, and went uncounted: 0.7 MiB of the
    online step, 16 MiB of STBP at ``T = 32``.)
    """
    from hdlif_ref.kernels._workspace import release

    step()  # warm-up: optimizer state, Numba dispatch
    tracemalloc.start()
    try:
        step()  # the arrays it keeps (gradients, momentum) are now traced, as PyTorch's are
        release()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def peak_torch(step: Callable) -> int:
    """Largest running sum of PyTorch's CPU allocator events (allocations minus frees) during ``step()``."""
    from torch.profiler import ProfilerActivity, profile

    step()
    step()
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak


def memory(sizes: wl.Sizes, with_torch: bool) -> dict:
    """W5: peak bytes per T and algorithm, for both sides, and the growth from the first T to the last."""
    algorithm_of = {"online_k1": "online_k1", "online_kT": "online_all", "stbp": "stbp"}
    result = {"T": list(sizes.memory_T), "ours": {}, "torch": {} if with_torch and torch is not None else None}
    for name in MEMORY_ALGORITHMS:
        ours_peaks, torch_peaks = [], []
        for T in sizes.memory_T:
            ours, theirs = wl.training_pair("digits", algorithm_of[name], sizes, with_torch, T=T)
            ours_peaks.append(peak_ours(ours))
            if theirs is not None:
                torch_peaks.append(peak_torch(theirs))
        result["ours"][name] = ours_peaks
        if result["torch"] is not None:
            result["torch"][name] = torch_peaks
    result["growth"] = {k: v[-1] / v[0] for k, v in result["ours"].items()}
    result["growth_torch"] = None if result["torch"] is None else {k: v[-1] / v[0] for k, v in result["torch"].items()}
    return result


# ----------------------------------------------------------------------------- profile
def profile_ours(fn: Callable, calls: int = 5, top: int = 15) -> dict:
    """cProfile of ``calls`` calls of ``fn`` (after one warm-up): the ``top`` entries by own time.

    ``{"total_ms_per_step": ..., "top": [{"function", "calls", "own_ms_per_step",
    "cumulative_ms_per_step", "share"}]}``; ``share`` is the entry's own time over the
    total own time of the profiled steps (cProfile's overhead included on both sides).
    """
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows, total = [], 0.0
    for (filename, line, func), (cc, nc, tt, ct, _) in stats.stats.items():
        where = filename.replace(str(ROOT) + os.sep, "").split("site-packages" + os.sep)[-1]
        total += tt
        rows.append({"function": f"{where}:{line}({func})", "calls": nc / calls,
                     "own_ms_per_step": tt / calls * 1e3, "cumulative_ms_per_step": ct / calls * 1e3})
    rows.sort(key=lambda r: -r["own_ms_per_step"])
    total_ms = total / calls * 1e3
    for r in rows:
        r["share"] = r["own_ms_per_step"] / total_ms if total_ms else 0.0
    return {"total_ms_per_step": total_ms, "top": rows[:top]}


def worst_workload(ratios: dict) -> str:
    """The workload farthest from its target (ratio over limit; for W4 limit over ratio)."""
    def badness(name):
        op, limit = TARGETS[name]
        r = ratios[name]
        return r / limit if op == "<=" else limit / r
    return max((n for n in ratios if ratios[n] is not None), key=badness, default="W3")


# ----------------------------------------------------------------------------- the run
def versions() -> dict:
    import scipy

    import hdlif_ref

    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "scipy": scipy.__version__, "torch": None if torch is None else torch.__version__,
            "hdlif_ref": hdlif_ref.__version__}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return None


def run(repeats: int = 7, warmup: int = 2, quick: bool = False, threads: int = 2, with_torch: bool = True,
        profile: str | None = None, log=print, skip: tuple[str, ...] = (),
        peer_threads: tuple[int, ...] = (1, 2)) -> dict:
    """Measure everything; returns the results dictionary (what the JSON file holds).

    ``skip``: parts of :data:`PARTS` not to run; ``peer_threads``: the thread counts of P1-P3.
    """
    with pinned_threads(threads) as thread_info, _timing.warmup_seconds(0.0 if quick else _timing.WARMUP_SECONDS):
        return _run(repeats, warmup, quick, thread_info, with_torch, profile, log, set(skip), tuple(peer_threads))


def _workloads(sizes, repeats, warmup, with_torch, log, threads: int) -> tuple[dict, dict]:
    workloads, ratios = {}, {}
    probe = threads >= 2 and _placement.round_trip_ns() is not None  # where the two threads ran, each round

    def timed(ours, theirs, per_second):
        trips = []
        t_ours, t_torch = alternate(ours, theirs, repeats, warmup,
                                    (lambda: trips.append(_placement.round_trip_ns())) if probe else None)
        placed = None if not probe else {"round_trip_ns": trips,
                                         **by_placement(t_ours, t_torch, trips, per_second)}
        return t_ours, t_torch, placed

    for name, net, algorithm, what in TIME_WORKLOADS:
        log(f"# {name}: {what} ...")
        ours, theirs = wl.training_pair(net, algorithm, sizes, with_torch)
        t_ours, t_torch, placed = timed(ours, theirs, False)
        ratio = None if t_torch is None else t_ours.median / t_torch.median
        workloads[name] = {"what": what, "unit": "ms", "ours": _timing_dict(t_ours, 1e3),
                           "torch": _timing_dict(t_torch, 1e3), "ratio": ratio, "placement": placed}
        ratios[name] = ratio
    for name, net, what in INFERENCE_WORKLOADS:
        log(f"# {name}: {what} ...")
        ours, theirs, n = wl.inference_pair(net, sizes, with_torch)
        t_ours, t_torch, placed = timed(ours, theirs, True)
        ratio = None if t_torch is None else t_torch.median / t_ours.median  # ours / torch images per second
        workloads[name] = {"what": what, "unit": "images/s", "ours": _per_second(t_ours, n),
                           "torch": _per_second(t_torch, n), "ratio": ratio, "placement": placed}
        ratios[name] = ratio
    for name, entry in workloads.items():
        entry["target"] = " ".join(map(str, TARGETS[name]))
        entry["holds"] = _holds(name, entry["ratio"])
    return workloads, ratios


def _workload_fn(name: str, sizes):
    """Our callable of workload ``name`` (for the profiles)."""
    net, algorithm = {w[0]: (w[1], w[2]) for w in TIME_WORKLOADS}.get(name, (None, None))
    if net is None:
        return wl.inference_pair({w[0]: w[1] for w in INFERENCE_WORKLOADS}[name], sizes, False)[0]
    return wl.training_pair(net, algorithm, sizes, False)[0]


def _peers(sizes, peer_threads, repeats, warmup, log, quick):
    from benchmarks import peers

    result = peers.run(sizes.peer_batch, sizes.peer_T, peer_threads, repeats, warmup, log)
    result["profiles"] = peers.profiles(sizes.peer_batch, sizes.peer_T, quick, log)  # why a target is missed
    return result


def _roofline(sizes, repeats, log, quick):
    from benchmarks import e2e_roofline

    return e2e_roofline.run(sizes, repeats, 1, log, sgemm_n=256 if quick else e2e_roofline.SGEMM_N)


def _scaling(sizes, with_torch, repeats, log):
    from benchmarks import e2e_scaling

    return e2e_scaling.run(sizes, with_torch, repeats, 1, log)


def _breakdown(sizes, quick, log):
    log("# W3: per-op time breakdown of ours (cProfile) ...")
    return profile_ours(_workload_fn("W3", sizes), calls=2 if quick else 5, top=10)


def _checks(sizes, quick, log):
    from benchmarks import bench_checks

    log("# the cost of the non-finite input checks on W1 (issue 17) ...")
    return bench_checks.measure(sizes, repeats=3 if quick else 41)


def _run(repeats, warmup, quick, thread_info, with_torch, profile, log, skip, peer_threads) -> dict:
    from benchmarks import e2e_report

    sizes = wl.QUICK if quick else wl.FULL
    with_torch = with_torch and torch is not None
    started = time.perf_counter()
    results: dict = {"machine": machine_description(), "cpu_count": os.cpu_count(), "versions": versions(),
                     "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_start": _load(),
                     "round_trip_ns_start": _placement.round_trip_ns(),
                     "threads": thread_info,
                     "settings": {"repeats": repeats, "warmup": warmup,
                                  "warmup_seconds": _timing.WARMUP_SECONDS, "quick": quick,
                                  "sizes": sizes.__dict__, "lr": wl.LR, "momentum": wl.MOMENTUM,
                                  "skipped": sorted(skip), "peer_threads": list(peer_threads)},
                     "torch_available": torch is not None, "compared_with_torch": with_torch}
    results["part_seconds"] = {}

    def timed(key, fn):
        begun = time.perf_counter()
        value = fn()
        results["part_seconds"][key] = time.perf_counter() - begun
        return value

    if with_torch:
        log("# self-check: three float64 SGD steps per training workload, ours vs the PyTorch peer ...")
        results["self_check"] = timed("self_check", lambda: wl.self_check(sizes))
    results["workloads"], results["ratios"] = timed("workloads", lambda: _workloads(sizes, repeats, warmup,
                                                                                     with_torch, log,
                                                                                     thread_info["requested"]))
    if "memory" not in skip:
        log("# W5: peak memory of one training step versus T ...")
        mem = timed("memory", lambda: memory(sizes, with_torch))
        results["memory"] = mem
        results["memory_growth"] = mem["growth"]
        results["memory_growth_torch"] = mem["growth_torch"]
        results["memory_targets"] = {"online_k1": {"target": f"<= {ONLINE_K1_GROWTH_LIMIT}",
                                                   "holds": mem["growth"]["online_k1"] <= ONLINE_K1_GROWTH_LIMIT}}
    small = max(1, min(repeats, 5))  # the extra parts take fewer samples: many points, one run
    parts = {
        "peers": lambda: _peers(sizes, peer_threads, repeats, warmup, log, quick),
        "roofline": lambda: _roofline(sizes, small, log, quick),
        "scaling": lambda: _scaling(sizes, with_torch, small, log),
        "breakdown_W3": lambda: _breakdown(sizes, quick, log),
        "checks": lambda: _checks(sizes, quick, log),
    }
    for key, part in parts.items():
        if key.split("_")[0] not in skip:
            results[key] = timed(key, part)
    if profile is not None:
        name = worst_workload(results["ratios"]) if profile == "worst" else profile
        log(f"# profiling ours on {name} (cProfile) ...")
        prof = profile_ours(_workload_fn(name, sizes))
        results["profile"] = {"workload": name, "top": prof["top"], "total_ms_per_step": prof["total_ms_per_step"]}
    results["targets"] = e2e_report.targets(results)
    results["load_average_end"] = _load()
    results["round_trip_ns_end"] = _placement.round_trip_ns()
    results["seconds"] = time.perf_counter() - started
    return results


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(results, indent=2) + "\n", binary=False)
