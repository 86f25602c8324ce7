"""Restricted unpickling for the CIFAR Python batches (issue 7, item 8).

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes name any
importable callable and ``REDUCE`` calls it, so ``pickle.load`` on a hostile
file can run ``os.system``. The CIFAR "python version" batches are pickles
(written by Python 2's ``cPickle``; loaded with ``encoding="bytes"`` as the
CIFAR page says). :func:`restricted_loads` accepts only what they need:

* opcodes for builtin containers, bytes, strings and numbers (no lookup needed);
* a short allow-list of globals (:data:`ALLOWED_GLOBALS`), each mapped to a
  *stand-in written here*, never to the real NumPy function:
  ``numpy.core.multiarray._reconstruct`` / ``numpy.ndarray`` / ``numpy.dtype``
  (and their ``numpy._core`` names from NumPy 2)
  (NumPy's pickle protocol 0-4 form), ``numpy.core.numeric._frombuffer``
  (protocol 5), ``numpy.core.multiarray.scalar`` (NumPy scalars),
  ``_codecs.encode`` with the ``latin1`` codec only (how Python 3 writes bytes
  in protocol 2), and ``set``, ``frozenset``, ``bytes``, ``bytearray``,
  ``complex`` from existing values only (``bytes(n)`` would allocate ``n`` bytes).

The stand-ins record the pieces (shape, dtype string, byte order, raw bytes),
check them (numeric dtype, no structured or object dtype, raw length equal to
``prod(shape) * itemsize``) and only then build the array with
``np.frombuffer``: no NumPy C code ever sees an unchecked pickle state, and no
allocation is larger than the bytes actually in the file. Every other global
raises :class:`UnsafePickleError` *before* anything is called, and ``BUILD``
(set an object's state) is allowed only on the array and dtype stand-ins.

Shape of the result (issue 18): containers may share references, so a few kilobytes can
describe a list nested 40 deep whose expansion (what ``np.asarray`` does) never ends
(``d = [d, d]``). The result is walked once per container, and its nesting depth
(``max_depth``, default 4: a CIFAR batch is a dict of lists, depth 2) and its number of
container slots (``max_items``, default 2,000,000: CIFAR-100's training file has about
150,000) are bounded; the message names the path of the offending field. Readers then check
each container's type, length and element types before NumPy sees it.

The pure-Python unpickler (``pickle._Unpickler``) is used on purpose: the C
one sizes its memo table from the index in a ``LONG_BINPUT`` opcode, so one
flipped byte could make it allocate and clear gigabytes; the Python one keeps
its memo in a dict. Its one allocation sized by a length field (``BYTEARRAY8``)
is replaced by a read bounded by the data. Its speed is ample: a CIFAR batch is a handful of opcodes
around one 30 MB string plus a 10,000-item label list.
"""
from __future__ import annotations

import io
import math
import pickle
import struct
from typing import Any

import numpy as np

from .errors import DatasetFormatError, UnsafePickleError

_NUMERIC_KINDS = "biuf"
_MAX_NDIM = 32
MAX_DEPTH = 4
MAX_ITEMS = 2_000_000


class _NDArrayClass:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _DtypeStub:
    """Stands for ``numpy.dtype(name, align, copy)`` plus its pickled state (byte order)."""

    def __init__(self, name: Any = None, align: Any = False, copy: Any = True):
        if isinstance(name, bytes):
            try:
                name = name.decode("ascii")
            except UnicodeDecodeError:
                raise DatasetFormatError(f"dtype name {name!r} is not ASCII") from None
        if not isinstance(name, str) or not 0 < len(name) <= 8:
            raise DatasetFormatError(f"dtype name {name!r} is not a short type string such as 'u1'")
        self.name = name
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        # NumPy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]).
        if not isinstance(state, tuple) or len(state) < 5:
            raise DatasetFormatError(f"unexpected dtype state {state!r:.80}")
        byteorder = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]
        if byteorder not in ("<", ">", "|", "="):
            raise DatasetFormatError(f"dtype byte order {state[1]!r} is not one of '<', '>', '|', '='")
        if any(part is not None for part in state[2:5]):
            raise UnsafePickleError("structured or sub-array dtypes are not allowed in a dataset pickle")
        self.byteorder = byteorder

    def resolve(self) -> np.dtype:
        try:
            dtype = np.dtype(self.name)
        except TypeError:
            raise DatasetFormatError(f"{self.name!r} is not a NumPy dtype") from None
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise UnsafePickleError(f"dtype {self.name!r} is not a plain numeric type (bool, int, uint, float)")
        if self.byteorder in "<>":
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype


def _check_shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM:
        raise DatasetFormatError(f"array shape {shape!r:.80} is not a tuple of at most {_MAX_NDIM} sizes")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise DatasetFormatError(f"array shape {shape!r:.80} holds something other than non-negative ints")
    return shape


def _array_from_raw(raw: Any, dtype_stub: Any, shape: Any, fortran: bool) -> np.ndarray:
    """Checked ``np.frombuffer(raw, dtype).reshape(shape)``: the length must match exactly."""
    if not isinstance(dtype_stub, _DtypeStub):
        raise DatasetFormatError("array dtype is not a pickled numpy.dtype")
    dtype = dtype_stub.resolve()
    shape = _check_shape(shape)
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError("array payload is not raw bytes (object arrays are not allowed)")
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetFormatError(f"array payload has {len(raw)} bytes, shape {shape} of {dtype} needs {expected}")
    flat = np.frombuffer(bytes(raw), dtype=dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


class _ArrayStub:
    """Stands for ``_reconstruct(ndarray, (0,), b'b')``; the array arrives with ``BUILD``."""

    def __init__(self):
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # ndarray state: (version, shape, dtype, is_fortran, raw) or, from old NumPy, without version.
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DatasetFormatError(f"unexpected ndarray state {state!r:.80}")
        shape, dtype, fortran, raw = state[-4:]
        self.array = _array_from_raw(raw, dtype, shape, bool(fortran))


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if subtype is not _NDArrayClass:
        raise UnsafePickleError("_reconstruct may only rebuild numpy.ndarray")
    return _ArrayStub()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if order not in ("C", "F"):
        raise DatasetFormatError(f"array order {order!r} is not 'C' or 'F'")
    return _array_from_raw(buf, dtype, shape, order == "F")


def _scalar(dtype: Any, raw: Any = b"") -> Any:
    return _array_from_raw(raw, dtype, (), False)[()]


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Python 3 writes bytes in protocol 2 as _codecs.encode(latin1_text, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            f"_codecs.encode is allowed only as encode(str, 'latin1'), got encoding {encoding!r:.40}")
    return text.encode("latin1")


def _bytearray(data: Any = b"") -> bytearray:
    # bytearray(n) would allocate n bytes: accept only existing bytes.
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("bytearray is allowed only from bytes")
    return bytearray(data)


def _bytes(data: Any = b"") -> bytes:
    # Python 3 writes b"" as bytes() in protocols 0-2; bytes(n) would allocate n bytes.
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("bytes is allowed only from bytes")
    return bytes(data)


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not all(type(v) in (int, float) for v in (real, imag)):
        raise UnsafePickleError("complex is allowed only from two numbers")
    return complex(real, imag)


def _set(items: Any = ()) -> set:
    if type(items) not in (list, tuple):
        raise UnsafePickleError("set is allowed only from a list or tuple")
    return set(items)


def _frozenset(items: Any = ()) -> frozenset:
    return frozenset(_set(items))


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDArrayClass,
    ("numpy", "dtype"): _DtypeStub,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): _set,
    ("builtins", "frozenset"): _frozenset,
    ("builtins", "bytearray"): _bytearray,
    ("builtins", "bytes"): _bytes,
    ("builtins", "complex"): _complex,
    ("__builtin__", "set"): _set,
    ("__builtin__", "frozenset"): _frozenset,
    ("__builtin__", "bytearray"): _bytearray,
    ("__builtin__", "bytes"): _bytes,
    ("__builtin__", "complex"): _complex,
}
"""Every global a dataset pickle may name, mapped to the checked stand-in that is called instead."""


def _load_build(unpickler: "_RestrictedUnpickler") -> None:
    # BUILD sets state on the object below it; on anything but our stand-ins it could
    # setattr() on a class of this module and change later loads, so it is refused.
    state = unpickler.stack.pop()
    target = unpickler.stack[-1]
    if type(target) not in (_ArrayStub, _DtypeStub):
        raise UnsafePickleError(
            f"{unpickler._source}: BUILD (set object state) is allowed only on NumPy arrays and dtypes")
    target.__setstate__(state)


def _load_bytearray8(unpickler: "_RestrictedUnpickler") -> None:
    # The stdlib allocates bytearray(n) for the 8-byte length n *before* reading:
    # a damaged length would allocate gigabytes. Read first (bounded by the data), then copy.
    (n,) = struct.unpack("<Q", unpickler.read(8))
    data = unpickler.read(n)
    if len(data) < n:
        raise pickle.UnpicklingError("pickle data was truncated")
    unpickler.append(bytearray(data))


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler, see the module docstring
    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    def __init__(self, file, source: str):
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module!s:.60}.{name!s:.60}: a dataset pickle may hold only "
                "builtin containers, bytes, numbers and NumPy arrays (the file was not executed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refusing a persistent id in a dataset pickle")


class _Walk:
    """Replaces array stand-ins by their arrays inside dicts, lists and tuples (each container once),
    bounding the nesting depth and the number of container slots; messages name the path.

    A container shared by several parents is walked once, but its height (its own levels of
    nesting) is remembered, so that a second, deeper reference is held to the same depth bound;
    a container that contains itself is refused.
    """

    def __init__(self, source: str, max_depth: int, max_items: int):
        self.source, self.max_depth, self.max_items = source, max_depth, max_items
        self.memo: dict[int, tuple[Any, int]] = {}  # id -> (resolved object, height)
        self.open: set[int] = set()  # containers being walked (a reference to one of them is a cycle)
        self.items = 0

    def fail(self, where: str, message: str):
        raise DatasetFormatError(f"{self.source}: {where or 'the top-level object'} {message}")

    def resolve(self, obj: Any, where: str, depth: int) -> tuple[Any, int]:
        """``(resolved, height)``: height 0 for a leaf, 1 + the children's largest for a container."""
        key = id(obj)
        if key in self.open:
            self.fail(where, "contains itself; a dataset pickle is a tree of containers")
        if key in self.memo:
            out, height = self.memo[key]
            if depth + height > self.max_depth:
                self.too_deep(where)
            return out, height
        if isinstance(obj, _ArrayStub):
            if obj.array is None:
                self.fail(where, "is a pickled array without data (missing BUILD)")
            self.memo[key] = (obj.array, 0)
            return obj.array, 0
        if isinstance(obj, _DtypeStub):
            self.memo[key] = (obj.resolve(), 0)
            return self.memo[key]
        if type(obj) not in (dict, list, tuple):
            return obj, 0
        if depth >= self.max_depth:
            self.too_deep(where)
        self.items += len(obj)
        if self.items > self.max_items:
            self.fail(where, f"brings the pickle to more than {self.max_items} container items; a dataset "
                             f"pickle needs fewer")
        self.open.add(key)
        height = 0
        if type(obj) is dict:
            for k in list(obj):
                obj[k], h = self.resolve(obj[k], f"{where}[{k!r:.40}]", depth + 1)
                height = max(height, h)
            out = obj
        elif type(obj) is list:
            for i, item in enumerate(obj):
                obj[i], h = self.resolve(item, f"{where}[{i}]", depth + 1)
                height = max(height, h)
            out = obj
        else:
            items = []
            for i, item in enumerate(obj):
                value, h = self.resolve(item, f"{where}[{i}]", depth + 1)
                items.append(value)
                height = max(height, h)
            out = tuple(items)
        self.open.discard(key)
        self.memo[key] = (out, height + 1)
        return out, height + 1

    def too_deep(self, where: str):
        self.fail(where, f"nests containers deeper than {self.max_depth} levels; a dataset pickle is a dict of "
                         f"lists and arrays")


def restricted_loads(data: bytes, source: str = "pickle", max_depth: int = MAX_DEPTH,
                     max_items: int = MAX_ITEMS) -> Any:
    """Unpickle ``data`` allowing only containers, bytes, numbers and NumPy arrays.

    Parameters
    ----------
    data : bytes
        The whole pickle (a file read with its size as the bound).
    source : str
        Shown in error messages (usually the file path).
    max_depth, max_items : int
        Bounds on the result's nesting depth (the top-level object is at depth 0) and on
        the number of slots of all its containers (see the module docstring).

    Returns
    -------
    The unpickled object; NumPy arrays come back as read-only ``np.ndarray``
    views of the checked payload bytes.

    Raises
    ------
    UnsafePickleError
        A global outside :data:`ALLOWED_GLOBALS` (nothing was called).
    DatasetFormatError
        Any other damage: truncation, bad opcodes, bad array state, nesting deeper than
        ``max_depth`` or more than ``max_items`` container slots.
    """
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
        return _Walk(source, max_depth, max_items).resolve(obj, "", 0)[0]
    except DatasetFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, OverflowError, UnicodeError, MemoryError, RecursionError) as exc:
        raise DatasetFormatError(f"{source}: not a valid dataset pickle ({type(exc).__name__}: {exc!s:.120})") from None
