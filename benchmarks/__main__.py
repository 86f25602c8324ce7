"""``python -m benchmarks``: the end-to-end benchmark of issues 9 and 21 (also ``hdlif-ref bench``, which runs this).

Prints the markdown tables and writes ``latest.json`` into ``--out DIR`` (default: a
fresh ``bench-YYYYMMDD-HHMMSS`` folder in the current directory; the tracked
``benchmarks/results/latest.json`` is only rewritten by ``--out benchmarks/results``).
With ``--update-docs`` (only then) it also rewrites its block in ``docs/performance.md``
(one block per thread count: ``--threads 2``, the default, and ``--threads 1``).
What is measured and how: :mod:`benchmarks.bench_e2e` (W1-W5), :mod:`benchmarks.peers`
(P1-P3), :mod:`benchmarks.e2e_roofline`, :mod:`benchmarks.e2e_scaling`,
:mod:`benchmarks.bench_checks`; the targets: :mod:`benchmarks.e2e_report`. The part benchmarks run on
their own: ``python -m benchmarks.bench_autograd``, ``benchmarks.bench_kernels``,
``benchmarks.bench_neurons``.

This package owns its options; ``hdlif_ref`` never imports it (``hdlif-ref bench``
forwards its arguments to ``python -m benchmarks`` in a subprocess).
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

PROG = "python -m benchmarks"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The options of ``python -m benchmarks`` (and of ``hdlif-ref bench``, which forwards them)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run of every path")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per side and workload (default 7)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of both sides: torch, Numba, BLAS (default 2)")
    parser.add_argument("--no-torch", action="store_true",
                        help="W1-W4, memory and scaling without the PyTorch peer (P1-P3 still run: --skip peers)")
    parser.add_argument("--profile", default="worst", metavar="WORKLOAD",
                        help="cProfile ours on W1, W2_online_all, W2_stbp, W3, W4_digits or W4_resnet; 'worst' "
                             "(default: the workload farthest from its target) or 'none'")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for latest.json (default: a new bench-YYYYMMDD-HHMMSS folder in the current "
                             "directory; --out benchmarks/results updates the tracked results)")
    parser.add_argument("--update-docs", action="store_true",
                        help="also rewrite this thread count's end-to-end block in docs/performance.md (never "
                             "without this flag)")
    parser.add_argument("--skip", default="", metavar="PARTS",
                        help="comma-separated parts not to run: memory, peers, roofline, scaling, breakdown, checks")
    parser.add_argument("--peer-threads", default="1,2", metavar="N[,N]",
                        help="thread counts of the P1-P3 peer comparison (default 1,2)")
    return parser


def default_out(now: datetime.datetime | None = None) -> Path:
    """A folder name that does not exist yet in the current directory: ``bench-YYYYMMDD-HHMMSS[-k]``."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    path, k = Path(f"bench-{stamp}"), 1
    while path.exists():
        path, k = Path(f"bench-{stamp}-{k}"), k + 1
    return path


def check_args(args: argparse.Namespace) -> None:
    """Values argparse cannot check: a ``ValueError`` naming the option, the value and what is allowed."""
    from benchmarks import bench_e2e

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats={args.repeats} must be >= 1")
    if args.threads < 1:
        raise ValueError(f"--threads={args.threads} must be >= 1")
    names = [w[0] for w in bench_e2e.TIME_WORKLOADS] + [w[0] for w in bench_e2e.INFERENCE_WORKLOADS]
    if args.profile not in names + ["worst", "none"]:
        raise ValueError(f"--profile={args.profile!r}; allowed: {', '.join(names)}, worst, none")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out={args.out!r} exists and is not a folder")
    unknown = [p for p in _list(args.skip) if p not in bench_e2e.PARTS]
    if unknown:
        raise ValueError(f"--skip={args.skip!r}: unknown part(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(bench_e2e.PARTS)}")
    try:
        counts = [int(n) for n in _list(args.peer_threads)]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ValueError(f"--peer-threads={args.peer_threads!r} must be thread counts >= 1, e.g. 1,2")


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed options; 0 on success."""
    from benchmarks import bench_e2e, e2e_report

    check_args(args)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 7)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # progress on stderr, the table on stdout
    out = Path(args.out) if args.out is not None else default_out()
    results = bench_e2e.run(repeats=repeats, warmup=1 if args.quick else 2, quick=args.quick,
                            threads=args.threads, with_torch=not args.no_torch,
                            profile=None if args.profile == "none" else args.profile, log=log,
                            skip=tuple(_list(args.skip)), peer_threads=tuple(int(n) for n in _list(args.peer_threads)))
    text = e2e_report.table(results)
    print(text)
    path = out / "latest.json"
    bench_e2e.write_json(results, path)
    log(f"# wrote {path} ({results['seconds']:.0f} s)")
    if args.update_docs:
        if not e2e_report.update_docs(text, args.threads):
            begin, end = e2e_report.doc_markers(args.threads)
            log(f"# {e2e_report.DOCS}: markers {begin} ... {end} not found; not updated")
            return 1
        log(f"# updated {e2e_report.DOCS}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` and run; a bad value is one line on stderr and exit code 2 (as ``hdlif-ref``'s errors)."""
    prog = prog or os.environ.get("BENCHMARKS_PROG", PROG)  # "hdlif-ref bench" when it forwards here
    args = build_parser(prog).parse_args(argv)  # argparse itself exits 2 on unknown options
    try:
        return run_from_args(args)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
