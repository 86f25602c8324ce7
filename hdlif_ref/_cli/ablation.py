"""``hdlif-ref ablation``: the paper's ablation at small scale as a paired, resumable sweep (issue 22).

Runs (or resumes) the sweep into ``--out`` (default: a fresh ``ablation-<time>``
folder in the current directory; never the checkout's docs/), then writes
``--out/results.md`` from the stored results. ``--report-only`` only writes the
report (``--results FILE`` elsewhere, e.g. docs/results.md).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=None,
                        help="paired seeds 0..N-1 per row (default 10; 2 with --quick)")
    parser.add_argument("--workers", type=int, default=1,
                        help="1 (default): in this process, no Dask; N > 1: a local Dask cluster of N processes")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="run on an existing Dask cluster (needs the [cluster] extra)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="sweep directory: one result file per task, sweep.json, results.md; give an "
                             "existing one to resume it (default: a fresh ./ablation-<date>-<time>)")
    parser.add_argument("--datasets", default="digits,event-digits", help="comma-separated subset")
    parser.add_argument("--rows", default="all", help="row numbers, e.g. 1,2,5 (default all 9)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of every path: tiny data, 1 epoch, 2 seeds (numbers at chance level)")
    parser.add_argument("--report-only", action="store_true", help="run nothing: write the report from --out")
    parser.add_argument("--results", default=None, metavar="FILE",
                        help="where the report goes (default DIR/results.md)")


def _command(args: argparse.Namespace, seeds: int) -> str:
    parts = ["hdlif-ref ablation"]
    if args.quick:
        parts.append("--quick")
    parts.append(f"--seeds {seeds}")
    if args.scheduler:
        parts.append("--scheduler ADDRESS")
    elif args.workers != 1:
        parts.append(f"--workers {args.workers}")
    if args.datasets != "digits,event-digits":
        parts.append(f"--datasets {args.datasets}")
    if args.rows != "all":
        parts.append(f"--rows {args.rows}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    from ..training.ablation import QUICK_SEEDS, SEEDS, THREADS_ENV, make_tasks, parse_rows, run_task, task_cost
    from ..training.ablation_report import add_session, write_report, write_sweep
    from ..training.sweep import TaskStore, require_distributed, run_sweep

    if args.report_only:
        if args.out is None:
            raise ValueError("--report-only needs --out DIR (a sweep directory)")
        path = write_report(args.out, args.results)
        print(f"wrote {path}", file=sys.stderr)
        return 0
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else SEEDS)
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be >= 1")
    tasks = make_tasks(names, parse_rows(args.rows), seeds, quick=args.quick)
    if args.scheduler or args.workers > 1:
        require_distributed()  # before anything is written
    out = args.out or os.path.abspath(f"ablation-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    command = _command(args, seeds)
    write_sweep(out, tasks, {"command": command, "quick": args.quick, "seeds": seeds, "datasets": names,
                             "rows": args.rows})
    cores = os.cpu_count() or 1
    # each local worker's kernels use its share of the cores (the numbers do not depend on it); not
    # NUMBA_NUM_THREADS: Numba refuses a change of it once its pool runs, and the pool may start at import
    worker_env = {THREADS_ENV: str(max(1, cores // args.workers))}
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    placement = (f"Dask cluster {args.scheduler}" if args.scheduler else
                 f"local Dask cluster, {args.workers} workers" if args.workers > 1 else "in process")
    summary, start = None, time.perf_counter()
    try:
        summary = run_sweep(tasks, run_task, TaskStore(out), workers=args.workers, scheduler=args.scheduler,
                            worker_env=worker_env, cost=task_cost)
    finally:
        add_session(out, {"started": started, "seconds": time.perf_counter() - start,
                          "executed": summary.executed if summary else None,
                          "skipped": summary.skipped if summary else None,
                          "failed": len(summary.failed) if summary else None, "interrupted": summary is None,
                          "placement": placement, "host": platform.node(), "command": command,
                          "machine": platform.processor() or platform.machine(),
                          "python": platform.python_version()})
    path = write_report(out, args.results, command)
    print(f"sweep: {summary.executed} run, {summary.skipped} already stored, {len(summary.failed)} failed "
          f"in {summary.seconds / 60:.1f} min; results in {out}; report {path}", file=sys.stderr)
    if summary.failed:
        print(f"sweep: {len(summary.failed)} task(s) failed (see {os.path.join(out, 'failed')}); run the same "
              f"command with --out {out} to retry them", file=sys.stderr)
        return 1
    return 0
