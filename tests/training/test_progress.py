"""Progress output (tqdm on a terminal, plain lines otherwise, never failing without tqdm) and the metrics log."""
import io
import json
import sys

import numpy as np
import pytest

from hdlif_ref.training import MetricsLog, Progress, format_metrics, read_metrics


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_epochs(progress, epochs=2, batches=3):
    for e in range(epochs):
        progress.start_epoch(e, batches)
        for b in range(batches):
            progress.update(loss=0.5 / (b + 1))
        progress.end_epoch(e, {"loss": np.float32(0.25), "acc": 0.9, "seconds": 1.23456, "n": 10})
    progress.close()


def test_plain_lines_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    progress = Progress(epochs=2, stream=out)
    assert not progress.uses_bars
    run_epochs(progress)
    assert out.getvalue().splitlines() == [
        "epoch 1/2  loss 0.25  acc 0.9  seconds 1.235  n 10",
        "epoch 2/2  loss 0.25  acc 0.9  seconds 1.235  n 10",
    ]


def test_tqdm_bars_on_a_terminal():
    pytest.importorskip("tqdm")
    out = Terminal()
    with Progress(epochs=2, stream=out) as progress:
        assert progress.uses_bars
        run_epochs(progress)
    text = out.getvalue()
    assert "epoch 1/2  loss 0.25  acc 0.9" in text and "epoch 2/2  loss 0.25" in text
    assert "| 0/3 " in text  # tqdm drew a bar with the batch counter


def test_without_tqdm_a_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` raise ImportError
    out = Terminal()
    progress = Progress(epochs=1, stream=out, bars=True)
    assert not progress.uses_bars
    run_epochs(progress, epochs=1)
    assert out.getvalue() == "epoch 1/1  loss 0.25  acc 0.9  seconds 1.235  n 10\n"


def test_bars_can_be_switched_off_on_a_terminal():
    out = Terminal()
    run_epochs(Progress(epochs=1, stream=out, bars=False), epochs=1)
    assert out.getvalue().count("\n") == 1


def test_format_metrics_abbreviates_lists_and_handles_numpy():
    text = format_metrics({"acc_by_t": np.array([0.1, 0.2, 0.3, 0.4, 0.5]), "loss": float("nan"), "k": np.int64(3)})
    assert text == "acc_by_t [0.1, 0.2, 0.3, 0.4, ...]  loss None  k 3"


def test_metrics_log_writes_one_flushed_json_object_per_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write({"epoch": 0, "loss": np.float32(0.5), "acc_by_t": np.array([0.25, 0.5]), "rates": {"lif1": 0.1}})
    # readable before close: the line was flushed
    assert json.loads(path.read_text().splitlines()[0]) == {"epoch": 0, "loss": 0.5, "acc_by_t": [0.25, 0.5],
                                                             "rates": {"lif1": 0.1}}
    log.write({"epoch": 1, "loss": float("inf"), "best": float("nan")})
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == {"epoch": 1, "loss": None, "best": None}
    with pytest.raises(ValueError, match="closed"):
        log.write({"epoch": 2})
    with MetricsLog(path) as again:  # a resumed run appends
        again.write({"epoch": 2})
    assert [r["epoch"] for r in read_metrics(path)] == [0, 1, 2]


def test_read_metrics_drops_an_unfinished_last_line_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 0}\n{"epoch": 1}\n{"epo')
    assert read_metrics(path) == [{"epoch": 0}, {"epoch": 1}]
    path.write_text('{"epoch": 0}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(path)


def test_metrics_log_refuses_non_dicts(tmp_path):
    with MetricsLog(tmp_path / "m.jsonl") as log:
        with pytest.raises(TypeError, match="dict"):
            log.write([1, 2])
