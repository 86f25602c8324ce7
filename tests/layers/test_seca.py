"""SECA_I (SPEC E14) and SECA_II (SPEC E15): forward against a plain formula, gradcheck, channel map R."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor, gradcheck
from hdlif_ref.layers import SECA1, SECA2, CurrentTap, eca_kernel_size


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def conv_across_channels(z, w):
    """out[n, c] = sum_k w[k] z[n, c + k - K//2], zero outside (a plain loop)."""
    n, c = z.shape
    K = w.size
    out = np.zeros_like(z)
    for i in range(n):
        for j in range(c):
            for k in range(K):
                src = j + k - K // 2
                if 0 <= src < c:
                    out[i, j] += w[k] * z[i, src]
    return out


def r_map(z, c_post):
    """SPEC E15's R by loops: average groups of C_pre/C_post channels, or repeat each channel."""
    n, c_pre = z.shape
    out = np.zeros((n, c_post))
    for j in range(c_post):
        if c_pre >= c_post:
            g = c_pre // c_post
            out[:, j] = z[:, j * g:(j + 1) * g].mean(axis=1)
        else:
            out[:, j] = z[:, j // (c_post // c_pre)]
    return out


def gap(x):
    return x.mean(axis=(2, 3)) if x.ndim == 4 else x


@given(st.integers(1, 3), st.sampled_from([1, 3, 5, 8]), st.sampled_from([None, 1, 3]),
       st.booleans(), st.integers(0, 2**31))
def test_e14_seca1_forward_matches_the_formula(n, c, k, spatial, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c, 3, 2) if spatial else (n, c)
    x = rng.standard_normal(shape)
    layer = SECA1(c, kernel_size=k, rng=rng, dtype=np.float64)
    a = sigmoid(conv_across_channels(gap(x), layer.weight.data))
    expected = x * (a[:, :, None, None] if spatial else a)
    np.testing.assert_allclose(layer(Tensor(x)).data, expected, rtol=1e-12)


@pytest.mark.parametrize("c_pre, c_post", [(4, 4), (8, 2), (2, 6), (6, 3)])
def test_e15_seca2_forward_matches_the_formula(c_pre, c_post):
    rng = np.random.default_rng(c_pre * 10 + c_post)
    pre, post = rng.standard_normal((2, c_pre, 4, 4)), rng.standard_normal((2, c_post, 2, 2))
    tap = CurrentTap()
    layer = SECA2(c_pre, c_post, kernel_size=3, kernel_size_pre=3, rng=rng, dtype=np.float64).attach(tap)
    tap(Tensor(pre))
    logits = conv_across_channels(gap(post), layer.weight.data) + conv_across_channels(
        r_map(gap(pre), c_post), layer.weight_pre.data)
    expected = post * sigmoid(logits)[:, :, None, None]
    np.testing.assert_allclose(layer(Tensor(post)).data, expected, rtol=1e-12)


def test_seca_backward_gradcheck():
    rng = np.random.default_rng(0)
    layer1 = SECA1(5, kernel_size=3, rng=rng, dtype=np.float64)
    x = Tensor(rng.standard_normal((2, 5, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: layer1(x), [x, layer1.weight])
    tap = CurrentTap()
    layer2 = SECA2(6, 3, kernel_size=3, kernel_size_pre=1, rng=rng, dtype=np.float64).attach(tap)
    pre = Tensor(rng.standard_normal((2, 6, 2, 2)), requires_grad=True)
    post = Tensor(rng.standard_normal((2, 3, 2, 2)), requires_grad=True)

    def both(pre, post, w, w_pre):
        tap(pre)
        return layer2(post)
    assert gradcheck(both, [pre, post, layer2.weight, layer2.weight_pre])


def test_weights_are_shared_over_time_steps_in_multi_step_mode():
    rng = np.random.default_rng(1)
    layer = SECA1(4, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 2, 4, 2, 2))
    stepped = np.stack([layer(Tensor(x[t])).data for t in range(3)])
    np.testing.assert_allclose(layer.set_step_mode("m")(Tensor(x)).data, stepped, rtol=1e-14)
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_eca_kernel_size_follows_eca_nets_code():
    # t = int(|log2(C)/2 + 1/2|), even t -> t + 1 (ECA-Net reference code)
    expected = {1: 1, 2: 1, 8: 3, 16: 3, 32: 3, 64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    assert {c: eca_kernel_size(c) for c in expected} == expected


def test_seca_errors():
    with pytest.raises(ValueError, match=r"cannot map C_pre=4 channels to C_post=6"):
        SECA2(4, 6)
    with pytest.raises(ValueError, match=r"kernel_size=2 must be a positive odd integer"):
        SECA1(8, kernel_size=2)
    with pytest.raises(ValueError, match="no input current of the previous neuron layer"):
        SECA2(4, 4)(Tensor(np.zeros((1, 4))))
    with pytest.raises(ValueError, match="SECA1: input has 3 channels, the layer expects 4"):
        SECA1(4)(Tensor(np.zeros((1, 3))))
