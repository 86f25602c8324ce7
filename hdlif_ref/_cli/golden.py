"""``hdlif-ref golden OUT.h5`` writes the golden vectors of SPEC sections 6-7; ``--check FILE.h5`` checks a file.

``--check`` recomputes every case of the file (from another implementation, or
ours) from its inputs and prints, per case, the settings it used, then one line
per field: case, field, worst ``|file - ours|``, that error over the tolerance
``atol + rtol |ours|`` (PASS when <= 1), the tolerance, PASS/FAIL/SKIP; NOTEs for
whatever in the file it does not know; and a verdict. Tolerances come from
``--profile`` (a case may only tighten them). Exit code 0 only when the verdict is
PASS, 1 when it is FAIL, 2 when the file cannot be checked at all (one line on
stderr). Layout, kinds and profiles: ``docs/golden.md``.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..oracle.schema import ALLOWABLE_GROUPS, KINDS, PROFILES

    parser.add_argument("path", metavar="FILE.h5", help="where to write the golden file (or, with --check / "
                                                        "--list, the file to read)")
    parser.add_argument("--check", action="store_true", help="check FILE.h5 instead of writing it")
    parser.add_argument("--list", action="store_true", help="list the cases of FILE.h5 (and the kinds this "
                                                            "checker knows) without checking")
    parser.add_argument("--profile", default="float64", choices=tuple(PROFILES),
                        help="--check: tolerance profile (float64: rtol 1e-6, atol 1e-9, models 1e-5/1e-8; "
                             "float32: 1e-4/1e-5); a case's rtol/atol attrs may only tighten it")
    parser.add_argument("--allow-missing", metavar="GROUP[,GROUP]", default="",
                        help=f"--check: absent required fields of these groups are SKIPs, not FAILs "
                             f"(reported in the verdict); groups: {', '.join(ALLOWABLE_GROUPS)}")
    parser.add_argument("--cases", metavar="KIND[,KIND]", default=None,
                        help=f"write or check only the cases of these kinds: {', '.join(KINDS)}")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="--check: also write the report as JSON (with an overall 'verdict') to PATH")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="--check/--list: seconds allowed for reading the HDF5 file (default 60)")


def run(args: argparse.Namespace) -> int:
    from .. import oracle

    if args.check and args.list:
        raise ValueError("--check and --list: give one of them")
    if (args.check or args.list) and not args.timeout > 0:
        raise ValueError(f"--timeout={args.timeout} must be > 0")
    if not args.check:
        for flag, value, default in (("--json", args.json, None), ("--allow-missing", args.allow_missing, ""),
                                     ("--profile", args.profile, "float64")):
            if value != default:
                raise ValueError(f"{flag} applies to --check only")
    if args.list:
        print("\n".join(oracle.list_cases(args.path, timeout=args.timeout)))
        return 0
    if args.check:
        report = oracle.check(args.path, profile=args.profile, allow_missing=args.allow_missing.split(","),
                              cases=args.cases, timeout=args.timeout)
        print("\n".join(report.format()))
        if args.json:
            from .._safe_files import atomic_write

            atomic_write(args.json, report.to_json() + "\n", binary=False)
        return 0 if report.verdict == "PASS" else 1
    if args.seed < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0")
    cases = oracle.write(args.path, seed=args.seed, cases=args.cases)
    fields = sum(len(c.fields) for c in cases)
    print(f"wrote {args.path}: {len(cases)} cases, {fields} datasets (seed {args.seed}, SPEC sections 6-7, "
          f"format version 2)")
    for case in cases:
        settings = "".join(f", {k}={v}" for k, v in case.attrs.items() if k not in ("kind", "arch"))
        main = next(iter(case.inputs.items()))
        print(f"  {case.name:<32} kind={case.kind:<12} {main[0]}{list(main[1].shape)}{settings}")
    return 0
