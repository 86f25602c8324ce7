"""Event-digits: rendering and the DVS model against loops, determinism, and that it is learnable over time."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402  (a scikit-learn dependency)

from hdlif_ref.datasets import get_dataset  # noqa: E402
from hdlif_ref.datasets.event_digits import C, EPS, contrast_events, render  # noqa: E402


def render_loop(image, px, py, size):
    """Bilinear splat as a tent kernel: pixel (r, c) gets sum_ij I[i, j] (1 - |r - py - i|)+ (1 - |c - px - j|)+."""
    out = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            for i in range(8):
                for j in range(8):
                    out[r, c] += image[i, j] * max(0.0, 1 - abs(r - py - i)) * max(0.0, 1 - abs(c - px - j))
    return out


@settings(max_examples=15)
@given(st.floats(0, 4), st.floats(0, 4), st.integers(0, 2 ** 32 - 1))
def test_render_is_a_bilinear_splat(px, py, seed):
    image = np.random.default_rng(seed).random((1, 8, 8))
    got = render(image, np.array([px]), np.array([py]), 12)
    np.testing.assert_allclose(got[0], render_loop(image[0], px, py, 12), atol=1e-12)


def contrast_loop(scenes):
    """Per pixel: ref = log(EPS + I_0); at each k emit trunc((log(EPS + I_k) - ref) / C) events, ref moves by n C."""
    n, k1, h, w = scenes.shape
    frames = np.zeros((n, k1 - 1, 2, h, w))
    for s in range(n):
        for r in range(h):
            for c in range(w):
                ref = np.log(EPS + scenes[s, 0, r, c])
                for k in range(1, k1):
                    level = np.log(EPS + scenes[s, k, r, c])
                    events = int((level - ref) / C)  # int() truncates toward zero
                    ref += events * C
                    frames[s, k - 1, 1 if events > 0 else 0, r, c] += abs(events)
    return frames


@settings(max_examples=15)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 5))
def test_contrast_events_match_the_per_pixel_loop(seed, steps):
    scenes = np.random.default_rng(seed).random((2, steps + 1, 3, 4)) ** 3  # include near-black pixels
    np.testing.assert_array_equal(contrast_events(scenes), contrast_loop(scenes))


def test_shape_counts_and_determinism():
    a = get_dataset("event-digits", "train", T=6)
    b = get_dataset("event-digits", "train", T=6)
    digits = get_dataset("digits", "train")
    assert a.kind == "events" and a.data.dtype == np.float32 and a.data.shape == (len(digits), 6, 2, 16, 16)
    np.testing.assert_array_equal(a.targets, digits.targets)
    np.testing.assert_array_equal(a.data, b.data)
    assert (a.data >= 0).all() and (a.data == np.round(a.data)).all()
    assert (a.data.sum(axis=(2, 3, 4)) > 0).all(), "every frame of every sample has events (the digit always moves)"
    assert not np.array_equal(a.data, get_dataset("event-digits", "train", T=6, seed=1).data)
    test = get_dataset("event-digits", "test", size=12, T=3)
    assert test.data.shape == (len(get_dataset("digits", "test")), 3, 2, 12, 12)


def test_noise_adds_events_and_train_fraction_subsets():
    clean = get_dataset("event-digits", "test")
    noisy = get_dataset("event-digits", "test", noise=0.05)
    extra = noisy.data - clean.data
    assert set(np.unique(extra)) <= {0.0, 1.0}
    assert 0.04 < extra.mean() < 0.06   # Bernoulli(0.05) over 735,232 cells
    part = get_dataset("event-digits", "train", train_fraction=0.2)
    np.testing.assert_array_equal(part.targets, get_dataset("digits", "train", train_fraction=0.2).targets)


@pytest.mark.parametrize("option, value", [("T", 0), ("size", 8), ("noise", 1.5), ("train_fraction", 0.0)])
def test_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        get_dataset("event-digits", "train", **{option: value})


def _ridge_accuracy(train_x, train_y, test_x, test_y, lam=100.0):
    """Ridge regression on one-hot labels, dual closed form: W = A^T (A A^T + lam I)^-1 (Y - mean Y)."""
    mu, s = train_x.mean(axis=0), train_x.std()
    a, b = (train_x - mu) / s, (test_x - mu) / s
    y = np.eye(10)[train_y]
    alpha = np.linalg.solve(a @ a.T + lam * np.eye(len(a)), y - y.mean(axis=0))
    return float(((b @ (a.T @ alpha)).argmax(axis=1) == test_y).mean())


def test_learnable_from_summed_frames_and_better_with_time():
    train, test = get_dataset("event-digits", "train"), get_dataset("event-digits", "test")
    summed_train = train.data.sum(axis=1).reshape(len(train), -1)
    summed_test = test.data.sum(axis=1).reshape(len(test), -1)
    scale = summed_train.std()
    # one BLAS thread: on a shared 2-core machine oversubscribed BLAS threads make this 20x slower
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter; the score is what is asserted
        model = LogisticRegression(max_iter=100).fit(summed_train / scale, train.targets)
        accuracy = model.score(summed_test / scale, test.targets)
        # the same linear model sees more when the frames are kept apart in time (docs/datasets.md has the numbers)
        flat = _ridge_accuracy(summed_train, train.targets, summed_test, test.targets)
        timed = _ridge_accuracy(train.data.reshape(len(train), -1), train.targets,
                                test.data.reshape(len(test), -1), test.targets)
    assert accuracy > 0.3, f"logistic regression on summed frames: {accuracy:.3f}, chance is 0.1"
    assert timed > flat + 0.05, f"time-resolved {timed:.3f} vs summed {flat:.3f}"
