"""Golden vectors against PyTorch autograd (skipped when torch is absent).

1. The PyTorch snippet of ``docs/golden.md`` (an independent E1-E2/E4/E5), run as
   written, produces a file our ``golden --check`` passes; with a ``relu`` in place
   of the ``H(0) = 1`` spike it fails.
2. Every case of our own golden file, recomputed with PyTorch implementations of
   E1-E2, E7 (hard reset, triangle surrogate), E8 and E9 (``F.batch_norm`` in
   training mode), matches our file field by field.
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hdlif_ref.cli import main  # noqa: E402
from hdlif_ref.oracle.golden import check_golden, read_golden, write_golden  # noqa: E402

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
    assert out.splitlines()[-1] == "9 fields: 9 PASS, 0 FAIL, 0 SKIP"


def test_a_relu_spike_fails_at_the_exact_threshold_point(tmp_path):
    code = snippet()
    assert ON_THRESHOLD_SPIKE in code
    path = run_snippet(code.replace(ON_THRESHOLD_SPIKE, "torch.relu(m - theta[t])"), tmp_path)
    failed = {r.field for r in check_golden(path, isolate=False) if r.status == "FAIL"}
    assert {"grads_stbp/I", "grads_stbp/theta", "grads_online/I", "grads_online/theta"} <= failed
    assert not any(f.startswith("outputs/") for f in failed)  # the forward is the same


# ----------------------------------------------------------------------------- all kinds in PyTorch
class TriangleSpike(torch.autograd.Function):
    """SPEC E7: forward ``H(x)`` (``H(0) = 1``), backward ``max(gamma - |x|, 0) / gamma^2``."""

    @staticmethod
    def forward(ctx, x, gamma):
        ctx.save_for_backward(x)
        ctx.gamma = gamma
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.clamp(ctx.gamma - x.abs(), min=0) / ctx.gamma ** 2, None


def torch_case(kind, x, attrs, online):
    """``(outputs, leaves)`` of one case in PyTorch, ``L = sum(grad_s * s)`` already backpropagated."""
    names = [k for k in x if k != "grad_s"]
    leaves = {k: torch.tensor(x[k], requires_grad=True) for k in names}
    I = leaves["I"]
    T = I.shape[0]
    u = torch.zeros_like(I[0])
    out = {"s": [], "u": [], "m": [], "mhat": []}
    for t in range(T):
        if online:
            u = u.detach()
        if kind == "parallel":
            th = leaves["theta"][t]
            out["s"].append(torch.where(I[t] >= th, I[t] - th, torch.zeros_like(I[t])))
            continue
        m = leaves["lam"][t] * u + I[t]
        th = leaves["theta"][t]
        if kind == "lif":
            s = TriangleSpike.apply(m - th, float(attrs.get("gamma", 1.0)))
            u = m * (1 - s)
        else:
            v = m
            if kind == "membn":
                bn = torch.nn.functional.batch_norm(m, None, None, leaves["bn_gamma"][t], leaves["bn_beta"][t],
                                                    training=True, eps=float(attrs["bn_eps"]))
                v = leaves["alpha"][t] * m + leaves["beta"][t] * bn
                out["mhat"].append(v)
            s = torch.where(v >= th, v - th, torch.zeros_like(v))
            u = v - s
        out["s"].append(s), out["u"].append(u), out["m"].append(m)
    outputs = {k: torch.stack(v) for k, v in out.items() if v}
    (outputs["s"] * torch.tensor(x["grad_s"])).sum().backward()
    return outputs, leaves


def test_every_case_of_our_file_matches_pytorch(tmp_path):
    write_golden(tmp_path / "g.h5")
    for case in read_golden(tmp_path / "g.h5", isolate=False):
        x = case.inputs
        for group, online in (("grads_stbp", False), ("grads_online", True)):
            outputs, leaves = torch_case(case.kind, x, case.attrs, online)
            for name, leaf in leaves.items():
                np.testing.assert_allclose(case.fields[f"{group}/{name}"], leaf.grad.numpy(), rtol=1e-9,
                                           atol=1e-10, err_msg=f"{case.name} {group}/{name}")
        for name, value in outputs.items():
            np.testing.assert_allclose(case.fields[f"outputs/{name}"], value.detach().numpy(), rtol=1e-12,
                                       atol=1e-12, err_msg=f"{case.name} outputs/{name}")
