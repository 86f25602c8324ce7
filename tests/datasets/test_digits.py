"""The embedded digits: fixed stratified split, normalisation, upsampling, knobs, the missing-extra message."""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the 'data' extra; the README's test command installs it

from sklearn.datasets import load_digits  # noqa: E402

from hdlif_ref.datasets import get_dataset  # noqa: E402
from hdlif_ref.datasets.digits import SPLIT_SEED, TEST_FRACTION, load_digits_arrays, train_statistics  # noqa: E402


def test_split_is_stratified_disjoint_and_complete():
    bunch = load_digits()
    train = get_dataset("digits", "train", normalize="none")
    test = get_dataset("digits", "test", normalize="none")
    assert len(train) + len(test) == 1797
    for c in range(10):
        n_c = int((bunch.target == c).sum())
        assert (test.targets == c).sum() == round(TEST_FRACTION * n_c)
        assert (train.targets == c).sum() == n_c - round(TEST_FRACTION * n_c)
    # every source image is in exactly one split: match rows back to the bunch
    source = {bytes(img.astype(np.uint8).tobytes()) + bytes([t]) for img, t in zip(bunch.images, bunch.target)}
    ours = [bytes(x[0].astype(np.uint8).tobytes()) + bytes([int(t)])
            for ds in (train, test) for x, t in zip(ds.data, ds.targets)]
    assert set(ours) == source


def test_split_follows_the_documented_seeded_recipe():
    bunch = load_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    test_idx = []
    for c in range(10):
        members = np.flatnonzero(bunch.target == c)
        members = members[rng.permutation(len(members))]
        test_idx += list(members[:round(TEST_FRACTION * len(members))])
    test = get_dataset("digits", "test", normalize="none")
    np.testing.assert_array_equal(test.data[:, 0], bunch.images[np.sort(test_idx)])


def test_standard_normalisation_gives_zero_mean_unit_std_on_train():
    train = get_dataset("digits", "train")
    assert train.data.dtype == np.float32 and train.data.shape == (len(train), 1, 8, 8)
    assert abs(float(train.data.astype(np.float64).mean())) < 1e-5
    assert abs(float(train.data.astype(np.float64).std()) - 1.0) < 1e-5
    mean, std = train_statistics()
    raw = get_dataset("digits", "test", normalize="none").data
    np.testing.assert_allclose(get_dataset("digits", "test").data, (raw / 16.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(get_dataset("digits", "test", normalize="unit").data, raw / 16.0, rtol=1e-6)


def test_upsample_repeats_each_pixel_into_a_2x2_block():
    small = get_dataset("digits", "test").data
    big = get_dataset("digits", "test", upsample=True).data
    assert big.shape == (small.shape[0], 1, 16, 16)
    for r in range(16):
        for c in range(16):
            np.testing.assert_array_equal(big[:, 0, r, c], small[:, 0, r // 2, c // 2])


def test_train_fraction_is_stratified_deterministic_and_a_subset():
    full = get_dataset("digits", "train", normalize="none")
    part = get_dataset("digits", "train", normalize="none", train_fraction=0.1, seed=3)
    again = get_dataset("digits", "train", normalize="none", train_fraction=0.1, seed=3)
    other = get_dataset("digits", "train", normalize="none", train_fraction=0.1, seed=4)
    np.testing.assert_array_equal(part.data, again.data)
    assert not np.array_equal(part.data, other.data)
    for c in range(10):
        assert (part.targets == c).sum() == max(1, round(0.1 * (full.targets == c).sum()))
    rows = {x.tobytes() for x in full.data}
    assert all(x.tobytes() in rows for x in part.data)
    assert len(get_dataset("digits", "test", train_fraction=0.1)) == len(get_dataset("digits", "test"))


def test_noise_is_additive_gaussian_and_reproducible():
    clean = get_dataset("digits", "train").data.astype(np.float64)
    noisy = get_dataset("digits", "train", noise=0.5, seed=7).data.astype(np.float64)
    np.testing.assert_array_equal(noisy, get_dataset("digits", "train", noise=0.5, seed=7).data)
    delta = (noisy - clean).ravel()
    # 92,032 draws: the sample std of N(0, 0.25) is within 1% of 0.5 with overwhelming probability
    assert abs(delta.std() - 0.5) < 0.005 and abs(delta.mean()) < 0.005
    assert not np.array_equal(noisy, get_dataset("digits", "train", noise=0.5, seed=8).data)


@pytest.mark.parametrize("option, value", [("train_fraction", 0.0), ("train_fraction", 1.5), ("noise", -1.0),
                                           ("seed", -1), ("normalize", "zscore")])
def test_bad_knobs(option, value):
    with pytest.raises(ValueError, match=option):
        get_dataset("digits", "train", **{option: value})


def test_missing_scikit_learn_names_the_data_extra(monkeypatch):
    load_digits_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import of it raises ImportError
    try:
        with pytest.raises(ImportError, match=r"pip install 'hdlif-ref\[data\]'"):
            get_dataset("digits", "train")
    finally:
        load_digits_arrays.cache_clear()
