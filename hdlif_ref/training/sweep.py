"""A resumable sweep of independent tasks: in process, on a local Dask cluster, or on a remote one.

A *task* is a JSON-able dict that fully describes one computation (for the ablation:
dataset, row and the resolved training config, seed included). Its result is stored
in ``OUT/tasks/<key>.json`` where ``key`` hashes the task's canonical JSON, so

- a sweep that stops (killed, interrupted, a machine lost) resumes where it stopped:
  tasks whose file holds the same task are skipped, every other one runs;
- the report is built from the stored files only;
- adding seeds or rows to a sweep reuses every task it already holds.

Files are written atomically (:func:`atomic_write_text`): a reader sees the old file or
the new one, never half of one. The client writes them, not the workers, so a remote
cluster needs no shared disk. A task that raises is recorded in ``OUT/failed/<key>.json``
and tried again by the next run; the others go on.

Execution (``run_sweep``): ``workers=1`` and no scheduler runs the tasks one after the
other in this process, without importing Dask; ``workers=N`` starts a
``distributed.LocalCluster`` of ``N`` single-threaded worker processes on 127.0.0.1;
``scheduler="tcp://HOST:PORT"`` (or an open ``client``) uses an existing cluster. Dask
reruns the tasks of a worker that dies. Dask is the optional extra ``[cluster]``.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

FORMAT = "hdlif-sweep-task"
FORMAT_VERSION = 1


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees a partial file.

    A temporary file in the same directory, flushed and fsynced, then ``os.replace``, then
    the directory fsynced (where the platform allows), as the checkpoint writer does.
    (The one place this sweep writes files: to switch to a shared helper, change this.)
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def task_key(task: dict) -> str:
    """The storage key of a task: SHA-256 of its canonical JSON (first 24 hex digits)."""
    return hashlib.sha256(canonical_json(task).encode("utf-8")).hexdigest()[:24]


class TaskStore:
    """Results of a sweep's tasks, one JSON file each, under ``root/tasks`` (failures under ``root/failed``)."""

    def __init__(self, root: str):
        self.root = root
        self.tasks_dir = os.path.join(root, "tasks")
        self.failed_dir = os.path.join(root, "failed")

    def path(self, task: dict) -> str:
        return os.path.join(self.tasks_dir, task_key(task) + ".json")

    def load(self, task: dict) -> dict | None:
        """The stored record ``{"task", "result", "measurement", ...}`` of ``task``, or ``None``.

        A file that cannot be read or holds another task counts as missing (the task runs again).
        """
        path = self.path(task)
        try:
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("task") != task:
            return None
        return record

    def save(self, task: dict, output: dict) -> None:
        """Store a task's output ``{"result": ..., "measurement": ...}``; clears an earlier failure."""
        record = {"format": FORMAT, "version": FORMAT_VERSION, "key": task_key(task), "task": task,
                  "result": output["result"], "measurement": output.get("measurement", {}),
                  "stored": _now()}
        atomic_write_text(self.path(task), json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
        failed = os.path.join(self.failed_dir, task_key(task) + ".json")
        if os.path.exists(failed):
            os.unlink(failed)

    def save_failure(self, task: dict, error: str) -> None:
        record = {"format": FORMAT + "-failure", "key": task_key(task), "task": task, "error": error,
                  "stored": _now()}
        atomic_write_text(os.path.join(self.failed_dir, task_key(task) + ".json"),
                          json.dumps(record, indent=1, sort_keys=True) + "\n")

    def failures(self) -> list[dict]:
        """Every recorded failure whose task has no stored result."""
        out = []
        if os.path.isdir(self.failed_dir):
            for name in sorted(os.listdir(self.failed_dir)):
                if name.endswith(".json") and not name.startswith(".tmp-"):
                    try:
                        with open(os.path.join(self.failed_dir, name), encoding="utf-8") as fh:
                            out.append(json.load(fh))
                    except (OSError, ValueError):
                        continue
        return [f for f in out if self.load(f["task"]) is None]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


@dataclass
class SweepSummary:
    total: int
    skipped: int = 0
    executed: int = 0
    failed: list[tuple[dict, str]] = field(default_factory=list)
    seconds: float = 0.0
    dashboard: str | None = None

    @property
    def complete(self) -> bool:
        return not self.failed


class _ProgressLine:
    """``sweep: done/total done, R running, F failed, ETA ...`` after each finished task.

    The ETA is the remaining cost at the rate (cost per second) of this session so far,
    where a task's cost is the ``cost`` hint given to :func:`run_sweep` (default 1 each).
    """

    def __init__(self, total: int, skipped: int, log: Callable[[str], None], pending_cost: float):
        self.total, self.skipped, self.log = total, skipped, log
        self.done = skipped
        self.failed = 0
        self.remaining_cost, self.finished_cost = pending_cost, 0.0
        self.start = time.perf_counter()

    def finished(self, cost: float) -> None:
        self.remaining_cost -= cost
        self.finished_cost += cost

    def eta(self) -> float:
        if self.finished_cost <= 0:
            return math.inf
        return (time.perf_counter() - self.start) / self.finished_cost * max(self.remaining_cost, 0.0)

    def show(self, running: int, last: str = "") -> None:
        remaining = self.total - self.done - self.failed
        eta = "ETA " + (_duration(self.eta()) if remaining else "0s")
        self.log(f"sweep: {self.done}/{self.total} done, {running} running, {self.failed} failed, {eta}"
                 + (f"  ({last})" if last else ""))


def _describe(task: dict) -> str:
    parts = [str(task[k]) for k in ("dataset", "row") if k in task]
    if "seed" in task:
        parts.append(f"seed {task['seed']}")
    return ", ".join(parts) or task_key(task)


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def run_sweep(tasks: list[dict], function: Callable[[dict], dict], store: TaskStore, workers: int = 1,
              scheduler: str | None = None, client: Any = None, log: Callable[[str], None] | None = None,
              worker_env: dict[str, str] | None = None, connect_timeout: float = 30.0,
              timeout: float | None = None, cost: Callable[[dict], float] | None = None) -> SweepSummary:
    """Run every task of ``tasks`` that ``store`` does not hold; store each output as it arrives.

    ``function(task)`` returns ``{"result": {...}, "measurement": {...}}`` (JSON-able);
    ``result`` must depend on the task only (the determinism tests compare it), while
    ``measurement`` holds what may vary (seconds, memory, which worker). Placement:
    ``client`` (an open ``distributed.Client``), else ``scheduler`` (an address), else
    ``workers > 1`` (a ``LocalCluster`` on 127.0.0.1 with ``worker_env`` in its workers'
    environment), else in this process. Returns counts; failed tasks are listed, not raised.
    ``timeout`` (seconds, Dask only) bounds the wait for the tasks: past it the sweep stops with
    ``TimeoutError`` (what finished is stored; the next run resumes). ``cost(task)``, a rough
    relative run time, orders the pending tasks longest first (a shorter tail on a cluster)
    and weighs the ETA; it must not change results (tasks are independent).
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    keys = [task_key(t) for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("run_sweep: the task list holds the same task twice")
    cost = cost or (lambda task: 1.0)
    pending = sorted((t for t in tasks if store.load(t) is None), key=cost, reverse=True)  # stable
    summary = SweepSummary(total=len(tasks), skipped=len(tasks) - len(pending))
    progress = _ProgressLine(len(tasks), summary.skipped, log, sum(cost(t) for t in pending))
    start = time.perf_counter()
    log(f"sweep: {len(tasks)} tasks, {summary.skipped} already stored in {store.root}, {len(pending)} to run")
    try:
        if pending:
            if client is None and scheduler is None and workers == 1:
                _run_here(pending, function, store, summary, progress, cost)
            else:
                _run_on_dask(pending, function, store, summary, progress, workers, scheduler, client, log,
                             worker_env or {}, connect_timeout, timeout, cost)
    finally:
        summary.seconds = time.perf_counter() - start
    return summary


def _finish(task: dict, output: Any, error: BaseException | None, store: TaskStore, summary: SweepSummary,
            progress: _ProgressLine, running: int, cost: float) -> None:
    progress.finished(cost)
    if error is None:
        try:
            store.save(task, output)
        except (TypeError, ValueError, KeyError) as exc:  # an output that is not storable is a failed task
            error = exc
    if error is None:
        summary.executed += 1
        progress.done += 1
        progress.show(running, _describe(task))
    else:
        text = _error_text(error)
        summary.failed.append((task, text))
        store.save_failure(task, text)
        progress.failed += 1
        progress.show(running, f"FAILED {_describe(task)}: {text}")


def _run_here(pending, function, store, summary, progress, cost) -> None:
    for i, task in enumerate(pending):
        try:
            output, error = function(task), None
        except Exception as exc:  # noqa: BLE001 - a failed task is recorded; the sweep goes on
            output, error = None, exc
        _finish(task, output, error, store, summary, progress, 1 if i + 1 < len(pending) else 0, cost(task))


def require_distributed():
    """The ``distributed`` module, or an ``ImportError`` that says which extra installs it."""
    try:
        import distributed
    except ImportError:
        raise ImportError("running on more than one worker needs Dask: pip install 'hdlif-ref[cluster]' "
                           "(or 'dask[distributed]'); --workers 1 runs without it") from None
    return distributed


def _scheduler_has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def dashboard_address(client: Any) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one (its HTTP server and bokeh)."""
    try:
        services = client.scheduler_info().get("services", {})
        if "dashboard" not in services or not client.run_on_scheduler(_scheduler_has_bokeh):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - the address is informative only
        return None


def _run_on_dask(pending, function, store, summary, progress, workers, scheduler, client, log, worker_env,
                 connect_timeout, timeout, cost) -> None:
    distributed = require_distributed()
    owned: list[Any] = []
    try:
        if client is None:
            if scheduler is not None:
                client = distributed.Client(scheduler, timeout=connect_timeout)
            else:
                # loopback only, and a free port: the scheduler's HTTP server (the dashboard, when
                # bokeh is installed) must not clash with another sweep's on the same machine
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                   env=dict(worker_env))
                owned.append(cluster)
                client = distributed.Client(cluster, timeout=connect_timeout)
            owned.insert(0, client)
        summary.dashboard = dashboard_address(client)
        threads = sum(client.nthreads().values())
        log(f"sweep: Dask scheduler {client.scheduler.address}, {len(client.nthreads())} workers, {threads} threads; "
            + (f"dashboard {summary.dashboard}" if summary.dashboard else "no dashboard (it needs bokeh)"))
        session = uuid.uuid4().hex[:8]
        progress.start = time.perf_counter()  # the ETA counts task time, not the cluster's start
        futures = {}
        for task in pending:
            future = client.submit(function, task, key=f"{_describe(task)} [{task_key(task)}-{session}]")
            futures[future] = task
        remaining = len(futures)
        for future in distributed.as_completed(list(futures), timeout=timeout):
            remaining -= 1
            running = min(remaining, max(sum(client.nthreads().values()), 1))
            task = futures.pop(future)
            if future.status == "finished":
                output, error = future.result(), None
            else:
                try:
                    output, error = None, future.exception()
                except BaseException as exc:  # noqa: BLE001 - e.g. CancelledError when the cluster went away
                    output, error = None, exc
            future.release()
            _finish(task, output, error, store, summary, progress, running, cost(task))
    finally:
        for thing in owned:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
