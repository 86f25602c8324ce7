"""The NumPy twins' gradients on their own, against central finite differences (not against Numba).

``tests/kernels/test_backend.py`` shows that both backends agree; that cannot catch a bug
copied into both, nor one in the twin alone that an agreement test skips. Here every
differentiable kernel runs on the NumPy backend and its backward is compared with
``gradcheck`` (float64 central differences) on inputs kept clear of kinks; the LIF
surrogate, which is not a derivative, is compared with a reverse-mode loop of SPEC E7.
"""
import numpy as np
import pytest

import hdlif_ref
from hdlif_ref import neurons
from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.oracle._verify_neurons import _clear_inputs, lif_loops


@pytest.fixture(autouse=True)
def numpy_backend():
    with hdlif_ref.backend("numpy"):
        yield


def leaf(x):
    return Tensor(np.array(x, dtype=np.float64), requires_grad=True)


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("per_channel", [False, True])
def test_hdlif_stbp_twin_by_finite_differences(per_channel):
    I, lam, theta = _clear_inputs(rng(1), T=4, elements=24)
    if per_channel:
        I = I.reshape(4, 6, 4)
        lam, theta = np.repeat(lam[:, None], 4, 1), np.repeat(theta[:, None], 4, 1)
    assert gradcheck(lambda a, b, c: neurons.hdlif_seq(a, b, c, gradient="stbp"), [leaf(I), leaf(lam), leaf(theta)])


def test_parallel_and_membn_twins_by_finite_differences():
    r = rng(2)
    I, theta = r.normal(0.5, 1.0, (3, 4, 5)), r.uniform(0.5, 1.0, 3)
    I = np.where(np.abs(I - theta[:, None, None]) < 1e-2, I + 0.05, I)
    assert gradcheck(neurons.parallel_hdlif_seq, [leaf(I), leaf(theta)])
    while True:
        x = [r.normal(0.5, 1.0, (3, 6, 2, 2)), r.uniform(0.3, 0.8, 3), r.uniform(0.5, 1.0, 3), r.uniform(0.8, 1.2, 3),
             r.uniform(0.2, 0.5, 3), r.uniform(0.7, 1.3, (3, 2)), r.normal(0, 0.2, (3, 2))]
        rec = neurons.membn_hdlif_record(*x, training=True)
        if np.abs(rec.mhat - x[2][:, None, None, None]).min() > 1e-3:
            break
    assert gradcheck(lambda *a: neurons.membn_hdlif_seq(*a, training=True, gradient="stbp"), [leaf(v) for v in x])


@pytest.mark.parametrize("reset, gamma", [("hard", 1.0), ("soft", 0.5), ("hard", 2.0)])
def test_lif_twin_backward_by_a_reverse_loop(reset, gamma):
    r = rng(3)
    I, lam, theta = r.normal(0.7, 1.0, (4, 3, 5)), r.uniform(0.3, 0.8, 4), r.uniform(0.5, 1.2, 4)
    g = r.normal(size=I.shape)
    for online in (False, True):
        leaves = [leaf(I), leaf(lam), leaf(theta)]
        neurons.lif_seq(*leaves, reset=reset, gamma=gamma, gradient="online" if online else "stbp").backward(g)
        _, _, dI, dlam, dtheta = lif_loops(I, lam, theta, g, reset, gamma, online)
        for got, want in zip(leaves, (dI, dlam, dtheta)):
            np.testing.assert_allclose(got.grad, want, rtol=1e-12, atol=1e-13)


def test_layer_twins_by_finite_differences():
    r = rng(4)
    x, w, b = r.normal(size=(2, 3, 6, 5)), r.normal(size=(4, 3, 3, 3)), r.normal(size=4)
    assert gradcheck(lambda a, c, d: ops.conv2d(a, c, d, stride=(2, 1), padding=(1, 0)), [leaf(x), leaf(w), leaf(b)])
    assert gradcheck(lambda a, c, d: ops.linear(a, c, d), [leaf(r.normal(size=(3, 5))), leaf(r.normal(size=(4, 5))),
                                                        leaf(r.normal(size=4))])
    rm, rv = np.zeros(3), np.ones(3)
    assert gradcheck(lambda a, c, d: ops.batch_norm(a, c, d, rm.copy(), rv.copy(), training=True),
                     [leaf(x[:, :3]), leaf(r.uniform(0.5, 1.5, 3)), leaf(r.normal(size=3))])
    assert gradcheck(lambda a: ops.avg_pool2d(a, 3, 2, 1), [leaf(x)])
    distinct = r.permutation(x.size).reshape(x.shape) / 7.0  # no ties: max pooling is differentiable
    assert gradcheck(lambda a: ops.max_pool2d(a, 3, 2, 1), [leaf(distinct)])
    assert gradcheck(lambda a, k: ops.conv1d_channels(a, k), [leaf(r.normal(size=(2, 6))), leaf(r.normal(size=3))])
