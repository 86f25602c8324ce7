"""``hdlif-ref verify``: passes on the library, fails when an equation is broken on purpose."""
import subprocess

import numpy as np

import hdlif_ref.kernels.hdlif as hdlif_kernels
from hdlif_ref import neurons
from hdlif_ref.cli import main
from hdlif_ref.deploy import metrics
from hdlif_ref.oracle.verify import brute_force_sops, eps_by_differences, hdlif_inputs, run_checks
from hdlif_ref.neurons import theory

ROWS = ["E3 ", "E4 ", "E4 sep.", "E6 ", "E6'", "E10", "E13", "E18", "E19", "E20"]


def failed(capsys):
    out = capsys.readouterr().out
    return out, sorted({line.split()[0] for line in out.splitlines()[1:-1] if line.rstrip().endswith("FAIL")
                        or " FAIL " in line})


def test_verify_passes_and_prints_every_equation(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["equation", "statement", "worst", "error", "tolerance", "result"]
    for row in ROWS:
        assert any(line.startswith(row) and "PASS" in line for line in lines), row
    assert lines[-1] == "14 checks: 14 PASS, 0 FAIL"


def test_broken_online_kernel_fails_e6(monkeypatch, capsys):
    """The online backward replaced by the STBP one (the temporal term not truncated)."""
    def stbp_instead(gs, mask, I, u0, lam, theta, need_lam):
        gI, _, glam, gtheta = hdlif_kernels.hdlif_backward_stbp(gs, u0, mask, I, u0, lam, theta, need_lam)
        return gI, glam, gtheta

    monkeypatch.setattr(hdlif_kernels, "hdlif_backward_online", stbp_instead)
    assert main(["verify", "--only", "E3,E4,E6"]) == 1
    out, bad = failed(capsys)
    assert bad == ["E6", "E6'"]


def test_relu_derivative_at_the_threshold_fails_e3(monkeypatch, capsys):
    """chi[t,t] with H(0) = 0 (a plain relu derivative) instead of H(0) = 1."""
    def relu_chi(record):
        theta = np.asarray(record.theta).reshape((-1,) + (1,) * (record.m.ndim - 1))
        return (record.m > theta).astype(record.m.dtype)

    monkeypatch.setattr(theory, "chi_diag", relu_chi)
    assert main(["verify", "--only", "E3,E4,E6"]) == 1
    _, bad = failed(capsys)
    assert bad[0] == "E3" and "E6'" in bad


def test_broken_quantizer_rounding_and_reparameterization_and_counter_fail(monkeypatch):
    real_quantize = neurons.spike_quantize

    def half_up(x, step, bits):  # rounds ties up (np.floor(x + 0.5)) instead of to even
        out = real_quantize(x, step, bits)
        s = float(np.asarray(step.data))
        ratio = x.data / s
        out.data[...] = s * np.clip(np.floor(ratio + 0.5), 0, 2 ** bits - 1)
        return out

    monkeypatch.setattr(neurons, "spike_quantize", half_up)
    monkeypatch.setattr(neurons.MemBNHDLIF, "reparameterize", lambda self: (_ for _ in ()).throw(
        RuntimeError("broken on purpose")))
    real_ops = metrics.synapse_ops
    monkeypatch.setattr(metrics, "synapse_ops", lambda layer, x, mode: (real_ops(layer, x, mode)[1],) * 2)
    results = {r.statement[:20]: r for r in run_checks(0, ("E10", "E13", "E19"))}
    failing = sorted(r.equation for r in results.values() if not r.passed)
    assert failing == ["E10", "E13", "E19"]
    assert any("broken on purpose" in r.statement for r in results.values())


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
    assert main(["verify", "--only", "E7"]) == 2
    assert "unknown equation E7" in capsys.readouterr().err
    done = subprocess.run(["hdlif-ref", "verify", "--only", "E4,E20"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "4 checks: 4 PASS, 0 FAIL"
