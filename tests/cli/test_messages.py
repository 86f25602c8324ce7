"""Small messages: one energy format for every command, ``report --paper`` gives its reasons, spike wording."""
from __future__ import annotations

import re

import pytest

from hdlif_ref.cli import main
from hdlif_ref.deploy.counts import format_energy


@pytest.mark.parametrize("joules, text", [
    (0.0007e-3, "700 nJ"), (0.839e-6, "839 nJ"), (8.389e-7, "838.9 nJ"), (0.2457e-3, "245.7 uJ"),
    (1.0, "1 J"), (2.5e-3, "2.5 mJ"), (9.99996e-7, "1 uJ"), (4.2e-13, "0.42 pJ"), (0.0, "0 J"),
    (12.5e-12, "12.5 pJ"),
])
def test_format_energy_picks_the_unit(joules, text):
    assert format_energy(joules) == text


def test_format_energy_rejects_nonsense():
    with pytest.raises(ValueError, match="joules=-1.0 must be a finite number >= 0"):
        format_energy(-1.0)
    with pytest.raises(ValueError, match="joules=nan"):
        format_energy(float("nan"))


def test_train_and_report_print_the_same_energy_and_real_valued_spikes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--train-fraction", "0.1", "--width", "0.25", "--spike-bits", "none",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "real-valued spikes" in printed and "real-valued-bit" not in printed
    trained = re.search(r"energy per sample  (\S+ \S?J) \(45 nm", printed).group(1)
    assert main(["report", str(out / "last.h5")]) == 0
    reported = re.search(r"energy / sample   (\S+ \S?J) \(45 nm\)", capsys.readouterr().out).group(1)
    assert trained == reported and not trained.startswith("0.0")


def test_report_paper_prints_a_reason_beside_each_ratio(capsys):
    assert main(["report", "--arch", "resnet18", "--dataset", "cifar10", "--paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ratios = [line for line in lines if re.search(r"\s1\.0\d\d\s", line)]
    assert len(ratios) == 4
    for line in ratios + [line for line in lines if line.startswith("NOP reduction")]:
        reason = line.split("  ")[-1]
        assert len(reason) > 30 and reason[0].isalpha(), line
