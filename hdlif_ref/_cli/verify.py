"""``hdlif-ref verify``: the paper-equation checks of :mod:`hdlif_ref.oracle.verify` as a table.

Exit code 0 when every check passes, 1 when one fails. What each row computes:
``docs/cli.md`` (section ``verify``).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the random data (default 0)")
    parser.add_argument("--only", metavar="E4,E13", help="run only these equations' checks (comma-separated: "
                                                         "E3, E4, E6, E10, E13, E18, E19, E20)")


def run(args: argparse.Namespace) -> int:
    from ..oracle.verify import format_table, run_checks

    if args.seed < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0")
    only = None if args.only is None else tuple(name.strip() for name in args.only.split(",") if name.strip())
    results = run_checks(args.seed, only)
    print("\n".join(format_table(results)))
    return 0 if all(r.passed for r in results) else 1
