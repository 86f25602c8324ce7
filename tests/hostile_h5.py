"""Hostile HDF5 files built by hand with h5py, and a watch that proves no other file was opened.

Every HDF5 reader of the package is tested with these (tests/test_safe_files.py and the
readers' own tests): a valid file of the reader's format has one dataset the reader reads
replaced by something that reaches outside the file (:data:`WAYS_OUT`). The outside target
holds a *valid* replacement (same dtype, shape and attributes, other values), so a reader
that followed it would succeed with numbers from another file. :class:`OpenWatch` records,
with Linux inotify, every open or read of the outside targets, by any process (the golden
reader runs in a child process).
"""
from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import h5py
import numpy as np

#: How a dataset is made to reach outside its file.
WAYS_OUT = ("external_link", "external_link_group", "virtual", "external_storage", "soft_dangling",
            "soft_loop", "unknown_filter")
#: The ways that name another file (the others are refused without anything to watch).
OUTSIDE_TARGETS = {"external_link": "target.h5", "external_link_group": "target.h5", "virtual": "target.h5",
                   "external_storage": "known.bin"}
KNOWN_BYTES = b"root:x:0:0:root:/root:/bin/bash\n" * 64  # what /etc/passwd would give

_IN_ACCESS, _IN_OPEN = 0x1, 0x20


class OpenWatch:
    """``with OpenWatch(paths) as w: ...`` then ``w.events``: (file name, 'open'/'read') seen by inotify."""

    def __init__(self, paths):
        self.paths = [os.fspath(p) for p in paths]
        self.events: list[tuple[str, str]] = []

    def __enter__(self) -> "OpenWatch":
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._watches = {}
        for p in self.paths:
            wd = self._libc.inotify_add_watch(self._fd, p.encode(), _IN_OPEN | _IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch({p!r}) failed")
            self._watches[wd] = p
        return self

    def __exit__(self, *exc) -> None:
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            data = b""
        finally:
            os.close(self._fd)
        pos = 0
        while pos + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, pos)
            pos += 16 + length
            kind = "open" if mask & _IN_OPEN else "read" if mask & _IN_ACCESS else hex(mask)
            self.events.append((os.path.basename(self._watches.get(wd, "?")), kind))


def make_targets(directory: Path, like: np.ndarray, attrs: dict) -> None:
    """``target.h5`` (dataset ``/data``, and a group ``/g/data``, both like ``like`` with other values and
    the same attributes) and ``known.bin`` (bytes of known content) in ``directory``."""
    other = _other_values(like)
    with h5py.File(directory / "target.h5", "w") as f:
        for name in ("data", "g/data"):
            ds = f.create_dataset(name, data=other)
            for k, v in attrs.items():
                ds.attrs[k] = v
    (directory / "known.bin").write_bytes(KNOWN_BYTES * max(1, like.nbytes // len(KNOWN_BYTES) + 1))


def _other_values(like: np.ndarray) -> np.ndarray:
    if like.dtype.kind == "f":
        return np.full(like.shape, 1.4e27, dtype=like.dtype)
    if like.dtype.kind == "b":
        return ~like
    return (like.astype(np.int64) + 1).astype(like.dtype)


def reach_outside(path: Path, dataset: str, way: str) -> list[Path]:
    """Replace ``dataset`` of the HDF5 file ``path`` so that it reaches outside the file in ``way``.

    Keeps the user block (a sealed file's header can then be re-stamped, as an attacker
    would). Returns the outside files to watch (they are created next to ``path``).
    """
    directory = path.parent
    with h5py.File(path, "r+") as f:
        old = f[dataset]
        like, attrs = np.asarray(old[()]), dict(old.attrs)
        parent_name, _, leaf = dataset.rpartition("/")
        parent = f[parent_name] if parent_name else f
        make_targets(directory, like, attrs)
        del parent[leaf]
        if way == "external_link":
            parent[leaf] = h5py.ExternalLink("target.h5", "/data")
        elif way == "external_link_group":  # an external group somewhere else, the dataset a soft link into it
            f["outside"] = h5py.ExternalLink("target.h5", "/g")
            parent[leaf] = h5py.SoftLink("/outside/data")
        elif way == "virtual":
            layout = h5py.VirtualLayout(shape=like.shape, dtype=like.dtype)
            layout[...] = h5py.VirtualSource("target.h5", "data", shape=like.shape)
            ds = parent.create_virtual_dataset(leaf, layout)
            _copy_attrs(ds, attrs)
        elif way == "external_storage":
            ds = parent.create_dataset(leaf, shape=like.shape, dtype=like.dtype,
                                       external=[("known.bin", 0, max(like.nbytes, 1))])
            _copy_attrs(ds, attrs)
        elif way == "soft_dangling":
            parent[leaf] = h5py.SoftLink("/nothing/here")
        elif way == "soft_loop":
            f["loop_a"] = h5py.SoftLink("/loop_b")
            f["loop_b"] = h5py.SoftLink("/loop_a")
            parent[leaf] = h5py.SoftLink("/loop_a")
        elif way == "unknown_filter":
            _unknown_filter_dataset(parent, leaf, like)
            _copy_attrs(parent[leaf], attrs)
        else:
            raise ValueError(f"way={way!r}; allowed: {WAYS_OUT}")
    name = OUTSIDE_TARGETS.get(way)
    return [directory / name] if name else []


def add_unread_external_link(path: Path) -> list[Path]:
    """An external link at a path no reader asks for: the walk must still refuse the file."""
    with h5py.File(path, "r+") as f:
        make_targets(path.parent, np.zeros(3), {})
        f["zz_unread"] = h5py.ExternalLink("target.h5", "/data")
    return [path.parent / "target.h5"]


def _copy_attrs(ds, attrs: dict) -> None:
    for k, v in attrs.items():
        ds.attrs[k] = v


def _unknown_filter_dataset(parent, leaf: str, like: np.ndarray) -> None:
    """A chunked dataset whose pipeline names filter 307 (bzip2's registered id: a plugin), marked optional
    so that HDF5 writes it without the plugin."""
    shape = like.shape if like.ndim else (1,)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(tuple(max(1, s) for s in shape))
    dcpl.set_filter(307, h5py.h5z.FLAG_OPTIONAL, ())
    space = h5py.h5s.create_simple(shape)
    tid = h5py.h5t.py_create(like.dtype)
    dsid = h5py.h5d.create(parent.id, leaf.encode(), tid, space, dcpl=dcpl)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(like.reshape(shape)))
