"""The resumable sweep (issue 22) with stand-in tasks: storage, atomic writes, resume, failures."""
import json
import os
import sys

import pytest

from hdlif_ref.training import sweep
from hdlif_ref.training.sweep import TaskStore, atomic_write_text, run_sweep, task_key

TASKS = [{"dataset": "toy", "row": f"row {r}", "seed": s, "config": {"x": r, "y": s}} for r in range(3) for s in range(4)]


def square(task):
    return {"result": {"value": task["config"]["x"] ** 2 + task["config"]["y"]}, "measurement": {"seconds": 0.0}}


class Counting:
    """A task function that counts its executions and can stop the sweep after ``stop_after`` of them."""

    def __init__(self, stop_after=None, fail_on=()):
        self.calls, self.stop_after, self.fail_on = [], stop_after, fail_on

    def __call__(self, task):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt  # what Ctrl-C (or a kill between two tasks) does to the sweep
        self.calls.append(task_key(task))
        if (task["row"], task["seed"]) in self.fail_on:
            raise FloatingPointError("loss is NaN")
        return square(task)


def quiet(_):
    pass


def test_task_key_is_the_canonical_json_whatever_the_key_order():
    a = {"seed": 1, "config": {"b": 2, "a": 1}}
    b = {"config": {"a": 1, "b": 2}, "seed": 1}
    assert task_key(a) == task_key(b) and len(task_key(a)) == 24
    assert task_key(a) != task_key(dict(a, seed=2))


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    atomic_write_text(str(path), "old\n")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(sweep.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind


def test_a_sweep_stores_every_task_and_a_second_run_executes_none(tmp_path):
    store = TaskStore(str(tmp_path))
    first = Counting()
    summary = run_sweep(TASKS, first, store, log=quiet)
    assert (summary.executed, summary.skipped, summary.failed) == (12, 0, [])
    assert sorted(first.calls) == sorted(task_key(t) for t in TASKS)
    for task in TASKS:
        record = store.load(task)
        assert record["task"] == task and record["result"] == square(task)["result"]
        assert os.path.basename(store.path(task)) == task_key(task) + ".json"
    again = Counting()
    summary = run_sweep(TASKS, again, store, log=quiet)
    assert again.calls == [] and (summary.executed, summary.skipped) == (0, 12)


def test_an_interrupted_sweep_resumes_with_exactly_the_missing_tasks(tmp_path):
    store = TaskStore(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(TASKS, Counting(stop_after=5), store, log=quiet)
    stored = [t for t in TASKS if store.load(t) is not None]
    assert len(stored) == 5
    resumed = Counting()
    summary = run_sweep(TASKS, resumed, store, log=quiet)
    assert len(resumed.calls) == summary.executed == 7 and summary.skipped == 5
    assert set(resumed.calls).isdisjoint(task_key(t) for t in stored)
    assert all(store.load(t)["result"] == square(t)["result"] for t in TASKS)


def test_more_seeds_reuse_the_stored_ones(tmp_path):
    store = TaskStore(str(tmp_path))
    run_sweep([t for t in TASKS if t["seed"] < 2], Counting(), store, log=quiet)
    more = Counting()
    assert run_sweep(TASKS, more, store, log=quiet).executed == len(more.calls) == 6


def test_a_failed_task_is_recorded_the_others_finish_and_the_next_run_retries_it(tmp_path):
    store = TaskStore(str(tmp_path))
    summary = run_sweep(TASKS, Counting(fail_on={("row 1", 2)}), store, log=quiet)
    assert summary.executed == 11 and len(summary.failed) == 1 and not summary.complete
    task, error = summary.failed[0]
    assert (task["row"], task["seed"]) == ("row 1", 2) and "FloatingPointError: loss is NaN" in error
    assert [f["task"] for f in store.failures()] == [task]
    retry = Counting()
    summary = run_sweep(TASKS, retry, store, log=quiet)
    assert retry.calls == [task_key(task)] and summary.complete
    assert store.failures() == [] and not os.listdir(store.failed_dir)


def test_a_damaged_or_foreign_result_file_counts_as_missing(tmp_path):
    store = TaskStore(str(tmp_path))
    run_sweep(TASKS[:2], square, store, log=quiet)
    with open(store.path(TASKS[0]), "w") as fh:
        fh.write('{"format": "hdlif-sweep-task", "task": ')  # cut short
    with open(store.path(TASKS[1])) as fh:
        record = json.load(fh)
    record["task"] = TASKS[2]  # a file under the wrong key
    with open(store.path(TASKS[1]), "w") as fh:
        json.dump(record, fh)
    counter = Counting()
    assert run_sweep(TASKS[:2], counter, store, log=quiet).executed == 2


def test_the_same_task_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="same task twice"):
        run_sweep([TASKS[0], dict(TASKS[0])], square, TaskStore(str(tmp_path)), log=quiet)


def test_progress_lines_say_done_running_failed_and_eta(tmp_path):
    lines = []
    run_sweep(TASKS[:3], Counting(fail_on={("row 0", 1)}), TaskStore(str(tmp_path)), log=lines.append)
    assert lines[0] == f"sweep: 3 tasks, 0 already stored in {tmp_path}, 3 to run"
    assert lines[1].startswith("sweep: 1/3 done, 1 running, 0 failed, ETA ")
    assert lines[2].startswith("sweep: 1/3 done, 1 running, 1 failed, ETA ") and "FAILED toy, row 0, seed 1" in lines[2]
    assert lines[3].startswith("sweep: 2/3 done, 0 running, 1 failed, ETA 0s")


def test_workers_without_dask_is_a_clear_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the [cluster] extra were absent
    with pytest.raises(ImportError, match=r"pip install 'hdlif-ref\[cluster\]'"):
        run_sweep(TASKS[:2], square, TaskStore(str(tmp_path)), workers=2, log=quiet)


def test_one_worker_runs_in_process_without_importing_dask(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.setitem(sys.modules, "dask", None)
    assert run_sweep(TASKS[:2], square, TaskStore(str(tmp_path)), workers=1, log=quiet).executed == 2


def test_a_cost_hint_starts_the_longest_tasks_first(tmp_path):
    counter = Counting()
    run_sweep(TASKS, counter, TaskStore(str(tmp_path)), cost=lambda t: t["config"]["x"], log=quiet)
    rows = [next(t["row"] for t in TASKS if task_key(t) == key) for key in counter.calls]
    assert rows == ["row 2"] * 4 + ["row 1"] * 4 + ["row 0"] * 4  # stable within equal costs
