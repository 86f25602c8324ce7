"""Input encoders: shapes, the [0, 1] boundaries, seeds, the rate's mean, latency's formula, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hdlif_ref.datasets import DataLoader
from hdlif_ref.datasets.base import ArrayDataset
from hdlif_ref.datasets.encoders import EncodedLoader, direct, encode, latency, rate

# values in [0, 1] with the boundaries themselves drawn often
unit = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, allow_subnormal=False))
batches = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4),
                     elements=unit.map(np.float32))


@settings(max_examples=40)
@given(x=batches, T=st.integers(1, 6), seed=st.integers(0, 2 ** 32 - 1))
def test_shapes_values_and_boundaries(x, T, seed):
    for name, out in (("direct", direct(x, T)), ("bernoulli", rate(x, T, np.random.default_rng(seed))),
                      ("poisson", rate(x, T, np.random.default_rng(seed), "poisson")), ("latency", latency(x, T))):
        assert out.shape == (T,) + x.shape, name
        assert out.dtype == np.float32, name
    np.testing.assert_array_equal(direct(x, T), np.broadcast_to(x, (T,) + x.shape))
    s = rate(x, T, np.random.default_rng(seed))
    assert set(np.unique(s)) <= {0.0, 1.0}
    assert not s[:, x == 0].any() and s[:, x == 1].all()  # the boundaries are certain
    assert not rate(x, T, np.random.default_rng(seed), "poisson")[:, x == 0].any()
    lat = latency(x, T)
    np.testing.assert_array_equal(lat.sum(axis=0), np.ones_like(x))  # exactly one spike each
    when = lat.argmax(axis=0)
    np.testing.assert_array_equal(when, np.rint((T - 1) * (1.0 - x.astype(np.float64))))
    assert (when[x == 1] == 0).all() and (when[x == 0] == T - 1).all()


def test_latency_fires_earlier_for_larger_values():
    x = np.linspace(0, 1, 11)[None, :]  # float64 in, float64 out
    when = latency(x, 5).argmax(axis=0)[0]
    assert latency(x, 5).dtype == np.float64
    assert (np.diff(when) <= 0).all() and when[0] == 4 and when[-1] == 0
    np.testing.assert_array_equal(when, [4, 4, 3, 3, 2, 2, 2, 1, 1, 0, 0])  # rint(4 (1 - x))
    # ties round half to even: (T - 1)(1 - x) = 0.5 -> step 0, 1.5 -> step 2
    assert latency(np.array([0.5]), 2).argmax(axis=0)[0] == 0 and latency(np.array([0.5]), 4).argmax(axis=0)[0] == 2


@pytest.mark.parametrize("mode", ["bernoulli", "poisson"])
def test_rate_is_repeatable_from_the_seed_and_its_mean_tracks_the_input(mode):
    x = np.linspace(0, 1, 21, dtype=np.float32)[None, :].repeat(50, axis=0)  # [50, 21]
    a = rate(x, 200, np.random.default_rng(7), mode)
    np.testing.assert_array_equal(a, rate(x, 200, np.random.default_rng(7), mode))
    assert not np.array_equal(a, rate(x, 200, np.random.default_rng(8), mode))
    mean = a.mean(axis=(0, 1))  # 10,000 draws per value: standard error <= 0.01
    np.testing.assert_allclose(mean, x[0], atol=0.04)
    assert np.corrcoef(mean, x[0])[0, 1] > 0.99
    if mode == "poisson":
        assert a.max() > 1  # counts, not bits


@pytest.mark.parametrize("call, message", [
    (lambda: rate(np.array([[0.5, 1.5]]), 4, np.random.default_rng(0)), r"\[0, 1\]"),
    (lambda: latency(np.array([[-0.1]]), 4), r"\[0, 1\]"),
    (lambda: rate(np.array([[np.nan]]), 4, np.random.default_rng(0)), "non-finite"),
    (lambda: direct(np.array([[np.inf]]), 4), "non-finite"),
    (lambda: direct(np.ones((2, 3)), 0), "T=0"),
    (lambda: latency(np.ones((2, 3)), 2.5), "T=2.5"),
    (lambda: direct(np.float32(1.0), 3), "batch"),
    (lambda: rate(np.ones((2, 3)), 4, np.random.default_rng(0), "gauss"), "mode='gauss'"),
    (lambda: encode(np.ones((2, 3)), 4, "phase"), "encoding='phase'; allowed: direct, rate, latency"),
])
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        rate(np.ones((2, 3)), 4, 0)
    with pytest.raises(TypeError, match="dtype"):
        direct(np.array([["a"]]), 4)


def _dataset(n=10):
    x = np.random.default_rng(0).random((n, 1, 2, 2), dtype=np.float32)
    return ArrayDataset(x, np.arange(n) % 2, 2, "static", "toy", "train")


def test_encoded_loader_seeded_and_repeatable_passes():
    data = _dataset()
    fixed = EncodedLoader(DataLoader(data, 4), "rate", 3, seed=5)
    first, second = [x for x, _ in fixed], [x for x, _ in fixed]
    assert len(first) == len(fixed) == 3 and first[0].shape == (3, 4, 1, 2, 2) and first[0].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(first, second))  # seed=: the same spikes every pass
    moving = EncodedLoader(DataLoader(data, 4), "rate", 3, rng=np.random.default_rng(5))
    a, b = [x for x, _ in moving], [x for x, _ in moving]
    assert not all(np.array_equal(p, q) for p, q in zip(a, b))  # rng=: a new draw per pass
    again = EncodedLoader(DataLoader(data, 4), "rate", 3, rng=np.random.default_rng(5))
    assert all(np.array_equal(p, q) for p, q in zip(a, [x for x, _ in again]))
    with pytest.raises(ValueError, match="rate encoding needs randomness"):
        EncodedLoader(DataLoader(data, 4), "rate", 3)
    lat = next(iter(EncodedLoader(DataLoader(data, 4), "latency", 3)))[0]
    np.testing.assert_array_equal(lat, latency(data.data[:4], 3))
