"""Smoke run of the end-to-end benchmark (issue 9) through ``hdlif-ref bench --quick``.

Tiny sizes, one timed call per side: every path runs (the PyTorch peer and its
float64 equality check when torch is installed, ours alone otherwise), the table
is printed and the JSON file has the fields other tools read. No timing is
asserted: numbers from a smoke run mean nothing.
"""
import json
import math

from hdlif_ref.cli import main

RATIO_KEYS = {"W1", "W2_online_all", "W2_stbp", "W3", "W4_digits", "W4_resnet"}
MEMORY_KEYS = {"online_k1", "online_kT", "stbp"}


def test_bench_quick_writes_table_and_json(tmp_path, capsys):
    path = tmp_path / "latest.json"
    assert main(["bench", "--quick", "--profile", "W1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| W1 |" in out and "| W4_resnet |" in out and "growth T=1 -> 2" in out
    results = json.loads(path.read_text())
    assert set(results["ratios"]) == RATIO_KEYS
    assert set(results["memory_growth"]) == MEMORY_KEYS
    peaks = results["memory"]["ours"]
    for name in MEMORY_KEYS:  # growth is the last T's peak over the first's
        assert math.isclose(results["memory_growth"][name], peaks[name][-1] / peaks[name][0])
    if results["compared_with_torch"]:
        assert all(isinstance(r, float) and r > 0 for r in results["ratios"].values())
        assert all(c["grad_rel_diff"] <= 1e-9 for c in results["self_check"].values())
    else:
        assert all(r is None for r in results["ratios"].values())
    assert results["profile"]["workload"] == "W1" and results["profile"]["top"]


def test_bench_rejects_bad_options(capsys):
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats=0" in capsys.readouterr().err
    assert main(["bench", "--profile", "W9"]) == 2
    assert "W9" in capsys.readouterr().err
