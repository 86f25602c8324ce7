"""Golden vectors (SPEC section 6): the writer's numbers against independent loops, the checker against damage.

The writer and the checker both compute with the library's fused functions; here
every case is recomputed without them: forwards by the element-by-element loops of
``tests/neurons/_loops.py`` (SPEC E1-E9), backwards by reverse-mode loops written
below from SPEC E3-E5/E7, and Mem-BN gradients by central finite differences of a
vectorized NumPy forward.
"""
import math
import shutil

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref.oracle import check, read_golden, recompute, write
from tests.neurons._loops import hdlif_loop, lif_loop, membn_loop, param_at, parallel_loop


# ----------------------------------------------------------------------------- independent backward loops
def _add(acc, p, t, idx, value):
    """``acc[t] += value`` for a per-layer ``[T]`` parameter, ``acc[t, c] += value`` for ``[T, C]``."""
    if p.ndim == 1:
        acc[t] += value
    else:
        acc[t, idx[1]] += value


def hdlif_backward_loop(I, lam, theta, g, online):
    """SPEC E3-E5 by hand, element by element: returns ``(dI, dlam, dtheta)`` for ``L = sum g * s*``."""
    T = I.shape[0]
    dI, dlam, dtheta = np.zeros_like(I), np.zeros_like(lam), np.zeros_like(theta)
    for idx in np.ndindex(I.shape[1:]):
        m, u_prev, u = np.zeros(T), np.zeros(T), 0.0
        for t in range(T):
            u_prev[t] = u
            m[t] = param_at(lam, t, idx) * u + I[(t,) + idx]
            u = param_at(theta, t, idx) if m[t] >= param_at(theta, t, idx) else m[t]
        du = 0.0  # dL/du_t from step t + 1
        for t in reversed(range(T)):
            fired = 1.0 if m[t] >= param_at(theta, t, idx) else 0.0  # H(0) = 1
            gs = g[(t,) + idx]
            dm = gs * fired + du * (1.0 - fired)  # ds*/dm = H, du/dm = 1 - H
            _add(dtheta, theta, t, idx, -gs * fired + du * fired)  # ds*/dtheta = -H, du/dtheta = H
            _add(dlam, lam, t, idx, dm * u_prev[t])
            dI[(t,) + idx] = dm
            du = 0.0 if online else dm * param_at(lam, t, idx)  # online: u_{t-1} is a constant (E5)
    return dI, dlam, dtheta


def lif_backward_loop(I, lam, theta, g, online, gamma=1.0, reset="hard"):
    """SPEC E7, triangle surrogate ``sg = max(gamma - |m - theta|, 0) / gamma^2``; the reset is
    differentiated: hard ``u = m (1 - s)``: ``du/dm = (1 - s) - m sg``, ``du/dtheta = m sg``;
    soft ``u = m - theta s``: ``du/dm = 1 - theta sg``, ``du/dtheta = -s + theta sg``."""
    T = I.shape[0]
    dI, dlam, dtheta = np.zeros_like(I), np.zeros_like(lam), np.zeros_like(theta)
    for idx in np.ndindex(I.shape[1:]):
        m, s, u_prev, u = np.zeros(T), np.zeros(T), np.zeros(T), 0.0
        for t in range(T):
            th = param_at(theta, t, idx)
            u_prev[t] = u
            m[t] = param_at(lam, t, idx) * u + I[(t,) + idx]
            s[t] = 1.0 if m[t] >= th else 0.0
            u = m[t] * (1.0 - s[t]) if reset == "hard" else m[t] - th * s[t]
        du = 0.0
        for t in reversed(range(T)):
            th = param_at(theta, t, idx)
            sg = max(gamma - abs(m[t] - th), 0.0) / gamma ** 2
            gs = g[(t,) + idx]
            if reset == "hard":
                dm = gs * sg + du * ((1.0 - s[t]) - m[t] * sg)
                _add(dtheta, theta, t, idx, -gs * sg + du * m[t] * sg)
            else:
                dm = gs * sg + du * (1.0 - th * sg)
                _add(dtheta, theta, t, idx, -gs * sg + du * (-s[t] + th * sg))
            _add(dlam, lam, t, idx, dm * u_prev[t])
            dI[(t,) + idx] = dm
            du = 0.0 if online else dm * param_at(lam, t, idx)
    return dI, dlam, dtheta


def parallel_backward_loop(I, theta, g):
    """SPEC E8: ``ds*/dI = H(I - theta)``, ``ds*/dtheta = -H``."""
    dI, dtheta = np.zeros_like(I), np.zeros_like(theta)
    for t in range(I.shape[0]):
        for idx in np.ndindex(I.shape[1:]):
            fired = 1.0 if I[(t,) + idx] >= param_at(theta, t, idx) else 0.0
            dI[(t,) + idx] = g[(t,) + idx] * fired
            _add(dtheta, theta, t, idx, -g[(t,) + idx] * fired)
    return dI, dtheta


MEMBN_NAMES = ("I", "lam", "theta", "alpha", "beta", "bn_gamma", "bn_beta")


def membn_loss(x, g, u_fixed=None, bn_eps=1e-5):
    """``sum g * s*`` of SPEC E9 (vectorized, batch statistics); ``u_fixed``: the ``u_{t-1}`` to use
    (online, E5: the previous membrane is a constant). Returns ``(loss, u)``."""
    I = x["I"]
    T = I.shape[0]
    axes = (0,) + tuple(range(2, I.ndim - 1))
    shape_c = (1, -1) + (1,) * (I.ndim - 3)
    pc = lambda p, t: p[t] if p.ndim == 1 else p[t].reshape(shape_c)  # noqa: E731 - [T] or [T, C] at step t
    u, us, loss = np.zeros(I.shape[1:]), [], 0.0
    for t in range(T):
        u_prev = (np.zeros(I.shape[1:]) if t == 0 else u_fixed[t - 1]) if u_fixed is not None else u
        m = pc(x["lam"], t) * u_prev + I[t]
        mean, var = m.mean(axis=axes, keepdims=True), m.var(axis=axes, keepdims=True)
        bn = x["bn_gamma"][t].reshape(shape_c) * (m - mean) / np.sqrt(var + bn_eps) + x["bn_beta"][t].reshape(shape_c)
        mhat = pc(x["alpha"], t) * m + pc(x["beta"], t) * bn
        s = np.where(mhat >= pc(x["theta"], t), mhat - pc(x["theta"], t), 0.0)
        u = mhat - s
        us.append(u)
        loss += float(np.sum(g[t] * s))
    return loss, np.stack(us)


def membn_finite_differences(x, g, online, h=1e-6):
    u_fixed = membn_loss(x, g)[1] if online else None
    grads = {}
    for name in MEMBN_NAMES:
        grad = np.zeros_like(x[name])
        for idx in np.ndindex(x[name].shape):
            values = []
            for sign in (1, -1):
                y = {k: v.copy() for k, v in x.items()}
                y[name][idx] += sign * h
                values.append(membn_loss(y, g, u_fixed)[0])
            grad[idx] = (values[0] - values[1]) / (2 * h)
        grads[name] = grad
    return grads


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """The neuron cases (v1 kinds) of the default file."""
    path = tmp_path_factory.mktemp("golden") / "g.h5"
    cases = write(path, seed=0, cases=("hdlif", "lif", "parallel", "membn"))
    return path, {c.name: c for c in cases}


# ----------------------------------------------------------------------------- the layout
def test_layout_follows_spec_section_6(golden):
    path, _ = golden
    with h5py.File(path, "r") as f:
        assert (f.attrs["format"], int(f.attrs["version"]), f.attrs["dtype"]) == ("hdlif-golden", 2, "float64")
        kinds, hdlif_T, per_channel, soft, gammas = [], set(), set(), False, set()
        for name, case in f["cases"].items():
            kind, T = case.attrs["kind"], int(case.attrs["T"])
            kinds.append(kind)
            I = case["inputs/I"]
            assert I.shape[0] == T and I.dtype == np.float64
            required = ["inputs/I", "inputs/theta", "inputs/grad_s", "outputs/s", "grads_stbp/I",
                        "grads_stbp/theta", "grads_online/I", "grads_online/theta"]
            if kind != "parallel":
                required += ["inputs/lam", "outputs/u", "outputs/m", "grads_stbp/lam", "grads_online/lam"]
            if kind == "membn":
                required += ["inputs/alpha", "inputs/beta", "inputs/bn_gamma", "inputs/bn_beta", "outputs/mhat"]
                assert case.attrs["bn_eps"] == 1e-5 and I.ndim >= 3
            if kind == "lif":
                assert case.attrs["surrogate"] == "triangle"
                soft |= case.attrs["reset"] == "soft"
                gammas.add(float(case.attrs["gamma"]))
            for field in required:
                assert case[field].dtype == np.float64, (name, field)
            for field in ("inputs/lam", "inputs/theta"):
                if field in case:
                    assert case[field].shape in ((T,), (T, I.shape[2] if I.ndim > 2 else -1))
                    if case[field].ndim == 2:
                        per_channel.add(kind)
            if kind == "hdlif":
                hdlif_T.add(T)
        assert kinds.count("hdlif") >= 4 and {"lif", "parallel", "membn"} <= set(kinds)
        assert hdlif_T >= {1, 2, 4, 8}
        assert per_channel == {"hdlif", "lif", "parallel", "membn"} and soft and len(gammas - {1.0}) >= 2


def test_hdlif_cases_hold_values_on_far_below_and_far_above_the_threshold(golden):
    _, cases = golden
    for name, case in cases.items():
        if case.kind != "hdlif":
            continue
        m, theta = case.fields["outputs/m"], case.fields["inputs/theta"]
        th = theta.reshape((-1,) + (1,) * (m.ndim - 1)) if theta.ndim == 1 else \
            theta.reshape((theta.shape[0], 1, theta.shape[1]) + (1,) * (m.ndim - 3))
        gap = m - th
        assert (gap == 0).sum() >= 2, name  # exactly on theta: s* = 0 but chi[t,t] = 1 (SPEC E3)
        assert (gap < -50).any() and (gap > 50).any(), name
        on = gap == 0
        assert np.all(case.fields["outputs/s"][on] == 0)
        # the STBP gradient at an exact-threshold point of the last step is dL/ds*_T (chi = 1, not relu's 0)
        last = on[-1]
        assert np.array_equal(case.fields["grads_stbp/I"][-1][last], case.fields["inputs/grad_s"][-1][last])


def test_generation_is_deterministic_from_the_seed(golden, tmp_path):
    _, cases = golden
    again = {c.name: c for c in write(tmp_path / "again.h5", seed=0, cases=("hdlif", "lif", "parallel", "membn"))}
    other = {c.name: c for c in write(tmp_path / "other.h5", seed=1, cases=("hdlif",))}
    for name, case in cases.items():
        for field, value in case.fields.items():
            assert np.array_equal(again[name].fields[field], value), (name, field)
    assert not np.array_equal(other["hdlif_T8"].fields["inputs/I"], cases["hdlif_T8"].fields["inputs/I"])


# ----------------------------------------------------------------------------- the numbers, independently
def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_hdlif_lif_parallel_cases_match_independent_loops(golden):
    _, cases = golden
    seen = set()
    for name, case in cases.items():
        x, f = case.inputs, case.fields
        if case.kind == "hdlif":
            m, s, u = hdlif_loop(x["I"], x["lam"], x["theta"])
            backward = lambda online: hdlif_backward_loop(x["I"], x["lam"], x["theta"], x["grad_s"], online)  # noqa
        elif case.kind == "lif":
            reset, gamma = case.attrs["reset"], float(case.attrs["gamma"])
            m, s, u = lif_loop(x["I"], x["lam"], x["theta"], reset)
            backward = lambda online: lif_backward_loop(x["I"], x["lam"], x["theta"], x["grad_s"], online,  # noqa
                                                        gamma, reset)
        elif case.kind == "parallel":
            _close(f["outputs/s"], parallel_loop(x["I"], x["theta"]))
            dI, dtheta = parallel_backward_loop(x["I"], x["theta"], x["grad_s"])
            for mode in ("grads_stbp", "grads_online"):
                _close(f[f"{mode}/I"], dI)
                _close(f[f"{mode}/theta"], dtheta)
            seen.add(name)
            continue
        else:
            continue
        _close(f["outputs/m"], m)
        _close(f["outputs/s"], s)
        _close(f["outputs/u"], u)
        for mode, online in (("grads_stbp", False), ("grads_online", True)):
            dI, dlam, dtheta = backward(online)
            _close(f[f"{mode}/I"], dI)
            _close(f[f"{mode}/lam"], dlam)
            _close(f[f"{mode}/theta"], dtheta)
        seen.add(name)
    assert {"lif_T4_soft_gamma05", "lif_T3_hard_gamma2_per_channel", "hdlif_T4_per_channel",
            "parallel_T4_per_channel"} <= seen


def test_lif_gamma_and_soft_reset_really_change_the_numbers(golden):
    """The loops above would pass a writer that ignored ``gamma`` or ``reset`` only if the cases did not
    depend on them: recomputing with the other setting must change the gradients (soft: also u)."""
    _, cases = golden
    soft = cases["lif_T4_soft_gamma05"]
    as_hard = recompute("lif", soft.inputs, {"reset": "hard", "gamma": 0.5})
    as_gamma1 = recompute("lif", soft.inputs, {"reset": "soft", "gamma": 1.0})
    assert not np.allclose(as_hard["outputs/u"], soft.fields["outputs/u"])
    assert not np.allclose(as_gamma1["grads_stbp/I"], soft.fields["grads_stbp/I"])


@pytest.mark.parametrize("name", ["membn_T4", "membn_T3_per_channel"])
def test_membn_case_matches_a_loop_and_finite_differences(golden, name):
    _, cases = golden
    case = cases[name]
    x, f = case.inputs, case.fields
    m, mhat, s, u, _, _ = membn_loop(x["I"], x["lam"], x["theta"], x["alpha"], x["beta"], x["bn_gamma"],
                                     x["bn_beta"])
    for field, value in (("m", m), ("mhat", mhat), ("s", s), ("u", u)):
        _close(f[f"outputs/{field}"], value)
    for mode, online in (("grads_stbp", False), ("grads_online", True)):
        numeric = membn_finite_differences({k: x[k] for k in MEMBN_NAMES}, x["grad_s"], online)
        for field in MEMBN_NAMES:
            np.testing.assert_allclose(f[f"{mode}/{field}"], numeric[field], rtol=1e-6, atol=1e-6,
                                       err_msg=f"{mode}/{field}")


@settings(max_examples=25)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_recompute_of_any_hdlif_input_matches_the_loops(T, n, seed, on_threshold, per_channel):
    rng = np.random.default_rng(seed)
    shape = (T, 2, 3) if per_channel else (T,)
    lam, theta = rng.choice([0.25, 0.5, 0.75], shape[:1] + shape[2:]), rng.choice([0.5, 1.0, 1.5], shape[:1] + shape[2:])
    I = rng.integers(-24, 40, (T, n, 3)) / 16.0 if on_threshold else rng.normal(0.8, 1.0, (T, n, 3))
    g = rng.normal(size=I.shape)
    ours = recompute("hdlif", {"I": I, "lam": lam, "theta": theta, "grad_s": g})
    m, s, u = hdlif_loop(I, lam, theta)
    _close(ours["outputs/m"], m)
    _close(ours["outputs/s"], s)
    for mode, online in (("grads_stbp", False), ("grads_online", True)):
        for field, value in zip(("I", "lam", "theta"), hdlif_backward_loop(I, lam, theta, g, online)):
            _close(ours[f"{mode}/{field}"], value)


def test_per_layer_bn_affine_and_per_channel_parameters_are_accepted(golden):
    """The layout allows ``bn_gamma``/``bn_beta`` ``[T]`` (one value for all channels) and ``[T, C]``
    parameters: the same numbers as the repeated ``[T, C]`` form, gradients summed over channels."""
    x = dict(golden[1]["membn_T4"].inputs)
    per_layer = dict(x, bn_gamma=x["bn_gamma"][:, 0].copy(), bn_beta=x["bn_beta"][:, 0].copy())
    repeated = dict(x, bn_gamma=np.repeat(per_layer["bn_gamma"][:, None], 3, 1),
                    bn_beta=np.repeat(per_layer["bn_beta"][:, None], 3, 1))
    a, b = recompute("membn", per_layer), recompute("membn", repeated)
    for field, value in a.items():
        expected = b[field].sum(axis=1) if field.endswith(("bn_gamma", "bn_beta")) else b[field]
        _close(value, expected)
    case = golden[1]["hdlif_T4_conv"]  # I: [4, 2, 3, 2, 4]; lam, theta per channel [T, C = 3]
    y = dict(case.inputs, lam=np.repeat(case.inputs["lam"][:, None], 3, 1),
             theta=np.repeat(case.inputs["theta"][:, None], 3, 1))
    ours = recompute("hdlif", y)
    _close(ours["outputs/s"], case.fields["outputs/s"])
    _close(ours["grads_stbp/lam"].sum(axis=1), case.fields["grads_stbp/lam"])


def test_recompute_refuses_what_it_does_not_implement():
    x = {"I": np.ones((2, 2, 3)), "lam": np.full(2, 0.5), "theta": np.ones(2), "alpha": np.ones(2),
         "beta": np.zeros(2), "bn_gamma": np.ones((2, 3)), "bn_beta": np.zeros((2, 3)), "grad_s": np.ones((2, 2, 3))}
    with pytest.raises(ValueError, match="bn_mode='eval' is not implemented by this checker; implemented: train"):
        recompute("membn", x, {"bn_mode": "eval"})
    with pytest.raises(ValueError, match="surrogate='sigmoid' is not implemented"):
        recompute("lif", {k: x[k] for k in ("I", "lam", "theta", "grad_s")}, {"surrogate": "sigmoid"})
    with pytest.raises(ValueError, match="reset='zero'; allowed: hard, soft"):
        recompute("lif", {k: x[k] for k in ("I", "lam", "theta", "grad_s")}, {"reset": "zero"})
    with pytest.raises(ValueError, match="kind='izh'; allowed: hdlif"):
        recompute("izh", x)
    with pytest.raises(ValueError, match="input theta missing"):
        recompute("hdlif", {k: x[k] for k in ("I", "lam", "grad_s")})
    # the synonyms of SPEC section 7 (PyTorch's words) are the same settings
    a = recompute("membn", x, {"bn_mode": "train"})
    b = recompute("membn", dict({k: v for k, v in x.items() if not k.startswith("bn_")}, bn_weight=x["bn_gamma"],
                                bn_bias=x["bn_beta"]), {"mode": "training"})
    assert all(np.array_equal(a[k], b[k]) for k in a)
    lif = {k: x[k] for k in ("I", "lam", "theta", "grad_s")}
    assert all(np.array_equal(u, v) for u, v in zip(recompute("lif", lif, {"surrogate": "tri"}).values(),
                                                    recompute("lif", lif, {"surrogate": "triangle"}).values()))


def test_check_passes_on_a_written_file_on_both_backends(golden):
    from hdlif_ref import backend

    path, cases = golden
    report = check(path, isolate=False)
    assert report.verdict == "PASS" and {r.status for r in report.rows} == {"PASS"}
    assert len(report.rows) == sum(len([f for f in c.fields if not f.startswith("inputs/")]) for c in cases.values())
    with backend("numpy"):
        assert check(path, isolate=False).verdict == "PASS"
