"""Frame binning against plain loops written here from the definitions (SpikingJelly's segment indices)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from hdlif_ref.datasets import bin_events, make_events


def loop_bins(x, y, t, p, T, split_by, H, W, Ho, Wo):
    """Reference: SpikingJelly's cal_fixed_frames_number_segment_index ("number"), equal windows ("time")."""
    n = len(x)
    frames = np.zeros((T, 2, Ho, Wo))
    if split_by == "number":
        di = n // T
        j_l = [i * di for i in range(T)]
        j_r = [i * di + di for i in range(T)]
        j_r[-1] = n
        segments = [range(j_l[i], j_r[i]) for i in range(T)]
        frame_of = {}
        for f, seg in enumerate(segments):
            for k in seg:
                frame_of[k] = f
    else:
        t0, t1 = (min(t), max(t)) if n else (0, 0)
        frame_of = {}
        for k in range(n):
            if t1 == t0:
                frame_of[k] = 0
                continue
            f = 0
            # the frame is the last window whose left edge t0 + f (t1 - t0) / T is <= t[k]
            while f + 1 < T and (t[k] - t0) * T >= (f + 1) * (t1 - t0):
                f += 1
            frame_of[k] = f
    for k in range(n):
        frames[frame_of[k], p[k], (y[k] * Ho) // H, (x[k] * Wo) // W] += 1
    return frames


@st.composite
def streams(draw):
    H = draw(st.integers(1, 12))
    W = draw(st.integers(1, 12))
    n = draw(st.integers(0, 60))
    x = draw(st.lists(st.integers(0, W - 1), min_size=n, max_size=n))
    y = draw(st.lists(st.integers(0, H - 1), min_size=n, max_size=n))
    t = sorted(draw(st.lists(st.integers(0, 50), min_size=n, max_size=n)))
    p = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    T = draw(st.integers(1, 9))
    Ho = draw(st.integers(1, H))
    Wo = draw(st.integers(1, W))
    return x, y, t, p, T, H, W, Ho, Wo


@given(streams(), st.sampled_from(["number", "time"]))
def test_binning_matches_the_plain_loop_and_conserves_counts(stream, split_by):
    x, y, t, p, T, H, W, Ho, Wo = stream
    events = make_events(np.array(x, np.int64), np.array(y, np.int64), np.array(t, np.int64), np.array(p, np.int64))
    frames = bin_events(events, T, (H, W), split_by, (Ho, Wo))
    assert frames.dtype == np.float32 and frames.shape == (T, 2, Ho, Wo)
    np.testing.assert_array_equal(frames, loop_bins(x, y, t, p, T, split_by, H, W, Ho, Wo))
    assert frames.sum() == len(x)


def test_number_split_puts_the_remainder_in_the_last_frame():
    n, T = 10, 3  # 3 + 3 + 4 events
    events = make_events(np.zeros(n, int), np.zeros(n, int), np.arange(n), np.ones(n, int))
    frames = bin_events(events, T, (1, 1), "number")
    assert frames[:, 1, 0, 0].tolist() == [3, 3, 4]
    few = bin_events(events[:2], T, (1, 1), "number")  # fewer events than frames: all in the last
    assert few[:, 1, 0, 0].tolist() == [0, 0, 2]


def test_time_split_edges_are_left_closed_and_the_last_window_closed():
    t = np.array([0, 9, 10, 19, 20, 30])          # T = 3 windows over [0, 30]: [0,10) [10,20) [20,30]
    events = make_events(np.zeros(6, int), np.zeros(6, int), t, np.zeros(6, int))
    frames = bin_events(events, 3, (1, 1), "time")
    assert frames[:, 0, 0, 0].tolist() == [2, 2, 2]


def test_cifar10_dvs_downsampling_128_to_48_maps_columns_by_floor():
    x = np.arange(128)
    events = make_events(x, np.zeros(128, int), np.zeros(128, int), np.zeros(128, int))
    frames = bin_events(events, 1, (128, 128), "number", (48, 48))
    row = frames[0, 0, 0]
    assert row.sum() == 128
    # output column c collects inputs x with floor(48 x / 128) = c, i.e. x in [ceil(128 c / 48), ceil(128 (c+1) / 48))
    for c in range(48):
        lo, hi = -(-128 * c // 48), -(-128 * (c + 1) // 48)
        assert row[c] == hi - lo


@pytest.mark.parametrize("kwargs, message", [
    (dict(T=0), "T=0"),
    (dict(T=2, split_by="count"), "split_by"),
    (dict(T=2, sensor_size=(4, 4)), "outside sensor_size"),
    (dict(T=2, out_size=(0, 3)), "out_size"),
])
def test_bad_arguments(kwargs, message):
    events = make_events(np.array([5]), np.array([1]), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match=message):
        bin_events(events, **kwargs)


def test_non_event_input_is_a_type_error():
    with pytest.raises(TypeError, match="structured array"):
        bin_events(np.zeros((3, 4)), 2)


def test_make_events_checks_columns():
    with pytest.raises(ValueError, match="differ in length"):
        make_events([1, 2], [1], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="polarity"):
        make_events([1], [1], [0], [3])
    with pytest.raises(ValueError, match="integer"):
        make_events([1.5], [1], [0], [1])
