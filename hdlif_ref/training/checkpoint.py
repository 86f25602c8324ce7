"""Training checkpoints in HDF5: written atomically, read back exactly, refused clearly when damaged.

Layout (format ``"hdlif-checkpoint"``, version ``FORMAT_VERSION``; ``docs/training.md``)::

    bytes 0..511           HDF5 user block: the text header (see below)
    /                      attrs: format, format_version, hdlif_ref_version, epoch, step,
                                  best_metric (absent when None), config (JSON), rng_state (JSON)
    /model                 tree: the model's state_dict (one dataset per entry)
    /optimizer             tree: the optimizer's state_dict (or kind "none")
    /scheduler             tree: the schedule's state_dict (or kind "none")
    /extra                 tree: anything else the trainer keeps (or kind "none")

The header is ``hdlif-checkpoint\nformat_version 1\nbytes N\nsha256 HEX\n`` padded with
NUL bytes: ``N`` is the file's length and ``HEX`` the SHA-256 of every byte after the
header. HDF5 skips a user block, so the file stays an ordinary HDF5 file for h5py or
h5dump; ``load_checkpoint`` checks the header before HDF5 sees a byte, so a truncated
or corrupted file is refused without running the HDF5 library on damaged metadata
(which can crash or loop forever on some corruptions).

A *tree* stores nested dicts, lists and tuples of arrays and numbers with their
types: every node has an attribute ``kind``; ``dict`` groups list their keys (str
or int, in order) as JSON in ``keys`` and name their children by ``str(key)``;
``list``/``tuple`` groups (attribute ``length``) name theirs ``0, 1, ...``; leaves are
datasets (``array``, numpy ``scalar``, Python ``int``/``float``/``bool``/``str``, ``none``).
Every problem reading a file is a :class:`CheckpointError`.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
from typing import Any

import h5py
import numpy as np

from .._version import __version__

FORMAT = "hdlif-checkpoint"
FORMAT_VERSION = 1
PARTS = ("model_state", "optimizer_state", "scheduler_state", "extra", "epoch", "step", "rng_state",
         "config", "best_metric")
_TREES = {"model_state": "model", "optimizer_state": "optimizer", "scheduler_state": "scheduler",
          "extra": "extra"}
HEADER_BYTES = 512  # HDF5 user-block size: a power of two >= 512
_MAGIC = FORMAT.encode() + b"\n"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHUNK = 1 << 20
_KINDS = ("dict", "list", "tuple", "array", "scalar", "int", "float", "bool", "str", "none")


class CheckpointError(ValueError):
    """A checkpoint cannot be read (missing, not HDF5, truncated, corrupt, other format or
    version, missing part) or written (I/O failure). The message names the file and the cause."""


# --------------------------------------------------------------------------- saving
def save_checkpoint(path: str | os.PathLike, *, model_state: dict, optimizer_state: dict | None = None,
                    scheduler_state: dict | None = None, extra: Any = None, epoch: int = 0, step: int = 0,
                    rng_state: Any = None, config: Any = None, best_metric: float | None = None) -> None:
    """Write a checkpoint to ``path`` atomically: a temporary file in the same directory,
    flushed and fsynced, then ``os.replace``-d over ``path``.

    If anything fails, ``path`` is left as it was (an older checkpoint stays valid)
    and the temporary file is removed; an I/O failure raises ``CheckpointError``.

    Parameters
    ----------
    model_state : dict
        ``model.state_dict()`` (name -> ndarray).
    optimizer_state, scheduler_state : dict or None
        ``optimizer.state_dict()``, ``schedule.state_dict()``.
    extra : tree or None
        Anything else of dicts / lists / tuples / arrays / numbers / strings.
    epoch, step : int >= 0
        Epochs finished and optimizer steps taken.
    rng_state : JSON-able or None
        ``rng.bit_generator.state`` (a ``Generator`` anywhere inside is replaced by
        its bit generator's state), or a dict of several of them.
    config : JSON-able or None
        The resolved run configuration.
    best_metric : float or None
    """
    for name, value in (("epoch", epoch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"save_checkpoint: {name}={value!r} must be an integer >= 0")
    if best_metric is not None and (isinstance(best_metric, bool) or not isinstance(best_metric, numbers.Real)):
        raise ValueError(f"save_checkpoint: best_metric={best_metric!r} must be a real number or None")
    if not isinstance(model_state, dict):
        raise TypeError(f"save_checkpoint: model_state must be a dict (model.state_dict()), "
                        f"got {type(model_state).__name__}")
    trees = {"model_state": model_state, "optimizer_state": optimizer_state,
             "scheduler_state": scheduler_state, "extra": extra}
    parts = {**{k: _normalize(v, k) for k, v in trees.items()},
             "epoch": int(epoch), "step": int(step),
             "best_metric": None if best_metric is None else float(best_metric),
             "rng_state": _to_json_text("rng_state", rng_state),
             "config": _to_json_text("config", config)}

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path!r}: {e}") from e
    os.close(fd)
    try:
        # v110+: checksummed HDF5 metadata; the user block holds our header
        with h5py.File(tmp, "w", libver=("v110", "latest"), userblock_size=HEADER_BYTES) as f:
            root = f["/"].attrs
            root["format"] = FORMAT
            root["format_version"] = np.int64(FORMAT_VERSION)
            root["hdlif_ref_version"] = __version__
            root["epoch"] = np.int64(parts["epoch"])
            root["step"] = np.int64(parts["step"])
            if parts["best_metric"] is not None:
                root["best_metric"] = np.float64(parts["best_metric"])
            root["config"] = parts["config"]
            root["rng_state"] = parts["rng_state"]
            for key, group in _TREES.items():
                _write_tree(f, group, parts[key], group)
        _stamp_header(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        _remove_quietly(tmp)
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write checkpoint {path!r} (any previous file there is unchanged): "
                                  f"{type(e).__name__}: {e}") from e
        raise
    _fsync_directory(directory)


def _stamp_header(path: str) -> None:
    """Write the header (length and SHA-256 of the bytes after it) into the user block, then fsync."""
    with open(path, "r+b") as f:
        size, digest = _hash_after_header(f)
        text = (_MAGIC + f"format_version {FORMAT_VERSION}\nbytes {size}\nsha256 {digest}\n".encode())
        f.seek(0)
        f.write(text.ljust(HEADER_BYTES, b"\0"))
        f.flush()
        os.fsync(f.fileno())


def _hash_after_header(f: Any) -> tuple[int, str]:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(HEADER_BYTES)
    h = hashlib.sha256()
    for block in iter(lambda: f.read(_CHUNK), b""):
        h.update(block)
    return size, h.hexdigest()


def _check_header(path: str) -> None:
    """Refuse a file whose header is missing, of another version, or does not match its bytes."""
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
        if not head.startswith(_MAGIC):
            what = ("an HDF5 file without the hdlif-checkpoint header (another kind of HDF5 file)"
                    if head.startswith(_HDF5_SIGNATURE) else "not an HDF5 file")
            raise CheckpointError(f"checkpoint {path!r} is {what}; expected a file written by save_checkpoint")
        if len(head) < HEADER_BYTES:
            raise CheckpointError(f"checkpoint {path!r} is truncated: {len(head)} bytes, shorter than its header")
        fields = {}
        for line in head[len(_MAGIC):].rstrip(b"\0").decode("ascii", "replace").splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        try:
            version, size, digest = int(fields["format_version"]), int(fields["bytes"]), fields["sha256"]
        except (KeyError, ValueError):
            raise CheckpointError(f"checkpoint {path!r} is corrupt: its header is unreadable") from None
        if version != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path!r}: format version {version}; this hdlif-ref "
                                  f"({__version__}) reads version {FORMAT_VERSION}")
        actual_size, actual_digest = _hash_after_header(f)
    if actual_size != size:
        raise CheckpointError(f"checkpoint {path!r} is {'truncated' if actual_size < size else 'corrupt'}: "
                              f"{actual_size} bytes, its header says {size}")
    if actual_digest != digest:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: its bytes do not match the SHA-256 in its header")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _normalize(obj: Any, where: str) -> Any:
    """A copy of a tree with arrays contiguous, native-endian and checked; what loading returns."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral) and not isinstance(obj, np.generic):
        return int(obj)
    if isinstance(obj, float):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):
        arr = np.asarray(obj)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save_checkpoint: {where} has dtype {arr.dtype}; only bool, integer and float "
                            f"arrays are stored")
        arr = arr.astype(arr.dtype.newbyteorder("="), order="C", copy=True)  # keeps 0-d arrays 0-d
        return arr[()] if isinstance(obj, np.generic) else arr
    if isinstance(obj, dict):
        out = {}
        for key in obj:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"save_checkpoint: {where} has key {key!r}; keys must be str or int")
            if isinstance(key, str) and (key in ("", ".") or "/" in key):
                raise ValueError(f"save_checkpoint: {where} has key {key!r}; keys cannot be empty, '.' or contain '/'")
            out[key] = _normalize(obj[key], f"{where}[{key!r}]")
        if len({str(k) for k in out}) != len(out):
            raise ValueError(f"save_checkpoint: {where} has keys that coincide as text: {list(out)}")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_normalize(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    raise TypeError(f"save_checkpoint: {where} holds a {type(obj).__name__}; a checkpoint stores dicts, "
                    f"lists, tuples, arrays, numbers, strings and None")


def _to_json_text(name: str, obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.random.Generator):
            return o.bit_generator.state
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"save_checkpoint: {name} holds a {type(o).__name__}, which JSON cannot store")

    try:
        return json.dumps(obj, default=default, sort_keys=False)
    except ValueError as e:  # circular references
        raise ValueError(f"save_checkpoint: {name} cannot be written as JSON: {e}") from e


def _write_tree(parent: h5py.Group, name: str, obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        g = parent.create_group(name)
        g.attrs["kind"] = "dict"
        g.attrs["keys"] = json.dumps(list(obj))
        for key, value in obj.items():
            _write_tree(g, str(key), value, f"{where}/{key}")
    elif isinstance(obj, (list, tuple)):
        g = parent.create_group(name)
        g.attrs["kind"] = "tuple" if isinstance(obj, tuple) else "list"
        g.attrs["length"] = np.int64(len(obj))
        for i, value in enumerate(obj):
            _write_tree(g, str(i), value, f"{where}/{i}")
    else:
        kind, data = _leaf(obj)
        ds = parent.create_dataset(name, data=data) if data is not None else \
            parent.create_dataset(name, data=h5py.Empty("f8"))
        ds.attrs["kind"] = kind


def _leaf(obj: Any) -> tuple[str, Any]:
    if obj is None:
        return "none", None
    if isinstance(obj, bool):
        return "bool", np.bool_(obj)
    if isinstance(obj, int):
        if not -2**63 <= obj < 2**63:
            raise ValueError(f"save_checkpoint: integer {obj} does not fit in 64 bits")
        return "int", np.int64(obj)
    if isinstance(obj, float):
        return "float", np.float64(obj)
    if isinstance(obj, str):
        return "str", obj
    if isinstance(obj, np.generic):
        return "scalar", obj
    return "array", obj


# --------------------------------------------------------------------------- loading
def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns a dict with the keys of ``save_checkpoint``'s arguments (``PARTS``), so
    ``save_checkpoint(p2, **load_checkpoint(p1))`` copies a checkpoint; arrays come
    back bit for bit with their dtypes, and ``rng_state``/``config`` as parsed JSON.

    Raises
    ------
    CheckpointError
        The file is missing, is not HDF5, is truncated or corrupt (its length or
        SHA-256 differs from its header), is of another format or format version,
        or lacks a part. Nothing else escapes for a damaged file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r}: no such file")
    try:
        _check_header(path)
        with h5py.File(path, "r") as f:
            return _read_checkpoint(f, path, os.path.getsize(path))
    except CheckpointError:
        raise
    except Exception as e:  # h5py reports damaged files with OSError, KeyError, ValueError, TypeError, ...
        raise CheckpointError(f"checkpoint {path!r} is not a readable {FORMAT} file (not HDF5, truncated or "
                              f"corrupt): {type(e).__name__}: {e}") from e


def _read_checkpoint(f: h5py.File, path: str, file_size: int) -> dict[str, Any]:
    attrs = f.attrs
    fmt = _text(attrs.get("format"))
    if fmt != FORMAT:
        raise CheckpointError(f"checkpoint {path!r}: format attribute is {fmt!r}, expected {FORMAT!r} "
                              f"(not an hdlif-ref checkpoint)")
    version = attrs.get("format_version")
    if not isinstance(version, (np.integer, int)) or int(version) != FORMAT_VERSION:
        shown = int(version) if isinstance(version, (np.integer, int)) else repr(_text(version))
        raise CheckpointError(f"checkpoint {path!r}: format version {shown}; this hdlif-ref "
                              f"({__version__}) reads version {FORMAT_VERSION}")
    for key in ("epoch", "step", "config", "rng_state"):
        if key not in attrs:
            raise CheckpointError(f"checkpoint {path!r}: root attribute {key!r} is missing")
    parts: dict[str, Any] = {}
    for key, group in _TREES.items():
        if group not in f:
            raise CheckpointError(f"checkpoint {path!r}: group '/{group}' is missing")
        parts[key] = _read_tree(f[group], f"/{group}", path, file_size)
    parts["epoch"] = int(attrs["epoch"])
    parts["step"] = int(attrs["step"])
    parts["best_metric"] = float(attrs["best_metric"]) if "best_metric" in attrs else None
    parts["config"] = json.loads(_text(attrs["config"]))
    parts["rng_state"] = json.loads(_text(attrs["rng_state"]))
    if parts["model_state"] is None or not isinstance(parts["model_state"], dict):
        raise CheckpointError(f"checkpoint {path!r}: '/model' does not hold a state dict")
    return {k: parts[k] for k in PARTS}


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _read_tree(node: Any, where: str, path: str, file_size: int) -> Any:
    kind = _text(node.attrs.get("kind"))
    if kind not in _KINDS:
        raise CheckpointError(f"checkpoint {path!r}: {where} has kind {kind!r}; expected one of {_KINDS}")
    is_group = isinstance(node, h5py.Group)
    if is_group != (kind in ("dict", "list", "tuple")):
        raise CheckpointError(f"checkpoint {path!r}: {where} of kind {kind!r} is a "
                              f"{'group' if is_group else 'dataset'}")
    if kind == "dict":
        keys = json.loads(_text(node.attrs["keys"]))
        if not isinstance(keys, list) or any(isinstance(k, bool) or not isinstance(k, (str, int)) for k in keys):
            raise CheckpointError(f"checkpoint {path!r}: {where} has a malformed key list")
        if sorted(str(k) for k in keys) != sorted(node.keys()):
            raise CheckpointError(f"checkpoint {path!r}: {where} lists keys {keys} but holds {sorted(node.keys())}")
        return {k: _read_tree(node[str(k)], f"{where}/{k}", path, file_size) for k in keys}
    if kind in ("list", "tuple"):
        n = int(node.attrs["length"])
        if sorted(node.keys()) != sorted(str(i) for i in range(n)):
            raise CheckpointError(f"checkpoint {path!r}: {where} should hold items 0..{n - 1}, "
                                  f"holds {sorted(node.keys())}")
        items = [_read_tree(node[str(i)], f"{where}/{i}", path, file_size) for i in range(n)]
        return tuple(items) if kind == "tuple" else items
    if kind == "none":
        return None
    is_text = h5py.check_string_dtype(node.dtype) is not None
    if is_text != (kind == "str") or (not is_text and node.dtype.kind not in "biuf"):
        raise CheckpointError(f"checkpoint {path!r}: {where} of kind {kind!r} has dtype {node.dtype}")
    if node.size * node.dtype.itemsize > file_size:
        # a damaged header can declare a shape far larger than the file: do not allocate it
        raise CheckpointError(f"checkpoint {path!r}: {where} declares shape {node.shape} of {node.dtype}, "
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
    return _text(value)  # "str"
