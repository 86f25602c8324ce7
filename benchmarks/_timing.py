"""Timing helpers shared by the benchmarks: warm-up, then median / min / max of repeated calls."""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timing:
    median: float  # seconds
    low: float
    high: float
    repeats: int

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
    samples.sort()
    n = len(samples)
    median = samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2])
    return Timing(median, samples[0], samples[-1], n)


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
