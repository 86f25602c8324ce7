"""Readers for event files: AEDAT 2.0, ``.npz`` and HDF5 (docs/datasets.md, "Event files").

All return an :data:`~.events.EVENT_DTYPE` stream and raise
:class:`~.errors.DatasetFormatError` for a damaged file. Reads are bounded by
the file's size: AEDAT and ``.npz`` payloads are read in chunks up to what the
headers promise; an HDF5 dataset larger than its file could hold is refused
before it is read.
"""
from __future__ import annotations

import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._io import read_at_most, read_file_bytes
from .errors import DatasetFormatError
from .events import make_events

EVENT_KEYS = ("t", "x", "y", "p")
EVENT_SUFFIXES = (".aedat", ".npz", ".h5", ".hdf5")
# Deflate (zip, gzip, HDF5's gzip filter) cannot expand data more than ~1032x:
# a declared size beyond this bound cannot be genuine.
_MAX_EXPANSION = 1100
_SLACK = 1 << 20


def decode_aedat2_address(address: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DVS128 address word -> ``(x, y, p)``: ``x = (a & 0xFE) >> 1``, ``y = (a & 0x7F00) >> 8``, ``p = a & 1``."""
    a = address.astype(np.uint32)
    return (a & 0xFE) >> 1, (a & 0x7F00) >> 8, a & 1


def read_aedat2(path) -> np.ndarray:
    """Read an AEDAT 2.0 file (jAER; the original CIFAR10-DVS recordings).

    Layout: header lines that start with ``#`` (the first names the version,
    ``#!AER-DAT2.0``), each ending in ``\\n``; then 8-byte records of two
    big-endian uint32, address then timestamp (microseconds). Addresses are
    decoded by :func:`decode_aedat2_address`, without any flip or transposition
    (see :func:`~.cifar10_dvs.to_spikingjelly_orientation` for that).

    Truncation: the format has no length field and no checksum. A file cut inside its
    header, inside a record (a data length not a multiple of 8) or right after its header
    (no record at all) is refused; a file cut exactly at a record boundary cannot be told
    from a shorter recording and reads as one (docs/security.md: check the archive's
    checksums, or keep the recordings as ``.npz``, whose members carry a CRC-32).
    """
    path = Path(path)
    data = read_file_bytes(path)
    pos, version = 0, None
    while pos < len(data) and data[pos] == ord("#"):
        end = data.find(b"\n", pos)
        if end < 0:
            raise DatasetFormatError(f"{path}: AEDAT header line at byte {pos} has no end of line")
        line = data[pos:end].strip()
        if line.startswith(b"#!AER-DAT"):
            version = line[len(b"#!AER-DAT"):].decode("ascii", "replace")
        pos = end + 1
    if version is None:
        raise DatasetFormatError(f"{path}: no '#!AER-DAT2.0' header line; not an AEDAT file")
    if not version.startswith("2."):
        raise DatasetFormatError(f"{path}: AEDAT version {version!r}; only 2.0 is supported")
    body = len(data) - pos
    if body == 0:
        raise DatasetFormatError(f"{path}: no event record after the header; an empty recording, or a file cut "
                                 "right after its header")
    if body % 8:
        raise DatasetFormatError(f"{path}: {body} data bytes after the header is not a multiple of the "
                                 "8-byte (address, timestamp) record; the file is truncated")
    words = np.frombuffer(data, dtype=">u4", offset=pos).reshape(-1, 2)
    x, y, p = decode_aedat2_address(words[:, 0])
    return make_events(x, y, words[:, 1], p, source=str(path))


def _read_npy(zf: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DatasetFormatError(f"{path}: {member} has .npy version {version}; 1.0 and 2.0 are read")
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "iub":
            raise DatasetFormatError(f"{path}: {member} has dtype {dtype}, event columns are integers")
        nbytes = math.prod(shape) * dtype.itemsize
        body = read_at_most(f, nbytes + 1)
        if len(body) != nbytes:
            raise DatasetFormatError(f"{path}: {member} holds {len(body)} data bytes, its header promises {nbytes}")
    return np.frombuffer(body, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_npz_events(path) -> np.ndarray:
    """Read a ``.npz`` with 1-D integer arrays ``t, x, y, p`` (SpikingJelly's ``events_np`` files).

    Coordinates are taken as stored. The archive is read member by member
    without pickle (object arrays are refused) and without trusting the sizes
    in the headers.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [k for k in EVENT_KEYS if k + ".npy" not in names]
            if missing:
                raise DatasetFormatError(f"{path}: missing arrays {missing}; an event .npz holds {list(EVENT_KEYS)}")
            cols = {k: _read_npy(zf, k + ".npy", path) for k in EVENT_KEYS}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, TypeError,
            struct.error, NotImplementedError, RuntimeError, SyntaxError, UnicodeError, OverflowError, MemoryError,
            RecursionError) as exc:
        if isinstance(exc, (DatasetFormatError, FileNotFoundError)):
            raise
        raise DatasetFormatError(f"{path}: not a readable event .npz ({type(exc).__name__}: {exc!s:.120})") from None
    return _columns_to_events(cols, path)


def read_hdf5_events(path) -> np.ndarray:
    """Read an HDF5 event file: 1-D integer datasets ``t, x, y, p`` in the group ``events`` or at the root.

    Opened through :func:`~hdlif_ref._safe_files.open_h5`: a file with an external or
    dangling link, a virtual dataset or external raw storage anywhere in it is refused
    (:class:`~.errors.DatasetFormatError`) before a value is read (docs/security.md).
    """
    import h5py

    from .._safe_files import open_h5

    path = Path(path)
    bound = _MAX_EXPANSION * path.stat().st_size + _SLACK
    try:
        with open_h5(path, error=DatasetFormatError, what="HDF5 event file") as f:
            group = f["events"] if "events" in f and isinstance(f["events"], h5py.Group) else f
            missing = [k for k in EVENT_KEYS if not isinstance(group.get(k), h5py.Dataset)]
            if missing:
                raise DatasetFormatError(f"{path}: missing datasets {missing}; an event HDF5 file holds "
                                         f"{list(EVENT_KEYS)} in '/events' or at the root")
            cols = {}
            for k in EVENT_KEYS:
                ds = group[k]
                if ds.dtype.kind not in "iub" or ds.ndim != 1:
                    raise DatasetFormatError(f"{path}: dataset {k!r} must be 1-D integer, got {ds.dtype} {ds.shape}")
                if ds.size * ds.dtype.itemsize > bound:
                    raise DatasetFormatError(
                        f"{path}: dataset {k!r} declares {ds.size} values, more than the file can hold")
                cols[k] = ds[()]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        if isinstance(exc, (DatasetFormatError, FileNotFoundError)):
            raise
        raise DatasetFormatError(
            f"{path}: not a readable HDF5 event file ({type(exc).__name__}: {exc!s:.120})") from None
    return _columns_to_events(cols, path)


def _columns_to_events(cols: dict[str, np.ndarray], path: Path) -> np.ndarray:
    try:
        return make_events(cols["x"], cols["y"], cols["t"], cols["p"], source=str(path))
    except ValueError as exc:
        raise DatasetFormatError(str(exc)) from None


def read_events(path) -> np.ndarray:
    """Read an event file by its suffix: ``.aedat`` (2.0), ``.npz``, ``.h5`` / ``.hdf5``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".aedat":
        return read_aedat2(path)
    if suffix == ".npz":
        return read_npz_events(path)
    if suffix in (".h5", ".hdf5"):
        return read_hdf5_events(path)
    raise ValueError(f"{path}: unknown event file suffix {suffix!r}; allowed: {', '.join(EVENT_SUFFIXES)}")


def write_events_npz(path, events: np.ndarray) -> None:
    """Write a stream as ``.npz`` with keys ``t, x, y, p`` (the layout :func:`read_npz_events` reads), atomically."""
    from .._safe_files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, t=events["t"], x=events["x"], y=events["y"], p=events["p"])

    atomic_write(path, write)

