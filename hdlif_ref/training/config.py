"""The training configuration: every knob, its default, and the checks on its value.

The defaults are the front door's default job (``hdlif-ref train`` with no
arguments): the embedded digits, a small conv SNN with Mem-BN HD-LIF neurons
(SPEC E1-E2, E9), ternary synapses (E12), 4-bit spikes (E13), online training
with ``K = 1`` (E16), ``T = 4``. A config file (TOML or JSON) or command-line
flags override any subset; :func:`resolve_config` checks the result and
returns a plain dict that is stored with every run and checkpoint.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from ..datasets.encoders import ENCODINGS

DEFAULTS: dict[str, Any] = {
    # data
    "dataset": "digits",
    "data_dir": None,
    "upsample": False,
    "train_fraction": 1.0,
    "noise": 0.0,
    "augment": False,
    "encoding": "direct",
    # model
    "model": "digits_net",
    "width": 1.0,
    "neuron": "membn",
    "T": 4,
    "weight_mode": "ternary",
    "spike_bits": 4,
    "parallel_fraction": 0.0,
    "seca": None,
    "per_channel": False,
    "bn_stats": "per_step",
    # training
    "method": "online",
    "K": 1,
    "update": "batch",
    "epochs": 8,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 3e-3,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup_epochs": 0,
    "label_smoothing": 0.0,
    "clip_norm": None,
    "on_nonfinite": "stop",
    "seed": 0,
    "eval_batch_size": 256,
}

CHOICES: dict[str, tuple] = {
    "dataset": ("digits", "event-digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "cifar10-dvs"),
    "encoding": ENCODINGS,
    "model": ("digits_net", "resnet18", "resnet19", "resnet34", "vgg_snn"),
    "neuron": ("lif", "hdlif", "parallel", "membn"),
    "weight_mode": ("fp32", "binary", "ternary"),
    "seca": (None, "I", "II"),
    "bn_stats": ("per_step", "shared"),
    "on_nonfinite": ("stop", "skip-batch"),
    "method": ("online", "stbp"),
    "update": ("batch", "step"),
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("cosine", "step", "constant"),
}

# Domains. Integers: inclusive (low, high). Floats: (low, high, low_inclusive, high_inclusive);
# every float must also be finite (NaN fails every comparison, so it is refused by name).
_INTS = {"T": (1, 1024), "epochs": (1, 100_000), "batch_size": (1, 1 << 20), "seed": (0, 2 ** 63 - 1),
         "warmup_epochs": (0, 100_000), "eval_batch_size": (1, 1 << 20)}
_FLOATS = {"lr": (0.0, None, True, False), "momentum": (0.0, 1.0, True, True),
           "weight_decay": (0.0, None, True, False), "width": (0.0, 64.0, False, True),
           "parallel_fraction": (0.0, 1.0, True, True), "label_smoothing": (0.0, 1.0, True, False),
           "train_fraction": (0.0, 1.0, False, True), "noise": (0.0, None, True, False)}
_BOOLS = ("upsample", "augment", "per_channel")
#: Datasets whose samples are already event frames ``[T, 2, H, W]`` (nothing to encode).
EVENT_DATASETS = ("event-digits", "cifar10-dvs")


def flag(key: str) -> str:
    """The command-line spelling of a config key."""
    return "--" + key.replace("_", "-")


def _refuse(key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"config: {key}={value!r} ({flag(key)}); allowed: {allowed}")


def _interval(low, high, low_in: bool, high_in: bool) -> str:
    if high is None:
        return f"a finite number {'>=' if low_in else '>'} {low:g}"
    return f"a number in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def _check(key: str, value: Any) -> Any:
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise _refuse(key, value, ", ".join("none" if c is None else str(c) for c in CHOICES[key]))
        return value
    if key in _INTS:
        low, high = _INTS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _refuse(key, value, f"an integer in [{low}, {high}]")
        return value
    if key in _FLOATS:
        low, high, low_in, high_in = _FLOATS[key]
        ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
              and (value >= low if low_in else value > low)
              and (high is None or (value <= high if high_in else value < high)))
        if not ok:
            raise _refuse(key, value, _interval(low, high, low_in, high_in))
        return float(value)
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise _refuse(key, value, "true or false")
        return value
    if key == "K":
        if value != "all" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024):
            raise _refuse(key, value, "'all' or an integer in [1, T]")
        return value
    if key == "spike_bits":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16):
            raise _refuse(key, value, "none or an integer in [1, 16]")
        return value
    if key == "clip_norm":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise _refuse(key, value, "none or a finite number > 0")
        return None if value is None else float(value)
    if key == "data_dir":
        if value is not None and not isinstance(value, str):
            raise _refuse(key, value, "a path or none")
        return value
    raise AssertionError(f"no check for config key {key!r}")  # every key of DEFAULTS has one


def resolve_config(overrides: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULTS`` updated with ``base`` then ``overrides``; every value checked.

    Unknown keys raise ``ValueError`` listing the allowed ones; ``"none"`` strings
    become ``None`` for the keys that allow it.
    """
    config = dict(DEFAULTS)
    for source in (base or {}, overrides or {}):
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"config: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}")
        config.update(source)
    for key in ("seca", "spike_bits", "clip_norm", "data_dir"):
        if isinstance(config[key], str) and config[key].lower() == "none":
            config[key] = None
    config = {key: _check(key, value) for key, value in config.items()}  # every value, then combinations
    if config["K"] != "all" and config["K"] > config["T"]:
        raise ValueError(f"config: K={config['K']} (--K) is larger than T={config['T']} (--T)")
    if config["encoding"] != "direct" and config["dataset"] in EVENT_DATASETS:
        raise ValueError(f"config: encoding={config['encoding']!r} (--encoding) applies to static images; dataset "
                         f"{config['dataset']} already comes as event frames (use encoding direct)")
    if config["neuron"] not in ("hdlif", "membn") and config["parallel_fraction"]:
        raise ValueError(f"config: parallel_fraction (--parallel-fraction) applies to neuron hdlif or membn, "
                         f"not {config['neuron']}")
    if config["warmup_epochs"] >= config["epochs"] and config["warmup_epochs"]:
        raise ValueError(f"config: warmup_epochs={config['warmup_epochs']} (--warmup-epochs) must be smaller "
                         f"than epochs={config['epochs']} (--epochs)")
    return config


def saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """The config stored in a checkpoint, resolved; keys it predates keep the behaviour it was trained with.

    ``bn_stats`` is absent from v0.1 checkpoints, whose batch norms kept one set of running
    statistics for all steps: such a config means ``"shared"`` (the default for new runs is
    ``"per_step"``, SPEC E16 DC).
    """
    if not isinstance(saved, dict):
        raise ValueError(f"the saved config is a {type(saved).__name__}, not a table of keys")
    return resolve_config(dict({"bn_stats": "shared"}, **saved))


def load_config_file(path: str) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON (``.json``) file of config keys (flat table)."""
    if not os.path.isfile(path):
        if os.path.isdir(path):
            raise ValueError(f"config file {path!r} is a directory; give a .toml or .json file")
        raise FileNotFoundError(f"config file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as fh:
        raw = fh.read()
    if ext == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ValueError(f"config file {path!r}: TOML needs Python >= 3.11; use JSON") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {path!r} is not valid TOML: {exc}") from None
    elif ext == ".json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {path!r} is not valid JSON: {exc}") from None
    else:
        raise ValueError(f"config file {path!r}: extension {ext!r}; allowed: .toml, .json")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must hold a table of keys")
    return data
