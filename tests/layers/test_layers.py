"""Static layers: single-step and multi-step give the same numbers; BN statistics; errors."""
import numpy as np
import pytest

from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,
                              Linear, MaxPool2d, Sequential)


def rng(seed=0):
    return np.random.default_rng(seed)


def stepped(layer, x_seq):
    """Run a layer in step mode 's' on each slice of ``[T, N, ...]`` and stack."""
    layer.set_step_mode("s").reset_state()
    return np.stack([layer(Tensor(x_seq[t])).data for t in range(x_seq.shape[0])])


def sequence(layer, x_seq):
    layer.set_step_mode("m").reset_state()
    return layer(Tensor(x_seq)).data


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2d(3, 4, 3, stride=2, padding=1, rng=rng()), (3, 2, 3, 7, 6)),
    (lambda: Conv2d(4, 4, 3, padding=1, groups=4, weight_mode="ternary", rng=rng()), (2, 2, 4, 5, 5)),
    (lambda: Linear(5, 3, weight_mode="binary", rng=rng()), (4, 2, 5)),
])
def test_synapses_fold_time_into_the_batch(make, shape):
    """Multi-step synapses see ``T*N`` samples at once; GEMM blocking may then sum in another
    order than for ``N`` samples, so float32 results agree to rounding, not bit for bit."""
    x = rng(1).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(stepped(make(), x), sequence(make(), x), rtol=1e-6, atol=1e-6)
    x64 = x.astype(np.float64)
    a, b = make().to(np.float64), make().to(np.float64)
    np.testing.assert_allclose(stepped(a, x64), sequence(b, x64), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("make, shape", [
    (lambda: AvgPool2d(2), (3, 2, 3, 6, 6)),
    (lambda: MaxPool2d(3, 2, 1), (3, 2, 3, 7, 7)),
    (lambda: AdaptiveAvgPool2d(1), (3, 2, 3, 4, 5)),
    (lambda: BatchNorm2d(3), (4, 5, 3, 2, 2)),
    (lambda: BatchNorm2d(3, per_step=True, T=4), (4, 5, 3, 2, 2)),
    (lambda: BatchNorm1d(6), (3, 4, 6)),
    (lambda: Flatten(), (3, 2, 3, 4, 4)),
])
def test_stateless_and_norm_layers_agree_bit_for_bit_in_both_modes(make, shape):
    x = rng(1).standard_normal(shape).astype(np.float32)
    a, b = make(), make()
    np.testing.assert_array_equal(stepped(a, x), sequence(b, x))
    for (name, ra), (_, rb) in zip(a.named_buffers(), b.named_buffers()):
        np.testing.assert_array_equal(ra, rb, err_msg=name)


def test_batch_norm_training_normalizes_each_step_with_its_own_batch():
    x = rng().standard_normal((3, 8, 2, 4, 4))
    bn = BatchNorm2d(2, dtype=np.float64).set_step_mode("m")
    y = bn(Tensor(x)).data
    for t in range(3):  # SPEC E16 DC: each step with that step's batch statistics
        mean = x[t].mean(axis=(0, 2, 3), keepdims=True)
        var = x[t].var(axis=(0, 2, 3), keepdims=True)
        np.testing.assert_allclose(y[t], (x[t] - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)


def test_batch_norm_running_statistics_after_several_steps_by_hand():
    x = rng().standard_normal((3, 6, 2)) * 2 + 1
    bn = BatchNorm1d(2, momentum=0.25, dtype=np.float64).set_step_mode("m")
    bn(Tensor(x))
    mean, var = np.zeros(2), np.ones(2)
    for t in range(3):  # shared statistics: one update per step, unbiased variance
        mean = 0.75 * mean + 0.25 * x[t].mean(axis=0)
        var = 0.75 * var + 0.25 * x[t].var(axis=0, ddof=1)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-12)


def test_per_step_batch_norm_keeps_separate_statistics_and_uses_them_in_eval():
    x = rng().standard_normal((2, 6, 3))
    x[1] += 5.0
    bn = BatchNorm1d(3, momentum=1.0, per_step=True, T=2, dtype=np.float64).set_step_mode("m")
    bn(Tensor(x))
    np.testing.assert_allclose(bn.running_mean, x.mean(axis=1), rtol=1e-12)
    bn.eval().reset_state()
    y = bn(Tensor(x)).data
    np.testing.assert_allclose(y[1], (x[1] - x[1].mean(0)) / np.sqrt(x[1].var(0, ddof=1) + 1e-5), rtol=1e-10)
    bn.set_step_mode("s").reset_state()
    bn(Tensor(x[0])), bn(Tensor(x[1]))
    with pytest.raises(ValueError, match="time step 3 but per-step statistics hold T=2 steps"):
        bn(Tensor(x[0]))


def test_train_and_eval_switch_batch_norm():
    bn = BatchNorm1d(2, dtype=np.float64)
    x = Tensor(rng().standard_normal((5, 2)) + 3.0)
    assert abs(bn(x).data.mean()) < 1e-12  # training: batch statistics
    bn.eval()
    np.testing.assert_allclose(bn(x).data, (x.data - bn.running_mean) / np.sqrt(bn.running_var + 1e-5))


def test_layers_gradcheck_through_bn_and_pool():
    net = Sequential(Conv2d(2, 3, 3, padding=1, rng=rng(), dtype=np.float64), BatchNorm2d(3, dtype=np.float64),
                     AvgPool2d(2), Flatten(), Linear(12, 2, rng=rng(2), dtype=np.float64))
    x = Tensor(rng(3).standard_normal((2, 2, 4, 4)))
    params = list(net.parameters())
    assert gradcheck(lambda *ps: net(x), params)


@pytest.mark.parametrize("mode", ["binary", "ternary"])
def test_quantized_synapses_really_quantize_and_pass_gradients_straight_through(mode):
    """A binary/ternary conv and linear in a small stack: the weight the forward uses takes one value per
    output channel (times {-1, +1} or {-1, 0, +1}); gradients w.r.t. the input and every float parameter
    pass gradcheck; the quantized weights' gradient is the straight-through one (the gradient w.r.t. the
    quantized weight, times 1[|w| <= 1] for binary)."""
    conv = Conv2d(2, 3, 3, padding=1, weight_mode=mode, rng=rng(), dtype=np.float64)
    conv.weight.data[0, 0, 0, 0] = 1.5  # one |w| > 1: the binary mask drops its gradient
    lin = Linear(12, 2, weight_mode=mode, rng=rng(2), dtype=np.float64)
    net = Sequential(conv, BatchNorm2d(3, dtype=np.float64), AvgPool2d(2), Flatten(), lin)
    x = Tensor(rng(3).standard_normal((2, 2, 4, 4)), requires_grad=True)
    for layer in (conv, lin):
        used = ops.quantize_weight(layer.weight, mode).data
        per_channel = used.reshape(used.shape[0], -1)
        for row in per_channel:  # one magnitude per channel: a_c * code
            assert len(np.unique(np.abs(row[row != 0]))) == 1
        assert not np.array_equal(used, layer.weight.data)
        if mode == "ternary":
            assert (per_channel == 0).any()
    floats = [p for name, p in net.named_parameters() if not name.endswith(("0.weight", "4.weight"))]
    assert gradcheck(lambda x_, *ps: net(x_), [x] + floats)
    g = rng(4).standard_normal((2, 2))
    net.zero_grad()
    net(x).backward(g)
    # the same stack with float layers holding the quantized weights: its weight gradients, straight through
    twin_conv = Conv2d(2, 3, 3, padding=1, dtype=np.float64)
    twin_lin = Linear(12, 2, dtype=np.float64)
    twin = Sequential(twin_conv, BatchNorm2d(3, dtype=np.float64), AvgPool2d(2), Flatten(), twin_lin)
    twin.load_state_dict(net.state_dict())
    twin_conv.weight.data[...] = ops.quantize_weight(conv.weight, mode).data
    twin_lin.weight.data[...] = ops.quantize_weight(lin.weight, mode).data
    twin(Tensor(x.data)).backward(g)
    for layer, ref in ((conv, twin_conv), (lin, twin_lin)):
        mask = (np.abs(layer.weight.data) <= 1.0) if mode == "binary" else 1.0
        np.testing.assert_allclose(layer.weight.grad, ref.weight.grad * mask, rtol=1e-12, atol=1e-14)
    if mode == "binary":
        assert conv.weight.grad[0, 0, 0, 0] == 0.0 and twin_conv.weight.grad[0, 0, 0, 0] != 0.0


def test_dropout_keeps_one_mask_per_sequence_and_is_identity_in_eval():
    drop = Dropout(0.5, rng=rng())
    x = Tensor(np.ones((4, 10), dtype=np.float32))
    first, second = drop(x).data, drop(x).data
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) <= {0.0, 2.0} and 0 < np.count_nonzero(first) < 40
    drop.reset_state()
    assert not np.array_equal(drop(x).data, first)
    assert drop.eval()(x) is x
    with pytest.raises(ValueError, match=r"p=1.0 must be in \[0, 1\)"):
        Dropout(1.0)


def test_initialization_is_pytorch_uniform_and_seeded():
    a, b = Conv2d(4, 8, 3, rng=rng(7)), Conv2d(4, 8, 3, rng=rng(7))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = 1 / np.sqrt(4 * 9)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.weight.data).max() > 0.8 * bound
    assert a.weight.dtype == np.float32


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2d(3, 4, 3, groups=2), r"groups=2 must divide in_channels=3"),
    (lambda: Conv2d(3, 4, 0), r"kernel_size=0 must be an integer >= 1"),
    (lambda: Conv2d(3, 4, 3, weight_mode="int8"), r"weight_mode='int8'; allowed: fp32, binary, ternary"),
    (lambda: Linear(0, 4), r"in_features=0 must be an integer >= 1"),
    (lambda: BatchNorm2d(4, per_step=True), r"per_step=True needs the number of time steps T"),
    (lambda: BatchNorm2d(4, momentum=2.0), r"momentum=2.0 must be in \[0, 1\]"),
])
def test_bad_layer_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_input_shapes_name_the_layer_the_mode_and_the_layout():
    conv = Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d \(step_mode 's'\): expected a \[N, C, H, W\] input, got shape \(2, 2, 3, 5, 5\)"):
        conv(Tensor(np.zeros((2, 2, 3, 5, 5), np.float32)))
    conv.set_step_mode("m")
    with pytest.raises(ValueError, match=r"expected a \[T, N, C, H, W\] input"):
        conv(Tensor(np.zeros((2, 3, 5, 5), np.float32)))
    with pytest.raises(ValueError, match=r"Linear: input has 4 features .* in_features=5"):
        Linear(5, 2)(Tensor(np.zeros((3, 4), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm2d: input has 2 channels .* num_features=3"):
        BatchNorm2d(3)(Tensor(np.zeros((3, 2, 4, 4), np.float32)))
