"""``hdlif-ref verify``: every equation of SPEC (E1-E20) checked by :mod:`hdlif_ref.oracle.verify`, as a table.

One row per equation or sub-claim, with the worst error on the Numba kernels and on
their NumPy twins; rows that run no kernel show one value. Exit code 0 when every
row passes on every backend, 1 when one fails. What it cannot check is listed with
the reason. What each row computes: ``docs/cli.md`` (section ``verify``).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the random data (default 0)")
    parser.add_argument("--only", metavar="E4,E13", help="run only the checks of these equations (comma-separated, "
                                                         "E1 .. E20)")
    parser.add_argument("--backend", choices=("both", "numba", "numpy"), default="both",
                        help="kernel backend(s) to run each check on (default both)")


def run(args: argparse.Namespace) -> int:
    from ..oracle.verify import format_table, run_checks

    if args.seed < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0")
    only = None if args.only is None else tuple(name.strip() for name in args.only.split(",") if name.strip())
    backends = ("numba", "numpy") if args.backend == "both" else (args.backend,)
    results = run_checks(args.seed, only, backends)
    print("\n".join(format_table(results)))
    return 0 if all(r.passed for r in results) else 1
