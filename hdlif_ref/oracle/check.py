"""The checker of golden files (SPEC sections 6-7): recompute every case from its inputs, compare field by field.

It cannot be talked round by the file under test:

* tolerances come from the checker's profile (:data:`.schema.PROFILES`); a case's
  ``rtol``/``atol`` attrs may only tighten them, and every line prints the tolerance used;
* strict by default: a required field that is absent is a FAIL naming it
  (``allow_missing`` excuses whole groups, and the verdict says so);
* unknown kinds FAIL; unknown groups, fields and attrs are NOTEs (never silent); the
  synonyms of SPEC section 7 are accepted; an attr value the checker does not implement
  FAILs that case, not the file;
* a spike field that FAILs says, for each bad element, how far the membrane was from
  ``theta`` (a near-tie in float32 is a different finding from a wrong formula).

:func:`check` returns a :class:`Report` (``verdict``, ``cases``, ``rows``, ``notes``, ``to_json()``).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .reader import READ_TIMEOUT, KNOWN_ROOT_ATTRS, GoldenCase, GoldenFile, read_golden
from .recompute import recompute_with_margins
from .schema import (ALLOWABLE_GROUPS, KIND_TABLE, KINDS, PROFILES, SGD_ATTRS, Kind, resolve_attrs, tolerances)

INTEGER_FIELDS = ("outputs/codes", "outputs/levels")
MAX_DETAILS = 5  # bad elements described per failing field


@dataclass
class Row:
    """One compared (or missing) field: ``status`` PASS, FAIL or SKIP; ``worst`` the largest ``|file - ours|``,
    ``ratio`` the largest ``|file - ours| / (atol + rtol |ours|)`` (PASS iff <= 1), the tolerance used, and
    for a FAIL the worst elements (``details``)."""

    case: str
    field: str
    status: str
    worst: float = math.nan
    ratio: float = math.nan
    rtol: float = math.nan
    atol: float = math.nan
    note: str = ""
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "field": self.field, "status": self.status, "worst": _num(self.worst),
                "ratio": _num(self.ratio), "rtol": _num(self.rtol), "atol": _num(self.atol), "note": self.note,
                "details": list(self.details)}


@dataclass
class CaseReport:
    """One case: its kind, the settings used (name -> ``"value (where from)"``), tolerance, rows,
    NOTEs, and problems (each a reason the case FAILs as a whole: missing input, unknown kind, ...)."""

    name: str
    kind: str
    settings: dict[str, str]
    rtol: float
    atol: float
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "FAIL" if self.problems or any(r.status == "FAIL" for r in self.rows) else "PASS"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "status": self.status, "settings": dict(self.settings),
                "rtol": _num(self.rtol), "atol": _num(self.atol), "problems": list(self.problems),
                "notes": list(self.notes), "rows": [r.as_dict() for r in self.rows]}


@dataclass
class Report:
    """What :func:`check` found. ``verdict`` is ``"PASS"`` only if no case FAILs and something was compared."""

    path: str
    profile: str
    allow_missing: tuple[str, ...]
    version: int | None
    cases: list[CaseReport]
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        return [r for c in self.cases for r in c.rows]

    @property
    def settings(self) -> dict[str, dict[str, str]]:
        """The settings each case was checked with: case name -> {setting: "value (where from)"}."""
        return {c.name: dict(c.settings) for c in self.cases}

    @property
    def compared(self) -> int:
        return sum(r.status in ("PASS", "FAIL") for r in self.rows)

    @property
    def excused(self) -> list[Row]:
        """Required fields that were absent and excused by ``allow_missing``."""
        return [r for r in self.rows if r.status == "SKIP" and r.note.startswith("absent, allowed")]

    @property
    def verdict(self) -> str:
        if any(c.status == "FAIL" for c in self.cases) or self.compared == 0:
            return "FAIL"
        return "PASS"

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.rows) for s in ("PASS", "FAIL", "SKIP")}

    def verdict_line(self) -> str:
        c = self.counts()
        failed = [case.name for case in self.cases if case.status == "FAIL"]
        text = (f"verdict: {self.verdict} (profile {self.profile}; {len(self.cases)} cases, {len(self.rows)} fields: "
                f"{c['PASS']} PASS, {c['FAIL']} FAIL, {c['SKIP']} SKIP")
        if failed:
            text += f"; failing cases: {', '.join(failed)}"
        if self.compared == 0:
            text += "; nothing was compared"
        if self.allow_missing:
            text += (f"; --allow-missing {','.join(self.allow_missing)} excused {len(self.excused)} absent "
                     f"required field{'s' * (len(self.excused) != 1)}")
        return text + ")"

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "path": self.path, "profile": self.profile,
                "profile_tolerances": {k: {"rtol": v[0], "atol": v[1]} for k, v in PROFILES[self.profile].items()},
                "allow_missing": list(self.allow_missing), "excused": [f"{r.case}/{r.field}" for r in self.excused],
                "version": self.version, "counts": self.counts(), "notes": list(self.notes),
                "cases": [c.as_dict() for c in self.cases]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)

    def format(self) -> list[str]:
        """The table ``hdlif-ref golden --check`` prints: per case a settings line, one line per field
        (with its tolerance), NOTEs and problems; then the verdict."""
        width = max([len(c.name) for c in self.cases] + [4])
        fw = max([len(r.field) for r in self.rows] + [22])
        lines = [f"golden file {self.path} (version {self.version}), profile {self.profile}"]
        lines += [f"NOTE {note}" for note in self.notes]
        lines.append(f"{'case':<{width}}  {'field':<{fw}} {'worst |diff|':>12} {'/ tol':>9} {'rtol':>8} "
                     f"{'atol':>8}  result")
        for case in self.cases:
            settings = ", ".join(f"{k}={v}" for k, v in case.settings.items())
            lines.append(f"{case.name:<{width}}  settings: kind={case.kind}{', ' if settings else ''}{settings}; "
                         f"rtol={case.rtol:g}, atol={case.atol:g} (profile {self.profile})")
            for problem in case.problems:
                lines.append(f"{case.name:<{width}}  FAIL {problem}")
            for r in case.rows:
                worst = "-" if math.isnan(r.worst) else f"{r.worst:.3e}"
                ratio = "-" if math.isnan(r.ratio) else f"{r.ratio:.3g}"
                rtol = "-" if math.isnan(r.rtol) else f"{r.rtol:.0e}"
                atol = "-" if math.isnan(r.atol) else f"{r.atol:.0e}"
                note = f"  ({r.note})" if r.note else ""
                lines.append(f"{r.case:<{width}}  {r.field:<{fw}} {worst:>12} {ratio:>9} {rtol:>8} {atol:>8}  "
                             f"{r.status}{note}")
                lines += [f"{'':<{width}}    {d}" for d in r.details]
            lines += [f"{case.name:<{width}}  NOTE {note}" for note in case.notes]
        lines.append(self.verdict_line())
        return lines


def _num(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


# ----------------------------------------------------------------------------- checking
def check(path: str | os.PathLike, profile: str = "float64", allow_missing: Iterable[str] = (),
          cases: Iterable[str] | None = None, isolate: bool = True, timeout: float = READ_TIMEOUT) -> Report:
    """Check a golden file: recompute every case from its inputs and compare every field.

    Parameters
    ----------
    path : str or PathLike
        The HDF5 file (SPEC sections 6-7), from this library or another implementation.
    profile : ``"float64"`` (default: ``rtol=1e-6, atol=1e-9``; model cases ``1e-5, 1e-8``) or
        ``"float32"`` (``1e-4, 1e-5``). A case's ``rtol``/``atol`` attrs may only tighten these.
    allow_missing : iterable of group names
        Groups (``grads``, ``grads_stbp``, ``grads_online``, ``outputs``, ``params_after``,
        ``buffers_after``) whose absent required fields are SKIPs instead of FAILs; the
        verdict line counts them.
    cases : iterable of kinds, optional
        Check only the cases of these kinds (others are listed in a NOTE).
    isolate, timeout : read the HDF5 file in a child process killed after ``timeout`` seconds.

    Returns
    -------
    Report
        ``verdict`` ("PASS" or "FAIL"), ``cases`` (per case: settings, rows, notes, problems),
        ``rows`` (all fields), ``notes``, ``format()`` (the printed table), ``to_json()``.

    Raises
    ------
    GoldenFileError
        The file cannot be checked at all (not HDF5, wrong format or version, unreadable).
    ValueError
        An unknown profile, group or kind among the arguments.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}; allowed: {', '.join(PROFILES)}")
    allow = _groups(allow_missing)
    kinds = None if cases is None else _kinds(cases)
    golden = read_golden(path, isolate=isolate, timeout=timeout)
    return check_file(golden, profile, allow, kinds)


def _groups(allow_missing: Iterable[str]) -> tuple[str, ...]:
    if isinstance(allow_missing, str):
        allow_missing = [allow_missing]
    allow = tuple(dict.fromkeys(g.strip() for g in allow_missing if g.strip()))
    unknown = [g for g in allow if g not in ALLOWABLE_GROUPS]
    if unknown:
        raise ValueError(f"allow_missing: unknown group {', '.join(map(repr, unknown))}; allowed: "
                         f"{', '.join(ALLOWABLE_GROUPS)} (inputs are always required)")
    return allow


def _kinds(cases: Iterable[str]) -> tuple[str, ...]:
    if isinstance(cases, str):
        cases = cases.split(",")
    kinds = tuple(dict.fromkeys(k.strip() for k in cases if k.strip()))
    unknown = [k for k in kinds if k not in KIND_TABLE]
    if unknown or not kinds:
        raise ValueError(f"cases: unknown kind {', '.join(map(repr, unknown)) or '(none given)'}; allowed: "
                         f"{', '.join(KINDS)}")
    return kinds


def check_file(golden: GoldenFile, profile: str = "float64", allow_missing: tuple[str, ...] = (),
               kinds: tuple[str, ...] | None = None) -> Report:
    """:func:`check` on a file already read."""
    report = Report(golden.path, profile, tuple(allow_missing), golden.version, [])
    for key, value in golden.root.items():
        if key not in KNOWN_ROOT_ATTRS:
            report.notes.append(f"root attr {key}={value!r} is not one this checker knows: ignored")
    if golden.root.get("dtype", "float64") != "float64":
        report.notes.append(f"root attr dtype={golden.root['dtype']!r}; SPEC says every array is float64")
    skipped = []
    for case in golden.cases:
        if kinds is not None and case.kind not in kinds:
            skipped.append(case.name)
            continue
        report.cases.append(check_case(case, profile, allow_missing))
    if skipped:
        report.notes.append(f"{len(skipped)} case{'s' * (len(skipped) != 1)} not of the selected kinds "
                            f"({', '.join(kinds or ())}) not checked: {', '.join(skipped)}")
    if not report.cases:
        raise ValueError(f"cases: no case of kind {', '.join(kinds or ())} in {golden.path!r}; its kinds: "
                         f"{', '.join(sorted({str(c.kind) for c in golden.cases}))}")
    return report


def check_case(case: GoldenCase, profile: str = "float64", allow_missing: tuple[str, ...] = ()) -> CaseReport:
    """Recompute one case and compare it field by field (see :func:`check`)."""
    kind_name = case.kind
    if kind_name not in KIND_TABLE:
        rtol, atol = PROFILES[profile]["default"]
        report = CaseReport(case.name, str(kind_name), {}, rtol, atol)
        report.problems.append(f"kind={kind_name!r} is not one this checker knows; known kinds: {', '.join(KINDS)}"
                               if kind_name is not None else f"attr 'kind' is missing; known kinds: {', '.join(KINDS)}")
        return report
    kind = KIND_TABLE[kind_name]
    rtol, atol, tol_notes, tol_problems = tolerances(kind, profile, case.attrs)
    report = CaseReport(case.name, kind.name, {}, rtol, atol, notes=tol_notes, problems=tol_problems)
    for path, why in case.unreadable.items():
        report.problems.append(f"{path or 'the case'}: {why}")
    settings = resolve_attrs(kind, case.attrs, ignore=("kind",) + (("T",) if kind.needs_T else ()))
    report.notes += settings.notes
    report.problems += settings.problems
    for name, value in settings.values.items():
        if name == "arch":
            shown = f"<JSON, {len(value)} characters>"
        elif name == "stride" and value is None:
            shown = "kernel"
        else:
            shown = list(value) if isinstance(value, tuple) else value
        report.settings[name] = f"{shown!r}" if isinstance(shown, str) and shown != "kernel" else f"{shown}"
        if settings.origin[name] != "file":
            report.settings[name] += f" ({settings.origin[name]})"
    sgd = _sgd_settings(kind, case, report)
    fields = _canonical_fields(kind, case, report)
    inputs = _inputs(kind, case, fields, profile, report)
    if report.problems:
        return report
    attrs = dict(case.attrs)
    for key in ("rtol", "atol"):
        attrs.pop(key, None)
    if sgd is not None:
        attrs["params_after"] = sgd
    try:
        ours, margins = recompute_with_margins(kind.name, inputs, {k: v for k, v in attrs.items() if k != "kind"})
    except Exception as exc:  # noqa: BLE001 - a case the library cannot compute FAILs, it does not stop the file
        report.problems.append(f"cannot recompute: {type(exc).__name__}: {exc}")
        return report
    for path, ref in ours.items():
        report.rows.append(_compare_field(case.name, kind, path, ref, fields.get(path), margins.get(path),
                                          rtol, atol, profile, allow_missing))
    for path in fields:
        group = path.split("/", 1)[0]
        if group != "inputs" and path not in ours:
            report.notes.append(f"field {path} is not one this checker computes for kind {kind.name!r}: not checked")
    return report


def _sgd_settings(kind: Kind, case: GoldenCase, report: CaseReport) -> dict[str, Any] | None:
    """The attrs of a model case's ``params_after`` group (SGD steps), resolved; ``None`` if there is none."""
    if kind.name != "model":
        return None
    raw = case.group_attrs.get("params_after")
    if raw is None:
        if any(p.startswith("params_after/") for p in case.fields):
            report.problems.append("group params_after has no attrs; it needs lr and mode (SPEC section 7)")
        return None
    settings = resolve_attrs(kind, raw, table=SGD_ATTRS, ignore=())
    report.notes += [f"params_after: {n}" for n in settings.notes]
    report.problems += [f"params_after: {p}" for p in settings.problems]
    for name, value in settings.values.items():
        report.settings[f"sgd.{name}"] = f"{value}" + ("" if settings.origin[name] == "file"
                                                       else f" ({settings.origin[name]})")
    return dict(settings.values)


def _canonical_fields(kind: Kind, case: GoldenCase, report: CaseReport) -> dict[str, np.ndarray]:
    """The case's datasets under their canonical paths; unknown groups listed as NOTEs, synonyms folded."""
    out: dict[str, np.ndarray] = {}
    unknown_groups: dict[str, int] = {}
    for path, value in case.fields.items():
        group, _, name = path.partition("/")
        if not name or group not in kind.groups:
            unknown_groups[group if name else "(case level)"] = unknown_groups.get(group, 0) + 1
            continue
        canonical = name if name.startswith(("params/", "buffers/")) or kind.name == "model" \
            else kind.field_synonyms.get(name, name)
        key = f"{group}/{canonical}"
        if key in out:
            report.problems.append(f"field {key} given twice (as {group}/{canonical} and the synonym {path})")
            continue
        if canonical != name:
            report.notes.append(f"field {path} read as {key} (synonym)")
        out[key] = value
    for group, count in unknown_groups.items():
        known = ", ".join(kind.groups)
        report.notes.append(f"group {group}/ ({count} dataset{'s' * (count != 1)}) is not one this checker knows "
                            f"for kind {kind.name!r}: not checked (known groups: {known})")
    return out


def _inputs(kind: Kind, case: GoldenCase, fields: dict[str, np.ndarray], profile: str,
            report: CaseReport) -> dict[str, np.ndarray]:
    inputs = {p[len("inputs/"):]: v for p, v in fields.items() if p.startswith("inputs/")}
    allowed = set(kind.inputs) | set(kind.optional_inputs)
    for name in list(inputs):
        if name not in allowed and not (kind.name == "model" and name.startswith(("params/", "buffers/"))):
            report.notes.append(f"input {name} is not one kind {kind.name!r} reads: ignored")
            del inputs[name]
    missing = [n for n in kind.inputs if n not in inputs]
    if missing:
        report.problems.append(f"input{'s' * (len(missing) > 1)} {', '.join('inputs/' + n for n in missing)} "
                               f"missing (kind {kind.name!r} needs {', '.join(kind.inputs)})")
    for name, value in inputs.items():
        if name == "y":
            if value.dtype.kind not in "iu" and not (value.dtype.kind == "f" and np.all(np.mod(value, 1) == 0)):
                report.problems.append(f"inputs/y: dtype {value.dtype}; labels must be integers")
            continue
        if value.dtype.kind != "f" or (profile == "float64" and value.dtype != np.float64):
            report.problems.append(f"inputs/{name}: dtype {value.dtype}; the layout requires float64")
        elif not np.isfinite(value).all():
            report.problems.append(f"inputs/{name} holds non-finite values")
    if kind.needs_T and "I" in inputs:
        T = case.attrs.get("T")
        if isinstance(T, float) and T.is_integer():
            T = int(T)
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            report.problems.append(f"attr T={T!r} must be an integer >= 1 (the number of time steps)")
        elif inputs["I"].ndim == 0 or inputs["I"].shape[0] != T:
            report.problems.append(f"inputs/I has shape {inputs['I'].shape}; expected [T, N, ...] with T = {T}")
        report.settings = {"T": str(T), **report.settings}
    return inputs


def _optional(kind: Kind, path: str) -> bool:
    group = path.split("/", 1)[0]
    return path in kind.optional or f"{group}/*" in kind.optional


def _compare_field(case: str, kind: Kind, path: str, ref: np.ndarray, theirs: np.ndarray | None,
                   margin: np.ndarray | None, rtol: float, atol: float, profile: str,
                   allow_missing: tuple[str, ...]) -> Row:
    group = path.split("/", 1)[0]
    ref = np.asarray(ref)
    integer = path in INTEGER_FIELDS
    row = Row(case, path, "PASS", rtol=0.0 if integer else rtol, atol=0.0 if integer else atol)
    if theirs is None:
        if _optional(kind, path):
            row.status, row.note = "SKIP", "absent (optional)"
        elif group in allow_missing:
            row.status, row.note = "SKIP", f"absent, allowed by --allow-missing {group}"
        else:
            row.status, row.note = "FAIL", f"absent: a required field of kind {kind.name!r}"
        return row
    dtype_problem = _dtype_problem(path, theirs, profile)
    if dtype_problem:
        row.status, row.note = "FAIL", dtype_problem
        return row
    if theirs.shape != ref.shape and not (theirs.size == ref.size == 1 and theirs.ndim <= 1 and ref.ndim <= 1):
        row.status, row.note = "FAIL", f"shape {theirs.shape}; expected {ref.shape}"
        return row
    theirs = np.asarray(theirs, dtype=np.float64).reshape(ref.shape)
    ours = ref.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(theirs - ours)
        limit = row.atol + row.rtol * np.abs(ours)
        bad = ~(diff <= limit)  # NaN in the file: bad
        row.worst = float(np.max(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0.0
        ratio = np.where(limit > 0, diff / np.where(limit > 0, limit, 1.0), np.where(diff == 0, 0.0, np.inf))
        row.ratio = float(np.max(np.where(np.isnan(ratio), np.inf, ratio))) if diff.size else 0.0
    if bad.any():
        row.status = "FAIL"
        row.note = f"{int(bad.sum())} of {bad.size} values out of tolerance"
        order = np.argsort(-np.where(np.isnan(diff), np.inf, diff), axis=None, kind="stable")
        for flat in order[:MAX_DETAILS]:
            if not bad.reshape(-1)[flat]:
                continue
            index = np.unravel_index(flat, ref.shape) if ref.ndim else ()
            text = f"at {list(map(int, index))}: file {theirs.reshape(-1)[flat]:.17g}, ours {ours.reshape(-1)[flat]:.17g}"
            if margin is not None:
                text += _margin_text(kind, path, float(np.asarray(margin).reshape(-1)[flat]))
            row.details.append(text)
    return row


def _margin_text(kind: Kind, path: str, value: float) -> str:
    if kind.name == "spike_quant":
        return f"; x/s lies {abs(value):.3g} from the rounding boundary (k + 1/2)"
    if kind.name == "weight_quant":
        return f"; |w| - delta_c = {value:.3g}"
    what = {"membn": "mhat - theta", "parallel": "I - theta", "membn_fold": "mhat - theta"}.get(kind.name, "m - theta")
    near = " (a near-tie: rounding may decide)" if abs(value) < 1e-6 else ""
    return f"; {what} = {value:.3g}{near}"


def _dtype_problem(path: str, value: np.ndarray, profile: str) -> str:
    kind = value.dtype.kind
    if path == "outputs/codes":
        return "" if kind in "iu" else f"dtype {value.dtype}; codes are integers (int8)"
    if path == "outputs/levels":
        if kind in "iu" or (kind == "f" and np.all(np.isnan(value) | (np.mod(value, 1) == 0))):
            return ""
        return f"dtype {value.dtype} with non-integer values; levels are integers"
    if kind != "f":
        return f"dtype {value.dtype}; the layout requires float64"
    if profile == "float64" and value.dtype != np.float64:
        return f"dtype {value.dtype}; the layout requires float64 (profile float32 accepts other float types)"
    return ""


def list_cases(path: str | os.PathLike, isolate: bool = True, timeout: float = READ_TIMEOUT) -> list[str]:
    """``--list``: one line per case of the file (name, kind, main input shape, attrs), then the kinds known."""
    golden = read_golden(path, isolate=isolate, timeout=timeout)
    width = max(len(c.name) for c in golden.cases)
    lines = [f"golden file {golden.path} (version {golden.version}): {len(golden.cases)} cases"]
    for case in golden.cases:
        attrs = ", ".join(f"{k}={v!r}" for k, v in case.attrs.items() if k not in ("kind", "arch"))
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in case.inputs.items()
                           if not k.startswith(("params/", "buffers/")))
        lines.append(f"  {case.name:<{width}}  kind={case.kind}  {shapes}" + (f"  [{attrs}]" if attrs else ""))
    lines.append("kinds this checker knows: " + ", ".join(KINDS))
    return lines
