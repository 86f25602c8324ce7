"""Augmentation against per-sample loops (pad, slice, mirror) using the documented draw order."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from hdlif_ref.datasets import RandomCropFlip, RandomTranslateFlip


def crop_flip_loop(x, padding, offsets, flips, fill):
    out = np.empty_like(x)
    h, w = x.shape[-2:]
    for n in range(x.shape[0]):
        padded = np.pad(x[n], [(0, 0), (padding, padding), (padding, padding)], constant_values=fill)
        window = padded[:, offsets[n, 0]:offsets[n, 0] + h, offsets[n, 1]:offsets[n, 1] + w]
        out[n] = window[:, :, ::-1] if flips[n] else window
    return out


def translate_flip_loop(x, shifts, flips):
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    for n in range(x.shape[0]):
        dy, dx = shifts[n]
        for i in range(h):
            for j in range(w):
                si, sj = i - dy, j - dx
                if 0 <= si < h and 0 <= sj < w:
                    out[n, ..., i, j] = x[n, ..., si, sj]
        if flips[n]:
            out[n] = out[n, ..., ::-1]
    return out


@given(st.integers(0, 5), st.integers(1, 6), st.integers(1, 7), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_random_crop_flip_matches_pad_slice_mirror(padding, h, w, seed, flip):
    x = np.random.default_rng(seed).standard_normal((4, 3, h, w)).astype(np.float32)
    got = RandomCropFlip(padding, flip=flip, fill=-7.0)(x, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)  # the documented draw order: offsets [N, 2], then flips [N]
    offsets = rng.integers(0, 2 * padding + 1, size=(4, 2))
    flips = rng.random(4) < 0.5 if flip else np.zeros(4, bool)
    np.testing.assert_array_equal(got, crop_flip_loop(x, padding, offsets, flips, -7.0))
    assert got.dtype == np.float32 and got.flags.c_contiguous


@given(st.integers(0, 4), st.integers(1, 6), st.integers(0, 2 ** 32 - 1))
def test_random_translate_flip_matches_the_loop_and_shares_the_shift_over_time(max_shift, size, seed):
    x = np.random.default_rng(seed).integers(0, 3, (3, 4, 2, size, size)).astype(np.float32)
    got = RandomTranslateFlip(max_shift)(x, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(3, 2))
    flips = rng.random(3) < 0.5
    np.testing.assert_array_equal(got, translate_flip_loop(x, shifts, flips))


def test_flip_only_conserves_events_and_mirrors():
    x = np.random.default_rng(0).integers(0, 5, (6, 3, 2, 5, 5)).astype(np.float32)
    got = RandomTranslateFlip(0)(x, np.random.default_rng(1))
    np.testing.assert_array_equal(got.sum(axis=(1, 2, 3, 4)), x.sum(axis=(1, 2, 3, 4)))
    for n in range(6):
        assert np.array_equal(got[n], x[n]) or np.array_equal(got[n], x[n, ..., ::-1])


def test_same_generator_state_same_output():
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    aug = RandomCropFlip(2)
    np.testing.assert_array_equal(aug(x, np.random.default_rng(5)), aug(x, np.random.default_rng(5)))
    assert not np.array_equal(aug(x, np.random.default_rng(5)), aug(x, np.random.default_rng(6)))


def test_argument_errors():
    with pytest.raises(ValueError, match="padding"):
        RandomCropFlip(-1)
    with pytest.raises(ValueError, match="max_shift"):
        RandomTranslateFlip(1.5)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        RandomCropFlip()(np.zeros((2, 3, 4)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        RandomTranslateFlip()(np.zeros((1, 1, 2, 3, 3)), 42)
