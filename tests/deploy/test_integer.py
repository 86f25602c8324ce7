"""Deployed inference in exact integer arithmetic (docs/performance.md, "Integer inference"): ternary or
binary codes on integer spike levels, int32 sums, the per-channel scale once; the same bits as the
float frozen path, and the first synapse computed once under direct encoding."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdlif_ref import backend
from hdlif_ref.deploy import frozen as frozen_module
from hdlif_ref.deploy.convert import freeze
from hdlif_ref.deploy.frozen import Op, integer_inputs
from hdlif_ref.deploy.frozen_io import load_frozen, save_frozen
from hdlif_ref.kernels.conv import conv2d_forward
from hdlif_ref.kernels.inference import conv_levels, scale_shift_
from hdlif_ref.models import digits_net, spiking_resnet


def loop_conv_levels(levels, codes, stride, padding):
    """The exact integer convolution, one output at a time (Python ints)."""
    B, C, H, W = levels.shape
    O, _, kh, kw = codes.shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = np.zeros((B, O, Ho, Wo), dtype=np.int64)
    for b in range(B):
        for o in range(O):
            for p in range(Ho):
                for q in range(Wo):
                    total = 0
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                r, s = p * sh - ph + i, q * sw - pw + j
                                if 0 <= r < H and 0 <= s < W:
                                    total += int(codes[o, c, i, j]) * int(levels[b, c, r, s])
                    out[b, o, p, q] = total
    return out


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 7),
       st.integers(1, 7), st.tuples(st.sampled_from([1, 3]), st.integers(1, 3)), st.tuples(*[st.integers(1, 2)] * 2),
       st.tuples(*[st.integers(0, 2)] * 2), st.sampled_from([1, 2, 4]), st.sampled_from([np.float32, np.float64]),
       st.floats(0, 1), st.integers(0, 2 ** 16))
def test_conv_levels_is_the_exact_integer_convolution(T, N, C, O, H, W, kernel, stride, pad, divisor, dtype, density,
                                                      seed):
    """Against Python ints, for kernel widths, strides and paddings on both sides of the kernel's choice between
    one run of additions per kernel row (column stride 1, ``pw <= kw - 1``) and one per tap."""
    (kh, kw), (ph, pw) = kernel, pad
    if H + 2 * ph < kh or W + 2 * pw < kw:
        return
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, 2, (O, C, kh, kw)).astype(np.int8)
    levels = rng.integers(0, 16 * divisor, (T, N, C, H, W)) * (rng.random((T, N, C, H, W)) < density)
    x = (levels / divisor).astype(dtype)
    scale = rng.uniform(0.1, 2, (T, O)).astype(dtype)
    bias = rng.uniform(-1, 1, (O,)).astype(dtype)
    exact = loop_conv_levels(levels.reshape((T * N,) + levels.shape[2:]), codes, stride, pad)
    expected = (exact.astype(dtype) * dtype(1.0 / divisor)).reshape((T, N) + exact.shape[1:])
    expected = scale_shift_(np.ascontiguousarray(expected), scale, bias)
    # the float path: a float convolution of the same levels, then the same scale and shift
    y = conv2d_forward(x.reshape((T * N,) + x.shape[2:]), codes.astype(dtype), None, stride, pad, 1)
    float_path = scale_shift_(y.reshape((T, N) + y.shape[1:]), scale, bias)
    np.testing.assert_array_equal(float_path, expected)
    for name in ("numba", "numpy"):
        with backend(name):
            out = conv_levels(x, codes, divisor, stride, pad, scale, bias)
        np.testing.assert_array_equal(out, expected, err_msg=name)


@pytest.mark.parametrize("kw", [1, 2, 3])
@pytest.mark.parametrize("pw", [0, 1, 2])
@pytest.mark.parametrize("sw", [1, 2])
def test_conv_levels_on_each_side_of_its_choice_of_runs(kw, pw, sw):
    """Every kernel width, column padding and column stride around the kernel's choice (one run of additions per
    kernel row when ``sw == 1`` and ``pw <= kw - 1``, else one per tap), against Python ints."""
    rng = np.random.default_rng(kw * 100 + pw * 10 + sw)
    codes = rng.integers(-1, 2, (3, 2, 3, kw)).astype(np.int8)
    levels = rng.integers(0, 16, (1, 2, 2, 5, 6)) * (rng.random((1, 2, 2, 5, 6)) < 0.5)
    exact = loop_conv_levels(levels.reshape(2, 2, 5, 6), codes, (1, sw), (1, pw))
    with backend("numba"):
        out = conv_levels(levels.astype(np.float32), codes, 1, (1, sw), (1, pw), np.ones(3, np.float32),
                          np.zeros(3, np.float32))
    np.testing.assert_array_equal(out.reshape(exact.shape), exact.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_levels_on_images_without_events_gives_the_twins_bits_signed_zeros_included(dtype):
    # an image with no non-zero input takes a short cut (no accumulators): its outputs must still be
    # (0 * (1 / divisor)) * scale + bias to the bit, -0.0 included, next to images that have events
    T, N, C, O, H = 2, 3, 4, 6, 5
    rng = np.random.default_rng(11)
    levels = rng.integers(0, 16, (T, N, C, H, H)) * (rng.random((T, N, C, H, H)) < 0.2)
    levels[0, 1] = 0
    levels[1, 0] = 0
    x = (levels / 2).astype(dtype)
    codes = rng.integers(-1, 2, (O, C, 3, 3)).astype(np.int8)
    scale = np.array([[-1.5, 2.0, -0.0, 1.0, -3.0, 0.5], [1.0, -2.0, 0.0, -1.0, 3.0, -0.5]], dtype=dtype)
    bias = np.array([-0.0, 0.0, -0.0, 0.25, -0.0, -1.0], dtype=dtype)
    with backend("numpy"):
        expected = conv_levels(x, codes, 2, (1, 1), (1, 1), scale, bias)
    got = conv_levels(x, codes, 2, (1, 1), (1, 1), scale, bias)
    assert np.array_equal(got, expected) and np.array_equal(np.signbit(got), np.signbit(expected))
    assert np.signbit(got[0, 1, 0]).all() and not np.signbit(got[0, 1, 1]).any()  # -0.0 and +0.0 kept apart


def test_conv_levels_checks_its_arguments():
    x = np.zeros((1, 1, 2, 3, 3), np.float32)
    codes = np.zeros((2, 2, 1, 1), np.int8)
    with pytest.raises(ValueError, match="power of two"):
        conv_levels(x, codes, 3, (1, 1), (0, 0), np.ones(2, np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="codes"):
        conv_levels(x, codes.astype(np.float32), 1, (1, 1), (0, 0), np.ones(2), np.zeros(2))
    with pytest.raises(TypeError):
        conv_levels(x.astype(np.int32), codes, 1, (1, 1), (0, 0), np.ones(2), np.zeros(2))


# ------------------------------------------------------------------ which synapses get integer inputs
def test_plan_follows_the_levels_through_pooling_and_blocks():
    digits = freeze(digits_net(T=2, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0)))
    plan = integer_inputs(digits.ops)[0]
    synapses = [op for op in digits.ops if op.kind == "synapse"]
    # first layer analog, classifier float32: the two ternary convolutions, the second after a 2x2 average
    assert [plan.get(id(op)) for op in synapses] == [None, (1, 15), (4, 15), None]
    resnet = freeze(spiking_resnet(18, width=0.125, T=2, weight_mode="ternary", spike_bits=2,
                                   rng=np.random.default_rng(0)), input_shape=(3, 8, 8))
    assert len(integer_inputs(resnet.ops)[0]) == 2 * 8 + 3  # both convolutions of 8 blocks, 3 shortcuts
    assert integer_inputs(freeze(digits_net(T=2, weight_mode="ternary", rng=np.random.default_rng(0))).ops)[0] == {}
    assert integer_inputs(freeze(digits_net(T=2, spike_bits=4, rng=np.random.default_rng(0))).ops)[0] == {}
    lif = freeze(digits_net(T=2, neuron="lif", weight_mode="binary", rng=np.random.default_rng(0)))
    assert sorted(integer_inputs(lif.ops)[0].values()) == [(1, 1), (4, 1)]


def test_plan_drops_inexact_cases():
    neuron = Op("neuron", dict(neuron="hdlif", bits=4))
    conv = Op("synapse", dict(conv=True, groups=1, weight_mode="ternary"), dict(weight=np.zeros((2, 3, 3, 3), np.int8)))
    assert integer_inputs([neuron, conv])[0] == {id(conv): (1, 15)}
    pool3 = Op("avg_pool", dict(kernel=(3, 3)))
    assert integer_inputs([neuron, pool3, conv])[0] == {}  # 1/9 is not exact
    wide = Op("synapse", dict(conv=True, groups=1, weight_mode="ternary"),
              dict(weight=np.zeros((2, 4096, 3, 3), np.int8)))
    assert integer_inputs([Op("neuron", dict(neuron="hdlif", bits=9)), wide])[0] == {}  # 36864 * 511 >= 2^24


# ------------------------------------------------------------------ networks: integer path = float path
NETWORKS = {
    "digits 4-bit ternary": (lambda: digits_net(T=4, weight_mode="ternary", spike_bits=4,
                                                rng=np.random.default_rng(0)), (12, 1, 8, 8)),
    "digits 1-bit binary, Parallel": (lambda: digits_net(T=3, weight_mode="binary", spike_bits=1,
                                                         parallel_fraction=0.5, rng=np.random.default_rng(0)),
                                      (12, 1, 8, 8)),
    "digits LIF": (lambda: digits_net(T=3, weight_mode="ternary", neuron="lif", rng=np.random.default_rng(0)),
                   (12, 1, 8, 8)),
    "resnet 2-bit SECA_II Parallel": (lambda: spiking_resnet(18, width=0.25, T=3, weight_mode="ternary",
                                                             spike_bits=2, seca="II", parallel_fraction=0.5,
                                                             rng=np.random.default_rng(0)), (6, 3, 16, 16)),
    "resnet 4-bit SECA_I": (lambda: spiking_resnet(18, width=0.25, T=2, weight_mode="ternary", spike_bits=4,
                                                   seca="I", rng=np.random.default_rng(0)), (6, 3, 16, 16)),
}


def active(model, theta=0.05, step=0.02):
    """Low thresholds and steps: every layer fires (an untrained network is nearly silent)."""
    for neuron in model.neurons():
        neuron.theta.data[...] = theta
        if neuron.quantizer is not None:
            neuron.quantizer.step.data[...] = step
    return model


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_synapses_give_the_float_paths_bits(monkeypatch, tmp_path, name, dtype):
    make, shape = NETWORKS[name]
    model = active(make())
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype) * 2
    fz = freeze(model, input_shape=shape[1:], dtype=dtype)
    calls = []
    original = frozen_module.conv_levels
    monkeypatch.setattr(frozen_module, "conv_levels",
                        lambda x_, *a, **k: calls.append(np.count_nonzero(x_) / x_.size) or original(x_, *a, **k))
    monkeypatch.setattr(frozen_module, "INTEGER_DENSITY_PER_CHANNEL", 1.0)  # every planned synapse
    references = {}
    for backend_name in ("numpy", "numba"):  # each backend against its own float path
        with backend(backend_name):
            fz.integer = False
            reference = references[backend_name] = fz.run(x)
            assert calls == []
            fz.integer = True
            np.testing.assert_array_equal(fz.run(x), reference, err_msg=backend_name)
        assert calls and max(calls) > 0.1  # the integer kernels ran, on real activity
        calls.clear()
    np.testing.assert_array_equal(fz.predict(x), reference.mean(axis=0).argmax(axis=1))
    if dtype == np.float32:  # a deployed file plans its integer synapses again from its ops
        save_frozen(fz, tmp_path / "m.h5")
        loaded = load_frozen(tmp_path / "m.h5")
        np.testing.assert_array_equal(loaded.run(x), reference)


def test_density_rule_picks_either_kernel_with_the_same_bits(monkeypatch):
    make, shape = NETWORKS["digits 4-bit ternary"]
    fz = freeze(active(make()), input_shape=shape[1:])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    outs = []
    for limit in (0.0, 1.0 / 256, 1.0):
        monkeypatch.setattr(frozen_module, "INTEGER_DENSITY_PER_CHANNEL", limit)
        outs.append(fz.run(x))
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


# ------------------------------------------------------------------ first synapse once per batch
def test_direct_encoding_runs_the_first_synapse_on_one_step(monkeypatch):
    make, shape = NETWORKS["resnet 4-bit SECA_I"]
    fz = freeze(active(make()), input_shape=shape[1:])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    batches = []
    original = frozen_module.conv2d_forward
    monkeypatch.setattr(frozen_module, "conv2d_forward", lambda flat, *a: batches.append(flat.shape[0]) or
                        original(flat, *a))
    image = fz.run(x)
    assert batches[0] == shape[0]  # N images, not T * N
    frames = fz.run(np.ascontiguousarray(np.broadcast_to(x, (fz.T,) + x.shape)))
    assert batches[len(batches) // 2] == fz.T * shape[0]
    np.testing.assert_array_equal(image, frames)
    fz.run(x, count=True)  # the counters still see every step's input
    counted = fz.counts
    fz.run(np.ascontiguousarray(np.broadcast_to(x, (fz.T,) + x.shape)), count=True)
    assert counted == fz.counts


# ------------------------------------------------------------------ outputs kept between runs
@pytest.mark.parametrize("name", list(NETWORKS))
def test_kept_outputs_give_the_fresh_outputs_bits_run_after_run(monkeypatch, name):
    """The frozen model writes its synapses' and neurons' outputs into arrays kept from the previous run
    (docs/performance.md, "Deployed inference"): every run gives the bits of a model that allocates afresh,
    on both backends and both synapse paths, and a returned result is never overwritten by a later run."""
    make, shape = NETWORKS[name]
    fz = freeze(active(make()), input_shape=shape[1:])
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal(shape).astype(np.float32) * 2 for _ in range(3)]
    inputs.append(inputs[0][: shape[0] // 2])  # another batch size: the kept arrays are replaced
    for backend_name in ("numpy", "numba"):
        with backend(backend_name):
            for integer in (True, False):
                fz.integer = integer
                monkeypatch.setattr(frozen_module.FrozenModel, "REUSE_BUFFERS", False)
                fresh = [fz.run(x) for x in inputs]
                assert not fz._buffers
                monkeypatch.setattr(frozen_module.FrozenModel, "REUSE_BUFFERS", True)
                kept = [fz.run(x) for x in inputs]
                assert fz._buffers
                for a, b in zip(kept, fresh):  # the earlier results as returned: not overwritten since
                    np.testing.assert_array_equal(a, b, err_msg=f"{backend_name} integer={integer}")
                fz._buffers.clear()


def test_a_result_that_is_a_kept_output_is_returned_as_a_copy():
    """A model whose last op keeps its output (here one cut after its first neuron) hands back a copy."""
    make, shape = NETWORKS["digits 4-bit ternary"]
    fz = freeze(active(make()), input_shape=shape[1:])
    cut = frozen_module.FrozenModel(fz.ops[:2], fz.T, fz.num_classes, fz.input_shape, fz.meta)
    assert cut.ops[-1].kind == "neuron"
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    first = cut.run(x)
    again = first.copy()
    cut.run(-x)
    np.testing.assert_array_equal(first, again)
    assert not any(np.shares_memory(first, kept) for kept in cut._buffers.values())


def test_kept_outputs_spare_each_run_its_big_allocations(monkeypatch):
    """What the kept outputs are for: after the first run, a run allocates far less new memory (NumPy's
    allocations are traced by tracemalloc)."""
    import tracemalloc
    make, shape = NETWORKS["digits 4-bit ternary"]
    fz = freeze(active(make()), input_shape=(1, 8, 8))
    x = np.random.default_rng(4).standard_normal((64, 1, 8, 8)).astype(np.float32)
    peaks = {}
    for reuse in (False, True):
        monkeypatch.setattr(frozen_module.FrozenModel, "REUSE_BUFFERS", reuse)
        fz.run(x)  # the first run makes the kept arrays
        tracemalloc.start()
        fz.run(x)
        peaks[reuse] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # measured: 2.6 MB kept against 5.3 MB fresh (fresh was 5.8 MB while the 4-bit neurons also allocated
    # firing masks, before they wrote their levels in their own pass)
    assert peaks[True] < 0.6 * peaks[False], peaks


@pytest.mark.parametrize("kernel", ["hdlif", "lif", "parallel"])
@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_neuron_forwards_write_into_out_what_they_return_without(kernel, backend_name):
    from hdlif_ref.kernels.hdlif import hdlif_forward
    from hdlif_ref.kernels.lif import lif_forward
    from hdlif_ref.kernels.parallel import parallel_hdlif_forward
    rng = np.random.default_rng(5)
    I = rng.standard_normal((3, 4, 10)).astype(np.float32)
    u0 = rng.standard_normal((4, 10)).astype(np.float32)
    lam, theta = np.full((3, 1), 0.5, np.float32), np.full((3, 1), 0.3, np.float32)
    call = {"hdlif": lambda out: hdlif_forward(I, u0, lam, theta, out=out),
            "lif": lambda out: lif_forward(I, u0, lam, theta, False, out=out),
            "parallel": lambda out: parallel_hdlif_forward(I, theta, out=out)}[kernel]
    with backend(backend_name):
        fresh = call(None)
        out = tuple(np.full_like(a, 7) for a in fresh)
        written = call(out)
    assert all(w is o for w, o in zip(written, out))
    for a, b in zip(written, fresh):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_conv_levels_writes_into_out_and_refuses_an_out_that_does_not_fit(backend_name):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 4, (2, 3, 2, 5, 5)).astype(np.float32)
    codes = rng.integers(-1, 2, (4, 2, 3, 3)).astype(np.int8)
    scale, bias = rng.uniform(0.5, 1, 4).astype(np.float32), rng.uniform(-1, 1, 4).astype(np.float32)
    with backend(backend_name):
        fresh = conv_levels(x, codes, 1, (1, 1), (1, 1), scale, bias)
        out = np.full_like(fresh, 7)
        assert conv_levels(x, codes, 1, (1, 1), (1, 1), scale, bias, out=out) is out
        np.testing.assert_array_equal(out, fresh)
        for bad in (np.empty((2, 3, 4, 5, 4), np.float32), np.empty(fresh.shape, np.float64),
                    np.empty(fresh.shape[::-1], np.float32).T):
            with pytest.raises(ValueError, match="out must be"):
                conv_levels(x, codes, 1, (1, 1), (1, 1), scale, bias, out=bad)


def test_a_smaller_batch_reuses_the_kept_outputs_of_a_larger_one():
    """A data set's last batch is smaller: it writes into the front of the same kept arrays (flat, as large
    as the largest output), with the bits of fresh arrays, rather than replacing them twice per pass."""
    make, shape = NETWORKS["digits 4-bit ternary"]
    fz = freeze(active(make()), input_shape=shape[1:])
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    fz.run(x)
    kept = dict(fz._buffers)
    small = fz.run(x[:5])
    assert fz._buffers.keys() == kept.keys() and all(fz._buffers[k] is v for k, v in kept.items())
    fz.run(x)
    assert all(fz._buffers[k] is v for k, v in kept.items())
    np.testing.assert_array_equal(small, fz.run(x[:5]))
    fresh = freeze(active(make()), input_shape=shape[1:])
    fresh.REUSE_BUFFERS = False
    np.testing.assert_array_equal(small, fresh.run(x[:5]))


def test_a_frozen_model_copies_and_pickles_without_its_lock_or_kept_outputs():
    import copy
    import pickle
    make, shape = NETWORKS["digits 4-bit ternary"]
    fz = freeze(active(make()), input_shape=shape[1:])
    x = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    expected = fz.run(x)
    for clone in (copy.copy(fz), copy.deepcopy(fz), pickle.loads(pickle.dumps(fz))):
        assert not clone._buffers and clone._running is not fz._running
        np.testing.assert_array_equal(clone.run(x), expected)
        assert all(not any(k is v for v in fz._buffers.values()) for k in clone._buffers.values())
