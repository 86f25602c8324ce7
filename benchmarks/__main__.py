"""``python -m benchmarks``: the end-to-end benchmark of issue 9 (also ``hdlif-ref bench``).

Prints the markdown tables, writes ``benchmarks/results/latest.json`` (or ``--json``)
and, with ``--update-docs``, the table in ``docs/performance.md``. What is measured
and how: :mod:`benchmarks.bench_e2e`. The part benchmarks run on their own:
``python -m benchmarks.bench_autograd``, ``benchmarks.bench_kernels``,
``benchmarks.bench_neurons``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed options (:func:`hdlif_ref.cli.add_bench_arguments`); 0 on success."""
    from benchmarks import bench_e2e

    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 7)
    if repeats < 1:
        raise ValueError(f"--repeats={repeats} must be >= 1")
    if args.threads < 1:
        raise ValueError(f"--threads={args.threads} must be >= 1")
    names = [w[0] for w in bench_e2e.TIME_WORKLOADS] + [w[0] for w in bench_e2e.INFERENCE_WORKLOADS]
    if args.profile not in names + ["worst", "none"]:
        raise ValueError(f"--profile={args.profile!r}; allowed: {', '.join(names)}, worst, none")
    log = lambda text: print(text, file=sys.stderr, flush=True)  # progress on stderr, the table on stdout
    results = bench_e2e.run(repeats=repeats, warmup=1 if args.quick else 2, quick=args.quick,
                            threads=args.threads, with_torch=not args.no_torch,
                            profile=None if args.profile == "none" else args.profile, log=log)
    text = bench_e2e.table(results)
    print(text)
    path = Path(args.json) if args.json else bench_e2e.DEFAULT_JSON
    bench_e2e.write_json(results, path)
    log(f"# wrote {path} ({results['seconds']:.0f} s)")
    if args.update_docs:
        if not bench_e2e.update_docs(text):
            log(f"# {bench_e2e.DOCS}: markers {bench_e2e.DOC_BEGIN} ... {bench_e2e.DOC_END} not found; not updated")
            return 1
        log(f"# updated {bench_e2e.DOCS}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from hdlif_ref.cli import add_bench_arguments

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
