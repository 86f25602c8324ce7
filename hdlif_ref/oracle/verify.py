"""The paper's equations E1-E20 checked on seeded random data, on both kernel backends: ``hdlif-ref verify``.

Every row computes its evidence by a route other than the code it checks (a loop
written from the spec, a closed form, a brute-force count, finite differences);
the checks live in :mod:`._verify_neurons` (E1-E10) and :mod:`._verify_layers`
(E11-E20). Each check runs once with the Numba kernels and once with their NumPy
twins (``HDLIF_REF_BACKEND=numpy``), from the same random stream; a row passes only
if both do. Checks that run no kernel (parameter and operation counts, the energy
table) run once. What verify cannot check is listed, with the reason
(:data:`NOT_CHECKED`). What each row computes: docs/cli.md ("verify").
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..kernels._backend import BACKENDS, backend
from ._verify_layers import (MEMORY_TOLERANCE, NOPS_TOLERANCE, brute_force_sops, check_e11_e12,  # noqa: F401
                             check_e12_layers, check_e13, check_e14_e15, check_e16_e17, check_e18, check_e19,
                             check_e20, check_e20_bitwidth, quantize_by_hand)
from ._verify_neurons import (Evidence, check_e1_e2, check_e3, check_e4, check_e4_params, check_e5,  # noqa: F401
                              check_e6, check_e7, check_e8, check_e9, check_e10, eps_by_differences, hdlif_inputs)


@dataclass
class CheckResult:
    """One row: ``worst`` per backend (``{"numba": .., "numpy": ..}``; one entry for kernel-free checks), its
    ``tolerance``; ``passed`` iff every backend's worst <= tolerance (NaN: failed)."""

    equation: str
    statement: str
    worst: dict[str, float]
    tolerance: float
    note: str = ""
    checked: bool = True

    @property
    def passed(self) -> bool:
        return (not self.checked) or all(bool(w <= self.tolerance) for w in self.worst.values())


@dataclass(frozen=True)
class Check:
    """A check function, the equations it covers, and whether it runs any kernel (then: on each backend)."""

    fn: Callable
    equations: tuple[str, ...]
    kernels: bool = True
    rows: tuple[str, ...] = field(default=())


CHECKS: tuple[Check, ...] = (
    Check(check_e1_e2, ("E1", "E2")),
    Check(check_e3, ("E3",)),
    Check(check_e4, ("E4",)),
    Check(check_e4_params, ("E4",)),
    Check(check_e5, ("E5",)),
    Check(check_e6, ("E6",)),
    Check(check_e7, ("E7",)),
    Check(check_e8, ("E8",)),
    Check(check_e9, ("E9",)),
    Check(check_e10, ("E10",)),
    Check(check_e11_e12, ("E11", "E12")),
    Check(check_e12_layers, ("E12",), kernels=False),
    Check(check_e13, ("E13",)),
    Check(check_e14_e15, ("E14", "E15")),
    Check(check_e16_e17, ("E16", "E17")),
    Check(check_e18, ("E18",), kernels=False),
    Check(check_e19, ("E19",), kernels=False),
    Check(check_e20, ("E20",), kernels=False),
    Check(check_e20_bitwidth, ("E20",), kernels=False),
)
EQUATIONS = tuple(f"E{i}" for i in range(1, 21))

#: What verify does not check, and why (printed as NOT CHECKED rows; they do not fail).
NOT_CHECKED = (
    ("E16", "memory does not grow with T (one step's graph alive at a time)",
     "a property of memory use, not of numbers; benchmarks/bench_e2e.py measures peak memory against T"),
    ("E10", "alpha* and -beta* fold into the synapse's weight scale and bias at deployment",
     "a deployment property: tests/deploy/test_frozen.py runs the folded frozen model against the module"),
    ("Sec. 5", "the paper's accuracy table (CIFAR-100 ablation, SECA + Mem-BN gains)",
     "needs GPU-scale training (300 epochs); docs/results.md has the small-scale orderings measured on CPU"),
)


def run_checks(seed: int = 0, only: tuple[str, ...] | None = None,
               backends: tuple[str, ...] = BACKENDS) -> list[CheckResult]:
    """Every check (or those covering the equations in ``only``, e.g. ``("E4", "E13")``) on each backend in
    ``backends``, each check with its own random stream from ``seed`` (the same on every backend); a check
    that raises is a failed row. The NOT CHECKED rows of the selected equations come last."""
    if only is not None:
        wanted = {o.strip().upper() for o in only}
        unknown = sorted(wanted - set(EQUATIONS), key=lambda e: (len(e), e))
        if unknown:
            raise ValueError(f"verify: unknown equation {', '.join(unknown)}; allowed: E1 .. E20")
    else:
        wanted = set(EQUATIONS)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"verify: backend {', '.join(unknown) or '(none)'}; allowed: {', '.join(BACKENDS)}")
    results: list[CheckResult] = []
    for index, check in enumerate(CHECKS):
        if not wanted & set(check.equations):
            continue
        per_backend: dict[str, list[Evidence]] = {}
        for name in (backends if check.kernels else backends[:1]):
            rng = np.random.default_rng([seed, index])
            with backend(name):
                try:
                    per_backend[name] = check.fn(rng)
                except Exception as exc:  # noqa: BLE001 - a broken equation must show as FAIL, not stop the table
                    per_backend[name] = [Evidence(check.equations[0], f"the check raised {type(exc).__name__}: "
                                                                      f"{exc}", math.nan, 0.0)]
        results.extend(_merge(per_backend, check.kernels))
    results += [CheckResult(eq, what, {}, math.nan, why, checked=False) for eq, what, why in NOT_CHECKED
                if eq in wanted or (eq.startswith("Sec") and only is None)]
    return results


def _merge(per_backend: dict[str, list[Evidence]], kernels: bool) -> list[CheckResult]:
    """Rows of the same check on several backends, side by side (a backend that raised fails every row)."""
    names = list(per_backend)
    longest = max(per_backend.values(), key=len)
    rows = []
    for i, ev in enumerate(longest):
        worst = {}
        for name in names:
            got = per_backend[name]
            worst[name] = got[i].worst if i < len(got) and got[i].statement == ev.statement else math.nan
        rows.append(CheckResult(ev.equation, ev.statement, worst if kernels else {"any": worst[names[0]]},
                                ev.tolerance, ev.note))
    for name in names:  # a backend whose check raised: its single row names the error
        got = per_backend[name]
        if len(got) == 1 and got[0].statement.startswith("the check raised") and got is not longest:
            rows.append(CheckResult(got[0].equation, f"[{name}] {got[0].statement}", {name: math.nan}, 0.0))
    return rows


def format_table(results: list[CheckResult]) -> list[str]:
    """The table ``hdlif-ref verify`` prints: worst error per backend, tolerance, result; then a summary."""
    width = max(len(r.statement) for r in results)
    lines = [f"{'equation':<8}  {'statement':<{width}}  {'numba':>9}  {'numpy':>9}  {'tolerance':>9}  result"]
    for r in results:
        if not r.checked:
            lines.append(f"{r.equation:<8}  {r.statement:<{width}}  {'-':>9}  {'-':>9}  {'-':>9}  "
                         f"NOT CHECKED ({r.note})")
            continue
        if "any" in r.worst:
            cells = [f"{r.worst['any']:9.3g}", f"{'(same)':>9}"]
        else:
            cells = [f"{r.worst[b]:9.3g}" if b in r.worst else f"{'-':>9}" for b in BACKENDS]
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"{r.equation:<8}  {r.statement:<{width}}  {cells[0]}  {cells[1]}  {r.tolerance:>9.3g}  "
                     f"{'PASS' if r.passed else 'FAIL'}{note}")
    checked = [r for r in results if r.checked]
    failed = sum(not r.passed for r in checked)
    covered = sorted({re.match(r"E\d+", r.equation).group(0) for r in checked if re.match(r"E\d+", r.equation)},
                     key=lambda e: (len(e), e))
    lines.append(f"{len(checked)} checks: {len(checked) - failed} PASS, {failed} FAIL; equations "
                 f"{', '.join(covered)}; {len(results) - len(checked)} not checked (see above)")
    return lines
