"""Golden vectors (SPEC section 6): the HDF5 file other implementations check against, and its checker.

Layout (``docs/golden.md``; names fixed so outside tools can rely on them)::

    /                      attrs: format="hdlif-golden", version=1, dtype="float64"
    /cases/<name>/         attrs: kind, T, and the case's scalar settings
        inputs/I, inputs/lam, inputs/theta, inputs/grad_s     (+ alpha, beta, bn_gamma, bn_beta: membn)
        outputs/s, outputs/u, outputs/m                       (+ mhat: membn; only s: parallel)
        grads_stbp/<input>, grads_online/<input>              (E4; E5 and E16)

How the numbers are made: :func:`recompute` runs this library's public fused
functions (``hdlif_seq``, ``lif_seq``, ``parallel_hdlif_seq``, ``membn_hdlif_seq``)
for ``outputs/s`` and both gradient sets (``backward(grad_s)`` with
``gradient="stbp"`` and ``"online"``), and the ``*_record`` traces for ``m``, ``u``,
``mhat``, all in float64. The writer and ``--check`` both call it; the test suite
checks its results against independent element-by-element loops and a PyTorch
implementation (``tests/oracle/test_golden.py``, ``tests/crosscheck/``).

Reading a file from elsewhere: it carries no checksum, so :func:`read_golden`
validates everything before trusting it (format attributes, kinds, every
dataset's type, dtype, shape and size before reading it, finite inputs), and by
default does the HDF5 reading in a child process with a time limit: some byte
corruptions make the HDF5 library loop or crash, which then becomes a clean
:class:`GoldenFileError` instead of a hang. Residual risk: a corruption that
HDF5 reads as plausible finite float64 values. In an output or gradient that
shows up as a FAIL; in an input, the recomputed values no longer match the
file's outputs, so again FAIL, never a silent PASS.
"""
from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "hdlif-golden"
VERSION = 1
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-9
KINDS = ("hdlif", "lif", "parallel", "membn")
#: Inputs of each kind, in the order the neuron functions take them.
INPUTS = {
    "hdlif": ("I", "lam", "theta", "grad_s"),
    "lif": ("I", "lam", "theta", "grad_s"),
    "parallel": ("I", "theta", "grad_s"),
    "membn": ("I", "lam", "theta", "alpha", "beta", "bn_gamma", "bn_beta", "grad_s"),
}
OUTPUTS = {"hdlif": ("s", "u", "m"), "lif": ("s", "u", "m"), "parallel": ("s",), "membn": ("s", "u", "m", "mhat")}
GROUPS = ("inputs", "outputs", "grads_stbp", "grads_online")
MAX_ELEMENTS = 10_000_000  # per dataset: a corrupt shape must not make us allocate gigabytes
READ_TIMEOUT = 60.0


class GoldenFileError(ValueError):
    """A golden file that does not follow SPEC section 6 (or cannot be read); the message names the file,
    and the case and field where there is one."""


@dataclass
class GoldenCase:
    """One case: ``kind``, ``T``, scalar ``attrs`` (settings, tolerances) and its datasets by path
    (``"inputs/I"``, ``"outputs/s"``, ``"grads_stbp/lam"``, ...)."""

    name: str
    kind: str
    T: int
    attrs: dict[str, Any]
    fields: dict[str, np.ndarray]

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        return {k[len("inputs/"):]: v for k, v in self.fields.items() if k.startswith("inputs/")}

    @property
    def tolerances(self) -> tuple[float, float]:
        return float(self.attrs.get("rtol", DEFAULT_RTOL)), float(self.attrs.get("atol", DEFAULT_ATOL))


@dataclass
class FieldResult:
    """One line of ``--check``: ``status`` is PASS, FAIL or SKIP; ``worst`` the largest ``|file - ours|``,
    ``ratio`` the largest ``|file - ours| / (atol + rtol |ours|)`` (PASS iff <= 1)."""

    case: str
    field: str
    status: str
    worst: float = math.nan
    ratio: float = math.nan
    note: str = ""


# ----------------------------------------------------------------------------- recompute
def grad_fields(kind: str) -> tuple[str, ...]:
    """Inputs that get a gradient: everything but ``grad_s`` (membn: also its four extra parameters)."""
    return tuple(name for name in INPUTS[kind] if name != "grad_s")


def recompute(kind: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Every output and gradient field of a case, from its inputs, with this library (float64).

    Returns ``{"outputs/s": ..., "grads_stbp/I": ..., "grads_online/lam": ..., ...}``.
    ``attrs``: ``reset`` ("hard") and ``gamma`` (1.0) for ``lif``; ``bn_eps`` (1e-5) for ``membn``.
    """
    from .. import neurons
    from ..autograd import Tensor

    attrs = attrs or {}
    x = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in inputs.items()}
    names = grad_fields(kind)
    if kind == "membn":  # bn_gamma / bn_beta [T] (allowed by the layout): one value for every channel
        C = x["I"].shape[2]
        for name in ("bn_gamma", "bn_beta"):
            if x[name].ndim == 1:
                x[name] = np.ascontiguousarray(np.repeat(x[name][:, None], C, axis=1))
    reset, gamma = str(attrs.get("reset", "hard")), float(attrs.get("gamma", 1.0))
    bn_eps = float(attrs.get("bn_eps", 1e-5))

    def run(mode: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        leaves = {k: Tensor(x[k].copy(), requires_grad=True) for k in names}
        if kind == "hdlif":
            s = neurons.hdlif_seq(leaves["I"], leaves["lam"], leaves["theta"], gradient=mode)
        elif kind == "lif":
            s = neurons.lif_seq(leaves["I"], leaves["lam"], leaves["theta"], reset=reset, gamma=gamma,
                                gradient=mode)
        elif kind == "parallel":  # stateless: the STBP and online gradients are the same thing
            s = neurons.parallel_hdlif_seq(leaves["I"], leaves["theta"])
        else:
            s = neurons.membn_hdlif_seq(*(leaves[k] for k in names), training=True, bn_eps=bn_eps, gradient=mode)
        s.backward(x["grad_s"])
        grads = {}
        for k in names:
            g = leaves[k].grad if leaves[k].grad is not None else np.zeros_like(x[k])
            if g.shape != inputs[k].shape:  # a [T] BN affine was repeated over channels: sum back
                g = g.sum(axis=1)
            grads[k] = np.asarray(g, dtype=np.float64)
        return np.asarray(s.data, dtype=np.float64), grads

    s, stbp = run("stbp")
    _, online = run("online")
    out = {"outputs/s": s}
    if kind == "hdlif":
        rec = neurons.hdlif_record(x["I"], x["lam"], x["theta"])
    elif kind == "lif":
        rec = neurons.lif_record(x["I"], x["lam"], x["theta"], reset=reset, gamma=gamma)
    elif kind == "membn":
        rec = neurons.membn_hdlif_record(*(x[k] for k in names), training=True, bn_eps=bn_eps)
    if kind != "parallel":
        out["outputs/u"], out["outputs/m"] = rec.u, rec.m
    if kind == "membn":
        out["outputs/mhat"] = rec.mhat
    out.update({f"grads_stbp/{k}": v for k, v in stbp.items()})
    out.update({f"grads_online/{k}": v for k, v in online.items()})
    return out


# ----------------------------------------------------------------------------- checking
def compare(case: GoldenCase, ours: dict[str, np.ndarray]) -> list[FieldResult]:
    """Field by field: the file's values against ours (``|file - ours| <= atol + rtol |ours|``)."""
    rtol, atol = case.tolerances
    results = []
    for field in ours:  # in recompute's order: outputs, then gradients in the order of the inputs
        ref = ours[field]
        if field not in case.fields:
            results.append(FieldResult(case.name, field, "SKIP", note="absent in the file"))
            continue
        theirs = case.fields[field]
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(theirs - ref)
            bad = ~(diff <= atol + rtol * np.abs(ref))  # NaN in the file: bad
            worst = float(np.max(diff)) if diff.size else 0.0
            ratio = float(np.max(diff / (atol + rtol * np.abs(ref)))) if diff.size else 0.0
        status = "FAIL" if bad.any() else "PASS"
        note = f"{int(bad.sum())} of {bad.size} values out of tolerance" if bad.any() else ""
        results.append(FieldResult(case.name, field, status, worst, ratio, note))
    for field in sorted(set(case.fields) - set(ours)):
        if not field.startswith("inputs/"):
            results.append(FieldResult(case.name, field, "SKIP", note="not a field this checker knows"))
    return results


def check_golden(path: str | os.PathLike, isolate: bool = True, timeout: float = READ_TIMEOUT) -> list[FieldResult]:
    """Recompute every case of a golden file from its inputs and compare field by field.

    Raises :class:`GoldenFileError` for a file that does not follow the layout.
    """
    results = []
    for case in read_golden(path, isolate=isolate, timeout=timeout):
        results.extend(compare(case, recompute(case.kind, case.inputs, case.attrs)))
    if not any(r.status != "SKIP" for r in results):
        raise GoldenFileError(f"golden file {os.fspath(path)!r}: no output or gradient field to compare "
                              f"(every case lacks outputs/ and grads_*/ datasets)")
    return results


def format_results(results: list[FieldResult]) -> list[str]:
    """The table ``--check`` prints: one line per field, then a summary line."""
    width = max([len(r.case) for r in results] + [4])
    lines = [f"{'case':<{width}}  {'field':<22} {'worst |diff|':>12} {'/ tol':>9}  result"]
    for r in results:
        worst = "-" if math.isnan(r.worst) else f"{r.worst:.3e}"
        ratio = "-" if math.isnan(r.ratio) else f"{r.ratio:.3g}"
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"{r.case:<{width}}  {r.field:<22} {worst:>12} {ratio:>9}  {r.status}{note}")
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    lines.append(f"{len(results)} fields: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP")
    return lines


# ----------------------------------------------------------------------------- reading
def read_golden(path: str | os.PathLike, isolate: bool = True, timeout: float = READ_TIMEOUT) -> list[GoldenCase]:
    """The validated cases of a golden file. ``isolate``: read HDF5 in a child process, killed after
    ``timeout`` seconds (a corrupt file can make HDF5 loop or crash). Raises :class:`GoldenFileError`."""
    path = os.fspath(path)
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
    ``__main__``); its answer, cases or an error message, comes back pickled on stdout."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    code = "import sys; from hdlif_ref.oracle.golden import _child_main; _child_main(sys.argv[1])"
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


def _read_checked(path: str) -> list[GoldenCase]:
    import h5py

    from .._safe_files import open_h5

    where = f"golden file {path!r}"
    f = open_h5(path, error=GoldenFileError, what="golden file")  # refuses links and storage outside the file
    try:
        with f:
            root = dict(_attrs(f, where))
            for key, expected in (("format", FORMAT), ("version", VERSION), ("dtype", "float64")):
                if key not in root:
                    raise GoldenFileError(f"{where}: root attribute {key!r} is missing; expected {expected!r}")
                if root[key] != expected:
                    raise GoldenFileError(f"{where}: root attribute {key}={root[key]!r}; expected {expected!r}")
            cases = f.get("cases")
            if not isinstance(cases, h5py.Group):
                raise GoldenFileError(f"{where}: no group /cases")
            names = list(cases.keys())
            if not names:
                raise GoldenFileError(f"{where}: /cases holds no case")
            return [_read_case(cases[name], name, where, h5py) for name in names]
    except GoldenFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise GoldenFileError(f"{where}: cannot be read (corrupt?): {type(exc).__name__}: {exc}") from None


def _attrs(obj, where: str):
    for key in obj.attrs.keys():
        value = obj.attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, np.ndarray) and value.shape in ((), (1,)):
            value = value.reshape(()).item()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        yield key, value


def _read_case(group, name: str, file_where: str, h5py) -> GoldenCase:
    where = f"{file_where}, case {name!r}"
    if not isinstance(group, h5py.Group):
        raise GoldenFileError(f"{where}: is not a group")
    attrs = dict(_attrs(group, where))
    kind, T = attrs.get("kind"), attrs.get("T")
    if kind not in KINDS:
        raise GoldenFileError(f"{where}: attribute kind={kind!r}; allowed: {', '.join(KINDS)}")
    if isinstance(T, float) and T.is_integer():
        T = int(T)
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise GoldenFileError(f"{where}: attribute T={T!r} must be an integer >= 1")
    _check_settings(attrs, kind, where)
    fields: dict[str, np.ndarray] = {}
    for group_name in GROUPS:
        sub = group.get(group_name)
        if sub is None:
            continue
        if not isinstance(sub, h5py.Group):
            raise GoldenFileError(f"{where}: {group_name} is not a group")
        for key in sub.keys():
            fields[f"{group_name}/{key}"] = _read_dataset(sub[key], f"{where}, field {group_name}/{key}", h5py)
    _check_shapes(kind, T, fields, where)
    return GoldenCase(name, kind, T, attrs, fields)


def _check_settings(attrs: dict, kind: str, where: str) -> None:
    for key in ("rtol", "atol", "gamma", "bn_eps"):
        if key in attrs:
            v = attrs[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
                    or (key in ("gamma", "bn_eps") and v == 0):
                raise GoldenFileError(f"{where}: attribute {key}={v!r} must be a finite number "
                                      f"{'> 0' if key in ('gamma', 'bn_eps') else '>= 0'}")
    if kind == "lif":
        if attrs.get("reset", "hard") not in ("hard", "soft"):
            raise GoldenFileError(f"{where}: attribute reset={attrs['reset']!r}; allowed: 'hard', 'soft'")
        if attrs.get("surrogate", "triangle") != "triangle":
            raise GoldenFileError(f"{where}: attribute surrogate={attrs['surrogate']!r}; this checker knows "
                                  f"'triangle' (SPEC E7)")
    if kind == "membn" and attrs.get("bn_mode", "training") != "training":
        raise GoldenFileError(f"{where}: attribute bn_mode={attrs['bn_mode']!r}; SPEC section 6 uses BN in "
                              f"'training' mode (batch statistics)")


def _read_dataset(obj, where: str, h5py) -> np.ndarray:
    """A float64 dataset, its dtype, shape and size checked before a byte of data is read."""
    if not isinstance(obj, h5py.Dataset):
        raise GoldenFileError(f"{where}: is not a dataset")
    if obj.dtype != np.float64:
        raise GoldenFileError(f"{where}: dtype {obj.dtype}; the layout requires float64")
    shape = obj.shape
    if shape is None or any(d < 0 for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise GoldenFileError(f"{where}: shape {shape} is empty or larger than {MAX_ELEMENTS} values")
    data = np.asarray(obj[()], dtype=np.float64)
    if data.shape != shape:
        raise GoldenFileError(f"{where}: read {data.shape} values for a dataset of shape {shape}")
    return data


def _check_shapes(kind: str, T: int, fields: dict[str, np.ndarray], where: str) -> None:
    """Inputs present, finite and shaped as the layout says; every output and gradient shaped as its source."""
    for name in INPUTS[kind]:
        if f"inputs/{name}" not in fields:
            raise GoldenFileError(f"{where}: dataset inputs/{name} is missing (kind {kind!r} needs "
                                  f"{', '.join('inputs/' + n for n in INPUTS[kind])})")
    I = fields["inputs/I"]
    min_ndim = 3 if kind == "membn" else 2
    if I.ndim < min_ndim or I.shape[0] != T or I.size == 0:
        raise GoldenFileError(f"{where}: inputs/I has shape {I.shape}; expected a non-empty "
                              f"[T, N, {'C, ' if kind == 'membn' else ''}...] with T = {T}")
    C = I.shape[2] if I.ndim >= 3 else None
    expected = {"inputs/grad_s": I.shape}
    for name in grad_fields(kind)[1:]:
        shape = fields[f"inputs/{name}"].shape
        allowed = [(T,)] + ([(T, C)] if C is not None else [])
        if shape not in allowed:
            raise GoldenFileError(f"{where}: inputs/{name} has shape {shape}; allowed: "
                                  f"{' or '.join(str(a) for a in allowed)} ([T] or [T, C], C = dim 2 of I)")
        expected[f"grads_stbp/{name}"] = expected[f"grads_online/{name}"] = shape
    for group in ("grads_stbp", "grads_online"):
        expected[f"{group}/I"] = I.shape
    expected.update({f"outputs/{name}": I.shape for name in OUTPUTS[kind]})
    for field, shape in expected.items():
        if field in fields and fields[field].shape != shape:
            raise GoldenFileError(f"{where}: {field} has shape {fields[field].shape}; expected {shape}")
    for name in INPUTS[kind]:
        if not np.isfinite(fields[f"inputs/{name}"]).all():
            raise GoldenFileError(f"{where}: inputs/{name} holds non-finite values")


# ----------------------------------------------------------------------------- writing
def write_golden(path: str | os.PathLike, seed: int = 0) -> list[GoldenCase]:
    """Write the golden file of SPEC section 6 to ``path`` (atomically); returns its cases.

    The cases (:func:`._golden_cases.make_cases`) are a deterministic function of ``seed``.
    """
    from .._safe_files import atomic_write, h5_file_image
    from .._version import __version__

    path = os.fspath(path)
    cases = []
    from ._golden_cases import make_cases

    for name, kind, attrs, inputs in make_cases(np.random.default_rng(seed)):
        fields = {f"inputs/{k}": v for k, v in inputs.items()}
        fields.update(recompute(kind, inputs, attrs))
        cases.append(GoldenCase(name, kind, int(inputs["I"].shape[0]), attrs, fields))

    def fill(f) -> None:
        f.attrs["format"], f.attrs["version"], f.attrs["dtype"] = FORMAT, np.int64(VERSION), "float64"
        f.attrs["generator"], f.attrs["seed"] = f"hdlif-ref {__version__}", np.int64(seed)
        for case in cases:
            g = f.create_group(f"cases/{case.name}")
            g.attrs["kind"], g.attrs["T"] = case.kind, np.int64(case.T)
            for key, value in case.attrs.items():
                g.attrs[key] = value
            for field, value in case.fields.items():
                g.create_dataset(field, data=np.asarray(value, dtype=np.float64))

    # built in memory, then one atomic write: a failed write is one FileWriteError line (issue 18)
    atomic_write(path, h5_file_image(fill))
    return cases
