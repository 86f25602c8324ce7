"""Once per batch, not per step (docs/performance.md, "Once per batch"): weight codes (SPEC E11, E12)
and the first synapse's output under direct encoding are computed once per batch, and every
result matches the per-step reference path (``batch_cache.ENABLED = False``)."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref.autograd import Tensor, batch_cache as bc, no_grad
from hdlif_ref.autograd.batch_cache import active_cache, batch_cache
from hdlif_ref.autograd.ops import weight_quant
from hdlif_ref.models import digits_net, spiking_resnet
from hdlif_ref.training.optim import SGD
from hdlif_ref.training.trainer import OnlineTrainer, STBPTrainer


class KeepGrads:
    """An optimizer that records the gradients it is asked to apply (what the step would see)."""

    def __init__(self, params):
        self.params, self.grads = list(params), []

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.grads.append([None if p.grad is None else p.grad.copy() for p in self.params])


def digits(dtype=np.float64, weight_mode="ternary", **kw):
    return digits_net(T=4, weight_mode=weight_mode, spike_bits=4, rng=np.random.default_rng(0), **kw).to(dtype)


def data(dtype, n=12, shape=(1, 8, 8), seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape).astype(dtype), rng.integers(0, 10, n)


def one_batch(enabled, make_model, make_trainer, dtype, monkeypatch, batches=1, shape=(1, 8, 8)):
    monkeypatch.setattr(bc, "ENABLED", enabled)
    model = make_model(dtype)
    opt = KeepGrads(model.parameters())
    trainer = make_trainer(model, opt)
    out = [trainer.train_batch(*data(dtype, shape=shape, seed=1 + b)) for b in range(batches)]
    names = [name for name, _ in model.named_parameters()]
    return out, opt.grads, names


def online(steps, update="batch"):
    return lambda model, opt: OnlineTrainer(model, opt, steps=steps, update=update, rng=np.random.default_rng(2))


def stbp(model, opt):
    return STBPTrainer(model, opt)


def count_codes(monkeypatch):
    calls = []
    original = weight_quant.ternarize

    def counted(w):
        calls.append(w.shape)
        return original(w)
    monkeypatch.setattr(weight_quant, "ternarize", counted)
    return calls


# ------------------------------------------------------------------ weight codes once per batch
@pytest.mark.parametrize("enabled, per_batch", [(True, 1), (False, 4)])
def test_ternary_codes_are_computed_once_per_batch(monkeypatch, enabled, per_batch):
    calls = count_codes(monkeypatch)
    one_batch(enabled, digits, online(1), np.float32, monkeypatch)
    assert len(calls) == 2 * per_batch  # two ternary synapses (first layer and classifier stay float32)


def test_update_step_caches_nothing(monkeypatch):
    """``update="step"`` moves the weights between steps: codes are recomputed at every step."""
    calls = count_codes(monkeypatch)
    one_batch(True, digits, online("all", update="step"), np.float32, monkeypatch)
    assert len(calls) == 2 * 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight_mode", ["ternary", "binary"])
@pytest.mark.parametrize("steps", [1, "all"])
def test_cached_codes_give_bit_identical_gradients(monkeypatch, dtype, weight_mode, steps):
    """The straight-through gradient reaches each compressed weight exactly as before: only the first
    synapse's weight (item: its output is shared, see below) may differ, and only with several steps."""
    make = lambda d: digits(d, weight_mode)  # noqa: E731
    (new,), grads_new, names = one_batch(True, make, online(steps), dtype, monkeypatch)
    (ref,), grads_ref, _ = one_batch(False, make, online(steps), dtype, monkeypatch)
    assert new[0] == ref[0]
    np.testing.assert_array_equal(new[1], ref[1])
    for name, g, h in zip(names, grads_new[0], grads_ref[0]):
        if steps == "all" and name == "features.0.weight":
            continue  # summed before the shared first synapse: tested below with its bound
        assert (g is None) == (h is None), name
        if g is not None:
            np.testing.assert_array_equal(g, h, err_msg=name)


def test_codes_follow_the_weights_from_batch_to_batch(monkeypatch):
    """Nothing survives a batch: with lr > 0 the second batch must use the codes of the updated weights."""
    monkeypatch.setattr(bc, "ENABLED", True)
    model = digits(np.float32)
    trainer = OnlineTrainer(model, SGD(list(model.parameters()), lr=0.5, momentum=0.9), steps=1,
                            rng=np.random.default_rng(2))
    conv = model.features[3]
    used = []
    conv.register_forward_hook(lambda m, i, o: used.append(weight_quant.ternarize(m.weight.data).copy()))
    seen = []
    original = weight_quant.TernarizeWeight.forward

    def spy(ctx, w, quantized=None):
        out = original(ctx, w, quantized)
        seen.append(out.copy())
        return out
    monkeypatch.setattr(weight_quant.TernarizeWeight, "forward", staticmethod(spy))
    for b in range(3):
        trainer.train_batch(*data(np.float32, seed=10 + b))
        assert active_cache() is None
    assert len(seen) == 3 * 4 * 2
    first_conv_codes = seen[0::2]  # the ternary conv's weight at every step, batch after batch
    for step, (got, expected) in enumerate(zip(first_conv_codes, used)):
        np.testing.assert_array_equal(got, expected, err_msg=f"step {step}")
    assert not np.array_equal(first_conv_codes[0], first_conv_codes[-1])  # the weights did move


@pytest.mark.parametrize("write", ["optimizer", "load_state_dict", "to", "in_place"])
def test_every_write_path_between_batches_is_seen(monkeypatch, write):
    """A write to the weights between two batches (any path) is used by the next batch."""
    monkeypatch.setattr(bc, "ENABLED", True)
    model = digits(np.float32)
    x, y = data(np.float32)
    OnlineTrainer(model, KeepGrads(model.parameters()), steps=1, rng=np.random.default_rng(2)).train_batch(x, y)
    w = model.features[3].weight
    if write == "optimizer":
        w.grad = np.sign(w.data) * -1.0
        SGD([w], lr=1.0).step()
    elif write == "load_state_dict":
        state = model.state_dict()
        state["features.3.weight"] = -state["features.3.weight"]
        model.load_state_dict(state)
    elif write == "to":
        model.to(np.float64)
    else:
        w.data[...] = -w.data
    seen = []
    original = weight_quant.TernarizeWeight.forward
    monkeypatch.setattr(weight_quant.TernarizeWeight, "forward",
                        staticmethod(lambda ctx, w_, quantized=None: seen.append(original(ctx, w_, quantized))
                                     or seen[-1]))
    dtype = w.data.dtype
    OnlineTrainer(model, KeepGrads(model.parameters()), steps=1, rng=np.random.default_rng(2)).train_batch(
        x.astype(dtype), y)
    np.testing.assert_array_equal(seen[0], weight_quant.ternarize(w.data))


def test_a_replaced_weight_array_misses_the_cache_inside_a_block(monkeypatch):
    monkeypatch.setattr(bc, "ENABLED", True)
    model = digits(np.float32)
    w = model.features[3].weight
    with batch_cache() as cache:
        first = weight_quant.quantize_weight(w, "ternary").data
        again = weight_quant.quantize_weight(w, "ternary").data
        assert again is first and cache.hits == 1
        model.to(np.float64)
        third = weight_quant.quantize_weight(w, "ternary").data
        assert third is not first and third.dtype == np.float64
    assert active_cache() is None


def test_an_exception_drops_the_block_without_flushing(monkeypatch):
    monkeypatch.setattr(bc, "ENABLED", True)
    model = digits(np.float32)
    x, _ = data(np.float32)
    with pytest.raises(RuntimeError, match="boom"):
        with batch_cache() as cache:
            cache.declare_constant(x)
            model.train().set_step_mode("s").reset_state()
            model(Tensor(x)).sum().backward()
            raise RuntimeError("boom")
    assert active_cache() is None
    assert model.features[0].weight.grad is None  # the shared first synapse was never flushed


def test_disabled_cache_yields_none(monkeypatch):
    monkeypatch.setattr(bc, "ENABLED", False)
    with batch_cache() as cache:
        assert cache is None and active_cache() is None


# ------------------------------------------------------------------ first (analog) synapse once per batch
@pytest.mark.parametrize("steps", [1, "all"])
def test_first_synapse_runs_once_per_online_batch(monkeypatch, steps):
    model = digits(np.float32)
    first = model.features[0]
    calls = []
    original = first._synapse
    monkeypatch.setattr(first, "_synapse", lambda x: calls.append(1) or original(x), raising=False)
    OnlineTrainer(model, KeepGrads(model.parameters()), steps=steps, rng=np.random.default_rng(2)).train_batch(
        *data(np.float32))
    assert len(calls) == 1


def test_first_synapse_runs_once_per_batch_in_multi_step_mode(monkeypatch):
    model = digits(np.float32)
    first = model.features[0]
    shapes = []
    original = first._synapse
    monkeypatch.setattr(first, "_synapse", lambda x: shapes.append(x.shape) or original(x), raising=False)
    x, y = data(np.float32)
    STBPTrainer(model, KeepGrads(model.parameters())).train_batch(x, y)
    OnlineTrainer(model, KeepGrads(model.parameters())).evaluate([(x, y)])
    assert shapes == [x.shape, x.shape]  # one step's images, not T * N


def test_event_frames_are_not_shared(monkeypatch):
    """Frames differ from step to step: every step runs the first synapse."""
    model = digits(np.float32)
    first = model.features[0]
    calls = []
    original = first._synapse
    monkeypatch.setattr(first, "_synapse", lambda x: calls.append(1) or original(x), raising=False)
    rng = np.random.default_rng(3)
    frames = rng.standard_normal((4, 6, 1, 8, 8)).astype(np.float32)
    OnlineTrainer(model, KeepGrads(model.parameters()), steps=1).train_batch(frames, rng.integers(0, 10, 6))
    assert len(calls) == 4


def resnet(dtype):
    return spiking_resnet(18, width=0.125, T=3, weight_mode="ternary", spike_bits=2, seca="II",
                          rng=np.random.default_rng(0)).to(dtype)


@pytest.mark.parametrize("make_model, shape", [(digits, (1, 8, 8)), (resnet, (3, 8, 8))])
@pytest.mark.parametrize("algorithm", ["online_k1", "online_all", "stbp"])
def test_shared_first_synapse_gradients_match_the_per_step_path(monkeypatch, make_model, shape, algorithm):
    """Exact in real arithmetic: the steps' gradients are summed before the first synapse's backward
    instead of after it. Online K=1 is bit-identical (one step, no sum); with several steps the float64
    difference is the rounding of a sum of T terms, relative ~1e-16 of the gradient's size."""
    make_trainer = {"online_k1": online(1), "online_all": online("all"), "stbp": stbp}[algorithm]
    (new,), grads_new, names = one_batch(True, make_model, make_trainer, np.float64, monkeypatch, shape=shape)
    (ref,), grads_ref, _ = one_batch(False, make_model, make_trainer, np.float64, monkeypatch, shape=shape)
    assert new[0] == ref[0]
    np.testing.assert_array_equal(new[1], ref[1])  # the forward is the same computation, bit for bit
    for name, g, h in zip(names, grads_new[0], grads_ref[0]):
        assert (g is None) == (h is None), name
        if g is None:
            continue
        if algorithm == "online_k1" or name != "features.0.weight":
            np.testing.assert_array_equal(g, h, err_msg=name)
        else:
            assert np.max(np.abs(g - h)) <= 1e-13 * np.max(np.abs(h)), name


def test_shared_first_synapse_gradient_float32_bound(monkeypatch):
    """float32, K = T: the first synapse's weight gradient is within float32 rounding of the per-step sum."""
    (new,), grads_new, names = one_batch(True, digits, online("all"), np.float32, monkeypatch)
    (ref,), grads_ref, _ = one_batch(False, digits, online("all"), np.float32, monkeypatch)
    (exact,), grads_64, _ = one_batch(False, digits, online("all"), np.float64, monkeypatch)
    i = names.index("features.0.weight")
    g, h, e = grads_new[0][i], grads_ref[0][i], grads_64[0][i]
    # both float32 results are float32 sums of the same terms: each within a few ulps of the gradient's scale
    scale = np.max(np.abs(e))
    assert np.max(np.abs(g - h)) <= 64 * np.finfo(np.float32).eps * scale


def test_no_grad_batches_keep_no_graph(monkeypatch):
    """Evaluation (``record=False``) keeps nothing to flush."""
    monkeypatch.setattr(bc, "ENABLED", True)
    model = digits(np.float32)
    x, _ = data(np.float32)
    model.train().set_step_mode("s").reset_state()
    with no_grad(), batch_cache(record=False) as cache:
        cache.declare_constant(x)
        out = model(Tensor(x))
        assert not out.requires_grad
        assert cache._pending == []
