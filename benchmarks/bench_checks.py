"""What the non-finite input checks cost (issue 17): a W1 step with and without them.

Run: ``python -m benchmarks.bench_checks [--quick]``. The same W1 training step
(digits_net, online K = 1, ternary synapses, 4-bit spikes, batch 64, T = 4) is timed
with the checks of :func:`hdlif_ref.autograd.ops._args.check_finite` as shipped and
with them replaced by a no-op, in interleaved rounds (medians). Target: the checks
cost < 2% of the step.
"""
from __future__ import annotations

import sys

from benchmarks import e2e_workloads
from benchmarks._timing import interleaved, machine_description
from hdlif_ref.autograd.ops import _args
from hdlif_ref.layers import _steps
from hdlif_ref.neurons import _checks, quantizer

#: Every module that calls check_finite on a training step's hot path.
CALLERS = (_steps, _checks, quantizer)
TARGET = 0.02


def _no_check(op, name, x) -> None:
    return None


def measure(sizes=e2e_workloads.FULL, repeats: int = 41) -> dict:
    step, _ = e2e_workloads.training_pair("digits", "online_k1", sizes, with_torch=False)

    def use(check):
        def run():
            for module in CALLERS:
                module.check_finite = check
            step()
        return run

    try:
        checked, unchecked = interleaved([use(_args.check_finite), use(_no_check)], repeats=repeats, warmup=3)
    finally:
        for module in CALLERS:
            module.check_finite = _args.check_finite
    cost = checked.median / unchecked.median - 1.0
    return {"checked_ms": checked.median * 1e3, "unchecked_ms": unchecked.median * 1e3, "cost": cost,
            "target": TARGET, "holds": cost < TARGET}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    result = measure(e2e_workloads.QUICK if quick else e2e_workloads.FULL, repeats=3 if quick else 41)
    print(machine_description())
    print(f"W1 step with the non-finite checks {result['checked_ms']:.3f} ms, without {result['unchecked_ms']:.3f} ms: "
          f"cost {result['cost'] * 100:+.2f}% (target < {TARGET * 100:.0f}%: {'holds' if result['holds'] else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
