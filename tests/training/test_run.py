"""A whole run: config checks, run directory, metrics log, checkpoints, exact resume."""
import json
import os

import numpy as np
import pytest

from hdlif_ref.training import load_checkpoint
from hdlif_ref.training.config import DEFAULTS, load_config_file, resolve_config
from hdlif_ref.training.progress import read_metrics
from hdlif_ref.training.run import Run, run_training

TINY = dict(train_fraction=0.15, width=0.5, batch_size=32, epochs=2, eval_batch_size=512)


def quiet(_):
    pass


def test_resume_continues_exactly_as_the_uninterrupted_run(tmp_path):
    full = tmp_path / "full"
    run_training(dict(TINY), str(full), log=quiet)
    part = tmp_path / "part"
    run_training(dict(TINY), str(part), log=quiet, stop_after_epochs=1)  # interrupted after epoch 1
    assert load_checkpoint(part / "last.h5")["epoch"] == 1
    run_training(None, str(part), resume=True, log=quiet)
    a, b = load_checkpoint(full / "last.h5"), load_checkpoint(part / "last.h5")
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"]
    for key in a["model_state"]:
        np.testing.assert_array_equal(a["model_state"][key], b["model_state"][key], err_msg=key)
    for index, state in a["optimizer_state"]["state"].items():
        for name, value in state.items():
            np.testing.assert_array_equal(value, b["optimizer_state"]["state"][index][name], err_msg=name)
    assert a["rng_state"] == b["rng_state"]
    rows = read_metrics(part / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]


def test_run_directory_holds_config_metrics_checkpoints_and_report(tmp_path):
    report = run_training(dict(TINY, epochs=1), str(tmp_path), log=quiet)
    assert sorted(os.listdir(tmp_path)) == ["best.h5", "config.json", "last.h5", "metrics.jsonl", "report.json"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == resolve_config(dict(TINY, epochs=1))
    (row,) = read_metrics(tmp_path / "metrics.jsonl")
    for key in ("train_loss", "train_accuracy", "test_accuracy", "test_accuracy_by_steps", "firing_rates",
                "train_seconds", "peak_rss_mb", "lr"):
        assert key in row
    assert len(row["test_accuracy_by_steps"]) == config["T"]
    assert set(report) >= {"test_accuracy", "parameter_memory_mb", "sops", "nops", "energy_mj"}
    assert report["sops"] > 0 and report["nops"] > 0


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        run_training(None, str(tmp_path), resume=True, log=quiet)


@pytest.mark.parametrize("overrides, message", [
    (dict(neuron="izh"), r"neuron='izh' \(--neuron\); allowed: lif, hdlif, parallel, membn"),
    (dict(K=9), r"K=9 \(--K\) is larger than T=4 \(--T\)"),
    (dict(lr=-1), r"lr=-1 \(--lr\); allowed: a finite number >= 0"),
    (dict(epochs=0), r"epochs=0 \(--epochs\); allowed: an integer in \[1, 100000\]"),
    (dict(frobnicate=1), r"unknown key\(s\) frobnicate; allowed: dataset"),
    (dict(neuron="lif", parallel_fraction=0.5), r"parallel_fraction \(--parallel-fraction\) applies to neuron "
                                                r"hdlif or membn"),
    (dict(neuron="parallel", parallel_fraction=0.5), r"not parallel"),
    (dict(warmup_epochs=8, epochs=8), r"warmup_epochs=8 \(--warmup-epochs\) must be smaller than epochs=8"),
    (dict(T="4"), r"T='4' \(--T\); allowed: an integer in \[1, 1024\]"),
])
def test_config_errors_name_the_key_value_and_what_is_allowed(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(overrides)


def test_config_files_toml_and_json(tmp_path):
    (tmp_path / "a.toml").write_text('neuron = "hdlif"\nT = 6\nseca = "none"\nK = "all"\n')
    (tmp_path / "b.json").write_text('{"neuron": "lif", "lr": 0.1}')
    assert resolve_config(load_config_file(str(tmp_path / "a.toml")))["T"] == 6
    assert resolve_config(load_config_file(str(tmp_path / "b.json")))["neuron"] == "lif"
    (tmp_path / "c.yaml").write_text("a: 1")
    with pytest.raises(ValueError, match=r"extension '.yaml'; allowed: .toml, .json"):
        load_config_file(str(tmp_path / "c.yaml"))
    (tmp_path / "d.json").write_text("{oops")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_config_file(str(tmp_path / "d.json"))


def test_default_config_is_the_issues_default_job():
    d = DEFAULTS
    assert (d["dataset"], d["neuron"], d["weight_mode"], d["spike_bits"], d["method"], d["K"], d["T"]) == \
        ("digits", "membn", "ternary", 4, "online", 1, 4)


def test_event_dataset_runs_with_frames_and_stbp(tmp_path):
    report = run_training(dict(TINY, epochs=1, dataset="event-digits", T=4, method="stbp", neuron="hdlif"),
                          str(tmp_path), log=quiet)
    assert 0.0 <= report["test_accuracy"] <= 1.0
    run = Run(resolve_config(dict(TINY, dataset="event-digits", T=4)))
    assert run.model.config["in_channels"] == 2 and run.model.config["input_size"] == 16


def test_resume_falls_back_to_best_when_last_is_missing_and_says_so(tmp_path):
    """Issue 18: a kill after ``best.h5`` but before the first ``last.h5`` made ``--resume`` refuse
    although a complete checkpoint was there."""
    run_training(dict(TINY), str(tmp_path), log=quiet, stop_after_epochs=1)
    os.remove(tmp_path / "last.h5")  # as if killed between the two writes of epoch 1
    lines = []
    run_training(None, str(tmp_path), resume=True, log=lines.append)
    assert any("last.h5 is missing" in line and "resuming from" in line and line.endswith("best.h5")
               for line in lines), lines
    assert load_checkpoint(tmp_path / "last.h5")["epoch"] == 2
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


def test_resume_from_an_earlier_checkpoint_drops_the_log_rows_it_repeats(tmp_path):
    import shutil

    run_training(dict(TINY), str(tmp_path), log=quiet, stop_after_epochs=1)
    shutil.copy(tmp_path / "last.h5", tmp_path / "epoch1.h5")
    run_training(None, str(tmp_path), resume=True, log=quiet)  # finishes epoch 2
    os.replace(tmp_path / "epoch1.h5", tmp_path / "best.h5")  # the best checkpoint is from epoch 1
    os.remove(tmp_path / "last.h5")
    run_training(None, str(tmp_path), resume=True, log=quiet)  # repeats epoch 2
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


def test_temp_checkpoints_of_a_killed_run_do_not_outlive_a_resume(tmp_path):
    run_training(dict(TINY), str(tmp_path), log=quiet, stop_after_epochs=1)
    dead = tmp_path / ".last.h5.999999999-abcdefgh.tmp"  # a writer that no longer runs
    legacy = tmp_path / ".best.h5.k2j4l1x9.tmp"  # the pattern of hdlif-ref 0.1, untouched for an hour
    for p in (dead, legacy):
        p.write_bytes(b"half a checkpoint")
    os.utime(legacy, (0, os.stat(legacy).st_mtime - 3600))
    run_training(None, str(tmp_path), resume=True, log=quiet)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
