"""The v2 layer cases of the golden file (SPEC section 7) against references written here from the spec.

The writer computes with the library's autograd ops; every case is recomputed
below without them: convolutions and pools by loops over output positions,
batch norm and SECA by their formulas in NumPy with gradients by central finite
differences, the quantizers scalar by scalar from E11-E13, and the Mem-BN fold by
E10's formulas and a loop of E9. The cases' boundary points (weights on delta,
quantizer ties) are asserted to be really there.
"""
import math

import numpy as np
import pytest

from hdlif_ref.oracle import write
from tests.neurons._loops import hdlif_loop, membn_loop


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "layers.h5"
    written = write(path, cases=("conv2d", "linear", "batchnorm", "avgpool", "maxpool", "weight_quant",
                                 "spike_quant", "seca1", "seca2", "membn_fold"))
    return {c.name: c for c in written}


def of_kind(cases, kind):
    found = [c for c in cases.values() if c.kind == kind]
    assert found, kind
    return found


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def numeric_grad(f, x, h=1e-6):
    """Central differences of the scalar ``f`` at every element of ``x``."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        a, b = x.copy(), x.copy()
        a[idx] += h
        b[idx] -= h
        g[idx] = (f(a) - f(b)) / (2 * h)
    return g


# ----------------------------------------------------------------------------- E11 / E12 by hand
def quantize_by_hand(w, mode):
    """``(values, codes, scale, mask)`` of E11/E12, one channel (dim 0) at a time, in Python floats."""
    values, codes = np.zeros_like(w), np.zeros(w.shape, np.int8)
    scale, mask = np.zeros(w.shape[0]), np.ones_like(w)
    for c in range(w.shape[0]):
        flat = [float(v) for v in w[c].reshape(-1)]
        mean_abs = sum(abs(v) for v in flat) / len(flat)
        if mode == "binary":
            code = [1 if v >= 0 else -1 for v in flat]  # sign(0) = +1
            a = mean_abs
            mask[c] = (np.abs(w[c]) <= 1.0)  # the E11 mask includes |w| = 1
        else:
            delta = 0.7 * mean_abs
            code = [(1 if v > 0 else -1) if abs(v) > delta else 0 for v in flat]  # strict '>'
            kept = [abs(v) for v in flat if abs(v) > delta]
            a = sum(kept) / len(kept) if kept else 0.0
        codes[c] = np.array(code, np.int8).reshape(w.shape[1:])
        values[c] = a * codes[c]
        scale[c] = a
    return values, codes, scale, mask


def test_weight_quant_cases_by_hand_with_their_boundary_points(cases):
    for case in of_kind(cases, "weight_quant"):
        x, f, mode = case.inputs, case.fields, case.attrs["mode"]
        values, codes, scale, mask = quantize_by_hand(x["w"], mode)
        close(f["outputs/y"], values)
        assert np.array_equal(f["outputs/codes"], codes) and f["outputs/codes"].dtype == np.int8
        close(f["outputs/scale"], scale)
        close(f["grads/w"], x["grad_y"] * (mask if mode == "binary" else 1.0))
        assert np.all(x["w"][0] == 0) and f["outputs/scale"][0] == 0  # an all-zero channel: a_c = 0
        assert np.all(codes[0] == (1 if mode == "binary" else 0))
        flat = np.abs(x["w"][1].reshape(-1))
        assert 0.7 * flat.mean() == 0.4375 and (flat == 0.4375).sum() == 2  # exactly on delta: code 0
        if mode == "ternary":
            assert np.all(codes[1].reshape(-1)[flat == 0.4375] == 0)
        else:
            assert (np.abs(x["w"]) == 1.0).any() and (np.abs(x["w"]) > 1.0).any()


def test_conv2d_and_linear_cases_by_loops(cases):
    seen = set()
    for case in of_kind(cases, "conv2d"):
        x, f, a = case.inputs, case.fields, case.attrs
        wq = quantize_by_hand(x["w"], a["weight"])[0] if a["weight"] != "float" else x["w"]
        mask = quantize_by_hand(x["w"], "binary")[3] if a["weight"] == "binary" else 1.0
        s = (a["stride"],) * 2 if np.ndim(a["stride"]) == 0 else tuple(a["stride"])
        p = (a["padding"],) * 2 if np.ndim(a["padding"]) == 0 else tuple(a["padding"])
        X = np.pad(x["x"], ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
        N, _, H, W = X.shape
        Co, _, kh, kw = wq.shape
        oh, ow = (H - kh) // s[0] + 1, (W - kw) // s[1] + 1
        y, dX, dw = np.zeros((N, Co, oh, ow)), np.zeros_like(X), np.zeros_like(wq)
        g = x["grad_y"]
        for i in range(oh):
            for j in range(ow):
                patch = X[:, :, i * s[0]:i * s[0] + kh, j * s[1]:j * s[1] + kw]  # cross-correlation
                y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, wq)
                dX[:, :, i * s[0]:i * s[0] + kh, j * s[1]:j * s[1] + kw] += np.einsum("no,ochw->nchw", g[:, :, i, j], wq)
                dw += np.einsum("no,nchw->ochw", g[:, :, i, j], patch)
        if "b" in x:
            y += x["b"][None, :, None, None]
            close(f["grads/b"], g.sum(axis=(0, 2, 3)))
        close(f["outputs/y"], y)
        close(f["grads/x"], dX[:, :, p[0]:H - p[0], p[1]:W - p[1]])
        close(f["grads/w"], dw * mask)  # straight through (E11 mask for binary)
        seen.add((s, p, kh, a["weight"]))
    assert {sp[0] for sp in seen} >= {(1, 1), (2, 2)} and {sp[2] for sp in seen} == {1, 3}
    assert {sp[3] for sp in seen} == {"float", "binary", "ternary"} and (1, 0) in {sp[1] for sp in seen}
    for case in of_kind(cases, "linear"):
        x, f, mode = case.inputs, case.fields, case.attrs["weight"]
        wq, _, _, mask = quantize_by_hand(x["w"], mode) if mode != "float" else (x["w"], 0, 0, 1.0)
        y = x["x"] @ wq.T + (x["b"] if "b" in x else 0.0)
        close(f["outputs/y"], y)
        close(f["grads/x"], x["grad_y"] @ wq)
        close(f["grads/w"], (x["grad_y"].T @ x["x"]) * (mask if mode == "binary" else 1.0))


def test_batchnorm_cases_by_formula_and_finite_differences(cases):
    modes = set()
    for case in of_kind(cases, "batchnorm"):
        x, f, a = case.inputs, case.fields, case.attrs
        X = x["x"]
        axes = (0,) + tuple(range(2, X.ndim))
        shape = (1, -1) + (1,) * (X.ndim - 2)
        train = a["mode"] in ("train", "training")
        modes.add(train)

        def forward(X=X, gamma=x["gamma"], beta=x["beta"], rm=x["running_mean"], rv=x["running_var"]):
            mean, var = (X.mean(axis=axes), X.var(axis=axes)) if train else (rm, rv)  # biased batch variance
            return gamma.reshape(shape) * (X - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + a["eps"]) \
                + beta.reshape(shape)

        close(f["outputs/y"], forward())
        if train:
            n = X.size // X.shape[1]
            close(f["outputs/running_mean_new"], (1 - a["momentum"]) * x["running_mean"] + a["momentum"] * X.mean(axis=axes))
            close(f["outputs/running_var_new"], (1 - a["momentum"]) * x["running_var"]
                  + a["momentum"] * X.var(axis=axes) * n / (n - 1))  # unbiased for the running value
        g = x["grad_y"]
        for name in ("x", "gamma", "beta", "running_mean", "running_var"):
            loss = lambda v, name=name: float(np.sum(g * forward(**{{"x": "X", "gamma": "gamma", "beta": "beta",  # noqa
                                                                     "running_mean": "rm", "running_var": "rv"}[name]: v})))
            close(f[f"grads/{name}"], numeric_grad(loss, x[name]), tol=1e-6)
    assert modes == {True, False}


def _pool_ref(X, k, s, p, kind):
    """Loops over windows: average with zero padding counted (count_include_pad), max with -inf padding and
    the gradient to the first maximum in row-major order (PyTorch)."""
    N, C, H, W = X.shape
    fill = -np.inf if kind == "maxpool" else 0.0
    P = np.pad(X, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    oh, ow = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    y, where = np.zeros((N, C, oh, ow)), {}
    for n, c, i, j in np.ndindex(N, C, oh, ow):
        win = P[n, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
        if kind == "maxpool":
            a, b = divmod(int(np.argmax(win)), k[1])  # argmax: the first maximum, row-major
            y[n, c, i, j] = win[a, b]
            where[n, c, i, j] = (i * s[0] + a - p[0], j * s[1] + b - p[1])
        else:
            y[n, c, i, j] = win.sum() / (k[0] * k[1])
    return y, where


def test_pool_cases_by_loops_with_ties(cases):
    ties = 0
    for case in of_kind(cases, "avgpool") + of_kind(cases, "maxpool"):
        x, f, a = case.inputs, case.fields, case.attrs
        pair = lambda v: (v, v) if np.ndim(v) == 0 else tuple(v)  # noqa: E731
        k, p = pair(a["kernel"]), pair(a.get("padding", 0))
        s = pair(a["stride"]) if "stride" in a else k
        y, where = _pool_ref(x["x"], k, s, p, case.kind)
        close(f["outputs/y"], y)
        dx, g = np.zeros_like(x["x"]), x["grad_y"]
        for n, c, i, j in np.ndindex(g.shape):
            if case.kind == "maxpool":
                dx[(n, c) + where[n, c, i, j]] += g[n, c, i, j]
            else:
                for a_ in range(k[0]):
                    for b_ in range(k[1]):
                        r, q = i * s[0] + a_ - p[0], j * s[1] + b_ - p[1]
                        if 0 <= r < dx.shape[2] and 0 <= q < dx.shape[3]:
                            dx[n, c, r, q] += g[n, c, i, j] / (k[0] * k[1])
        close(f["grads/x"], dx)
        if case.kind == "maxpool":
            P = np.pad(x["x"], ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
            for n, c, i, j in np.ndindex(y.shape):
                win = P[n, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
                ties += int((win == win.max()).sum() > 1)
    assert ties >= 10  # the tie rule decides real gradients


def test_spike_quant_cases_scalar_by_scalar(cases):
    for case in of_kind(cases, "spike_quant"):
        x, f, bits = case.inputs, case.fields, int(case.attrs["bits"])
        s, qmax = float(x["s"]), 2 ** bits - 1
        values = x["x"].reshape(-1).tolist()
        g = x["grad_y"].reshape(-1).tolist()
        y, levels, dx, ds = [], [], [], 0.0
        for v, gv in zip(values, g):
            r = round(v / s)  # Python's round: half to even, as numpy.round
            level = min(max(r, 0), qmax)
            y.append(s * level)
            levels.append(level)
            inside = 0.0 <= v <= s * qmax  # closed interval (SPEC 7 fixed readings)
            dx.append(gv if inside else 0.0)
            ds += gv * ((r - v / s) if inside else (qmax if v > s * qmax else 0.0))
        close(f["outputs/y"].reshape(-1), y)
        assert np.array_equal(f["outputs/levels"].reshape(-1), levels)
        close(f["grads/x"].reshape(-1), dx)
        close(f["grads/s"], ds, tol=1e-10)
        ratios = np.array(values) / s
        assert all(np.any(ratios == k + 0.5) for k in range(-1, qmax + 1))  # every rounding boundary
        assert np.any(ratios == qmax) and np.any(ratios == 0) and np.any(ratios < 0) and np.any(ratios > qmax)


def _seca_forward(I, k, I_pre=None, k_pre=None):
    def conv1d(z, w):
        K, C = w.size, z.shape[1]
        pad = np.pad(z, ((0, 0), (K // 2, K // 2)))
        return np.stack([sum(w[j] * pad[:, c + j] for j in range(K)) for c in range(C)], axis=1)  # not flipped

    gap = lambda v: v.mean(axis=tuple(range(2, v.ndim))) if v.ndim > 2 else v  # noqa: E731
    logits = conv1d(gap(I), k)
    if I_pre is not None:
        z, C = gap(I_pre), I.shape[1]
        if z.shape[1] > C:
            z = z.reshape(z.shape[0], C, -1).mean(axis=2)  # average consecutive groups
        elif z.shape[1] < C:
            z = np.repeat(z, C // z.shape[1], axis=1)  # repeat each channel in place (aabb)
        logits = logits + conv1d(z, k_pre)
    a = 1.0 / (1.0 + np.exp(-logits))
    return I * a.reshape(a.shape + (1,) * (I.ndim - 2))


def test_seca_cases_by_formula_and_finite_differences(cases):
    ratios = set()
    for case in of_kind(cases, "seca1") + of_kind(cases, "seca2"):
        x, f = case.inputs, case.fields
        names = ("I", "k") if case.kind == "seca1" else ("I_post", "k", "I_pre", "k_pre")
        forward = lambda **v: _seca_forward(*(v.get(n, x[n]) for n in names))  # noqa: E731
        close(f["outputs/y"], forward())
        for name in names:
            loss = lambda v, name=name: float(np.sum(x["grad_y"] * forward(**{name: v})))  # noqa: E731
            close(f[f"grads/{name}"], numeric_grad(loss, x[name]), tol=1e-6)
        if case.kind == "seca2":
            ratios.add(x["I_pre"].shape[1] > x["I_post"].shape[1])
    assert ratios == {True, False}  # both channel ratios of E15's R


def test_membn_fold_cases_by_e10_and_a_loop(cases):
    for case in of_kind(cases, "membn_fold"):
        x, f, eps = case.inputs, case.fields, float(case.attrs["bn_eps"])
        T, C = x["I"].shape[0], x["I"].shape[2]
        tc = lambda v: np.broadcast_to(v if v.ndim == 2 else v[:, None], (T, C))  # noqa: E731
        theta = x.get("theta", np.ones(T))
        k = tc(x["bn_gamma"]) / np.sqrt(x["running_var"] + eps)
        c = tc(x["bn_beta"]) - k * x["running_mean"]
        alpha_star = tc(x["alpha"]) + tc(x["beta"]) * k
        beta_star = -tc(x["beta"]) * c
        close(f["outputs/alpha_star"], alpha_star)
        close(f["outputs/beta_star"], beta_star)
        close(f["outputs/lamhat"], alpha_star * tc(x["lam"]))
        _, _, s, _, _, _ = membn_loop(x["I"], tc(x["lam"]), tc(theta), tc(x["alpha"]), tc(x["beta"]),
                                      tc(x["bn_gamma"]), tc(x["bn_beta"]), x["running_mean"], x["running_var"], eps)
        close(f["outputs/s_unfolded"], s, tol=1e-9)
        shape = (T, 1, C) + (1,) * (x["I"].ndim - 3)
        Ihat = alpha_star.reshape(shape) * x["I"] - beta_star.reshape(shape)
        _, s_folded, _ = hdlif_loop(Ihat, alpha_star * tc(x["lam"]), tc(theta).copy())
        close(f["outputs/s_folded"], s_folded, tol=1e-9)
        close(f["outputs/s_folded"], f["outputs/s_unfolded"], tol=1e-9)
        assert (s > 0).mean() > 0.1 and not any(p.startswith("grads") for p in f)  # it fires; no grads
