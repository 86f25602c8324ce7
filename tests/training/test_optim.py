"""Optimizers against their textbook update equations on a quadratic, state round trips, groups, clipping.

Each reference below is written from the paper / PyTorch documentation form of the
update, independently of ``hdlif_ref/training/optim.py``:

* SGD with momentum (PyTorch docs, Sutskever et al. 2013 for Nesterov):
  ``d = g + wd w; b_1 = d, b_k = mu b_{k-1} + (1 - tau) d; d = d + mu b (Nesterov) or b; w -= lr d``.
* Adam (Kingma and Ba 2015, Algorithm 1) with L2: ``g += wd w``;
  ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; mhat = m / (1 - b1^k); vhat = v / (1 - b2^k)``;
  ``w -= lr mhat / (sqrt(vhat) + eps)``.
* AdamW (Loshchilov and Hutter 2019, Algorithm 2 with schedule multiplier 1, as PyTorch):
  ``w -= lr wd w`` then the Adam step on the raw gradient.

The loss is the quadratic ``f(w) = 1/2 (w - c)^T A (w - c)`` with ``A`` symmetric
positive definite, gradient ``A (w - c)``, so each step's gradient depends on the
previous steps and an error anywhere compounds.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor
from hdlif_ref.layers import Module, Parameter
from hdlif_ref.training import SGD, Adam, AdamW, clip_grad_norm, no_weight_decay, param_groups

STEPS = 7


def quadratic(n, seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, n))
    A = q @ q.T / n + 0.5 * np.eye(n)
    c = rng.normal(size=n)
    w0 = rng.normal(size=n)
    return A, c, w0


def run(optimizer_cls, w0, A, c, steps=STEPS, dtype=np.float64, **options):
    """Minimize the quadratic with the optimizer under test; return the iterates."""
    p = Parameter(np.array(w0, dtype=dtype))
    data = p.data
    opt = optimizer_cls([p], **options)
    iterates = []
    for _ in range(steps):
        opt.zero_grad()
        p.grad = (A @ (p.data.astype(np.float64) - c)).astype(dtype)
        opt.step()
        iterates.append(p.data.copy())
    assert p.data is data, "the update must write param.data in place"
    return np.array(iterates)


def sgd_reference(w0, A, c, lr, momentum, dampening, nesterov, weight_decay, steps=STEPS):
    w, b, out = np.array(w0, dtype=np.float64), None, []
    for k in range(1, steps + 1):
        g = A @ (w - c)
        d = g + weight_decay * w
        if momentum != 0:
            b = d.copy() if k == 1 else momentum * b + (1 - dampening) * d
            d = d + momentum * b if nesterov else b
        w = w - lr * d
        out.append(w)
    return np.array(out)


def adam_reference(w0, A, c, lr, beta1, beta2, eps, weight_decay, decoupled, steps=STEPS):
    w = np.array(w0, dtype=np.float64)
    m, v, out = np.zeros_like(w), np.zeros_like(w), []
    for k in range(1, steps + 1):
        g = A @ (w - c)
        if decoupled:
            w = w - lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        mhat = m / (1 - beta1 ** k)
        vhat = v / (1 - beta2 ** k)
        w = w - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(w)
    return np.array(out)


sgd_options = st.fixed_dictionaries({
    "lr": st.floats(1e-3, 0.4),
    "momentum": st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99),
    "dampening": st.sampled_from([0.0, 0.0, 0.3]),
    "nesterov": st.booleans(),
    "weight_decay": st.sampled_from([0.0, 1e-2, 0.1]),
})


@given(options=sgd_options, seed=st.integers(0, 2**16), n=st.integers(1, 5))
def test_sgd_follows_its_update_equations(options, seed, n):
    if options["nesterov"] and (options["momentum"] == 0 or options["dampening"] != 0):
        options = {**options, "nesterov": False}
    A, c, w0 = quadratic(n, seed)
    got = run(SGD, w0, A, c, **options)
    np.testing.assert_allclose(got, sgd_reference(w0, A, c, **options), rtol=1e-10, atol=1e-12)


adam_options = st.fixed_dictionaries({
    "lr": st.floats(1e-3, 0.2),
    "betas": st.tuples(st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.9, 0.99, 0.999])),
    "eps": st.sampled_from([1e-8, 1e-3]),
    "weight_decay": st.sampled_from([0.0, 1e-2, 0.3]),
})


@pytest.mark.parametrize("cls, decoupled", [(Adam, False), (AdamW, True)])
@given(options=adam_options, seed=st.integers(0, 2**16), n=st.integers(1, 5))
def test_adam_and_adamw_follow_their_update_equations(cls, decoupled, options, seed, n):
    A, c, w0 = quadratic(n, seed)
    got = run(cls, w0, A, c, **options)
    beta1, beta2 = options["betas"]
    want = adam_reference(w0, A, c, options["lr"], beta1, beta2, options["eps"], options["weight_decay"],
                          decoupled)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls, ref, options", [
    (SGD, "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, "adam", dict(lr=0.05, weight_decay=0.01)),
    (AdamW, "adamw", dict(lr=0.05, weight_decay=0.1)),
])
def test_float32_parameters_stay_float32_and_follow_the_float64_reference(cls, ref, options):
    A, c, w0 = quadratic(4, 3)
    got = run(cls, w0, A, c, dtype=np.float32, **options)
    assert got.dtype == np.float32
    if ref == "sgd":
        want = sgd_reference(w0, A, c, options["lr"], options["momentum"], 0.0, True, options["weight_decay"])
    else:
        want = adam_reference(w0, A, c, options["lr"], 0.9, 0.999, 1e-8, options["weight_decay"], ref == "adamw")
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_adamw_decay_is_decoupled_from_the_adaptive_scaling():
    # zero gradient: AdamW's moments stay 0, so it only shrinks, w_k = (1 - lr wd)^k w_0 exactly;
    # Adam's L2 term g = wd w goes through the moments: its first step is lr wd w / (wd |w| + eps),
    # about lr * sign(w) whatever the size of w
    lr, wd, eps = 0.01, 0.5, 1e-8
    w0 = np.array([3.0, -0.02, 1e-4])
    p = Parameter(w0.copy())
    opt = AdamW([p], lr=lr, weight_decay=wd, eps=eps)
    for _ in range(5):
        p.grad = np.zeros(3)
        opt.step()
    np.testing.assert_allclose(p.data, w0 * (1 - lr * wd) ** 5, rtol=1e-14)
    q = Parameter(w0.copy())
    opt = Adam([q], lr=lr, weight_decay=wd, eps=eps)
    q.grad = np.zeros(3)
    opt.step()
    np.testing.assert_allclose(q.data, w0 - lr * wd * w0 / (wd * np.abs(w0) + eps), rtol=1e-12)


def test_parameters_without_gradient_are_skipped_and_get_no_state():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    for opt in (SGD([a, b], lr=0.1, momentum=0.9, weight_decay=0.1), Adam([a, b], lr=0.1, weight_decay=0.1)):
        a.data[:], b.data[:] = 1.0, 1.0
        a.grad, b.grad = np.full(3, 2.0), None
        opt.step()
        assert np.all(a.data != 1.0) and np.all(b.data == 1.0)
        assert set(opt.state) == {0}


def test_zero_grad_sets_grad_to_none():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones(2)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_parameter_groups_use_their_own_options():
    A, c, w0 = quadratic(3, 7)
    pa, pb = Parameter(w0.copy()), Parameter(w0.copy())
    opt = SGD([{"params": [pa]}, {"params": [pb], "lr": 0.02, "momentum": 0.5, "weight_decay": 0.1}],
              lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["weight_decay"] == 0.0 and opt.param_groups[1]["dampening"] == 0.0
    for _ in range(STEPS):
        for p in (pa, pb):
            p.grad = A @ (p.data - c)
        opt.step()
    np.testing.assert_allclose(pa.data, sgd_reference(w0, A, c, 0.1, 0.9, 0.0, False, 0.0)[-1], rtol=1e-12)
    np.testing.assert_allclose(pb.data, sgd_reference(w0, A, c, 0.02, 0.5, 0.0, False, 0.1)[-1], rtol=1e-12)


@pytest.mark.parametrize("cls, options", [
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (Adam, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=1e-3)),
    (AdamW, dict(lr=0.05)),
])
def test_state_dict_round_trip_continues_identically(cls, options):
    A, c, w0 = quadratic(5, 11)

    def steps(opt, p, n):
        for _ in range(n):
            opt.zero_grad()
            p.grad = A @ (p.data - c)
            opt.step()

    p = Parameter(w0.copy())
    opt = cls([{"params": [p]}, {"params": [Parameter(np.zeros(2))], "lr": 0.5}], **options)
    steps(opt, p, 3)
    saved = opt.state_dict()
    frozen = {i: {k: np.copy(v) for k, v in s.items()} for i, s in saved["state"].items()}
    p_copy = Parameter(p.data.copy())
    steps(opt, p, 4)
    for i, s in frozen.items():  # the state dict is a copy, later steps did not touch it
        for k, v in s.items():
            np.testing.assert_array_equal(saved["state"][i][k], v)

    resumed = cls([{"params": [p_copy]}, {"params": [Parameter(np.zeros(2))]}], lr=123.0)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[1]["lr"] == 0.5 and resumed.param_groups[0]["lr"] == options["lr"]
    steps(resumed, p_copy, 4)
    np.testing.assert_array_equal(p_copy.data, p.data)


def test_load_state_dict_refuses_a_mismatched_state():
    p, q = Parameter(np.ones(3)), Parameter(np.ones((2, 2)))
    opt = Adam([p, q], lr=0.1)
    p.grad, q.grad = np.ones(3), np.ones((2, 2))
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="parameter group"):
        Adam([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="holds 2 parameters"):
        Adam([p], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        Adam([Parameter(np.ones(3)), Parameter(np.ones(4))], lr=0.1).load_state_dict(state)
    bad = opt.state_dict()
    bad["param_groups"][0]["betas"] = (0.9, 1.5)
    other = Adam([Parameter(np.ones(3)), Parameter(np.ones((2, 2)))], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        other.load_state_dict(bad)
    assert other.state == {} and other.param_groups[0]["betas"] == (0.9, 0.999)  # nothing half-loaded


@pytest.mark.parametrize("make, match", [
    (lambda p: SGD([p], lr=-0.1), "lr"),
    (lambda p: SGD([p], lr=0.1, nesterov=True), "nesterov"),
    (lambda p: SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: SGD([p], lr=0.1, momentum=-1), "momentum"),
    (lambda p: Adam([p], betas=(0.9, 1.0)), "betas"),
    (lambda p: Adam([p], eps=-1.0), "eps"),
    (lambda p: AdamW([p], weight_decay=float("nan")), "weight_decay"),
    (lambda p: SGD([], lr=0.1), "empty"),
    (lambda p: SGD([p, p], lr=0.1), "more than once"),
    (lambda p: SGD([{"params": [p], "betas": (0.9, 0.99)}], lr=0.1), "unknown"),
])
def test_bad_options_are_rejected_with_the_option_named(make, match):
    with pytest.raises(ValueError, match=match):
        make(Parameter(np.ones(2)))


def test_non_tensor_parameters_are_a_type_error():
    with pytest.raises(TypeError, match="Tensors"):
        SGD([np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(Parameter(np.ones(3)), lr=0.1)


# --------------------------------------------------------------------------- parameter groups
class HDLIF(Module):
    """Stand-in with the neuron class's name: lam/theta per channel are 2-D ([T, C])."""

    def __init__(self):
        super().__init__()
        self.lam = Parameter(np.full((4, 3), 0.5))
        self.theta = Parameter(np.ones((4, 3)))


class MemBNHDLIF(HDLIF):
    def __init__(self):
        super().__init__()
        self.alpha = Parameter(np.ones((4, 3)))
        self.beta = Parameter(np.zeros((4, 3)))


class SubclassedNeuron(MemBNHDLIF):
    """A subclass of a neuron is a neuron (the rule looks at base classes too)."""

    def __init__(self):
        super().__init__()
        self.extra_gain = Parameter(np.ones((4, 3)))


class BatchNorm2dLike(Module):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.ones((3, 1)))  # 2-D on purpose: excluded by the class name, not ndim
        self.bias = Parameter(np.zeros((3, 1)))


class Conv(Module):
    def __init__(self, bias=True):
        super().__init__()
        self.weight = Parameter(np.ones((3, 2, 3, 3)))
        self.bias = Parameter(np.zeros(3)) if bias else None
        self.scale = Parameter(np.ones(3))  # per-channel weight scale: 1-D, no decay


class Net(Module):
    def __init__(self):
        super().__init__()
        self.conv = Conv()
        self.bn = BatchNorm2dLike()
        self.neuron = MemBNHDLIF()
        self.neuron2 = SubclassedNeuron()
        self.fc = Conv(bias=False)
        self.fc.shared = self.conv.weight  # shared: counted once, under its first owner


def test_param_groups_put_no_decay_on_neuron_bn_and_bias_parameters():
    net = Net()
    groups = param_groups(net, 5e-4)
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert groups[0]["param_names"] == ["conv.weight", "fc.weight"]
    assert sorted(groups[1]["param_names"]) == sorted([
        "conv.bias", "conv.scale", "bn.weight", "bn.bias", "neuron.lam", "neuron.theta", "neuron.alpha",
        "neuron.beta", "neuron2.lam", "neuron2.theta", "neuron2.alpha", "neuron2.beta", "neuron2.extra_gain",
        "fc.scale"])
    every = [id(p) for g in groups for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in net.parameters())
    for g in groups:
        assert [id(p) for p in g["params"]] == [id(dict(net.named_parameters())[n]) for n in g["param_names"]]
    opt = AdamW(groups, lr=0.1)  # the groups feed an optimizer directly
    assert [len(g["params"]) for g in opt.param_groups] == [2, 14]


def test_param_groups_accept_another_rule_and_check_weight_decay():
    groups = param_groups(Net(), 0.1, no_decay=lambda module, name, p: False)
    assert len(groups[1]["params"]) == 0 and len(groups[0]["params"]) == 16
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(Net(), -1.0)


def test_no_weight_decay_rule_on_the_real_neuron_modules():
    neurons = pytest.importorskip("hdlif_ref.neurons")
    layers = [neurons.HDLIF(4, channels=3, per_channel=True, spike_bits=2),
              neurons.LIF(4), neurons.ParallelHDLIF(4, channels=3, per_channel=True),
              neurons.MemBNHDLIF(4, channels=3, per_channel=True)]
    for layer in layers:
        for module in layer.modules():  # the neuron and any child (spike quantizer)
            for name, p in module._parameters.items():
                assert no_weight_decay(module, name, p), (type(module).__name__, name, p.shape)
    assert any(p.ndim == 2 for p in layers[0].parameters())  # per-channel [T, C]: the class rule decides


def test_no_weight_decay_rule_on_real_batch_norm():
    norm = pytest.importorskip("hdlif_ref.layers.norm")
    bn = norm.BatchNorm2d(4)
    assert all(no_weight_decay(bn, n, p) for n, p in bn._parameters.items())


# --------------------------------------------------------------------------- clipping
@given(seed=st.integers(0, 2**16), max_norm=st.floats(0.01, 10.0), norm_type=st.sampled_from([2.0, 1.0, math.inf]))
def test_clip_grad_norm_returns_the_joint_norm_and_scales_to_max_norm(seed, max_norm, norm_type):
    rng = np.random.default_rng(seed)
    params = [Parameter(np.zeros(s, dtype=np.float32)) for s in [(3, 4), (5,), ()]] + [Parameter(np.zeros(2))]
    for p in params[:3]:
        p.grad = rng.normal(size=p.shape).astype(np.float32)
    before = [p.grad.copy() for p in params[:3]]
    flat = np.concatenate([g.astype(np.float64).ravel() for g in before])
    want = np.linalg.norm(flat, ord=norm_type)
    total = clip_grad_norm(params, max_norm, norm_type=norm_type)
    assert math.isclose(total, want, rel_tol=1e-12)
    assert params[3].grad is None
    coef = max_norm / (want + 1e-6) if want > max_norm else 1.0
    for p, g in zip(params[:3], before):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, g * coef, rtol=1e-6)
    after = np.linalg.norm(np.concatenate([p.grad.astype(np.float64).ravel() for p in params[:3]]), ord=norm_type)
    assert after <= max_norm * (1 + 1e-5)


def test_clip_grad_norm_leaves_non_finite_gradients_alone():
    p = Parameter(np.zeros(3))
    p.grad = np.array([1.0, np.inf, 2.0])
    assert clip_grad_norm([p], 1.0) == math.inf
    np.testing.assert_array_equal(p.grad, [1.0, np.inf, 2.0])
    assert clip_grad_norm([Parameter(np.zeros(2))], 1.0) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([p], -1.0)
