"""Writing the golden file (SPEC sections 6-7): the cases of :mod:`._golden_cases`, their outputs from
:func:`.recompute.recompute`, one HDF5 image built in memory and written atomically."""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from .reader import GoldenCase
from .schema import FORMAT, KIND_TABLE, KINDS, WRITE_VERSION


def write(path: str | os.PathLike, seed: int = 0, cases: Iterable[str] | None = None) -> list[GoldenCase]:
    """Write the golden file to ``path`` (atomically) and return its cases.

    Parameters
    ----------
    path : where to write (the directory must exist).
    seed : int >= 0
        The inputs are a deterministic function of it (NumPy's ``default_rng``): the same
        seed gives the same numbers on any machine.
    cases : iterable of kinds, optional
        Write only the cases of these kinds (default: every kind, SPEC sections 6-7).
    """
    from .._safe_files import atomic_write, h5_file_image
    from .._version import __version__
    from ._golden_cases import make_cases
    from .recompute import recompute

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"write: seed={seed!r} must be an integer >= 0")
    kinds = None
    if cases is not None:
        kinds = tuple(k.strip() for k in (cases.split(",") if isinstance(cases, str) else cases) if k.strip())
        unknown = [k for k in kinds if k not in KIND_TABLE]
        if unknown or not kinds:
            raise ValueError(f"write: cases={list(kinds)!r}; allowed kinds: {', '.join(KINDS)}")
    path = os.fspath(path)
    written = []
    for spec in make_cases(np.random.default_rng(seed), kinds):
        fields = {f"inputs/{k}": v for k, v in spec.inputs.items()}
        attrs = dict(spec.attrs)
        if "params_after" in spec.group_attrs:
            attrs["params_after"] = spec.group_attrs["params_after"]
        fields.update(recompute(spec.kind, spec.inputs, attrs))
        case_attrs = {"kind": spec.kind, **spec.attrs}
        if KIND_TABLE[spec.kind].needs_T:
            case_attrs = {"kind": spec.kind, "T": int(spec.inputs["I"].shape[0]), **spec.attrs}
        written.append(GoldenCase(spec.name, case_attrs, fields, dict(spec.group_attrs)))

    def fill(f) -> None:
        f.attrs["format"], f.attrs["version"], f.attrs["dtype"] = FORMAT, np.int64(WRITE_VERSION), "float64"
        f.attrs["generator"], f.attrs["seed"] = f"hdlif-ref {__version__}", np.int64(seed)
        for case in written:
            g = f.create_group(f"cases/{case.name}")
            for key, value in case.attrs.items():
                g.attrs[key] = _attr(value)
            for field, value in case.fields.items():
                value = np.asarray(value)
                dtype = value.dtype if value.dtype.kind in "iu" else np.float64
                g.create_dataset(field, data=value.astype(dtype))
            for group, attrs in case.group_attrs.items():
                for key, value in attrs.items():
                    g.require_group(group).attrs[key] = _attr(value)

    atomic_write(path, h5_file_image(fill))  # built in memory, then one atomic write (issue 18)
    return written


def _attr(value):
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, (list, tuple)):
        return np.asarray(value, dtype=np.int64 if all(isinstance(v, int) for v in value) else np.float64)
    return value
