"""Writers of tiny files in the official formats, written from the format descriptions, not from the readers.

* CIFAR binary: records ``label byte(s) + 1024 R + 1024 G + 1024 B`` bytes.
* CIFAR python: the dict a Python 2 ``cPickle.dump(d, f, 2)`` writes, opcode by
  opcode (``SHORT_BINSTRING`` keys, NumPy's ``_reconstruct`` + ``BUILD`` arrays),
  checked against the stdlib ``pickle.loads(..., encoding="bytes")`` in the tests.
* IDX: big-endian magic ``0x0000 08 ndim``, sizes, bytes.
* AEDAT 2.0: ``#`` header lines, then big-endian uint32 (address, timestamp),
  address ``y << 8 | x << 1 | p``.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------ CIFAR
def cifar_records(pixels: np.ndarray, labels: list[np.ndarray]) -> bytes:
    """pixels uint8 [n, 3, 32, 32]; labels: one uint8 array per label byte, in record order."""
    out = bytearray()
    for i in range(pixels.shape[0]):
        for lab in labels:
            out.append(int(lab[i]))
        for c in range(3):
            for h in range(32):
                out += bytes(int(v) for v in pixels[i, c, h])
    return bytes(out)


def _short_binstring(b: bytes) -> bytes:
    assert len(b) < 256
    return b"U" + bytes([len(b)]) + b


def _binstring(b: bytes) -> bytes:
    return b"T" + struct.pack("<I", len(b)) + b


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _py2_uint8_array(a: np.ndarray) -> bytes:
    """How Python 2 cPickle (protocol 2) writes a C-contiguous uint8 ndarray."""
    assert a.dtype == np.uint8
    shape = b"(" + b"".join(_int(n) for n in a.shape) + b"t"
    dtype = (b"cnumpy\ndtype\n" + _short_binstring(b"u1") + _int(0) + _int(1) + b"\x87R"
             + b"(" + _int(3) + _short_binstring(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _int(0) + b"tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _int(0) + b"\x85"
            + _short_binstring(b"b") + b"\x87R"
            + b"(" + _int(1) + shape + dtype + b"\x89" + _binstring(a.tobytes()) + b"tb")


def py2_cifar_pickle(entries: dict[bytes, object]) -> bytes:
    """A protocol-2 pickle of a dict with bytes keys and uint8 array / int list / bytes list values."""
    out = b"\x80\x02}("
    for key, value in entries.items():
        out += _short_binstring(key)
        if isinstance(value, np.ndarray):
            out += _py2_uint8_array(value)
        elif all(isinstance(v, bytes) for v in value):
            out += b"](" + b"".join(_short_binstring(v) for v in value) + b"e"
        else:
            out += b"](" + b"".join(_int(int(v)) for v in value) + b"e"
    return out + b"u."


# ------------------------------------------------------------------ IDX
def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False, magic: int | None = None) -> Path:
    data = idx_bytes(array, magic)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


# ------------------------------------------------------------------ AEDAT 2.0
def aedat2_bytes(x, y, t, p, header: tuple[bytes, ...] = (b"#!AER-DAT2.0", b"# This is a raw AE data file",
                                                           b"# created by a test")) -> bytes:
    out = b"".join(line + b"\r\n" for line in header)
    for xi, yi, ti, pi in zip(x, y, t, p):
        address = (int(yi) << 8) | (int(xi) << 1) | int(pi)
        out += struct.pack(">II", address, int(ti))
    return out


def random_events(rng: np.random.Generator, n: int, size: int = 128, t_max: int = 100_000):
    """Columns (x, y, t, p) with sorted timestamps, as a DVS128 would emit them."""
    x = rng.integers(0, size, n)
    y = rng.integers(0, size, n)
    t = np.sort(rng.integers(0, t_max, n))
    p = rng.integers(0, 2, n)
    return x, y, t, p
