"""``hdlif-ref ablation``: a tiny quick sweep writes its directory and report, resumes, never touches docs/."""
import json
import os
import re

import pytest

import hdlif_ref
from hdlif_ref.cli import main
from hdlif_ref.training.ablation import LABELS
from hdlif_ref.training.stats import VERDICTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(hdlif_ref.__file__)))
# rows 1, 2, 5, 6, 7: enough for the LIF claim and the "costs the most" ordering; quick digits, 2 seeds
TINY = ["ablation", "--quick", "--datasets", "digits", "--rows", "1,2,5,6,7", "--seeds", "2"]


@pytest.mark.slow
def test_a_quick_sweep_writes_tasks_and_report_and_a_rerun_runs_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(TINY + ["--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "sweep: 10 tasks, 0 already stored" in err and re.search(r"sweep: 10/10 done, 0 running, 0 failed", err)
    assert sorted(os.listdir(out)) == ["results.md", "sweep.json", "tasks"]
    assert len(os.listdir(out / "tasks")) == 10
    sweep = json.loads((out / "sweep.json").read_text())
    assert {t["row"] for t in sweep["tasks"]} == {LABELS[i - 1] for i in (1, 2, 5, 6, 7)}
    text = (out / "results.md").read_text()
    assert "Produced by `hdlif-ref ablation --quick --seeds 2 --datasets digits --rows 1,2,5,6,7`" in text
    assert "**Quick smoke run**" in text and "## digits" in text and "## event-digits" not in text
    assert "- 4-bit + 50% Parallel costs the most (paper: -1.55; below rows 2, 5 and 6): **" in text
    for pair in ("row 7 - row 2", "row 7 - row 5", "row 7 - row 6"):
        assert pair in text
    assert set(re.findall(r": \*\*([a-z ]+)\*\*", text)) <= set(VERDICTS)
    # the same command again: every task is stored, nothing runs; the report is rewritten
    assert main(TINY + ["--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "sweep: 10 tasks, 10 already stored" in err and "sweep: 0 run, 10 already stored, 0 failed" in err
    assert len(json.loads((out / "sweep.json").read_text())["sessions"]) == 2
    # the report alone, written elsewhere
    other = tmp_path / "elsewhere" / "results.md"
    assert main(["ablation", "--report-only", "--out", str(out), "--results", str(other)]) == 0
    assert other.read_text().startswith("# Results: the paper's ablation at small scale")


@pytest.mark.slow
def test_the_default_output_is_a_fresh_folder_here_and_docs_stay_untouched(tmp_path, monkeypatch, capsys):
    shipped = os.path.join(ROOT, "docs", "results.md")
    before = open(shipped, "rb").read() if os.path.exists(shipped) else None
    monkeypatch.chdir(tmp_path)
    assert main(["ablation", "--quick", "--datasets", "digits", "--rows", "2", "--seeds", "1"]) == 0
    (made,) = os.listdir(tmp_path)
    assert re.fullmatch(r"ablation-\d{8}-\d{6}", made)
    assert sorted(os.listdir(tmp_path / made)) == ["results.md", "sweep.json", "tasks"]
    assert (open(shipped, "rb").read() if os.path.exists(shipped) else None) == before


@pytest.mark.parametrize("argv, message", [
    (["ablation", "--datasets", "cifar10"], "allowed: digits, event-digits"),
    (["ablation", "--rows", "1,12"], "'12' is not a row number; allowed: 1..9"),
    (["ablation", "--workers", "0"], "--workers 0: must be >= 1"),
    (["ablation", "--report-only"], "--report-only needs --out DIR"),
])
def test_usage_errors_are_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []  # nothing written


def test_report_only_on_a_folder_without_a_sweep_is_a_one_line_error(tmp_path, capsys):
    assert main(["ablation", "--report-only", "--out", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err


def test_workers_without_dask_say_which_extra_and_write_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # as if the [cluster] extra were absent
    monkeypatch.chdir(tmp_path)
    assert main(["ablation", "--quick", "--workers", "2"]) == 2
    assert "pip install 'hdlif-ref[cluster]'" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
