"""Frozen models on disk: ``save_frozen`` / ``load_frozen`` (schema in docs/deploy.md).

A sealed HDF5 file (:mod:`hdlif_ref._sealed_h5`: checksum header, typed trees,
atomic write), format ``"hdlif-frozen"`` version 1::

    /                 attrs: format, format_version, hdlif_ref_version, T, num_classes,
                             input_shape (JSON list), meta (JSON: the source model's config)
    /ops              tree: a list of ops; each op is a dict
                        kind      str
                        attrs     str (JSON object of the op's settings)
                        arrays    dict name -> array
                        children  dict name -> list of ops (residual blocks), or empty

Synapse weights are stored by mode: ``fp32``: ``weight`` float32; ``ternary``:
``weight_codes`` uint8, the codes packed 2 bits each (``pack_ternary``), with
``codes_shape`` in the attrs; ``binary``: ``weight_codes`` uint8 from ``np.packbits``
of ``code > 0``. Every other array is float32. Reading checks every op's kind,
arrays, dtypes, shapes and the domain of every value (:mod:`hdlif_ref._domains`: all
finite, ``theta > 0``, spike ``step > 0``); any problem is a :class:`FrozenModelError`.
Writing runs the same checks first, so ``deploy`` never writes what ``run`` refuses.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .._domains import domain_problem
from .._sealed_h5 import Sealed, text
from .._version import __version__
from ..kernels.weight_codes import pack_ternary, unpack_ternary
from .frozen import FrozenModel, Op

FORMAT, FORMAT_VERSION = "hdlif-frozen", 1
KINDS = ("synapse", "affine", "neuron", "avg_pool", "max_pool", "global_avg_pool", "flatten", "seca1", "seca2",
         "tap", "block", "scale")


class FrozenModelError(ValueError):
    """A frozen-model file cannot be read or written (missing, damaged, wrong format, inconsistent op)."""


SEALED = Sealed(FORMAT, FORMAT_VERSION, "frozen model", FrozenModelError)


# --------------------------------------------------------------------------- writing
def _op_tree(op: Op) -> dict:
    attrs = dict(op.attrs)
    arrays = {k: (a.astype(np.float32) if a.dtype.kind == "f" else a) for k, a in op.arrays.items()}
    if op.kind == "synapse" and attrs["weight_mode"] != "fp32":
        codes = arrays.pop("weight")
        attrs["codes_shape"] = list(codes.shape)
        arrays["weight_codes"] = (pack_ternary(codes) if attrs["weight_mode"] == "ternary"
                                  else np.packbits(codes.reshape(-1) > 0))
    return {"kind": op.kind, "attrs": json.dumps(attrs), "arrays": arrays,
            "children": {name: [_op_tree(c) for c in ops] for name, ops in op.children.items()}}


def save_frozen(model: FrozenModel, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` atomically (the previous file survives any failure); arrays as float32.

    What :func:`load_frozen` would refuse (a value outside its domain, an inconsistent op) is
    refused here, before anything is written: :class:`FrozenModelError`.
    """
    ops = SEALED.normalize([_op_tree(op) for op in model.ops], "ops")
    _Checker(os.fspath(path), int(model.T), writing=True).ops(ops, "/ops")

    def fill(f) -> None:
        f.attrs["hdlif_ref_version"] = __version__
        f.attrs["T"] = np.int64(model.T)
        f.attrs["num_classes"] = np.int64(model.num_classes)
        f.attrs["input_shape"] = json.dumps(list(model.input_shape))
        f.attrs["meta"] = json.dumps(model.meta)
        SEALED.write_tree(f, "ops", ops)

    SEALED.write(path, fill)


# --------------------------------------------------------------------------- reading
def load_frozen(path: str | os.PathLike) -> FrozenModel:
    """Read a frozen model written by :func:`save_frozen`, checking every op."""
    return SEALED.read(path, _parse)


def _parse(f, path: str, size: int) -> FrozenModel:
    err = FrozenModelError
    for key in ("T", "num_classes", "input_shape", "meta"):
        if key not in f.attrs:
            raise err(f"frozen model {path!r}: root attribute {key!r} is missing")
    if "ops" not in f:
        raise err(f"frozen model {path!r}: group '/ops' is missing")
    T, classes = int(f.attrs["T"]), int(f.attrs["num_classes"])
    try:
        input_shape = tuple(int(v) for v in json.loads(text(f.attrs["input_shape"])))
        meta = json.loads(text(f.attrs["meta"]))
    except (ValueError, TypeError):
        raise err(f"frozen model {path!r}: root attributes input_shape/meta are not valid JSON") from None
    tree = SEALED.read_tree(f["ops"], "/ops", path, size)
    checker = _Checker(path, T)
    ops = checker.ops(tree, "/ops")
    return FrozenModel(ops, T, classes, input_shape, meta)


class _Checker:
    """Turns the stored tree back into ops, refusing anything inconsistent."""

    def __init__(self, path: str, T: int, writing: bool = False):
        self.path, self.T = path, T
        self.taps: set[int] = set()  # tap ids seen so far, in run order
        self.prefix = (f"cannot write frozen model {path!r}, it would not load" if writing
                       else f"frozen model {path!r}")

    def fail(self, where: str, message: str):
        raise FrozenModelError(f"{self.prefix}: {where}: {message}")

    def ops(self, tree: Any, where: str) -> list[Op]:
        if not isinstance(tree, list):
            self.fail(where, "expected a list of ops")
        return [self.op(item, f"{where}/{i}") for i, item in enumerate(tree)]

    def op(self, item: Any, where: str) -> Op:
        if not isinstance(item, dict) or set(item) != {"kind", "attrs", "arrays", "children"}:
            self.fail(where, "an op must hold kind, attrs, arrays and children")
        kind = item["kind"]
        if kind not in KINDS:
            self.fail(where, f"unknown op kind {kind!r}")
        try:
            attrs = json.loads(item["attrs"])
        except (TypeError, ValueError):
            self.fail(where, "attrs are not valid JSON")
        arrays = item["arrays"]
        if not isinstance(attrs, dict) or not isinstance(arrays, dict):
            self.fail(where, "attrs and arrays must be tables")
        children = {name: self.ops(ops, f"{where}/children/{name}") for name, ops in item["children"].items()}
        op = Op(kind, attrs, dict(arrays), children)
        check = getattr(self, "_" + kind, None)
        if check is not None:  # global_avg_pool and flatten have nothing to check
            check(op, where)
        for name, a in op.arrays.items():  # the domains of docs/security.md, as for checkpoints
            problem = domain_problem(name, a) if isinstance(a, np.ndarray) else None
            if problem:
                self.fail(where, f"array {problem}")
        return op

    def _array(self, op: Op, where: str, name: str, ndims: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        a = op.arrays.get(name)
        if not isinstance(a, np.ndarray):
            self.fail(where, f"array {name!r} is missing")
        if a.dtype != dtype or a.ndim not in ndims:
            self.fail(where, f"array {name!r} is {a.dtype} with {a.ndim} dims; expected {np.dtype(dtype)} "
                             f"with {' or '.join(map(str, ndims))} dims")
        return a

    def _per_channel(self, op: Op, where: str, name: str, channels: int) -> None:
        a = self._array(op, where, name, (1, 2))
        if a.shape[-1] != channels or (a.ndim == 2 and a.shape[0] != self.T):
            self.fail(where, f"array {name!r} has shape {a.shape}; expected ({channels},) or ({self.T}, {channels})")

    def _synapse(self, op: Op, where: str) -> None:
        a = op.attrs
        for key in ("conv", "weight_mode", "input_is_spikes", "input_bits"):
            if key not in a:
                self.fail(where, f"synapse setting {key!r} is missing")
        mode = a["weight_mode"]
        if mode == "fp32":
            weight = self._array(op, where, "weight", (4,) if a["conv"] else (2,))
        elif mode in ("ternary", "binary"):
            shape = tuple(int(v) for v in a.get("codes_shape", []))
            if len(shape) != (4 if a["conv"] else 2):
                self.fail(where, f"codes_shape {shape} does not fit a {'conv' if a['conv'] else 'linear'} synapse")
            packed = self._array(op, where, "weight_codes", (1,), np.uint8)
            count = int(np.prod(shape))
            try:
                if mode == "ternary":
                    weight = unpack_ternary(packed, shape)
                else:
                    if packed.size != (count + 7) // 8:
                        raise ValueError(f"expected {(count + 7) // 8} bytes, got {packed.size}")
                    weight = np.where(np.unpackbits(packed)[:count].astype(bool), 1, -1).astype(np.int8).reshape(shape)
            except ValueError as exc:
                self.fail(where, f"weight codes: {exc}")
            del op.arrays["weight_codes"]
            op.arrays["weight"] = weight
        else:
            self.fail(where, f"weight_mode {mode!r}; allowed: fp32, ternary, binary")
        if a["conv"]:
            for key in ("stride", "padding", "groups"):
                if key not in a:
                    self.fail(where, f"conv setting {key!r} is missing")
        for name in ("scale", "bias"):
            self._per_channel(op, where, name, weight.shape[0])

    def _affine(self, op: Op, where: str) -> None:
        scale = self._array(op, where, "scale", (1, 2))
        self._per_channel(op, where, "bias", scale.shape[-1])

    def _neuron(self, op: Op, where: str) -> None:
        kind = op.attrs.get("neuron")
        if kind not in ("hdlif", "lif", "parallel"):
            self.fail(where, f"neuron kind {kind!r}; allowed: hdlif, lif, parallel")
        names = ("theta",) if kind == "parallel" else ("lam", "theta")
        for name in names:
            a = self._array(op, where, name, (2,))
            if a.shape[0] != self.T:
                self.fail(where, f"array {name!r} has {a.shape[0]} steps; the model has T={self.T}")
        bits, step = op.attrs.get("bits", 0), op.attrs.get("step", 0)
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 0:
            self.fail(where, f"spike bits {bits!r}; expected an integer >= 0")
        if bits:
            if isinstance(step, bool) or not isinstance(step, (int, float)):
                self.fail(where, f"spike step {step!r} is not a number")
            problem = domain_problem("step", float(step))
            if problem:
                self.fail(where, f"spike {problem}")
        if kind == "lif" and op.attrs.get("reset") not in ("hard", "soft"):
            self.fail(where, f"LIF reset {op.attrs.get('reset')!r}; allowed: hard, soft")

    def _block(self, op: Op, where: str) -> None:
        if set(op.children) != {"main", "shortcut", "post"}:
            self.fail(where, "a block holds the op lists main, shortcut and post")

    def _pairs(self, op: Op, where: str, names: tuple[str, ...], minimum: int) -> None:
        for name in names:
            v = op.attrs.get(name)
            if (not isinstance(v, list) or len(v) != 2
                    or any(isinstance(i, bool) or not isinstance(i, int) or i < minimum for i in v)):
                self.fail(where, f"{op.kind} setting {name!r} is {v!r}; expected a pair of integers >= {minimum}")

    def _avg_pool(self, op: Op, where: str) -> None:
        self._pairs(op, where, ("kernel", "stride"), 1)
        self._pairs(op, where, ("padding",), 0)

    _max_pool = _avg_pool

    def _kernel_1d(self, op: Op, where: str, name: str) -> None:
        w = self._array(op, where, name, (1,))
        if w.size % 2 == 0:
            self.fail(where, f"array {name!r} has {w.size} taps; SECA kernels have an odd size")

    def _seca1(self, op: Op, where: str) -> None:
        self._kernel_1d(op, where, "weight")

    def _tap(self, op: Op, where: str) -> None:
        tap = op.attrs.get("id")
        if not isinstance(tap, int) or tap in self.taps:
            self.fail(where, f"tap id {tap!r} is not a new integer")
        self.taps.add(tap)

    def _seca2(self, op: Op, where: str) -> None:
        self._kernel_1d(op, where, "weight")
        self._kernel_1d(op, where, "weight_pre")
        if op.attrs.get("tap") not in self.taps:
            self.fail(where, f"SECA_II reads tap {op.attrs.get('tap')!r}, which no earlier tap op defines")

    def _scale(self, op: Op, where: str) -> None:
        value = op.attrs.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            self.fail(where, f"scale value {value!r} must be a finite number > 0")
