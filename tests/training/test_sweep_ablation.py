"""The ablation as a paired, resumable sweep (issue 22), with real (tiny) training tasks.

- paired design: seed i gives every row the same split, initialization stream and batch order;
- determinism: in process, on a 2-worker LocalCluster, with a worker killed mid-sweep, resumed
  after the sweep process was killed, and on a `dask scheduler` + `dask worker` started as
  subprocesses on 127.0.0.1: the same numbers, bit for bit;
- resume: a resumed sweep executes exactly the tasks that were not stored (counted).

Every subprocess and wait is bounded in time; subprocesses are killed in teardown.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import hdlif_ref
from hdlif_ref.training.ablation import LABELS, make_tasks, run_task
from hdlif_ref.training.config import resolve_config
from hdlif_ref.training.run import Run
from hdlif_ref.training.sweep import TaskStore, run_sweep, task_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(hdlif_ref.__file__)))
CLI = "import sys; from hdlif_ref.cli import main; sys.exit(main())"
#: rows 1, 2, 3, 6, 8 (LIF, HD-LIF online, STBP, Parallel, Mem-BN + SECA) of the quick digits, 2 seeds
DIGITS_ROWS = "1,2,3,6,8"
TASKS = (make_tasks(["digits"], [LABELS[i - 1] for i in (1, 2, 3, 6, 8)], 2, quick=True)
         + make_tasks(["event-digits"], [LABELS[1]], 2, quick=True))


def quiet(_):
    pass


def subprocess_env() -> dict:
    """This checkout first on the path (an installed copy elsewhere must not answer), one Numba thread."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=ROOT + (os.pathsep + path if path else ""), HDLIF_REF_THREADS="1")


def results_of(store: TaskStore, tasks) -> dict:
    return {task_key(t): store.load(t)["result"] for t in tasks}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The reference: every task run one after the other in this process."""
    store = TaskStore(str(tmp_path_factory.mktemp("sequential")))
    summary = run_sweep(TASKS, run_task, store, log=quiet)
    assert summary.complete and summary.executed == len(TASKS)
    return results_of(store, TASKS)


def stop(process: subprocess.Popen) -> None:
    """End a subprocess this test started (its own session) and everything it spawned."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)


def test_seed_i_gives_every_row_the_same_split_initialization_stream_and_batch_order():
    rows = [LABELS[0], LABELS[1], LABELS[5]]  # LIF float32, HD-LIF ternary, 50% Parallel
    runs = {(t["row"], t["seed"]): Run(resolve_config(t["config"]))
            for t in make_tasks(["digits"], rows, 2, quick=True)}
    for seed in (0, 1):
        first, *others = (runs[(label, seed)] for label in rows)
        first_batches = [(x.copy(), y.copy()) for x, y in first.train_loader]
        for other in others:
            np.testing.assert_array_equal(first.data.train.data, other.data.train.data)
            np.testing.assert_array_equal(first.data.test.data, other.data.test.data)
            for (x1, y1), (x2, y2) in zip(first_batches, other.train_loader, strict=True):
                np.testing.assert_array_equal(x1, x2)
                np.testing.assert_array_equal(y1, y2)
            # the same initialization stream: the first synapse (same shape in every row) starts equal
            w1, w2 = (dict(r.model.named_parameters()) for r in (first, other))
            name = next(n for n in w1 if n.endswith("weight") and w1[n].data.ndim == 4)
            np.testing.assert_array_equal(w1[name].data, w2[name].data)
    # and another seed is another draw
    assert not np.array_equal(runs[(rows[0], 0)].data.train.data, runs[(rows[0], 1)].data.train.data)


@pytest.mark.slow
def test_two_local_workers_give_the_sequential_numbers_bit_for_bit(tmp_path, sequential):
    pytest.importorskip("distributed")
    store = TaskStore(str(tmp_path))
    summary = run_sweep(TASKS, run_task, store, workers=2, worker_env={"HDLIF_REF_THREADS": "1"}, log=quiet,
                        timeout=300)
    assert summary.complete and summary.executed == len(TASKS)
    assert results_of(store, TASKS) == sequential
    ran = {(store.load(t)["measurement"]["pid"], store.load(t)["measurement"]["package"]) for t in TASKS}
    assert os.getpid() not in {pid for pid, _ in ran}  # the workers ran them, not this process
    assert {package for _, package in ran} == {os.path.join(ROOT, "hdlif_ref", "training")}


@pytest.mark.slow
def test_killing_a_worker_mid_sweep_still_completes_with_the_same_numbers(tmp_path, sequential):
    distributed = pytest.importorskip("distributed")
    killed, errors = [], []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", env={"HDLIF_REF_THREADS": "1"}) as cluster, \
            distributed.Client(cluster) as client:

        def kill_a_busy_worker():
            deadline = time.monotonic() + 120
            try:
                while time.monotonic() < deadline:
                    busy = [worker for worker, keys in client.processing().items() if keys]
                    if busy:
                        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                        os.kill(pid, signal.SIGKILL)  # the worker process, not its nanny
                        killed.append(pid)
                        return
                    time.sleep(0.02)
            except Exception as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        store = TaskStore(str(tmp_path))
        summary = run_sweep(TASKS, run_task, store, client=client, log=quiet, timeout=300)
        killer.join(timeout=10)
    assert not errors and len(killed) == 1
    assert summary.complete and summary.executed == len(TASKS)
    assert killed[0] not in {store.load(t)["measurement"]["pid"] for t in TASKS}  # its task ran again elsewhere
    assert results_of(store, TASKS) == sequential


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_exactly_the_missing_tasks_and_the_same_numbers(tmp_path, sequential):
    out = tmp_path / "sweep"
    command = [sys.executable, "-c", CLI, "ablation", "--quick", "--datasets", "digits", "--rows", DIGITS_ROWS,
               "--seeds", "2", "--out", str(out)]
    process = subprocess.Popen(command, cwd=str(tmp_path), env=subprocess_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    tasks_dir = out / "tasks"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if tasks_dir.is_dir() and any(n.endswith(".json") and not n.startswith(".tmp-")
                                          for n in os.listdir(tasks_dir)):
                os.killpg(process.pid, signal.SIGKILL)  # mid-sweep, without warning
                break
            time.sleep(0.01)
        process.wait(timeout=30)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGKILL, "the sweep finished or failed before the kill"
    with open(out / "sweep.json") as fh:
        tasks = json.load(fh)["tasks"]
    assert tasks == make_tasks(["digits"], [LABELS[i - 1] for i in (1, 2, 3, 6, 8)], 2, quick=True)
    store = TaskStore(str(out))
    stored = [t for t in tasks if store.load(t) is not None]
    assert 1 <= len(stored) < len(tasks)
    calls = []

    def counted(task):
        calls.append(task_key(task))
        return run_task(task)

    summary = run_sweep(tasks, counted, store, log=quiet)
    assert len(calls) == summary.executed == len(tasks) - len(stored) and summary.skipped == len(stored)
    assert set(calls).isdisjoint(task_key(t) for t in stored)
    assert results_of(store, tasks) == {task_key(t): sequential[task_key(t)] for t in tasks}


@pytest.mark.slow
def test_a_sweep_runs_through_scheduler_on_dask_scheduler_and_worker_subprocesses(tmp_path, sequential):
    pytest.importorskip("distributed")
    env = subprocess_env()
    scheduler_file = tmp_path / "scheduler.json"
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker")}
    processes = []
    try:
        # loopback only: every listening address (scheduler, HTTP server, worker) on 127.0.0.1
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file),
             "--idle-timeout", "600"],
            cwd=str(tmp_path), env=env, stdout=logs["scheduler"], stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline and processes[0].poll() is None:
            time.sleep(0.1)
        assert scheduler_file.exists(), (tmp_path / "scheduler.log").read_text()
        time.sleep(0.2)  # the file is written in one go, but give the writer its close
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--nworkers", "1", "--no-nanny", "--dashboard-address", "127.0.0.1:0", "--death-timeout", "60"],
            cwd=str(tmp_path), env=env, stdout=logs["worker"], stderr=subprocess.STDOUT, start_new_session=True))
        out = tmp_path / "sweep"
        done = subprocess.run([sys.executable, "-c", CLI, "ablation", "--quick", "--datasets", "digits",
                               "--rows", "2,6", "--seeds", "2", "--scheduler", address, "--out", str(out)],
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert f"Dask scheduler {address}, 1 workers, 1 threads" in done.stderr
        tasks = make_tasks(["digits"], [LABELS[1], LABELS[5]], 2, quick=True)
        store = TaskStore(str(out))
        assert results_of(store, tasks) == {task_key(t): sequential[task_key(t)] for t in tasks}
        worker_pid = processes[1].pid
        assert {store.load(t)["measurement"]["pid"] for t in tasks} == {worker_pid}
        assert (out / "results.md").read_text().count("| digits | ") == 2  # the time table, one line per row
    finally:
        for process in reversed(processes):
            stop(process)
        for fh in logs.values():
            fh.close()
