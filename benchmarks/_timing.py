"""Timing helpers shared by the benchmarks: warm-up, then median / min / max of repeated calls."""
from __future__ import annotations

import contextlib
import platform
import time
from dataclasses import dataclass
from typing import Callable, Iterator


#: Warm-up of :func:`interleaved` lasts at least this long (besides its ``warmup`` calls): a fixed
#: number of warm-up calls is milliseconds for the small workloads. On the 2-vCPU virtual machine of
#: docs/performance.md, a run started after 90 s without load timed W1 at 14.2 ms on two threads
#: (10 ms otherwise); with a second of warm-up rounds the next such run timed it at 10.0 ms. A
#: slower mode that no warm-up removes exists too: the host placing the two vCPUs on cores without a
#: shared cache (docs/performance.md, "Two threads: near and far cores"; :mod:`benchmarks._placement`).
WARMUP_SECONDS = 1.0


@contextlib.contextmanager
def warmup_seconds(seconds: float) -> Iterator[float]:
    """Run a block with :data:`WARMUP_SECONDS` set to ``seconds`` (the smoke run uses 0)."""
    global WARMUP_SECONDS
    before = WARMUP_SECONDS
    WARMUP_SECONDS = float(seconds)
    try:
        yield WARMUP_SECONDS
    finally:
        WARMUP_SECONDS = before


@dataclass(frozen=True)
class Timing:
    median: float  # seconds
    low: float
    high: float
    repeats: int
    samples: tuple[float, ...] = ()  # per-call seconds, in round order

    def ms(self) -> str:
        return f"{self.median * 1e3:.3f} ms [{self.low * 1e3:.3f}, {self.high * 1e3:.3f}]"


def measure(fn: Callable[[], object], repeats: int = 10, warmup: int = 2, inner: int = 1) -> Timing:
    """Time ``fn``: ``warmup`` calls, then ``repeats`` samples of ``inner`` calls each (per-call seconds)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return _summary(samples)


def interleaved(fns: list[Callable[[], object]], repeats: int = 10, warmup: int = 2,
                inner: int = 1, before_round: Callable[[], object] | None = None) -> list[Timing]:
    """Time several callables round by round, so that a change in the machine's speed hits all alike.

    ``warmup`` calls of each (and more rounds until :data:`WARMUP_SECONDS` have passed), then
    ``repeats`` rounds; in each round every callable runs ``inner`` times (one sample, per-call
    seconds), and the order reverses every round. ``before_round``, if given, is called before
    each timed round, outside the timings (e.g. to probe the machine's state).
    """
    start = time.perf_counter()
    done = 0
    while done < warmup or (fns and time.perf_counter() - start < WARMUP_SECONDS):
        for fn in fns:
            fn()
        done += 1
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        if before_round is not None:
            before_round()
        order = list(range(len(fns))) if r % 2 == 0 else list(reversed(range(len(fns))))
        for k in order:
            start = time.perf_counter()
            for _ in range(inner):
                fns[k]()
            samples[k].append((time.perf_counter() - start) / inner)
    return [_summary(x) for x in samples]


def median(values) -> float:
    """The median of a non-empty sequence (the mean of the middle two for an even count)."""
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def _summary(samples: list[float]) -> Timing:
    ordered = sorted(samples)
    return Timing(median(ordered), ordered[0], ordered[-1], len(ordered), tuple(samples))


def machine_description() -> str:
    """One line: CPU model, logical cores, Python and NumPy versions."""
    import os

    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
            f"NumPy {numpy.__version__}")
