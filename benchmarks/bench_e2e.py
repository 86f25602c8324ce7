"""End-to-end performance against PyTorch in the same run (issue 9): training steps, inference, memory.

Run: ``python -m benchmarks`` (or ``hdlif-ref bench``); ``--help`` lists the options.

Workloads (``e2e_workloads``: ternary synapses SPEC E12 and 4-bit spikes E13 throughout):

* W1: online step (E16), ``digits_net``, batch 64, ``T = 4``, ``K = 1``;
* W2: the same with ``K = T`` (``W2_online_all``) and with STBP (E17, ``W2_stbp``);
* W3: online step, ``spiking_resnet(18, stem="cifar", width=0.25)``, 32x32x3, batch 32, ``T = 4``, ``K = 1``;
* W4: images per second of the frozen model (``deploy.freeze``, ``FrozenModel.run``)
  against PyTorch ``no_grad`` inference of the training-form network, W1's and W3's;
* W5: peak memory of one training step of W1's network for ``T`` in 1..32, online
  ``K = 1``, online ``K = T`` and STBP: ours by ``tracemalloc`` (NumPy and Numba
  arrays and Python objects), PyTorch by its profiler's allocator events. Peak =
  the largest increase over the memory in use when the step starts.

Timing: ours and PyTorch alternate call by call (the order flips every round, so
load from other processes hits both alike), warm-up first, then the median of
``--repeats`` samples with ``[min, max]``. Ratios are ours / PyTorch medians
(W4: ours / PyTorch images per second). Threads: both sides are pinned to the
same count (``--threads``, default 2): ``torch.set_num_threads``,
``numba.set_num_threads`` and NumPy's BLAS through ``threadpoolctl``; torch is
imported before our kernels, so its OpenMP runtime keeps its own wait policy
while ours applies the project's (``OMP_WAIT_POLICY=PASSIVE``, see
``docs/performance.md``). Before timing, a float64 step of every training
workload must give the same loss and gradients on both sides (to 1e-9 relative).
"""
from __future__ import annotations

import os

try:  # before hdlif_ref's kernels: torch's OpenMP runtime reads its environment when it loads
    import torch
except ImportError:  # pragma: no cover - optional
    torch = None
# What torch's OpenMP runtime saw (the project's kernels set OMP_WAIT_POLICY only for their own pool, later).
_TORCH_OMP_POLICY = None if torch is None else os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default)")

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

from benchmarks import e2e_workloads as wl
from benchmarks._timing import Timing, interleaved, machine_description
from hdlif_ref._safe_files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
DOCS = ROOT / "docs" / "performance.md"
DOC_BEGIN, DOC_END = "<!-- bench-e2e:begin -->", "<!-- bench-e2e:end -->"

TIME_WORKLOADS = (  # name, network, algorithm, what
    ("W1", "digits", "online_k1", "online step, digits_net, K = 1"),
    ("W2_online_all", "digits", "online_all", "online step, digits_net, K = T"),
    ("W2_stbp", "digits", "stbp", "STBP step, digits_net"),
    ("W3", "resnet", "online_k1", "online step, spiking ResNet-18, K = 1"),
)
INFERENCE_WORKLOADS = (("W4_digits", "digits", "frozen inference, digits_net"),
                       ("W4_resnet", "resnet", "frozen inference, spiking ResNet-18"))
TARGETS = {"W1": ("<=", 1.0), "W2_online_all": ("<=", 1.0), "W2_stbp": ("<=", 1.0), "W3": ("<=", 1.5),
           "W4_digits": (">=", 1.0), "W4_resnet": (">=", 1.0)}
MEMORY_ALGORITHMS = ("online_k1", "online_kT", "stbp")
ONLINE_K1_GROWTH_LIMIT = 1.25


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def pinned_threads(n: int):
    """Give both sides ``n`` threads (torch intra-op, Numba, the BLAS libraries through threadpoolctl)
    for the block, restoring the previous counts after; yields what is set."""
    previous_numba = numba.get_num_threads()
    previous_torch = torch.get_num_threads() if torch is not None else None
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    info = {"requested": n, "numba": numba.get_num_threads()}
    if torch is not None:
        torch.set_num_threads(n)
        info["torch_intra_op"] = torch.get_num_threads()
        info["torch_interop"] = torch.get_num_interop_threads()
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_info, threadpool_limits

            stack.enter_context(threadpool_limits(n, user_api="blas"))
            info["blas"] = [{k: d.get(k) for k in ("internal_api", "prefix", "num_threads", "filepath")}
                            for d in threadpool_info() if d.get("user_api") == "blas"]
        except ImportError:  # pragma: no cover
            info["blas"] = "threadpoolctl not installed: BLAS libraries keep their default thread counts"
        from hdlif_ref.kernels._threads import threading_info

        info["numba_runtime"] = threading_info()
        info["omp_wait_policy_seen_by_torch"] = _TORCH_OMP_POLICY
        try:
            yield info
        finally:
            numba.set_num_threads(previous_numba)
            if previous_torch is not None:
                torch.set_num_threads(previous_torch)


# ----------------------------------------------------------------------------- timing
def alternate(ours: Callable, theirs: Callable | None, repeats: int, warmup: int) -> tuple[Timing, Timing | None]:
    """Time both callables, interleaved; the order flips every round. Per-call seconds."""
    timings = interleaved([ours] + ([theirs] if theirs is not None else []), repeats=repeats, warmup=warmup)
    return timings[0], (timings[1] if theirs is not None else None)


def _timing_dict(t: Timing | None, scale: float = 1.0) -> dict | None:
    if t is None:
        return None
    return {"median": t.median * scale, "min": t.low * scale, "max": t.high * scale, "repeats": t.repeats}


def _per_second(t: Timing | None, images: int) -> dict | None:
    """Images per second from per-call seconds (the slowest call gives the minimum)."""
    if t is None:
        return None
    return {"median": images / t.median, "min": images / t.high, "max": images / t.low, "repeats": t.repeats}


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
    """Largest increase of traced memory over its level at the start of ``step()`` (bytes)."""
    step()  # warm-up: optimizer state, Numba dispatch
    tracemalloc.start()
    try:
        step()  # the arrays it keeps (gradients, momentum) are now traced, as PyTorch's are
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
def profile_ours(fn: Callable, calls: int = 5, top: int = 15) -> list[dict]:
    """cProfile of ``calls`` calls of ``fn`` (after one warm-up): the ``top`` entries by own time."""
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _) in stats.stats.items():
        where = filename.replace(str(ROOT) + os.sep, "").split("site-packages" + os.sep)[-1]
        rows.append({"function": f"{where}:{line}({func})", "calls": nc / calls,
                     "own_ms_per_step": tt / calls * 1e3, "cumulative_ms_per_step": ct / calls * 1e3})
    rows.sort(key=lambda r: -r["own_ms_per_step"])
    return rows[:top]


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


def run(repeats: int = 7, warmup: int = 2, quick: bool = False, threads: int = 2, with_torch: bool = True,
        profile: str | None = None, log=print) -> dict:
    """Measure everything; returns the results dictionary (what the JSON file holds)."""
    with pinned_threads(threads) as thread_info:
        return _run(repeats, warmup, quick, thread_info, with_torch, profile, log)


def _run(repeats, warmup, quick, thread_info, with_torch, profile, log) -> dict:
    sizes = wl.QUICK if quick else wl.FULL
    with_torch = with_torch and torch is not None
    started = time.perf_counter()
    results: dict = {"machine": machine_description(), "cpu_count": os.cpu_count(), "versions": versions(),
                     "threads": thread_info,
                     "settings": {"repeats": repeats, "warmup": warmup, "quick": quick,
                                  "sizes": sizes.__dict__, "lr": wl.LR, "momentum": wl.MOMENTUM},
                     "torch_available": torch is not None, "compared_with_torch": with_torch}
    if with_torch:
        log("# self-check: one float64 step per training workload, ours vs the PyTorch peer ...")
        results["self_check"] = wl.self_check(sizes)
    workloads, ratios = {}, {}
    for name, net, algorithm, what in TIME_WORKLOADS:
        log(f"# {name}: {what} ...")
        ours, theirs = wl.training_pair(net, algorithm, sizes, with_torch)
        t_ours, t_torch = alternate(ours, theirs, repeats, warmup)
        ratio = None if t_torch is None else t_ours.median / t_torch.median
        workloads[name] = {"what": what, "unit": "ms", "ours": _timing_dict(t_ours, 1e3),
                           "torch": _timing_dict(t_torch, 1e3), "ratio": ratio}
        ratios[name] = ratio
    for name, net, what in INFERENCE_WORKLOADS:
        log(f"# {name}: {what} ...")
        ours, theirs, n = wl.inference_pair(net, sizes, with_torch)
        t_ours, t_torch = alternate(ours, theirs, repeats, warmup)
        ratio = None if t_torch is None else t_torch.median / t_ours.median  # ours / torch images per second
        workloads[name] = {"what": what, "unit": "images/s", "ours": _per_second(t_ours, n),
                           "torch": _per_second(t_torch, n), "ratio": ratio}
        ratios[name] = ratio
    for name, entry in workloads.items():
        entry["target"] = " ".join(map(str, TARGETS[name]))
        entry["holds"] = _holds(name, entry["ratio"])
    results["workloads"], results["ratios"] = workloads, ratios
    log("# W5: peak memory of one training step versus T ...")
    mem = memory(sizes, with_torch)
    results["memory"] = mem
    results["memory_growth"] = mem["growth"]
    results["memory_growth_torch"] = mem["growth_torch"]
    results["memory_targets"] = {"online_k1": {"target": f"<= {ONLINE_K1_GROWTH_LIMIT}",
                                               "holds": mem["growth"]["online_k1"] <= ONLINE_K1_GROWTH_LIMIT}}
    if profile is not None:
        name = worst_workload(ratios) if profile == "worst" else profile
        log(f"# profiling ours on {name} (cProfile) ...")
        net, algorithm = {w[0]: (w[1], w[2]) for w in TIME_WORKLOADS}.get(name, (None, None))
        if net is None:
            net = {w[0]: w[1] for w in INFERENCE_WORKLOADS}[name]
            fn = wl.inference_pair(net, sizes, False)[0]
        else:
            fn = wl.training_pair(net, algorithm, sizes, False)[0]
        results["profile"] = {"workload": name, "top": profile_ours(fn)}
    results["seconds"] = time.perf_counter() - started
    return results


# ----------------------------------------------------------------------------- output
def _cell(t: dict | None, unit: str) -> str:
    if t is None:
        return "torch not installed" if torch is None else "-"
    fmt = "{:.1f}" if unit == "ms" else "{:.0f}"
    return f"{fmt.format(t['median'])} [{fmt.format(t['min'])}, {fmt.format(t['max'])}] {unit}"


def _mb(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.2f}"


def table(results: dict) -> str:
    """The markdown tables: timings with ratios and targets, then memory versus T."""
    s = results["settings"]["sizes"]
    th = results["threads"]
    lines = [f"{results['machine']}; torch {results['versions']['torch']}, Numba {results['versions']['numba']}; "
             f"threads: torch {th.get('torch_intra_op', '-')}, Numba {th['numba']}, BLAS "
             f"{', '.join(str(b['num_threads']) for b in th['blas']) if isinstance(th['blas'], list) else '-'}; "
             f"median of {results['settings']['repeats']} alternating calls after "
             f"{results['settings']['warmup']} warm-up, [min, max]. Batch {s['digits_batch']} (digits), "
             f"{s['resnet_batch']} (ResNet-18, width {s['resnet_width']}, {s['resnet_input']}x{s['resnet_input']}x3), "
             f"T = {s['T']}, "
             f"ternary synapses, 4-bit spikes.", "",
             "| workload | what | ours | PyTorch | ours / PyTorch | target | holds |",
             "|---|---|---|---|---|---|---|"]
    for name, w in results["workloads"].items():
        ratio = "-" if w["ratio"] is None else f"{w['ratio']:.3f}"
        holds = "-" if w["holds"] is None else ("yes" if w["holds"] else "**no**")
        lines.append(f"| {name} | {w['what']} | {_cell(w['ours'], w['unit'])} | {_cell(w['torch'], w['unit'])} "
                     f"| {ratio} | {w['target']} | {holds} |")
    mem = results["memory"]
    lines += ["", "Peak memory of one training step (MiB) versus T, W1's network (W5):", "",
              "| T | ours online K=1 | ours online K=T | ours STBP | PyTorch online K=1 | PyTorch online K=T "
              "| PyTorch STBP |", "|---|---|---|---|---|---|---|"]
    for i, T in enumerate(mem["T"]):
        theirs = [None] * 3 if mem["torch"] is None else [mem["torch"][a][i] for a in MEMORY_ALGORITHMS]
        lines.append(f"| {T} | " + " | ".join(_mb(mem["ours"][a][i]) for a in MEMORY_ALGORITHMS) + " | "
                     + " | ".join(_mb(b) for b in theirs) + " |")
    growth = lambda g: " | ".join("-" if g is None else f"{g[a]:.2f}x" for a in MEMORY_ALGORITHMS)
    lines.append(f"| growth T={mem['T'][0]} -> {mem['T'][-1]} | {growth(mem['growth'])} | "
                 f"{growth(mem['growth_torch'])} |")
    holds = results["memory_targets"]["online_k1"]["holds"]
    lines += ["", f"Target: online K = 1 grows <= {ONLINE_K1_GROWTH_LIMIT}x: "
                  f"{'holds' if holds else '**missed**'}; STBP grows roughly linearly (reported)."]
    if "profile" in results:
        p = results["profile"]
        lines += ["", f"Profile of ours on {p['workload']} (cProfile, per step, top by own time):", "",
                  "| function | calls | own ms | cumulative ms |", "|---|---|---|---|"]
        lines += [f"| `{r['function']}` | {r['calls']:.0f} | {r['own_ms_per_step']:.2f} | "
                  f"{r['cumulative_ms_per_step']:.2f} |" for r in p["top"]]
    return "\n".join(lines)


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(results, indent=2) + "\n", binary=False)


def update_docs(text: str, path: Path = DOCS) -> bool:
    """Replace the block between the issue-9 markers of ``docs/performance.md``; False if the markers are missing."""
    doc = path.read_text()
    begin, end = doc.find(DOC_BEGIN), doc.find(DOC_END)
    if begin < 0 or end < begin:
        return False
    atomic_write(path, doc[:begin + len(DOC_BEGIN)] + "\n" + text + "\n" + doc[end:], binary=False)
    return True
