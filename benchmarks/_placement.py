"""Where the machine put the two CPUs a 2-thread run uses: the cache-line round trip between them.

On the 2-vCPU virtual machine of docs/performance.md ("Two threads: near and far cores"),
the host moves the two vCPUs between physical cores that share a last-level cache and
cores that do not, every few seconds to minutes. A cache line passed between them
then takes ~50-140 ns or ~320-420 ns for a round trip, and every array one thread
writes and the other reads pays for it: our 2-thread W1 step took 8.8 ms (median) with
near cores and 13.6 ms with far ones, PyTorch's 15.6 and 18.8 ms (one process, 153
samples; one-thread runs unchanged). A 2-thread ratio means little without knowing
which it was, so the benchmark records the round trip before every timed round. It
measures the first two CPUs the process may use, not the ones its threads ran on (the
machine has two), and :data:`FAR_NS` is set from this machine's two modes.

:func:`round_trip_ns` runs ``_round_trip.c``, compiled once per process into a temporary
directory with the C compiler found on ``PATH`` (``cc``, ``gcc`` or ``clang``); ``None``
where there is none, fewer than two CPUs, or the compile or the run fails (the run
then records no placement). :func:`placement` names a round trip ``"near"`` or ``"far"``
by :data:`FAR_NS`.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_round_trip.c")
#: A round trip at or above this many nanoseconds is "far" (no shared cache). Measured modes on the
#: benchmark machine: 51-139 ns and 322-424 ns; this sits between them.
FAR_NS = 200.0
#: Round trips per probe: ~3-20 ms.
ROUNDS = 50_000


@functools.lru_cache(maxsize=1)
def _binary() -> str | None:
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None or not SOURCE.is_file():
        return None
    folder = tempfile.mkdtemp(prefix="hdlif-round-trip-")
    atexit.register(shutil.rmtree, folder, True)  # removed when the process ends
    out = Path(folder) / "round_trip"
    try:
        done = subprocess.run([compiler, "-O2", "-pthread", "-o", str(out), str(SOURCE)], capture_output=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return str(out) if done.returncode == 0 and out.is_file() else None


def _cpus() -> tuple[int, int] | None:
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else None


def round_trip_ns(rounds: int = ROUNDS) -> float | None:
    """Mean nanoseconds for a cache line to go from the first allowed CPU to the second and back."""
    binary, cpus = _binary(), _cpus()
    if binary is None or cpus is None:
        return None
    try:
        done = subprocess.run([binary, str(cpus[0]), str(cpus[1]), str(int(rounds))], capture_output=True,
                              text=True, timeout=30)
        return float(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):  # e.g. a temporary folder mounted noexec
        return None


def placement(ns: float | None) -> str | None:
    """``"near"`` (the two CPUs share a cache), ``"far"``, or ``None`` when not measured."""
    return None if ns is None else ("far" if ns >= FAR_NS else "near")
