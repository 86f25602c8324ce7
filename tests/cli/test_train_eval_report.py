"""``hdlif-ref train / eval / report`` through ``main(argv)`` and as a subprocess; one-line errors."""
import json
import subprocess

import numpy as np
import pytest

from hdlif_ref.cli import main
from hdlif_ref.training import load_checkpoint, save_checkpoint

TINY = ["--epochs", "1", "--train-fraction", "0.2", "--width", "0.5", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_the_run_directory_and_a_report(trained, capsys):
    assert {p.name for p in trained.iterdir()} >= {"config.json", "metrics.jsonl", "best.h5", "last.h5"}
    config = json.loads((trained / "config.json").read_text())
    assert config["epochs"] == 1 and config["width"] == 0.5 and config["neuron"] == "membn"


def test_eval_prints_accuracy_by_steps_and_firing_rates(trained, capsys):
    assert main(["eval", str(trained / "last.h5")]) == 0
    out = capsys.readouterr().out
    assert "accuracy " in out and "t = 4" in out and "features.2" in out


def test_report_of_a_checkpoint_and_of_an_architecture(trained, capsys):
    assert main(["report", str(trained / "last.h5")]) == 0
    assert "parameter memory" in capsys.readouterr().out
    assert main(["report", "--arch", "digits_net", "--dataset", "digits", "--weight-mode", "ternary"]) == 0
    assert "NOPs / sample" in capsys.readouterr().out


def test_config_file_and_flags_override_in_order(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"neuron": "lif", "lr": 0.01, "epochs": 3}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.json"), *TINY, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["neuron"], config["lr"], config["epochs"]) == ("lif", 0.01, 1)


def test_resume_through_the_cli(tmp_path, capsys):
    from hdlif_ref.training.run import run_training

    out = tmp_path / "run"
    run_training(dict(epochs=2, train_fraction=0.2, width=0.5), str(out), log=lambda line: None,
                 stop_after_epochs=1)  # as if interrupted after the first epoch
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert load_checkpoint(out / "last.h5")["epoch"] == 2
    assert main(["train", "--resume", str(out), "--lr", "0.1"]) == 2
    assert "drop --lr" in capsys.readouterr().err  # the flag, not the config key


def test_resume_with_epochs_extends_a_finished_run(tmp_path, capsys):
    from hdlif_ref.training.progress import read_metrics
    from hdlif_ref.training.run import run_training

    out = tmp_path / "run"
    run_training(dict(epochs=1, train_fraction=0.2, width=0.5), str(out), log=lambda line: None)
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert load_checkpoint(out / "last.h5")["epoch"] == 2
    assert [row["epoch"] for row in read_metrics(out / "metrics.jsonl")] == [1, 2]
    assert main(["train", "--resume", str(out), "--epochs", "1", "--quiet"]) == 2
    assert "--epochs 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["train", "--neuron", "izh"], "'izh'; allowed: lif, hdlif, parallel, membn"),
    (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent/dir", "--quiet"], "data_batch_1"),
    (["eval", "/nonexistent/ckpt.h5"], "no such file"),
    (["report"], "give either a checkpoint or --arch"),
])
def test_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_damaged_and_mismatched_checkpoints_are_one_line_errors(trained, tmp_path, capsys):
    broken = tmp_path / "broken.h5"
    broken.write_bytes((trained / "last.h5").read_bytes()[:3000])
    assert main(["eval", str(broken)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    state = load_checkpoint(trained / "last.h5")
    state["config"]["width"] = 1.0  # the saved weights are for width 0.5
    save_checkpoint(tmp_path / "mismatch.h5", **state)
    assert main(["eval", str(tmp_path / "mismatch.h5")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the network" in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="no such file"):  # CheckpointError, with its traceback
        main(["--debug", "eval", "/nonexistent/ckpt.h5"])


def test_subprocess_train_and_report(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(["hdlif-ref", "train", *TINY, "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "energy per sample" in done.stdout
    done = subprocess.run(["hdlif-ref", "eval", str(out / "best.h5")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "accuracy" in done.stdout


@pytest.mark.slow
def test_default_train_reaches_90_percent_on_digits(tmp_path, capsys):
    """The README's first command: ``hdlif-ref train`` with its defaults."""
    assert main(["train", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    print(f"default train: test accuracy {report['test_accuracy']:.4f} in {report['seconds']:.1f} s")
    assert report["test_accuracy"] >= 0.90
