"""What recycling the kernels' output arrays gains (issue 21, docs/performance.md "Fresh pages").

Run: ``python -m benchmarks.bench_recycle [--quick]`` (also a part of ``python -m benchmarks``). The
same W1 and W2_stbp training steps and the same W4_digits frozen inference are timed with
``kernels._workspace.empty`` recycling memory (as shipped) and with it handing out fresh
arrays (``recycling_off``: the kept buffers set aside for the block), in interleaved rounds
(medians), ours alone: what a process of ours gains. No target: the issue's targets are
ratios against PyTorch, which this cannot move in a shared process (PyTorch's allocations
are glibc's too, and gain from our memory staying mapped).
"""
from __future__ import annotations

import sys

from benchmarks import e2e_workloads as wl
from benchmarks._timing import interleaved, machine_description
from hdlif_ref.kernels._workspace import recycling_off

WORKLOADS = (("W1", "online_k1"), ("W2_stbp", "stbp"), ("W4_digits", None))


def _off(fn):
    def run():
        with recycling_off():
            fn()
    return run


def measure(sizes=wl.FULL, repeats: int = 21) -> dict:
    """``{workload: {"recycled_ms", "fresh_ms", "speedup"}}``: ``speedup`` = fresh / recycled median."""
    out = {}
    for name, algorithm in WORKLOADS:
        if algorithm is None:
            step, _, _ = wl.inference_pair("digits", sizes, with_torch=False)
        else:
            step, _ = wl.training_pair("digits", algorithm, sizes, with_torch=False)
        recycled, fresh = interleaved([step, _off(step)], repeats=repeats, warmup=3)
        out[name] = {"recycled_ms": recycled.median * 1e3, "fresh_ms": fresh.median * 1e3,
                     "speedup": fresh.median / recycled.median}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    result = measure(wl.QUICK if quick else wl.FULL, repeats=3 if quick else 21)
    print(machine_description())
    for name, r in result.items():
        print(f"{name}: recycled {r['recycled_ms']:.2f} ms, fresh {r['fresh_ms']:.2f} ms: {r['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
