"""Sealed HDF5 files: typed trees of arrays, a checksum header, atomic writes.

Shared by training checkpoints (``training/checkpoint.py``) and frozen models
(``deploy/frozen_io.py``). Imports only numpy and h5py, so any floor may use it.

* **Header.** The 512-byte HDF5 user block holds ``<format>\\nformat_version V\\n
  bytes N\\nsha256 HEX\\n`` padded with NUL bytes: ``N`` is the file's length and ``HEX``
  the SHA-256 of every byte after the header. HDF5 skips a user block, so the file
  stays an ordinary HDF5 file; readers check the header before HDF5 sees a byte,
  so a truncated or corrupted file is refused without running the HDF5 library on
  damaged metadata (which can loop forever on some corruptions: found by fuzzing).
* **Trees.** Nested dicts, lists and tuples of arrays, numbers, strings and
  ``None`` with their types: every node has an attribute ``kind``; ``dict`` groups
  list their keys (str or int, in order) as JSON in ``keys`` and name children by
  ``str(key)``; ``list``/``tuple`` groups (attribute ``length``) name theirs ``0, 1,
  ...``; leaves are datasets (``array``, numpy ``scalar``, ``int``, ``float``, ``bool``,
  ``str``, ``none``).
* **Atomic writes.** The file is built in memory (:func:`~._safe_files.h5_file_image`),
  its header stamped, and the bytes written by :func:`~._safe_files.atomic_write`: on any
  failure the previous file is untouched and an OS error is one
  :class:`~._safe_files.FileWriteError` line.
* **Reading** goes through :func:`~._safe_files.open_h5`, which refuses links, virtual
  datasets and external storage that would make HDF5 read another file: the checksum
  says the bytes are the ones the writer stamped (integrity), not who wrote them, and
  anyone can re-stamp a file (docs/security.md).
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
from typing import Any, Callable

import h5py
import numpy as np

from ._safe_files import atomic_write, h5_file_image, open_h5

HEADER_BYTES = 512  # HDF5 user-block size: a power of two >= 512
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
KINDS = ("dict", "list", "tuple", "array", "scalar", "int", "float", "bool", "str", "none")
_CHUNK = 1 << 20


class Sealed:
    """One sealed file format: its name, version, the noun used in messages, and its error type."""

    def __init__(self, fmt: str, version: int, noun: str, error: type[Exception]):
        self.fmt, self.version, self.noun, self.error = fmt, int(version), noun, error
        self.magic = fmt.encode() + b"\n"

    # ------------------------------------------------------------------ header
    def header(self, size: int, digest: str) -> bytes:
        """The 512-byte header for a file of ``size`` bytes whose bytes after the header hash to ``digest``."""
        text = self.magic + f"format_version {self.version}\nbytes {size}\nsha256 {digest}\n".encode()
        return text.ljust(HEADER_BYTES, b"\0")

    def stamp_header(self, path: str) -> None:
        """Write the header (length and SHA-256 of the bytes after it) into the user block of a file on
        disk, then fsync (tests use it to simulate other writers, as anyone can)."""
        with open(path, "r+b") as f:
            size, digest = _hash_after_header(f)
            f.seek(0)
            f.write(self.header(size, digest))
            f.flush()
            os.fsync(f.fileno())

    def check_header(self, path: str) -> None:
        """Refuse a file whose header is missing, of another version, or does not match its bytes."""
        noun, err = self.noun, self.error
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            if not head.startswith(self.magic):
                what = (f"an HDF5 file without the {self.fmt} header (another kind of HDF5 file)"
                        if head.startswith(HDF5_SIGNATURE) else "not an HDF5 file")
                raise err(f"{noun} {path!r} is {what}; expected a file written by hdlif-ref")
            if len(head) < HEADER_BYTES:
                raise err(f"{noun} {path!r} is truncated: {len(head)} bytes, shorter than its header")
            fields = {}
            for line in head[len(self.magic):].rstrip(b"\0").decode("ascii", "replace").splitlines():
                key, _, value = line.partition(" ")
                fields[key] = value
            try:
                version, size, digest = int(fields["format_version"]), int(fields["bytes"]), fields["sha256"]
            except (KeyError, ValueError):
                raise err(f"{noun} {path!r} is corrupt: its header is unreadable") from None
            if version != self.version:
                raise err(f"{noun} {path!r}: format version {version}; this hdlif-ref reads version {self.version}")
            actual_size, actual_digest = _hash_after_header(f)
        if actual_size != size:
            raise err(f"{noun} {path!r} is {'truncated' if actual_size < size else 'corrupt'}: "
                      f"{actual_size} bytes, its header says {size}")
        if actual_digest != digest:
            raise err(f"{noun} {path!r} is corrupt: its bytes do not match the SHA-256 in its header")

    # ------------------------------------------------------------------ writing
    def write(self, path: str | os.PathLike, fill: Callable[[h5py.File], None]) -> None:
        """Create ``path`` atomically: ``fill(f)`` writes the content; format attributes and header are added.

        The file is built in memory, so an exception of ``fill`` leaves nothing on disk; an OS
        error while writing is a :class:`~._safe_files.FileWriteError` naming the path.
        """
        def fill_all(f: h5py.File) -> None:
            f.attrs["format"] = self.fmt
            f.attrs["format_version"] = np.int64(self.version)
            fill(f)

        # v110+: checksummed HDF5 metadata; the user block holds our header
        image = h5_file_image(fill_all, libver=("v110", "latest"), userblock_size=HEADER_BYTES)
        body = memoryview(image)[HEADER_BYTES:]
        header = self.header(len(image), hashlib.sha256(body).hexdigest())

        def write(tmp: str) -> None:  # header and body written in turn: no third copy of a large file
            with open(tmp, "wb") as fh:
                fh.write(header)
                fh.write(body)

        atomic_write(path, write)

    def write_tree(self, parent: h5py.Group, name: str, obj: Any) -> None:
        """Store a tree (normalize it first with :meth:`normalize`)."""
        if isinstance(obj, dict):
            g = parent.create_group(name)
            g.attrs["kind"] = "dict"
            g.attrs["keys"] = json.dumps(list(obj))
            for key, value in obj.items():
                self.write_tree(g, str(key), value)
        elif isinstance(obj, (list, tuple)):
            g = parent.create_group(name)
            g.attrs["kind"] = "tuple" if isinstance(obj, tuple) else "list"
            g.attrs["length"] = np.int64(len(obj))
            for i, value in enumerate(obj):
                self.write_tree(g, str(i), value)
        else:
            kind, data = self._leaf(obj)
            ds = parent.create_dataset(name, data=data) if data is not None else \
                parent.create_dataset(name, data=h5py.Empty("f8"))
            ds.attrs["kind"] = kind

    def _leaf(self, obj: Any) -> tuple[str, Any]:
        if obj is None:
            return "none", None
        if isinstance(obj, bool):
            return "bool", np.bool_(obj)
        if isinstance(obj, int):
            if not -2**63 <= obj < 2**63:
                raise ValueError(f"{self.noun}: integer {obj} does not fit in 64 bits")
            return "int", np.int64(obj)
        if isinstance(obj, float):
            return "float", np.float64(obj)
        if isinstance(obj, str):
            return "str", obj
        if isinstance(obj, np.generic):
            return "scalar", obj
        return "array", obj

    def normalize(self, obj: Any, where: str) -> Any:
        """A copy of a tree with arrays contiguous, native-endian and checked; what reading returns."""
        who = f"save {self.noun}"
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, numbers.Integral) and not isinstance(obj, np.generic):
            return int(obj)
        if isinstance(obj, float):
            return obj
        if isinstance(obj, (np.ndarray, np.generic)):
            arr = np.asarray(obj)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{who}: {where} has dtype {arr.dtype}; only bool, integer and float arrays are stored")
            arr = arr.astype(arr.dtype.newbyteorder("="), order="C", copy=True)  # keeps 0-d arrays 0-d
            return arr[()] if isinstance(obj, np.generic) else arr
        if isinstance(obj, dict):
            out = {}
            for key in obj:
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"{who}: {where} has key {key!r}; keys must be str or int")
                if isinstance(key, str) and (key in ("", ".") or "/" in key):
                    raise ValueError(f"{who}: {where} has key {key!r}; keys cannot be empty, '.' or contain '/'")
                out[key] = self.normalize(obj[key], f"{where}[{key!r}]")
            if len({str(k) for k in out}) != len(out):
                raise ValueError(f"{who}: {where} has keys that coincide as text: {list(out)}")
            return out
        if isinstance(obj, (list, tuple)):
            items = [self.normalize(v, f"{where}[{i}]") for i, v in enumerate(obj)]
            return tuple(items) if isinstance(obj, tuple) else items
        raise TypeError(f"{who}: {where} holds a {type(obj).__name__}; only dicts, lists, tuples, arrays, "
                        f"numbers, strings and None are stored")

    # ------------------------------------------------------------------ reading
    def read(self, path: str | os.PathLike, parse: Callable[[h5py.File, str, int], Any]) -> Any:
        """Check the header, open the file, check format and version, return ``parse(f, path, size)``.

        Every failure is ``self.error`` (a damaged file never escapes as an h5py exception).
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise self.error(f"{self.noun} {path!r}: no such file")
        if not os.path.isfile(path):
            what = "a directory" if os.path.isdir(path) else "not a regular file"
            raise self.error(f"{self.noun} {path!r} is {what}; expected a file written by hdlif-ref")
        try:
            self.check_header(path)
            with open_h5(path, error=self.error, what=self.noun) as f:
                fmt = text(f.attrs.get("format"))
                if fmt != self.fmt:
                    raise self.error(f"{self.noun} {path!r}: format attribute is {fmt!r}, expected {self.fmt!r}")
                version = f.attrs.get("format_version")
                if not isinstance(version, (np.integer, int)) or int(version) != self.version:
                    shown = int(version) if isinstance(version, (np.integer, int)) else repr(text(version))
                    raise self.error(f"{self.noun} {path!r}: format version {shown}; this hdlif-ref reads "
                                     f"version {self.version}")
                return parse(f, path, os.path.getsize(path))
        except self.error:
            raise
        except Exception as e:  # h5py reports damaged files with OSError, KeyError, ValueError, TypeError, ...
            raise self.error(f"{self.noun} {path!r} is not a readable {self.fmt} file (not HDF5, truncated or "
                             f"corrupt): {type(e).__name__}: {e}") from e

    def read_tree(self, node: Any, where: str, path: str, file_size: int) -> Any:
        """Read back what :meth:`write_tree` stored, checking every node."""
        err, noun = self.error, self.noun
        kind = text(node.attrs.get("kind"))
        if kind not in KINDS:
            raise err(f"{noun} {path!r}: {where} has kind {kind!r}; expected one of {KINDS}")
        is_group = isinstance(node, h5py.Group)
        if is_group != (kind in ("dict", "list", "tuple")):
            raise err(f"{noun} {path!r}: {where} of kind {kind!r} is a {'group' if is_group else 'dataset'}")
        if kind == "dict":
            keys = json.loads(text(node.attrs["keys"]))
            if not isinstance(keys, list) or any(isinstance(k, bool) or not isinstance(k, (str, int)) for k in keys):
                raise err(f"{noun} {path!r}: {where} has a malformed key list")
            if sorted(str(k) for k in keys) != sorted(node.keys()):
                raise err(f"{noun} {path!r}: {where} lists keys {keys} but holds {sorted(node.keys())}")
            return {k: self.read_tree(node[str(k)], f"{where}/{k}", path, file_size) for k in keys}
        if kind in ("list", "tuple"):
            n = int(node.attrs["length"])
            if sorted(node.keys()) != sorted(str(i) for i in range(n)):
                raise err(f"{noun} {path!r}: {where} should hold items 0..{n - 1}, holds {sorted(node.keys())}")
            items = [self.read_tree(node[str(i)], f"{where}/{i}", path, file_size) for i in range(n)]
            return tuple(items) if kind == "tuple" else items
        if kind == "none":
            return None
        is_text = h5py.check_string_dtype(node.dtype) is not None
        if is_text != (kind == "str") or (not is_text and node.dtype.kind not in "biuf"):
            raise err(f"{noun} {path!r}: {where} of kind {kind!r} has dtype {node.dtype}")
        if node.size * node.dtype.itemsize > file_size:
            # a damaged header can declare a shape far larger than the file: do not allocate it
            raise err(f"{noun} {path!r}: {where} declares shape {node.shape} of {node.dtype}, "
                      f"more than the file's {file_size} bytes")
        value = node[()]
        if kind == "array":
            return np.array(value, dtype=node.dtype)
        if kind == "scalar":
            return node.dtype.type(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return bool(value)
        return text(value)  # "str"


def text(value: Any) -> Any:
    """An HDF5 string attribute as ``str`` (h5py may return bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _hash_after_header(f: Any) -> tuple[int, str]:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(HEADER_BYTES)
    h = hashlib.sha256()
    for block in iter(lambda: f.read(_CHUNK), b""):
        h.update(block)
    return size, h.hexdigest()
