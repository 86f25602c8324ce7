"""``hdlif-ref verify``: every equation E1-E20 on both backends; it fails when an equation is broken on purpose.

The mutants below are the classes the issue names (a wrong dtheta in the STBP
backward, a LIF surrogate without its 1/gamma^2, Parallel's ``>`` for ``>=``, Mem-BN
with the unbiased batch variance), made in a copy of the package's NumPy twins
(no Numba compilation in the test) and run with ``--backend numpy`` in a
subprocess; the same edits in the Numba kernels are caught by the numba column
(shown in the issue's closing report). Monkeypatched breakages cover the rest.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hdlif_ref.kernels.hdlif as hdlif_kernels
from hdlif_ref import neurons
from hdlif_ref.autograd import Tensor
from hdlif_ref.cli import main
from hdlif_ref.deploy import metrics
from hdlif_ref.neurons import theory
from hdlif_ref.oracle.verify import EQUATIONS, brute_force_sops, eps_by_differences, hdlif_inputs, run_checks

ROOT = Path(__file__).resolve().parents[2]


def failed(out):
    return sorted({line.split()[0] for line in out.splitlines()[1:-1] if re.search(r"\bFAIL\b", line)})


def test_verify_passes_and_prints_every_equation_on_both_backends(capsys):
    assert main(["verify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["equation", "statement", "numba", "numpy", "tolerance", "result"]
    for eq in EQUATIONS:
        assert any(re.match(rf"{eq}\b", line) and line.rstrip().endswith(("PASS", ")")) for line in lines), eq
    kernel_rows = [l for l in lines[1:-1] if "PASS" in l and "(same)" not in l]
    assert len(kernel_rows) >= 25  # run on both backends
    assert sum("NOT CHECKED (" in line for line in lines) == 3
    assert re.match(r"\d+ checks: (\d+) PASS, 0 FAIL; equations E1, E2, E3, .*E20; 3 not checked", lines[-1])


MUTANTS = [
    ("wrong dtheta (du/dtheta dropped)", "gtheta[t] = _sum_per_channel(np.where(mask[t], gu - gs[t], 0), C)",
     "gtheta[t] = _sum_per_channel(np.where(mask[t], -gs[t], 0), C)", "E4", "dL/dlam, dL/dtheta"),
    # the surrogate constants are shared by the kernel and its twin (kernels/surrogates.py)
    ("LIF surrogate without 1/gamma^2", "return g, dt(1) / (g * g)", "return g, dt(1)", "E7", "LIF backward"),
    ("Parallel > for >=", "mask[t] = I[t] >= theta_t", "mask[t] = I[t] > theta_t", "E8", "Parallel backward"),
    ("Mem-BN unbiased variance", "var[t] = ((m[t] - mu64[None, :, None]) ** 2).mean(axis=(0, 2))",
     "var[t] = ((m[t] - mu64[None, :, None]) ** 2).sum(axis=(0, 2)) / (m[t].shape[0] * m[t].shape[2] - 1)",
     "E9", "Mem-BN"),
]


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutant")
    shutil.copytree(ROOT / "hdlif_ref", root / "hdlif_ref", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("what, old, new, equation, row", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_mutant_class_fails_its_row(package_copy, what, old, new, equation, row):
    twin = package_copy / "hdlif_ref" / "kernels" / "reference" / "neurons.py"
    if "dt(1) / (g * g)" in old:
        twin = package_copy / "hdlif_ref" / "kernels" / "surrogates.py"
    original = twin.read_text()
    assert original.count(old) == 1
    twin.write_text(original.replace(old, new))
    try:
        env = dict(os.environ, PYTHONPATH=str(package_copy), HDLIF_REF_BACKEND="numpy")
        done = subprocess.run([sys.executable, "-m", "hdlif_ref.cli", "verify", "--only", equation, "--backend",
                               "numpy"], capture_output=True, text=True, timeout=600, env=env, cwd=package_copy)
    finally:
        twin.write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr
    bad = [line for line in done.stdout.splitlines() if re.search(r"\bFAIL\b", line) and row in line]
    assert bad and bad[0].startswith(equation), done.stdout


def test_broken_online_kernel_fails_e6(monkeypatch, capsys):
    """The online backward replaced by the STBP one (the temporal term not truncated)."""
    def stbp_instead(gs, mask, I, u0, lam, theta, need_lam):
        gI, _, glam, gtheta = hdlif_kernels.hdlif_backward_stbp(gs, u0, mask, I, u0, lam, theta, need_lam)
        return gI, glam, gtheta

    monkeypatch.setattr(hdlif_kernels, "hdlif_backward_online", stbp_instead)
    assert main(["verify", "--only", "E3,E4,E5,E6", "--backend", "numba"]) == 1
    bad = failed(capsys.readouterr().out)
    assert bad == ["E5", "E6", "E6'"]


def test_relu_derivative_at_the_threshold_fails_e3(monkeypatch, capsys):
    """chi[t,t] with H(0) = 0 (a plain relu derivative) instead of H(0) = 1."""
    def relu_chi(record):
        theta = np.asarray(record.theta).reshape((-1,) + (1,) * (record.m.ndim - 1))
        return (record.m > theta).astype(record.m.dtype)

    monkeypatch.setattr(theory, "chi_diag", relu_chi)
    assert main(["verify", "--only", "E3,E4,E6"]) == 1
    bad = failed(capsys.readouterr().out)
    assert bad[0] == "E3" and "E6'" in bad


def test_broken_quantizer_rounding_and_reparameterization_and_counter_fail(monkeypatch):
    real_quantize = neurons.spike_quantize

    def half_up(x, step, bits):  # rounds ties up (np.floor(x + 0.5)) instead of to even
        out = real_quantize(x, step, bits)  # read-only (finite by construction): shifted by a new tensor
        s = float(np.asarray(step.data))
        ratio = x.data / s
        wrong = s * np.clip(np.floor(ratio + 0.5), 0, 2 ** bits - 1)
        return out + Tensor((wrong - out.data).astype(out.dtype))  # the wrong values, the graph kept

    monkeypatch.setattr(neurons, "spike_quantize", half_up)
    monkeypatch.setattr(neurons.MemBNHDLIF, "reparameterize", lambda self: (_ for _ in ()).throw(
        RuntimeError("broken on purpose")))
    real_ops = metrics.synapse_ops
    monkeypatch.setattr(metrics, "synapse_ops", lambda layer, x, mode: (real_ops(layer, x, mode)[1],) * 2)
    results = run_checks(0, ("E10", "E13", "E19"))
    failing = sorted({r.equation for r in results if not r.passed})
    assert failing == ["E10", "E13", "E19"]
    assert any("broken on purpose" in r.statement for r in results)
    e13 = [r.statement for r in results if r.equation == "E13" and not r.passed]
    assert e13 and not any("raised" in text for text in e13)  # caught by its check, not by an exception


def test_eps_by_differences_is_the_product_formula_and_brute_force_counts():
    """The evidence routes themselves, on a case small enough to check by eye."""
    I = np.array([[2.0], [0.25], [0.5]])  # theta = 1, lam = 0.5: m = 2 (fires, u = 1), 0.75, 0.875
    eps = eps_by_differences(I, np.full(3, 0.5), np.ones(3))
    # chi[0,0] = 1; m_1 = 0.75 < 1 and m_2 = 0.875 < 1: chi[1,1] = chi[2,2] = 0, so only eps[0,0] = 1
    assert np.array_equal(eps[:, :, 0], np.diag([1.0, 0.0, 0.0]))
    I, lam, theta, signs = hdlif_inputs(np.random.default_rng(3), T=4, elements=8)
    m = neurons.hdlif_record(I, lam, theta).m
    gap = m - theta[:, None]
    assert np.array_equal(np.sign(np.where(np.abs(gap) < 1e-12, 0, gap)), signs)
    from hdlif_ref.layers import Conv2d

    conv = Conv2d(1, 1, 3, padding=1)
    ones = np.ones((1, 1, 3, 3))
    # 3x3 output, 3x3 kernel, padding 1: corners read 4 taps, edges 6, the centre 9 -> 4*4 + 4*6 + 9 = 49
    assert brute_force_sops(ones, conv) == 49


def test_verify_errors_and_subprocess(capsys):
    assert main(["verify", "--only", "E21"]) == 2
    assert "unknown equation E21; allowed: E1 .. E20" in capsys.readouterr().err
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(["hdlif-ref", "verify", "--only", "E4,E20"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("6 checks: 6 PASS, 0 FAIL; equations E4, E20;")
