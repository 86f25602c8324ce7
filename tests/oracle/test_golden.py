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

from hdlif_ref.oracle.golden import (DEFAULT_ATOL, DEFAULT_RTOL, GoldenFileError, check_golden, compare,
                                     format_results, read_golden, recompute, write_golden)
from tests.neurons._loops import hdlif_loop, lif_loop, membn_loop, parallel_loop


# ----------------------------------------------------------------------------- independent backward loops
def hdlif_backward_loop(I, lam, theta, g, online):
    """SPEC E3-E5 by hand, element by element: returns ``(dI, dlam, dtheta)`` for ``L = sum g * s*``."""
    T = I.shape[0]
    dI, dlam, dtheta = np.zeros_like(I), np.zeros_like(lam), np.zeros_like(theta)
    for idx in np.ndindex(I.shape[1:]):
        m, u_prev, u = np.zeros(T), np.zeros(T), 0.0
        for t in range(T):
            u_prev[t] = u
            m[t] = lam[t] * u + I[(t,) + idx]
            u = theta[t] if m[t] >= theta[t] else m[t]
        du = 0.0  # dL/du_t from step t + 1
        for t in reversed(range(T)):
            fired = 1.0 if m[t] >= theta[t] else 0.0  # H(0) = 1
            gs = g[(t,) + idx]
            dm = gs * fired + du * (1.0 - fired)  # ds*/dm = H, du/dm = 1 - H
            dtheta[t] += -gs * fired + du * fired  # ds*/dtheta = -H, du/dtheta = H
            dlam[t] += dm * u_prev[t]
            dI[(t,) + idx] = dm
            du = 0.0 if online else dm * lam[t]  # online: u_{t-1} is a constant (E5)
    return dI, dlam, dtheta


def lif_backward_loop(I, lam, theta, g, online, gamma=1.0):
    """SPEC E7, hard reset, triangle surrogate ``sg = max(gamma - |m - theta|, 0) / gamma^2``; the reset is
    differentiated (``du/dm = (1 - s) - m sg``)."""
    T = I.shape[0]
    dI, dlam, dtheta = np.zeros_like(I), np.zeros_like(lam), np.zeros_like(theta)
    for idx in np.ndindex(I.shape[1:]):
        m, s, u_prev, u = np.zeros(T), np.zeros(T), np.zeros(T), 0.0
        for t in range(T):
            u_prev[t] = u
            m[t] = lam[t] * u + I[(t,) + idx]
            s[t] = 1.0 if m[t] >= theta[t] else 0.0
            u = m[t] * (1.0 - s[t])
        du = 0.0
        for t in reversed(range(T)):
            sg = max(gamma - abs(m[t] - theta[t]), 0.0) / gamma ** 2
            gs = g[(t,) + idx]
            dm = gs * sg + du * ((1.0 - s[t]) - m[t] * sg)
            dtheta[t] += -gs * sg + du * m[t] * sg
            dlam[t] += dm * u_prev[t]
            dI[(t,) + idx] = dm
            du = 0.0 if online else dm * lam[t]
    return dI, dlam, dtheta


def parallel_backward_loop(I, theta, g):
    """SPEC E8: ``ds*/dI = H(I - theta)``, ``ds*/dtheta = -H``."""
    fired = np.zeros_like(I)
    for t in range(I.shape[0]):
        for idx in np.ndindex(I.shape[1:]):
            fired[(t,) + idx] = 1.0 if I[(t,) + idx] >= theta[t] else 0.0
    dI = g * fired
    return dI, -dI.reshape(I.shape[0], -1).sum(axis=1)


MEMBN_NAMES = ("I", "lam", "theta", "alpha", "beta", "bn_gamma", "bn_beta")


def membn_loss(x, g, u_fixed=None, bn_eps=1e-5):
    """``sum g * s*`` of SPEC E9 (vectorized, batch statistics); ``u_fixed``: the ``u_{t-1}`` to use
    (online, E5: the previous membrane is a constant). Returns ``(loss, u)``."""
    I = x["I"]
    T = I.shape[0]
    axes = (0,) + tuple(range(2, I.ndim - 1))
    shape_c = (1, -1) + (1,) * (I.ndim - 3)
    u, us, loss = np.zeros(I.shape[1:]), [], 0.0
    for t in range(T):
        u_prev = (np.zeros(I.shape[1:]) if t == 0 else u_fixed[t - 1]) if u_fixed is not None else u
        m = x["lam"][t] * u_prev + I[t]
        mean, var = m.mean(axis=axes, keepdims=True), m.var(axis=axes, keepdims=True)
        bn = x["bn_gamma"][t].reshape(shape_c) * (m - mean) / np.sqrt(var + bn_eps) + x["bn_beta"][t].reshape(shape_c)
        mhat = x["alpha"][t] * m + x["beta"][t] * bn
        s = np.where(mhat >= x["theta"][t], mhat - x["theta"][t], 0.0)
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
    path = tmp_path_factory.mktemp("golden") / "g.h5"
    cases = write_golden(path, seed=0)
    return path, {c.name: c for c in cases}


def copy_of(path, tmp_path, name="copy.h5"):
    target = tmp_path / name
    shutil.copyfile(path, target)
    return target


# ----------------------------------------------------------------------------- the layout
def test_layout_follows_spec_section_6(golden):
    path, _ = golden
    with h5py.File(path, "r") as f:
        assert (f.attrs["format"], int(f.attrs["version"]), f.attrs["dtype"]) == ("hdlif-golden", 1, "float64")
        kinds, hdlif_T = [], set()
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
                assert (case.attrs["reset"], case.attrs["surrogate"], case.attrs["gamma"]) == ("hard", "triangle", 1)
            for field in required:
                assert case[field].dtype == np.float64, (name, field)
            for field in ("inputs/lam", "inputs/theta"):
                if field in case:
                    assert case[field].shape in ((T,), (T, I.shape[2] if I.ndim > 2 else -1))
            if kind == "hdlif":
                hdlif_T.add(T)
        assert kinds.count("hdlif") >= 4 and {"lif", "parallel", "membn"} <= set(kinds)
        assert hdlif_T >= {1, 2, 4, 8}


def test_hdlif_cases_hold_values_on_far_below_and_far_above_the_threshold(golden):
    _, cases = golden
    for name, case in cases.items():
        if case.kind != "hdlif":
            continue
        m, theta = case.fields["outputs/m"], case.fields["inputs/theta"]
        gap = m - theta.reshape((-1,) + (1,) * (m.ndim - 1))
        assert (gap == 0).sum() >= 2, name  # exactly on theta: s* = 0 but chi[t,t] = 1 (SPEC E3)
        assert (gap < -50).any() and (gap > 50).any(), name
        on = gap == 0
        assert np.all(case.fields["outputs/s"][on] == 0)
        # the STBP gradient at an exact-threshold point of the last step is dL/ds*_T (chi = 1, not relu's 0)
        last = on[-1]
        assert np.array_equal(case.fields["grads_stbp/I"][-1][last], case.fields["inputs/grad_s"][-1][last])


def test_generation_is_deterministic_from_the_seed(golden, tmp_path):
    _, cases = golden
    again = {c.name: c for c in write_golden(tmp_path / "again.h5", seed=0)}
    other = {c.name: c for c in write_golden(tmp_path / "other.h5", seed=1)}
    for name, case in cases.items():
        for field, value in case.fields.items():
            assert np.array_equal(again[name].fields[field], value), (name, field)
    assert not np.array_equal(other["hdlif_T8"].fields["inputs/I"], cases["hdlif_T8"].fields["inputs/I"])


# ----------------------------------------------------------------------------- the numbers, independently
def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_hdlif_lif_parallel_cases_match_independent_loops(golden):
    _, cases = golden
    for name, case in cases.items():
        x, f = case.inputs, case.fields
        if case.kind == "hdlif":
            m, s, u = hdlif_loop(x["I"], x["lam"], x["theta"])
            backward = lambda online: hdlif_backward_loop(x["I"], x["lam"], x["theta"], x["grad_s"], online)  # noqa
        elif case.kind == "lif":
            m, s, u = lif_loop(x["I"], x["lam"], x["theta"], "hard")
            backward = lambda online: lif_backward_loop(x["I"], x["lam"], x["theta"], x["grad_s"], online)  # noqa
        elif case.kind == "parallel":
            _close(f["outputs/s"], parallel_loop(x["I"], x["theta"]))
            dI, dtheta = parallel_backward_loop(x["I"], x["theta"], x["grad_s"])
            for mode in ("grads_stbp", "grads_online"):
                _close(f[f"{mode}/I"], dI)
                _close(f[f"{mode}/theta"], dtheta)
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


def test_membn_case_matches_a_loop_and_finite_differences(golden):
    _, cases = golden
    case = cases["membn_T4"]
    x, f = case.inputs, case.fields
    m, mhat, s, u, _, _ = membn_loop(x["I"], x["lam"], x["theta"], x["alpha"], x["beta"], x["bn_gamma"],
                                     x["bn_beta"])
    for field, value in (("m", m), ("mhat", mhat), ("s", s), ("u", u)):
        _close(f[f"outputs/{field}"], value)
    for mode, online in (("grads_stbp", False), ("grads_online", True)):
        numeric = membn_finite_differences({k: x[k] for k in MEMBN_NAMES}, x["grad_s"], online)
        for name in MEMBN_NAMES:
            np.testing.assert_allclose(f[f"{mode}/{name}"], numeric[name], rtol=1e-6, atol=1e-6,
                                       err_msg=f"{mode}/{name}")


@settings(max_examples=25)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1), st.booleans())
def test_recompute_of_any_hdlif_input_matches_the_loops(T, n, seed, on_threshold):
    rng = np.random.default_rng(seed)
    lam, theta = rng.choice([0.25, 0.5, 0.75], T), rng.choice([0.5, 1.0, 1.5], T)
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


# ----------------------------------------------------------------------------- checking
def test_check_passes_on_a_written_file(golden):
    path, cases = golden
    results = check_golden(path, isolate=False)
    assert {r.status for r in results} == {"PASS"}
    assert len(results) == sum(len([f for f in c.fields if not f.startswith("inputs/")]) for c in cases.values())
    assert format_results(results)[-1] == f"{len(results)} fields: {len(results)} PASS, 0 FAIL, 0 SKIP"


def test_the_numpy_backend_passes_the_file_the_numba_backend_wrote(golden):
    from hdlif_ref import backend

    with backend("numpy"):
        assert {r.status for r in check_golden(golden[0], isolate=False)} == {"PASS"}


def test_one_changed_value_fails_naming_case_and_field(golden, tmp_path):
    path, cases = golden
    bad = copy_of(path, tmp_path)
    with h5py.File(bad, "r+") as f:
        ds = f["cases/hdlif_T4_conv/grads_online/theta"]
        values = ds[()]
        values[2] += 1e-3
        ds[...] = values
    results = check_golden(bad, isolate=False)
    failed = [(r.case, r.field) for r in results if r.status == "FAIL"]
    assert failed == [("hdlif_T4_conv", "grads_online/theta")]
    line = next(l for l in format_results(results) if "FAIL" in l and "hdlif_T4_conv" in l)
    assert "grads_online/theta" in line and "1 of 4 values" in line


def test_tolerances_default_and_per_case_attrs(golden, tmp_path):
    path, cases = golden
    bad = copy_of(path, tmp_path)
    s = cases["hdlif_T8"].fields["outputs/s"]
    k = np.unravel_index(np.argmax(np.abs(s)), s.shape)  # a large value: the relative part decides
    with h5py.File(bad, "r+") as f:
        ds = f["cases/hdlif_T8/outputs/s"]
        values = ds[()]
        values[k] *= 1 + 0.5 * DEFAULT_RTOL  # inside atol + rtol |x|
        ds[...] = values
    assert all(r.status == "PASS" for r in check_golden(bad, isolate=False))
    with h5py.File(bad, "r+") as f:
        values = f["cases/hdlif_T8/outputs/s"][()]
        values[k] = s[k] * (1 + 3 * DEFAULT_RTOL)  # outside the default
        f["cases/hdlif_T8/outputs/s"][...] = values
    results = {(r.case, r.field): r for r in check_golden(bad, isolate=False)}
    r = results[("hdlif_T8", "outputs/s")]
    assert r.status == "FAIL" and r.ratio == pytest.approx(3 * DEFAULT_RTOL * abs(s[k]) /
                                                          (DEFAULT_ATOL + DEFAULT_RTOL * abs(s[k])), rel=1e-3)
    with h5py.File(bad, "r+") as f:
        f["cases/hdlif_T8"].attrs["rtol"] = 1e-5  # the case's own tolerance wins
    assert all(r.status == "PASS" for r in check_golden(bad, isolate=False))


def test_nan_in_an_output_fails(golden, tmp_path):
    path, _ = golden
    bad = copy_of(path, tmp_path)
    with h5py.File(bad, "r+") as f:
        values = f["cases/lif_T4_hard_triangle/outputs/u"][()]
        values[0, 0, 0] = np.nan
        f["cases/lif_T4_hard_triangle/outputs/u"][...] = values
    failed = [(r.case, r.field) for r in check_golden(bad, isolate=False) if r.status == "FAIL"]
    assert failed == [("lif_T4_hard_triangle", "outputs/u")]


def test_absent_fields_are_skipped_and_unknown_ones_reported(golden, tmp_path):
    path, _ = golden
    partial = copy_of(path, tmp_path)
    with h5py.File(partial, "r+") as f:
        del f["cases/membn_T4/grads_online"]
        f["cases/membn_T4/outputs/extra"] = np.zeros(3)
    results = check_golden(partial, isolate=False)
    skipped = {r.field for r in results if r.status == "SKIP" and r.case == "membn_T4"}
    assert skipped == {f"grads_online/{n}" for n in MEMBN_NAMES} | {"outputs/extra"}
    assert all(r.status in ("PASS", "SKIP") for r in results)


# ----------------------------------------------------------------------------- damaged files
def _damage(path, tmp_path, edit):
    bad = copy_of(path, tmp_path)
    with h5py.File(bad, "r+") as f:
        edit(f)
    return bad


DAMAGE = [
    ("inputs/I removed", lambda f: f.__delitem__("cases/hdlif_T2/inputs/I"),
     "case 'hdlif_T2': dataset inputs/I is missing"),
    ("inputs/lam wrong shape", lambda f: (f["cases/hdlif_T2/inputs"].__delitem__("lam"),
                                          f.create_dataset("cases/hdlif_T2/inputs/lam", data=np.ones(3))),
     "inputs/lam has shape (3,)"),
    ("outputs/s wrong shape", lambda f: (f["cases/hdlif_T8/outputs"].__delitem__("s"),
                                         f.create_dataset("cases/hdlif_T8/outputs/s", data=np.ones((8, 3)))),
     "case 'hdlif_T8': outputs/s has shape (8, 3); expected (8, 3, 8)"),
    ("float32 dataset", lambda f: (f["cases/parallel_T4/outputs"].__delitem__("s"),
                                   f.create_dataset("cases/parallel_T4/outputs/s",
                                                    data=np.zeros((4, 2, 3, 4), np.float32))),
     "field outputs/s: dtype float32; the layout requires float64"),
    ("format attr", lambda f: f.attrs.__setitem__("format", "other"), "root attribute format='other'"),
    ("version attr", lambda f: f.attrs.__setitem__("version", 2), "root attribute version=2"),
    ("dtype attr missing", lambda f: f.attrs.__delitem__("dtype"), "root attribute 'dtype' is missing"),
    ("unknown kind", lambda f: f["cases/lif_T4_hard_triangle"].attrs.__setitem__("kind", "izh"),
     "attribute kind='izh'"),
    ("T attr wrong", lambda f: f["cases/hdlif_T1"].attrs.__setitem__("T", 3),
     "inputs/I has shape (1, 3, 8); expected a non-empty [T, N, ...] with T = 3"),
    ("non-finite input", lambda f: f["cases/hdlif_T1/inputs/I"].__setitem__((0, 0, 0), np.inf),
     "inputs/I holds non-finite values"),
    ("soft surrogate", lambda f: f["cases/lif_T4_hard_triangle"].attrs.__setitem__("surrogate", "sigmoid"),
     "surrogate='sigmoid'"),
    ("no cases", lambda f: f.__delitem__("cases"), "no group /cases"),
]


@pytest.mark.parametrize("what, edit, message", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_files_give_one_clear_error(golden, tmp_path, what, edit, message):
    bad = _damage(golden[0], tmp_path, edit)
    with pytest.raises(GoldenFileError) as info:
        check_golden(bad, isolate=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_file_without_any_output_is_an_error(golden, tmp_path):
    def strip(f):
        for case in f["cases"].values():
            for group in ("outputs", "grads_stbp", "grads_online"):
                del case[group]
    with pytest.raises(GoldenFileError, match="no output or gradient field"):
        check_golden(_damage(golden[0], tmp_path, strip), isolate=False)


@pytest.mark.parametrize("keep", [0, 7, 2000, -300])
def test_truncated_or_foreign_files_are_refused(golden, tmp_path, keep):
    data = golden[0].read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(GoldenFileError) as info:
        read_golden(bad, isolate=False)
    assert "golden file" in str(info.value)
    (tmp_path / "text.h5").write_text("not hdf5 at all " * 100)
    with pytest.raises(GoldenFileError, match="not an HDF5 file"):
        read_golden(tmp_path / "text.h5", isolate=False)
    with pytest.raises(GoldenFileError, match="no such file"):
        read_golden(tmp_path / "missing.h5")


def test_isolated_reading_matches_and_times_out(golden):
    path, cases = golden
    isolated = {c.name: c for c in read_golden(path, isolate=True)}
    assert set(isolated) == set(cases)
    assert np.array_equal(isolated["membn_T4"].fields["grads_stbp/bn_gamma"],
                          cases["membn_T4"].fields["grads_stbp/bn_gamma"])
    with pytest.raises(GoldenFileError, match="took more than"):
        read_golden(path, isolate=True, timeout=1e-3)


def test_compare_reports_worst_error_and_ratio():
    from hdlif_ref.oracle.golden import GoldenCase

    ours = {"outputs/s": np.array([1.0, 2.0, 0.0])}
    theirs = np.array([1.0, 2.0 + 4e-6, 2e-9])
    case = GoldenCase("c", "parallel", 1, {}, {"outputs/s": theirs})
    (r,) = compare(case, ours)
    assert r.status == "FAIL" and r.worst == pytest.approx(4e-6)
    # worst ratio: max(4e-6 / (1e-9 + 2e-6), 2e-9 / 1e-9) = 2
    assert r.ratio == pytest.approx(max(4e-6 / (DEFAULT_ATOL + DEFAULT_RTOL * 2), 2e-9 / DEFAULT_ATOL))
    assert math.isclose(r.ratio, 2.0, rel_tol=1e-3)
