"""Event file readers: AEDAT 2.0, .npz and HDF5."""
from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest

from hdlif_ref.datasets import (EVENT_DTYPE, DatasetFormatError, read_aedat2, read_events, read_hdf5_events,
                                read_npz_events)
from hdlif_ref.datasets.event_files import decode_aedat2_address

from .formats import aedat2_bytes, random_events


def _check_same(events, x, y, t, p):
    assert events.dtype == EVENT_DTYPE
    for name, col in zip("xytp", (x, y, t, p)):
        np.testing.assert_array_equal(events[name], col)


def test_aedat2_address_decoding_by_hand():
    # a = 0b0_1010101_0110011_1: y = 0x55 = 85, x = 0x33 = 51, p = 1
    a = (85 << 8) | (51 << 1) | 1
    assert a == 0x5567
    x, y, p = decode_aedat2_address(np.array([a, 0x7FFF, 0], dtype=np.uint32))
    assert (x.tolist(), y.tolist(), p.tolist()) == ([51, 127, 0], [85, 127, 0], [1, 1, 0])


def test_aedat2_round_trip(tmp_path):
    x, y, t, p = random_events(np.random.default_rng(0), 200)
    path = tmp_path / "rec.aedat"
    path.write_bytes(aedat2_bytes(x, y, t, p))
    _check_same(read_aedat2(path), x, y, t, p)
    _check_same(read_events(path), x, y, t, p)


def test_aedat2_records_are_big_endian_address_then_timestamp(tmp_path):
    path = tmp_path / "one.aedat"
    path.write_bytes(b"#!AER-DAT2.0\r\n" + struct.pack(">II", (3 << 8) | (5 << 1) | 0, 123456))
    ev = read_aedat2(path)
    assert (ev["x"][0], ev["y"][0], ev["t"][0], ev["p"][0]) == (5, 3, 123456, 0)


@pytest.mark.parametrize("header, body, message", [
    ((b"# no version line",), b"", "no '#!AER-DAT2.0'"),
    ((b"#!AER-DAT3.1",), b"", "version"),
    ((b"#!AER-DAT2.0",), b"\0" * 12, "multiple of the 8-byte"),
    ((b"#!AER-DAT2.0", b"# cut right after the header"), b"", "no event record after the header"),
])
def test_aedat2_bad_header_or_truncation(tmp_path, header, body, message):
    path = tmp_path / "bad.aedat"
    path.write_bytes(aedat2_bytes([], [], [], [], header=header) + body)
    with pytest.raises(DatasetFormatError, match=message):
        read_aedat2(path)


def test_aedat2_header_without_newline(tmp_path):
    path = tmp_path / "bad.aedat"
    path.write_bytes(b"#!AER-DAT2.0")
    with pytest.raises(DatasetFormatError, match="end of line"):
        read_aedat2(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_round_trip(tmp_path, compressed):
    x, y, t, p = random_events(np.random.default_rng(1), 100)
    path = tmp_path / "rec.npz"
    (np.savez_compressed if compressed else np.savez)(path, t=t, x=x, y=y, p=p.astype(bool))
    _check_same(read_npz_events(path), x, y, t, p)
    _check_same(read_events(path), x, y, t, p)


def test_npz_missing_key_and_object_arrays(tmp_path):
    path = tmp_path / "rec.npz"
    np.savez(path, t=np.arange(3), x=np.arange(3), y=np.arange(3))
    with pytest.raises(DatasetFormatError, match=r"missing arrays \['p'\]"):
        read_npz_events(path)
    np.savez(path, t=np.arange(2), x=np.arange(2), y=np.arange(2), p=np.array([object(), 1], dtype=object))
    with pytest.raises(DatasetFormatError, match="dtype object"):
        read_npz_events(path)


def test_npz_values_out_of_range(tmp_path):
    path = tmp_path / "rec.npz"
    np.savez(path, t=np.arange(2), x=np.arange(2), y=np.arange(2), p=np.array([0, 2]))
    with pytest.raises(DatasetFormatError, match="polarity"):
        read_npz_events(path)
    np.savez(path, t=np.arange(2), x=np.array([0, -1]), y=np.arange(2), p=np.array([0, 1]))
    with pytest.raises(DatasetFormatError, match="x must lie"):
        read_npz_events(path)


@pytest.mark.parametrize("group", ["events", None])
def test_hdf5_round_trip(tmp_path, group):
    x, y, t, p = random_events(np.random.default_rng(2), 50)
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group(group) if group else f
        for name, col in zip("xytp", (x, y, t, p)):
            g.create_dataset(name, data=col, compression="gzip")
    _check_same(read_hdf5_events(path), x, y, t, p)
    _check_same(read_events(path), x, y, t, p)


def test_hdf5_missing_dataset_and_not_hdf5(tmp_path):
    path = tmp_path / "rec.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(DatasetFormatError, match="missing datasets"):
        read_events(path)
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetFormatError):
        read_events(path)


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=".aedat, .npz, .h5, .hdf5"):
        read_events(tmp_path / "x.csv")


def test_aedat2_cut_at_a_record_boundary_reads_as_a_shorter_recording(tmp_path):
    """The documented limit (docs/security.md): AEDAT 2.0 has no length, so this cut cannot be detected."""
    x, y, t, p = random_events(np.random.default_rng(5), 50)
    whole = aedat2_bytes(x, y, t, p)
    path = tmp_path / "cut.aedat"
    path.write_bytes(whole[:len(whole) - 8 * 20])
    _check_same(read_aedat2(path), x[:30], y[:30], t[:30], p[:30])
