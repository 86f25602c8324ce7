"""Per-step cross-entropy (SPEC E17: L = mean_t CE(o_t, y)), label smoothing, mixup.

References are computed here with ``scipy.special.log_softmax`` and a loop over
steps; gradients are checked with float64 finite differences (``gradcheck``).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import log_softmax

from hdlif_ref.autograd import Tensor, gradcheck
from hdlif_ref.training import mixup, mixup_cross_entropy, per_step_cross_entropy


def reference_loss(o, y, eps):
    """(1/T) sum_t (1/N) sum_n -sum_c q_nc log softmax(o_t[n])_c with q = (1 - eps) onehot + eps / C."""
    T, N, C = o.shape
    total = 0.0
    for t in range(T):
        logp = log_softmax(o[t], axis=1)
        for n in range(N):
            q = np.full(C, eps / C)
            q[y[n]] += 1 - eps
            total += -np.dot(q, logp[n]) / N
    return total / T


cases = st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**16),
                  st.sampled_from([0.0, 0.1, 1.0]))


@given(case=cases)
def test_per_step_cross_entropy_is_the_mean_over_steps(case):
    T, N, C, seed, eps = case
    rng = np.random.default_rng(seed)
    o = rng.normal(scale=3.0, size=(T, N, C))
    y = rng.integers(0, C, size=N)
    want = reference_loss(o, y, eps)
    stacked = per_step_cross_entropy(Tensor(o), y, label_smoothing=eps)
    listed = per_step_cross_entropy([Tensor(o[t]) for t in range(T)], y, label_smoothing=eps)
    assert stacked.shape == () and listed.shape == ()
    np.testing.assert_allclose([stacked.item(), listed.item()], want, rtol=1e-12)
    if T == 1:
        np.testing.assert_allclose(per_step_cross_entropy(Tensor(o[0]), y, eps).item(), want, rtol=1e-12)


@pytest.mark.parametrize("form", ["stacked", "list"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_per_step_cross_entropy_gradients(form, eps):
    rng = np.random.default_rng(5)
    T, N, C = 3, 4, 5
    y = rng.integers(0, C, size=N)
    if form == "stacked":
        o = Tensor(rng.normal(size=(T, N, C)), requires_grad=True)
        assert gradcheck(lambda o: per_step_cross_entropy(o, y, eps), [o])
    else:
        steps = [Tensor(rng.normal(size=(N, C)), requires_grad=True) for _ in range(T)]
        assert gradcheck(lambda *s: per_step_cross_entropy(list(s), y, eps), steps)


def test_float32_logits_give_a_float32_loss():
    o = Tensor(np.zeros((2, 3, 4), dtype=np.float32))
    loss = per_step_cross_entropy(o, np.array([0, 1, 3]))
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), np.log(4), rtol=1e-6)  # uniform logits: -log(1/C)


def test_per_step_cross_entropy_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        per_step_cross_entropy([], np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="shape"):
        per_step_cross_entropy(Tensor(np.zeros((2, 3, 4, 5))), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="labels"):
        per_step_cross_entropy(Tensor(np.zeros((2, 3, 4))), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="step 1"):
        per_step_cross_entropy([Tensor(np.zeros((3, 4))), np.zeros((3, 4))], np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="outside"):
        per_step_cross_entropy(Tensor(np.zeros((2, 3, 4))), np.array([0, 4, 1]))


# --------------------------------------------------------------------------- mixup
@given(seed=st.integers(0, 2**16), alpha=st.sampled_from([0.2, 1.0, 4.0]), n=st.integers(1, 6),
       batch_axis=st.sampled_from([0, 1]), dtype=st.sampled_from([np.float32, np.float64]))
def test_mixup_mixes_with_the_drawn_permutation(seed, alpha, n, batch_axis, dtype):
    shape = (n, 2, 3) if batch_axis == 0 else (3, n, 2)  # static [N, ...] or event frames [T, N, ...]
    x = np.random.default_rng(seed + 1).normal(size=shape).astype(dtype)
    y = np.arange(n) * 10
    x_mixed, (y_a, y_b), lam = mixup(x, y, alpha, np.random.default_rng(seed), batch_axis=batch_axis)
    # the same draws, in the documented order: lam ~ Beta(alpha, alpha), then the permutation
    rng = np.random.default_rng(seed)
    want_lam = rng.beta(alpha, alpha)
    perm = rng.permutation(n)
    assert lam == want_lam and 0.0 <= lam <= 1.0
    np.testing.assert_array_equal(y_a, y)
    np.testing.assert_array_equal(y_b, y[perm])
    assert x_mixed.dtype == dtype and x_mixed.shape == x.shape
    for i in range(n):
        xi = x[i] if batch_axis == 0 else x[:, i]
        xj = x[perm[i]] if batch_axis == 0 else x[:, perm[i]]
        got = x_mixed[i] if batch_axis == 0 else x_mixed[:, i]
        np.testing.assert_allclose(got, lam * xi.astype(np.float64) + (1 - lam) * xj, rtol=1e-6, atol=1e-6)


def test_mixup_cross_entropy_is_the_lambda_mixture_of_the_two_losses():
    rng = np.random.default_rng(0)
    T, N, C = 2, 5, 3
    o = rng.normal(size=(T, N, C))
    y_a, y_b = rng.integers(0, C, N), rng.integers(0, C, N)
    for lam in (0.0, 0.3, 1.0):
        got = mixup_cross_entropy(Tensor(o), (y_a, y_b), lam, label_smoothing=0.1).item()
        want = lam * reference_loss(o, y_a, 0.1) + (1 - lam) * reference_loss(o, y_b, 0.1)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    steps = [Tensor(o[t], requires_grad=True) for t in range(T)]
    assert gradcheck(lambda *s: mixup_cross_entropy(iter(s), (y_a, y_b), 0.3), steps)


def test_mixup_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    x, y = np.zeros((3, 2)), np.zeros(3, dtype=int)
    with pytest.raises(ValueError, match="alpha"):
        mixup(x, y, 0.0, rng)
    with pytest.raises(TypeError, match="Generator"):
        mixup(x, y, 1.0, 0)
    with pytest.raises(ValueError, match="y has shape"):
        mixup(x, np.zeros(2, dtype=int), 1.0, rng)
    with pytest.raises(TypeError, match="dtype"):
        mixup(np.zeros((3, 2), dtype=int), y, 1.0, rng)
    with pytest.raises(ValueError, match="batch_axis"):
        mixup(x, y, 1.0, rng, batch_axis=2)
    with pytest.raises(ValueError, match="lam"):
        mixup_cross_entropy(Tensor(np.zeros((3, 2))), (y, y), 1.5)
