"""``hdlif-ref golden OUT.h5`` writes the golden vectors of SPEC section 6; ``--check FILE.h5`` checks a file.

``--check`` recomputes every case of the file (from another implementation, or
ours) from its inputs and prints one line per field: case, field, worst
``|file - ours|``, that error over the tolerance ``atol + rtol |ours|`` (PASS when
<= 1), PASS/FAIL/SKIP. Exit code 1 if any field fails; a file that does not follow
the layout is a one-line error (exit code 2). Layout and cases: ``docs/golden.md``.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="FILE.h5", help="where to write the golden file (or, with --check, "
                                                        "the file to check)")
    parser.add_argument("--check", action="store_true", help="check FILE.h5 instead of writing it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="--check: seconds allowed for reading the HDF5 file (default 60)")


def run(args: argparse.Namespace) -> int:
    from ..oracle.golden import check_golden, format_results, write_golden

    if args.check:
        if not args.timeout > 0:
            raise ValueError(f"--timeout={args.timeout} must be > 0")
        results = check_golden(args.path, timeout=args.timeout)
        print("\n".join(format_results(results)))
        return 1 if any(r.status == "FAIL" for r in results) else 0
    if args.seed < 0:
        raise ValueError(f"--seed={args.seed} must be >= 0")
    cases = write_golden(args.path, seed=args.seed)
    fields = sum(len(c.fields) for c in cases)
    print(f"wrote {args.path}: {len(cases)} cases, {fields} float64 datasets (seed {args.seed}, SPEC section 6)")
    for case in cases:
        settings = "".join(f", {k}={v}" for k, v in case.attrs.items())
        print(f"  {case.name:<22} kind={case.kind:<8} T={case.T}  I{list(case.fields['inputs/I'].shape)}{settings}")
    return 0
