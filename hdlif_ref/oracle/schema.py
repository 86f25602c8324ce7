"""What a golden file may hold (SPEC sections 6 and 7): kinds, fields, attrs, synonyms, tolerance profiles.

One table per kind says which inputs it needs (and which are optional), which
output and gradient fields the checker recomputes and which of those are
required, and which attrs it reads: their defaults, the values this checker
implements, and their synonyms. The checker (:mod:`.check`) reads nothing that
is not named here; everything else in a file is listed as a NOTE.

Tolerances belong to the checker (SPEC section 7): :data:`PROFILES`. A case's
``rtol``/``atol`` attrs may only tighten them.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

FORMAT = "hdlif-golden"
VERSIONS = (1, 2)
WRITE_VERSION = 2

#: Tolerance profiles, ``(rtol, atol)``: ``default`` for every kind but ``model``.
PROFILES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {"default": (1e-6, 1e-9), "model": (1e-5, 1e-8)},
    "float32": {"default": (1e-4, 1e-5), "model": (1e-4, 1e-5)},
}

V1_KINDS = ("hdlif", "lif", "parallel", "membn")
LAYER_KINDS = ("conv2d", "linear", "batchnorm", "avgpool", "maxpool", "weight_quant", "spike_quant", "seca1",
               "seca2", "membn_fold")
KINDS = V1_KINDS + LAYER_KINDS + ("model",)

#: Groups a case may hold, by kind family; ``--allow-missing`` takes these names.
GROUPS_V1 = ("inputs", "outputs", "grads_stbp", "grads_online")
GROUPS_V2 = ("inputs", "outputs", "grads")
GROUPS_MODEL = ("inputs", "outputs", "grads_stbp", "grads_online", "params_after", "buffers_after")
ALL_GROUPS = ("inputs", "outputs", "grads", "grads_stbp", "grads_online", "params_after", "buffers_after")
#: Groups whose absence ``--allow-missing`` may excuse (inputs never: nothing can be recomputed without them).
ALLOWABLE_GROUPS = tuple(g for g in ALL_GROUPS if g != "inputs")


class AttrError(ValueError):
    """An attr value this checker does not implement (a FAIL of that case, not of the file)."""


# ----------------------------------------------------------------------------- attr value checkers
def _number(name: str, value: Any, positive: bool = False, minimum: float | None = None,
            maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise AttrError(f"{name}={value!r} must be a finite number")
    if positive and not value > 0:
        raise AttrError(f"{name}={value!r} must be > 0")
    if minimum is not None and value < minimum:
        raise AttrError(f"{name}={value!r} must be >= {minimum:g}")
    if maximum is not None and value > maximum:
        raise AttrError(f"{name}={value!r} must be <= {maximum:g}")
    return float(value)


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum \
            or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise AttrError(f"{name}={value!r} must be an integer {allowed}")
    return int(value)


def _pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    items = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(items) == 1:
        items = items * 2
    if len(items) != 2:
        raise AttrError(f"{name}={value!r} must be an integer or a pair [h, w]")
    return (_int(name, items[0], minimum), _int(name, items[1], minimum))


def _choice(name: str, value: Any, allowed: tuple[str, ...], synonyms: dict[str, str] | None = None,
            known: tuple[str, ...] = ()) -> str:
    """A string attr: ``synonyms`` map spellings to canonical values; ``known`` values are real settings
    this checker does not implement (reported as such)."""
    if not isinstance(value, str):
        raise AttrError(f"{name}={value!r} must be a string; allowed: {', '.join(allowed)}")
    canonical = (synonyms or {}).get(value, value)
    if canonical in allowed:
        return canonical
    if canonical in known:
        raise AttrError(f"{name}={value!r} is not implemented by this checker; implemented: {', '.join(allowed)}")
    raise AttrError(f"{name}={value!r}; allowed: {', '.join(allowed)}"
                    + (f" (synonyms: {', '.join(f'{k}={v}' for k, v in synonyms.items())})" if synonyms else ""))


def _only(name: str, supported: Any) -> Callable[[Any], Any]:
    """An attr whose only implemented value is ``supported`` (e.g. ``dilation=1``)."""
    def check(value: Any) -> Any:
        if isinstance(supported, bool):
            ok = isinstance(value, (bool, int)) and bool(value) == supported and value in (0, 1)
        elif isinstance(value, (list, tuple)):
            ok = all(v == supported for v in value)
        else:
            ok = not isinstance(value, bool) and value == supported
        if not ok:
            raise AttrError(f"{name}={value!r} is not implemented by this checker; implemented: {supported!r}")
        return supported
    return check


BN_MODE_SYNONYMS = {"training": "train", "inference": "eval"}
WEIGHT_SYNONYMS = {"fp32": "float", "fp64": "float", "none": "float"}
SURROGATE_SYNONYMS = {"tri": "triangle"}


@dataclass(frozen=True)
class Attr:
    """An attr the checker reads: ``check(value) -> canonical value`` (raises :class:`AttrError`);
    ``default`` when absent (``REQUIRED``: absence is a FAIL); ``synonyms``: other names of the attr."""

    check: Callable[[Any], Any]
    default: Any = None
    synonyms: tuple[str, ...] = ()


REQUIRED = object()
TOLERANCE_ATTRS = {"rtol": Attr(lambda v: _number("rtol", v, minimum=0.0)),
                   "atol": Attr(lambda v: _number("atol", v, minimum=0.0))}


@dataclass(frozen=True)
class Kind:
    """One case kind: its fields by group and the attrs it reads.

    ``inputs``: required input names; ``optional_inputs``: read when present.
    ``outputs`` / ``grads`` map group name -> field names the checker recomputes;
    ``optional``: fields among those that a file may leave out without a FAIL.
    ``field_synonyms``: other spellings of field names (any group).
    """

    name: str
    version: int
    inputs: tuple[str, ...]
    optional_inputs: tuple[str, ...] = ()
    attrs: dict[str, Attr] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    field_synonyms: dict[str, str] = field(default_factory=dict)
    needs_T: bool = False
    description: str = ""

    @property
    def groups(self) -> tuple[str, ...]:
        if self.name == "model":
            return GROUPS_MODEL
        return GROUPS_V1 if self.version == 1 else GROUPS_V2

    @property
    def profile_key(self) -> str:
        return "model" if self.name == "model" else "default"


_BN_NAMES = {"bn_weight": "bn_gamma", "bn_bias": "bn_beta"}
_LIF_ATTRS = {
    "reset": Attr(lambda v: _choice("reset", v, ("hard", "soft")), "hard"),
    "surrogate": Attr(lambda v: _choice("surrogate", v, ("triangle",), SURROGATE_SYNONYMS,
                                        known=("sigmoid", "atan", "rectangle", "erf")), "triangle"),
    "gamma": Attr(lambda v: _number("gamma", v, positive=True), 1.0),
}
_MEMBN_ATTRS = {
    "bn_eps": Attr(lambda v: _number("bn_eps", v, positive=True), 1e-5),
    "bn_mode": Attr(lambda v: _choice("bn_mode", v, ("train",), BN_MODE_SYNONYMS, known=("eval",)), "train",
                    synonyms=("mode",)),
}
_POOL_ATTRS = {
    "kernel": Attr(lambda v: _pair("kernel", v, 1), REQUIRED, synonyms=("kernel_size",)),
    "stride": Attr(lambda v: _pair("stride", v, 1), None),  # None: the kernel (PyTorch)
    "padding": Attr(lambda v: _pair("padding", v, 0), (0, 0)),
    "ceil_mode": Attr(_only("ceil_mode", False), False),
}
_WEIGHT = Attr(lambda v: _choice("weight", v, ("float", "binary", "ternary"), WEIGHT_SYNONYMS), "float",
               synonyms=("weight_mode",))

KIND_TABLE: dict[str, Kind] = {k.name: k for k in (
    Kind("hdlif", 1, ("I", "lam", "theta", "grad_s"), needs_T=True,
         description="HD-LIF, P2-Reset (E1-E5)"),
    Kind("lif", 1, ("I", "lam", "theta", "grad_s"), attrs=_LIF_ATTRS, needs_T=True,
         description="LIF, hard or soft reset, triangle surrogate (E7)"),
    Kind("parallel", 1, ("I", "theta", "grad_s"), needs_T=True, description="Parallel HD-LIF (E8)"),
    Kind("membn", 1, ("I", "lam", "theta", "alpha", "beta", "bn_gamma", "bn_beta", "grad_s"), attrs=_MEMBN_ATTRS,
         optional=tuple(f"{g}/{n}" for g in ("grads_stbp", "grads_online")
                        for n in ("alpha", "beta", "bn_gamma", "bn_beta")),
         field_synonyms=_BN_NAMES, needs_T=True, description="Mem-BN HD-LIF, BN in training mode (E9)"),
    Kind("conv2d", 2, ("x", "w", "grad_y"), ("b",),
         attrs={"stride": Attr(lambda v: _pair("stride", v, 1), (1, 1)),
                "padding": Attr(lambda v: _pair("padding", v, 0), (0, 0)),
                "weight": _WEIGHT,
                "dilation": Attr(_only("dilation", 1), 1), "groups": Attr(_only("groups", 1), 1)},
         description="2-D cross-correlation with float/binary/ternary weights (E11, E12)"),
    Kind("linear", 2, ("x", "w", "grad_y"), ("b",), attrs={"weight": _WEIGHT},
         description="fully connected, float/binary/ternary weights"),
    Kind("batchnorm", 2, ("x", "gamma", "beta", "running_mean", "running_var", "grad_y"),
         attrs={"eps": Attr(lambda v: _number("eps", v, positive=True), 1e-5),
                "momentum": Attr(lambda v: _number("momentum", v, minimum=0.0, maximum=1.0), 0.1),
                "mode": Attr(lambda v: _choice("mode", v, ("train", "eval"), BN_MODE_SYNONYMS), REQUIRED,
                             synonyms=("bn_mode",))},
         optional=("grads/running_mean", "grads/running_var"),
         field_synonyms={"weight": "gamma", "bias": "beta", "bn_weight": "gamma", "bn_bias": "beta",
                         "bn_gamma": "gamma", "bn_beta": "beta"},
         description="batch norm, train (batch statistics, running update) or eval"),
    Kind("avgpool", 2, ("x", "grad_y"),
         attrs={**_POOL_ATTRS, "count_include_pad": Attr(_only("count_include_pad", True), True)},
         description="average pooling (count_include_pad=True)"),
    Kind("maxpool", 2, ("x", "grad_y"), attrs={**_POOL_ATTRS, "dilation": Attr(_only("dilation", 1), 1)},
         description="max pooling (-inf padding, first maximum gets the gradient)"),
    Kind("weight_quant", 2, ("w", "grad_y"),
         attrs={"mode": Attr(lambda v: _choice("mode", v, ("binary", "ternary")), REQUIRED,
                             synonyms=("weight", "weight_mode"))},
         description="E11 / E12 weights, codes and scales, straight-through gradient"),
    Kind("spike_quant", 2, ("x", "s", "grad_y"),
         attrs={"bits": Attr(lambda v: _int("bits", v, 1, 16), REQUIRED, synonyms=("n", "spike_bits"))},
         field_synonyms={"step": "s"}, description="E13 n-bit spikes, LSQ-style gradients"),
    Kind("seca1", 2, ("I", "k", "grad_y"), description="SECA_I (E14)"),
    Kind("seca2", 2, ("I_post", "I_pre", "k", "k_pre", "grad_y"), description="SECA_II (E15)"),
    Kind("membn_fold", 2, ("lam", "alpha", "beta", "bn_gamma", "bn_beta", "running_mean", "running_var", "I"),
         ("theta",), attrs={"bn_eps": Attr(lambda v: _number("bn_eps", v, positive=True), 1e-5,
                                           synonyms=("eps",))},
         field_synonyms=_BN_NAMES, description="E10: Mem-BN folded into a vanilla HD-LIF"),
    Kind("model", 2, ("x", "y"),
         attrs={"arch": Attr(lambda v: _json_text("arch", v), REQUIRED),
                "T": Attr(lambda v: _int("T", v, 1), REQUIRED),
                "online_steps": Attr(lambda v: _steps("online_steps", v), REQUIRED),
                "loss": Attr(lambda v: _choice("loss", v, ("ce_mean_t",)), "ce_mean_t")},
         optional=("buffers_after/*",), description="a whole network: logits, losses, STBP (E17) and "
                                                    "online (E16) gradients, two SGD steps"),
)}

#: Attrs of the ``params_after`` group of a model case (SPEC section 7: the SGD steps).
SGD_ATTRS = {
    "lr": Attr(lambda v: _number("lr", v, minimum=0.0), REQUIRED),
    "momentum": Attr(lambda v: _number("momentum", v, minimum=0.0), 0.0),
    "weight_decay": Attr(lambda v: _number("weight_decay", v, minimum=0.0), 0.0),
    "mode": Attr(lambda v: _choice("mode", v, ("stbp", "online")), REQUIRED),
    "steps": Attr(lambda v: _int("steps", v, 1, 100), 2),
    "dampening": Attr(_only("dampening", 0.0), 0.0),
    "nesterov": Attr(_only("nesterov", False), False),
}


def _json_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip().startswith("{"):
        raise AttrError(f"{name} must be a JSON object as a string, got {type(value).__name__}")
    return value


def _steps(name: str, value: Any) -> tuple[int, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise AttrError(f"{name} is empty; it lists the backpropagated steps (1-based)")
    out = tuple(_int(name, v, 1) for v in items)
    if len(set(out)) != len(out) or list(out) != sorted(out):
        raise AttrError(f"{name}={list(out)} must be increasing and without repeats")
    return out


# ----------------------------------------------------------------------------- attr resolution
@dataclass
class Settings:
    """What the checker will use for one case: canonical attr values, where each came from, and problems."""

    values: dict[str, Any]
    origin: dict[str, str]  # "file", "default", or "file, as 'x'" (a synonym)
    problems: list[str]
    notes: list[str]


def resolve_attrs(kind: Kind, attrs: dict[str, Any], table: dict[str, Attr] | None = None,
                  ignore: tuple[str, ...] = ("kind", "T")) -> Settings:
    """Canonical settings from a case's attrs: synonyms folded, defaults filled, unknown attrs as notes,
    unsupported values as problems (each one a FAIL of the case)."""
    table = kind.attrs if table is None else table
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    notes: list[str] = []
    seen: dict[str, str] = {}
    for key, raw in attrs.items():
        if key in ignore or key in TOLERANCE_ATTRS:
            continue
        canonical = key if key in table else next((name for name, a in table.items() if key in a.synonyms), None)
        if canonical is None:
            notes.append(f"attr {key}={_short(raw)} is not one this checker knows for kind {kind.name!r}: "
                         f"ignored{_did_you_mean(key, table)}")
            continue
        if canonical in seen:
            problems.append(f"attrs {seen[canonical]!r} and {key!r} both set {canonical!r}")
            continue
        seen[canonical] = key
        try:
            values[canonical] = table[canonical].check(raw)
        except AttrError as exc:
            problems.append(f"attr {exc}" if key == canonical else f"attr {key} (= {canonical}): {exc}")
            continue
        origin[canonical] = "file" if key == canonical else f"file, as {key!r}"
        if isinstance(raw, str) and values[canonical] != raw:
            origin[canonical] += f" {raw!r}"
    for name, attr in table.items():
        if name in values or name in seen:
            continue
        if attr.default is REQUIRED:
            problems.append(f"attr {name!r} is missing (required for kind {kind.name!r})")
        else:
            values[name], origin[name] = attr.default, "default"
    return Settings(values, origin, problems, notes)


def _did_you_mean(key: str, table: dict[str, Attr]) -> str:
    import difflib

    names = list(table) + [s for a in table.values() for s in a.synonyms] + list(TOLERANCE_ATTRS)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    if not close and any(key in n or n in key for n in names):
        close = [next(n for n in names if key in n or n in key)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def tolerances(kind: Kind, profile: str, attrs: dict[str, Any]) -> tuple[float, float, list[str], list[str]]:
    """``(rtol, atol, notes, problems)``: the profile's values, tightened (never loosened) by the case's attrs."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}; allowed: {', '.join(PROFILES)}")
    rtol, atol = PROFILES[profile][kind.profile_key]
    notes, problems = [], []
    for name, attr in TOLERANCE_ATTRS.items():
        if name not in attrs:
            continue
        try:
            value = attr.check(attrs[name])
        except AttrError as exc:
            problems.append(f"attr {exc}")
            continue
        current = rtol if name == "rtol" else atol
        if value < current:
            notes.append(f"attr {name}={value:g} tightens the profile's {current:g}: used")
            rtol, atol = (value, atol) if name == "rtol" else (rtol, value)
        elif value > current:
            notes.append(f"attr {name}={value:g} is looser than profile {profile}'s {current:g}: ignored "
                         f"(tolerances belong to the checker; a case may only tighten them)")
    return rtol, atol, notes, problems
