"""``hdlif-ref ablation --quick``: the smoke run writes a results file with both tables."""
import pytest

from hdlif_ref.cli import main
from hdlif_ref.training.ablation import ROWS


@pytest.mark.slow
def test_quick_ablation_writes_both_tables_and_the_comparison(tmp_path, capsys):
    out = tmp_path / "results.md"
    assert main(["ablation", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    for section in ("## digits", "## event-digits", "## The paper's CIFAR-100 ablation"):
        assert section in text
    for label, _ in ROWS:
        assert text.count(f"| {label} |") >= 2  # one row per dataset (and the paper's table for some)
    assert text.count("reproduced**") + text.count("within noise**") == 2 * 8  # eight orderings per dataset
    assert "## Summary: which orderings our small runs reproduce" in text
    assert "- HD-LIF beats LIF under online training (paper: +8.41): digits: " in text
    assert "`hdlif-ref ablation --quick`" in text


def test_unknown_dataset_is_a_one_line_error(capsys):
    assert main(["ablation", "--datasets", "cifar10"]) == 2
    assert "allowed: digits, event-digits" in capsys.readouterr().err
