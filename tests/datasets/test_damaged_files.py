"""Damaged files (truncated, bytes flipped, bytes appended) only ever raise DatasetFormatError.

Each reader either returns well-formed arrays or raises the documented error;
never another exception, a crash or a hang (every read is bounded by the file's size).
"""
from __future__ import annotations

import gzip
import io
import pickle

import h5py
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hdlif_ref.datasets import (DatasetFormatError, read_aedat2, read_cifar_binary, read_cifar_python_batch,
                                read_hdf5_events, read_idx, read_npz_events)
from hdlif_ref.datasets.mnist import IMAGES_MAGIC

from .formats import aedat2_bytes, cifar_records, idx_bytes, py2_cifar_pickle, random_events

_rng = np.random.default_rng(0)
_PIXELS = _rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
_LABELS = [3, 9]
_EVENTS = random_events(_rng, 20)


def _npz(compressed: bool) -> bytes:
    buf = io.BytesIO()
    x, y, t, p = _EVENTS
    (np.savez_compressed if compressed else np.savez)(buf, t=t, x=x, y=y, p=p)
    return buf.getvalue()


def _hdf5(tmp) -> bytes:
    path = tmp / "base.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for name, col in zip("xytp", _EVENTS):
            g.create_dataset(name, data=col)
    return path.read_bytes()


def _check_events(ev):
    assert ev.ndim == 1 and set(ev.dtype.names) == {"x", "y", "t", "p"}


def _check_images(result):
    pixels, labels = result
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (3, 32, 32)
    assert all(lab.shape == (pixels.shape[0],) for lab in labels)


FORMATS = {
    "cifar-binary": (lambda tmp: cifar_records(_PIXELS, [np.array(_LABELS)]), "b.bin",
                     lambda p: _check_images(read_cifar_binary(p, 1, (10,)))),
    "cifar-python-py2": (lambda tmp: py2_cifar_pickle({b"labels": _LABELS, b"data": _PIXELS.reshape(2, 3072)}), "b",
                         lambda p: _check_images(read_cifar_python_batch(p))),
    "cifar-python-p2": (lambda tmp: pickle.dumps({b"labels": _LABELS, b"data": _PIXELS.reshape(2, 3072)}, protocol=2),
                        "b", lambda p: _check_images(read_cifar_python_batch(p))),
    "cifar-python-p5": (lambda tmp: pickle.dumps({b"labels": _LABELS, b"data": _PIXELS.reshape(2, 3072)}, protocol=5),
                        "b", lambda p: _check_images(read_cifar_python_batch(p))),
    "idx": (lambda tmp: idx_bytes(_PIXELS[:, 0, :5, :7]), "i", lambda p: read_idx(p, IMAGES_MAGIC)),
    "idx-gz": (lambda tmp: gzip.compress(idx_bytes(_PIXELS[:, 0, :5, :7]), mtime=0), "i.gz",
               lambda p: read_idx(p, IMAGES_MAGIC)),
    "aedat": (lambda tmp: aedat2_bytes(*_EVENTS), "r.aedat", lambda p: _check_events(read_aedat2(p))),
    "npz": (lambda tmp: _npz(False), "r.npz", lambda p: _check_events(read_npz_events(p))),
    "npz-compressed": (lambda tmp: _npz(True), "r.npz", lambda p: _check_events(read_npz_events(p))),
    "hdf5": (_hdf5, "r.h5", lambda p: _check_events(read_hdf5_events(p))),
}


@st.composite
def damage(draw, size):
    kind = draw(st.sampled_from(["truncate", "flip", "append", "flip+truncate"]))
    ops = []
    if "flip" in kind:
        ops += [("flip", draw(st.integers(0, size - 1)), draw(st.integers(1, 255)))
                for _ in range(draw(st.integers(1, 8)))]
    if "truncate" in kind:
        ops.append(("truncate", draw(st.integers(0, size - 1)), 0))
    if kind == "append":
        ops.append(("append", 0, draw(st.binary(min_size=1, max_size=64))))
    return ops


def apply(blob: bytes, ops) -> bytes:
    data = bytearray(blob)
    for op, pos, value in ops:
        if op == "flip" and pos < len(data):
            data[pos] ^= value
        elif op == "truncate":
            del data[pos:]
        elif op == "append":
            data += value
    return bytes(data)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("damaged")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_undamaged_base_file_reads(workdir, fmt):
    make, name, read = FORMATS[fmt]
    path = workdir / f"ok-{name}"
    path.write_bytes(make(workdir))
    read(path)


@pytest.mark.parametrize("fmt", list(FORMATS))
@settings(max_examples=60)
@given(data=st.data())
def test_damaged_file_raises_only_the_documented_error(workdir, fmt, data):
    make, name, read = FORMATS[fmt]
    blob = make(workdir)
    damaged = apply(blob, data.draw(damage(len(blob))))
    path = workdir / f"damaged-{name}"
    path.write_bytes(damaged)
    try:
        read(path)
    except DatasetFormatError:
        pass
