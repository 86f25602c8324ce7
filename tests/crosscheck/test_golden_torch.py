"""Golden vectors against PyTorch autograd (skipped when torch is absent).

1. The PyTorch snippet of ``docs/golden.md`` (an independent E1-E2/E4/E5), run as
   written, produces a file our ``golden --check`` passes; with a ``relu`` in place
   of the ``H(0) = 1`` spike it fails.
2. Every case of our own file, neurons, layers and whole networks, rebuilt in
   PyTorch from the file alone: ``tests/crosscheck/test_golden_v2_torch.py``.
"""
import os
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hdlif_ref.cli import main  # noqa: E402
from hdlif_ref.oracle import check  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "golden.md"
ON_THRESHOLD_SPIKE = "torch.where(fired, m - theta[t], torch.zeros_like(m))"


def snippet() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- golden-torch-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/golden.md lost its PyTorch snippet"
    return match.group(1)


def run_snippet(code: str, directory: Path) -> Path:
    previous = os.getcwd()
    previous_dtype = torch.get_default_dtype()
    os.chdir(directory)
    try:
        exec(compile(code, str(DOC), "exec"), {"__name__": "golden_snippet"})
    finally:
        os.chdir(previous)
        torch.set_default_dtype(previous_dtype)
    return directory / "torch_golden.h5"


def test_the_documented_snippet_writes_a_file_that_passes(tmp_path, capsys):
    path = run_snippet(snippet(), tmp_path)
    assert main(["golden", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "verdict: PASS (profile float64; 1 cases, 9 fields: 9 PASS, 0 FAIL, 0 SKIP)"


def test_a_relu_spike_fails_at_the_exact_threshold_point(tmp_path):
    code = snippet()
    assert ON_THRESHOLD_SPIKE in code
    path = run_snippet(code.replace(ON_THRESHOLD_SPIKE, "torch.relu(m - theta[t])"), tmp_path)
    failed = {r.field for r in check(path, isolate=False).rows if r.status == "FAIL"}
    assert {"grads_stbp/I", "grads_stbp/theta", "grads_online/I", "grads_online/theta"} <= failed
    assert not any(f.startswith("outputs/") for f in failed)  # the forward is the same


def test_the_documented_port_example_passes(tmp_path):
    """docs/golden.md's worked example (a PyTorch batch norm checked in a few lines) runs as written."""
    match = re.search(r"<!-- golden-port-example -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/golden.md lost its worked example"
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(match.group(1), str(DOC), "exec"), {"__name__": "golden_port_example"})
    finally:
        os.chdir(previous)
    report = check(tmp_path / "port.h5", isolate=False)
    assert report.verdict == "PASS" and report.version == 2
    assert any(r.status == "SKIP" and r.field == "grads/running_mean" for r in report.rows)
