"""Smoke run of the end-to-end benchmark (issue 9): ``python -m benchmarks --quick`` and ``hdlif-ref bench``.

Tiny sizes, one timed call per side: every path runs (the PyTorch peer and its
float64 equality check when torch is installed, ours alone otherwise), the table
is printed and the JSON file has the fields other tools read. No timing is
asserted: numbers from a smoke run mean nothing. Nothing tracked is written
unless asked: the default output is a new folder in the current directory.
"""
import ast
import json
import math
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import hdlif_ref
from benchmarks.__main__ import main as bench_main
from hdlif_ref.cli import main

RATIO_KEYS = {"W1", "W2_online_all", "W2_stbp", "W3", "W4_digits", "W4_resnet"}
MEMORY_KEYS = {"online_k1", "online_kT", "stbp"}
ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_writes_table_and_json_into_a_new_folder_here(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracked = [ROOT / "benchmarks" / "results" / "latest.json", ROOT / "docs" / "performance.md"]
    before = [p.read_bytes() for p in tracked]
    assert bench_main(["--quick", "--profile", "W1"]) == 0
    out = capsys.readouterr().out
    assert "| W1 |" in out and "| W4_resnet |" in out and "growth T=1 -> 2" in out
    folders = list(tmp_path.glob("bench-*"))
    assert len(folders) == 1 and [p.name for p in folders[0].iterdir()] == ["latest.json"]
    assert [p.read_bytes() for p in tracked] == before  # nothing the project ships was rewritten
    results = json.loads((folders[0] / "latest.json").read_text())
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
    assert bench_main(["--repeats", "0"]) == 2
    assert "--repeats=0 must be >= 1" in capsys.readouterr().err
    assert bench_main(["--profile", "W9"]) == 2
    assert "--profile='W9'; allowed: W1" in capsys.readouterr().err


def test_hdlif_ref_bench_forwards_to_python_m_benchmarks(capfd):
    """In a subprocess: its options, help and exit codes are those of ``python -m benchmarks``."""
    assert main(["bench", "--repeats", "0"]) == 2
    assert "hdlif-ref bench: error: --repeats=0 must be >= 1" in capfd.readouterr().err
    assert main(["bench", "--help"]) == 0
    out = capfd.readouterr().out
    assert "usage: hdlif-ref bench" in out and "--out DIR" in out and "--update-docs" in out
    assert main(["bench", "--no-such-option"]) == 2


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_package_never_imports_benchmarks():
    sources = sorted(Path(hdlif_ref.__file__).parent.rglob("*.py"))
    offenders = [str(p) for p in sources if any(n.split(".")[0] == "benchmarks" for n in _imports(p))]
    assert not offenders, f"hdlif_ref modules importing benchmarks: {offenders}"
    # and at run time: importing every module of the package leaves benchmarks unloaded
    names = [m.name for m in pkgutil.walk_packages(hdlif_ref.__path__, "hdlif_ref.")]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]" and len(names) > 50
