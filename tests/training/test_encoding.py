"""``encoding`` (config key, ``train --encoding``): rate and latency spikes reach the network, resume stays exact."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref.cli import main
from hdlif_ref.training import load_checkpoint
from hdlif_ref.training.config import resolve_config
from hdlif_ref.training.run import Run, run_training

TINY = dict(train_fraction=0.1, width=0.25, batch_size=32, epochs=2, eval_batch_size=512, T=3, K=1)


@pytest.mark.parametrize("overrides, message", [
    (dict(encoding="phase"), "encoding='phase' \\(--encoding\\); allowed: direct, rate, latency"),
    (dict(encoding="rate", dataset="event-digits"), "encoding='rate' \\(--encoding\\) applies to static images"),
])
def test_encoding_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(overrides)


@pytest.mark.parametrize("encoding", ["rate", "latency"])
def test_encoded_batches_reach_the_trainer(encoding):
    run = Run(resolve_config(dict(TINY, encoding=encoding)))
    assert 0.0 <= run.data.train.data.min() and run.data.train.data.max() <= 1.0  # normalize="unit"
    x, y = next(iter(run.train_loader))
    assert x.shape == (3, 32, 1, 8, 8) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    if encoding == "latency":
        np.testing.assert_array_equal(x.sum(axis=0), 1.0)  # one spike per pixel
    else:
        first, second = next(iter(run.test_loader))[0], next(iter(run.test_loader))[0]
        np.testing.assert_array_equal(first, second)  # evaluation: the same spikes every pass
    loss, logits = run.trainer.train_batch(x, y)
    assert np.isfinite(loss) and logits.shape == (3, 32, 10)


def test_rate_encoded_resume_continues_exactly(tmp_path):
    config = dict(TINY, encoding="rate")
    run_training(dict(config), str(tmp_path / "full"), log=lambda _: None)
    part = tmp_path / "part"
    run_training(dict(config), str(part), log=lambda _: None, stop_after_epochs=1)
    run_training(None, str(part), resume=True, log=lambda _: None)
    a, b = load_checkpoint(tmp_path / "full" / "last.h5"), load_checkpoint(part / "last.h5")
    for key in a["model_state"]:
        np.testing.assert_array_equal(a["model_state"][key], b["model_state"][key], err_msg=key)


def test_train_eval_report_with_encoding_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--encoding", "latency", "--epochs", "1", "--train-fraction", "0.1", "--width", "0.25",
                 "--quiet", "--out", str(out)]) == 0
    assert '"encoding": "latency"' in (out / "config.json").read_text()
    assert main(["eval", str(out / "last.h5")]) == 0
    assert "accuracy " in capsys.readouterr().out
    assert main(["train", "--encoding", "poisson"]) == 2
    assert "'poisson'; allowed: direct, rate, latency" in capsys.readouterr().err
