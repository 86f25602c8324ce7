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
Every problem reading a file is a :class:`CheckpointError`; a failure writing one is a
:class:`~hdlif_ref._safe_files.FileWriteError` (an ``OSError``). The header, trees and
atomic write live in :mod:`hdlif_ref._sealed_h5`, shared with frozen models. A file is
opened only when nothing in it reaches outside it (no external links, virtual datasets or
external storage; docs/security.md): the SHA-256 header is a checksum, not a signature.
"""
from __future__ import annotations

import json
import numbers
import os
from typing import Any

import h5py
import numpy as np

from .._sealed_h5 import HEADER_BYTES, Sealed, text
from .._version import __version__

FORMAT = "hdlif-checkpoint"
FORMAT_VERSION = 1
PARTS = ("model_state", "optimizer_state", "scheduler_state", "extra", "epoch", "step", "rng_state",
         "config", "best_metric")
_TREES = {"model_state": "model", "optimizer_state": "optimizer", "scheduler_state": "scheduler",
          "extra": "extra"}


class CheckpointError(ValueError):
    """A checkpoint cannot be read (missing, not HDF5, truncated, corrupt, other format or
    version, missing part, a link or storage outside the file). The message names the file and
    the cause."""


SEALED = Sealed(FORMAT, FORMAT_VERSION, "checkpoint", CheckpointError)


# --------------------------------------------------------------------------- saving
def save_checkpoint(path: str | os.PathLike, *, model_state: dict, optimizer_state: dict | None = None,
                    scheduler_state: dict | None = None, extra: Any = None, epoch: int = 0, step: int = 0,
                    rng_state: Any = None, config: Any = None, best_metric: float | None = None) -> None:
    """Write a checkpoint to ``path`` atomically: built in memory, written to a temporary file
    in the same directory, fsynced, then ``os.replace``-d over ``path``.

    If anything fails, ``path`` is left as it was (an older checkpoint stays valid)
    and the temporary file is removed; an I/O failure raises
    :class:`~hdlif_ref._safe_files.FileWriteError`, one line naming the path and the reason.

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
    parts = {**{k: SEALED.normalize(v, k) for k, v in trees.items()},
             "epoch": int(epoch), "step": int(step),
             "best_metric": None if best_metric is None else float(best_metric),
             "rng_state": _to_json_text("rng_state", rng_state),
             "config": _to_json_text("config", config)}

    def fill(f: h5py.File) -> None:
        root = f.attrs
        root["hdlif_ref_version"] = __version__
        root["epoch"] = np.int64(parts["epoch"])
        root["step"] = np.int64(parts["step"])
        if parts["best_metric"] is not None:
            root["best_metric"] = np.float64(parts["best_metric"])
        root["config"] = parts["config"]
        root["rng_state"] = parts["rng_state"]
        for key, group in _TREES.items():
            SEALED.write_tree(f, group, parts[key])

    SEALED.write(path, fill)


def _stamp_header(path: str) -> None:
    """Rewrite a checkpoint's header for its current bytes (tests use it to simulate other writers)."""
    SEALED.stamp_header(path)


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
    return SEALED.read(path, _read_checkpoint)


def _read_checkpoint(f: h5py.File, path: str, file_size: int) -> dict[str, Any]:
    attrs = f.attrs
    for key in ("epoch", "step", "config", "rng_state"):
        if key not in attrs:
            raise CheckpointError(f"checkpoint {path!r}: root attribute {key!r} is missing")
    parts: dict[str, Any] = {}
    for key, group in _TREES.items():
        if group not in f:
            raise CheckpointError(f"checkpoint {path!r}: group '/{group}' is missing")
        parts[key] = SEALED.read_tree(f[group], f"/{group}", path, file_size)
    parts["epoch"] = int(attrs["epoch"])
    parts["step"] = int(attrs["step"])
    parts["best_metric"] = float(attrs["best_metric"]) if "best_metric" in attrs else None
    parts["config"] = json.loads(text(attrs["config"]))
    parts["rng_state"] = json.loads(text(attrs["rng_state"]))
    if parts["model_state"] is None or not isinstance(parts["model_state"], dict):
        raise CheckpointError(f"checkpoint {path!r}: '/model' does not hold a state dict")
    return {k: parts[k] for k in PARTS}
