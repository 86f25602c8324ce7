"""Reading a golden file (SPEC sections 6-7) without trusting it.

The file carries no checksum (it comes from another implementation), so
:func:`read_golden` validates what it reads before keeping it: the root attrs
(``format="hdlif-golden"``, ``version`` 1 or 2), every dataset's type, dtype and
size before its data is read (numbers only, at most :data:`MAX_ELEMENTS` values
each and :data:`MAX_TOTAL` in all), and it never follows a link out of the file
(:func:`hdlif_ref._safe_files.open_h5`). By default the HDF5 reading runs in a
child process with a time limit: some byte corruptions make the HDF5 library loop
or crash, which then becomes a clean :class:`GoldenFileError` instead of a hang.

What a case *means* (its kind, fields, attrs) is the checker's business
(:mod:`.check`): the reader keeps every case as it found it, unknown groups,
fields and attrs included, so that the checker can list them as NOTEs.
Residual risk: a corruption that HDF5 reads as plausible numbers. In an output or
gradient that shows up as a FAIL; in an input, the recomputed values no longer
match the file's outputs, so again FAIL, never a silent PASS.
"""
from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .schema import FORMAT, VERSIONS

MAX_ELEMENTS = 10_000_000  # per dataset: a corrupt shape must not make us allocate gigabytes
MAX_TOTAL = 50_000_000  # per file
MAX_DEPTH = 4  # cases/<name>/inputs/params/<key>
READ_TIMEOUT = 60.0
KNOWN_ROOT_ATTRS = ("format", "version", "dtype", "generator", "seed")


class GoldenFileError(ValueError):
    """A golden file that cannot be checked at all (not HDF5, wrong format or version, unreadable); the
    message names the file. Problems inside one case are FAILs of that case, not this error."""


@dataclass
class GoldenCase:
    """One case as stored: ``attrs`` (``kind``, ``T``, settings), its datasets by path relative to the case
    (``"inputs/I"``, ``"grads_stbp/lam"``, ``"inputs/params/classifier.weight"``), the attrs of its groups
    (``group_attrs["params_after"]``), and datasets that could not be read (path -> why)."""

    name: str
    attrs: dict[str, Any]
    fields: dict[str, np.ndarray]
    group_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> Any:
        return self.attrs.get("kind")

    @property
    def T(self) -> Any:
        return self.attrs.get("T")

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        return {k[len("inputs/"):]: v for k, v in self.fields.items() if k.startswith("inputs/")}


@dataclass
class GoldenFile:
    """A read golden file: root attrs, cases in file order."""

    path: str
    root: dict[str, Any]
    cases: list[GoldenCase]

    @property
    def version(self) -> int:
        return int(self.root["version"])


def read_golden(path: str | os.PathLike, isolate: bool = True, timeout: float = READ_TIMEOUT) -> GoldenFile:
    """The cases of a golden file. ``isolate``: read HDF5 in a child process, killed after ``timeout`` seconds
    (a corrupt file can make HDF5 loop or crash). Raises :class:`GoldenFileError`."""
    path = os.fspath(path)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"read_golden: timeout={timeout!r} must be a number > 0")
    _check_signature(path)
    outcome = _read_isolated(path, timeout) if isolate else _read_checked(path)
    if isinstance(outcome, str):
        raise GoldenFileError(outcome)
    return outcome


def _check_signature(path: str) -> None:
    """Refuse what is not an HDF5 file before the HDF5 library sees it (its superblock sits at 0 or 512 * 2^k)."""
    if not os.path.isfile(path):
        what = ("is a directory, not a golden file" if os.path.isdir(path) else
                "is not a regular file" if os.path.exists(path) else "no such file")
        raise GoldenFileError(f"golden file {path!r}: {what}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                return
            offset = 512 if offset == 0 else offset * 2
    raise GoldenFileError(f"golden file {path!r}: not an HDF5 file ({size} bytes, no HDF5 signature)")


def _read_isolated(path: str, timeout: float):
    """:func:`_read_checked` in a fresh interpreter (not multiprocessing: no re-import of the caller's
    ``__main__``); its answer, the file or an error message, comes back pickled on stdout."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    code = "import sys; from hdlif_ref.oracle.reader import _child_main; _child_main(sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        return (f"golden file {path!r}: reading it took more than {timeout:g} s and was stopped; a corrupt "
                f"HDF5 file can make the HDF5 library loop")
    if done.returncode != 0 or not done.stdout:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        return (f"golden file {path!r}: the reader process failed (exit code {done.returncode}: {last[0]}); "
                f"the file is probably corrupt")
    return pickle.loads(done.stdout)


def _child_main(path: str) -> None:  # runs in the child interpreter
    try:
        outcome: Any = _read_checked(path)
    except GoldenFileError as exc:
        outcome = str(exc)
    except BaseException as exc:  # anything else HDF5 throws at a corrupt file
        outcome = f"golden file {path!r}: cannot be read ({type(exc).__name__}: {exc})"
    sys.stdout.buffer.write(pickle.dumps(outcome))
    sys.stdout.flush()


def _read_checked(path: str) -> GoldenFile:
    import h5py

    from .._safe_files import open_h5

    where = f"golden file {path!r}"
    f = open_h5(path, error=GoldenFileError, what="golden file")  # refuses links and storage outside the file
    try:
        with f:
            root = dict(attrs_of(f))
            if "format" not in root:
                raise GoldenFileError(f"{where}: root attribute 'format' is missing; expected {FORMAT!r}")
            if "version" not in root:
                raise GoldenFileError(f"{where}: root attribute 'version' is missing; expected one of "
                                      f"{', '.join(map(str, VERSIONS))}")
            if root["format"] != FORMAT:
                raise GoldenFileError(f"{where}: root attribute format={root['format']!r}; expected {FORMAT!r}")
            version = root["version"]
            if isinstance(version, float) and version.is_integer():
                version = root["version"] = int(version)
            if isinstance(version, bool) or version not in VERSIONS:
                raise GoldenFileError(f"{where}: root attribute version={version!r}; this checker reads versions "
                                      f"{', '.join(map(str, VERSIONS))}")
            cases = f.get("cases")
            if not isinstance(cases, h5py.Group):
                raise GoldenFileError(f"{where}: no group /cases")
            names = list(cases.keys())
            if not names:
                raise GoldenFileError(f"{where}: /cases holds no case")
            budget = [MAX_TOTAL]
            return GoldenFile(path, root, [_read_case(cases[name], name, h5py, budget) for name in names])
    except GoldenFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise GoldenFileError(f"{where}: cannot be read (corrupt?): {type(exc).__name__}: {exc}") from None


def attrs_of(obj):
    """``(key, value)`` of an HDF5 object's attrs as Python values: bytes decoded, one-element arrays as
    scalars, other arrays as lists."""
    for key in obj.attrs.keys():
        value = obj.attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, np.ndarray):
            value = value.reshape(()).item() if value.size == 1 and value.ndim <= 1 else value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        yield key, value


def _read_case(group, name: str, h5py, budget: list[int]) -> GoldenCase:
    case = GoldenCase(name, {}, {})
    if not isinstance(group, h5py.Group):
        case.unreadable[""] = "is not a group"
        return case
    case.attrs = dict(attrs_of(group))

    def walk(obj, prefix: str, depth: int) -> None:
        for key in obj.keys():
            path = f"{prefix}{key}"
            item = obj.get(key)
            if isinstance(item, h5py.Group):
                if depth >= MAX_DEPTH:
                    case.unreadable[path] = f"groups nested deeper than {MAX_DEPTH} levels"
                    continue
                attrs = dict(attrs_of(item))
                if attrs:
                    case.group_attrs[path] = attrs
                walk(item, path + "/", depth + 1)
            elif isinstance(item, h5py.Dataset):
                data = _read_dataset(item, budget)
                if isinstance(data, str):
                    case.unreadable[path] = data
                else:
                    case.fields[path] = data
            else:
                case.unreadable[path] = "is neither a group nor a dataset"

    walk(group, "", 1)
    return case


def _read_dataset(obj, budget: list[int]) -> np.ndarray | str:
    """The dataset's values, or why they were not read: its dtype, shape and size are checked first."""
    dtype = obj.dtype
    if dtype.kind not in "fiub":
        return f"dtype {dtype} is not a number type (the layout holds float64, int8 codes, integer labels)"
    shape = obj.shape
    if shape is None:
        return "is an empty (null) dataset"
    size = math.prod(shape)
    if any(d < 0 for d in shape) or size > MAX_ELEMENTS:
        return f"shape {shape} holds more than {MAX_ELEMENTS} values"
    if size > budget[0]:
        return f"the file holds more than {MAX_TOTAL} values in all; not read"
    budget[0] -= size
    data = np.asarray(obj[()])
    if data.shape != shape:
        return f"read {data.shape} values for a dataset of shape {shape}"
    return data
