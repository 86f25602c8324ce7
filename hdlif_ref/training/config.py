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
    "method": ("online", "stbp"),
    "update": ("batch", "step"),
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("cosine", "step", "constant"),
}

_INTS = {"T": 1, "epochs": 1, "batch_size": 1, "seed": 0, "warmup_epochs": 0, "eval_batch_size": 1}
_FLOATS = {"lr": (0.0, None), "momentum": (0.0, 1.0), "weight_decay": (0.0, None), "width": (0.0, None),
           "parallel_fraction": (0.0, 1.0), "label_smoothing": (0.0, 1.0), "train_fraction": (0.0, 1.0),
           "noise": (0.0, None)}
_BOOLS = ("upsample", "augment", "per_channel")
#: Datasets whose samples are already event frames ``[T, 2, H, W]`` (nothing to encode).
EVENT_DATASETS = ("event-digits", "cifar10-dvs")


def _check(key: str, value: Any) -> Any:
    if key in CHOICES:
        if value not in CHOICES[key]:
            allowed = ", ".join("none" if c is None else str(c) for c in CHOICES[key])
            raise ValueError(f"config: {key}={value!r}; allowed: {allowed}")
        return value
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < _INTS[key]:
            raise ValueError(f"config: {key}={value!r} must be an integer >= {_INTS[key]}")
        return value
    if key in _FLOATS:
        low, high = _FLOATS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (
                high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(f"config: {key}={value!r} must be a number {bound}")
        return float(value)
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError(f"config: {key}={value!r} must be true or false")
        return value
    if key == "K":
        if value != "all" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"config: K={value!r}; allowed: 'all' or an integer >= 1")
        return value
    if key == "spike_bits":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"config: spike_bits={value!r}; allowed: none or an integer >= 1")
        return value
    if key == "clip_norm":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"config: clip_norm={value!r}; allowed: none or a positive number")
        return value
    if key == "data_dir":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"config: data_dir={value!r} must be a path or none")
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
        raise ValueError(f"config: K={config['K']} is larger than T={config['T']}")
    if config["encoding"] != "direct" and config["dataset"] in EVENT_DATASETS:
        raise ValueError(f"config: encoding={config['encoding']!r} applies to static images; dataset "
                         f"{config['dataset']} already comes as event frames (use encoding direct)")
    if config["neuron"] not in ("hdlif", "membn") and config["parallel_fraction"]:
        raise ValueError(f"config: parallel_fraction applies to neuron hdlif or membn, not {config['neuron']}")
    if config["warmup_epochs"] >= config["epochs"] and config["warmup_epochs"]:
        raise ValueError(f"config: warmup_epochs={config['warmup_epochs']} must be smaller than "
                         f"epochs={config['epochs']}")
    return config


def load_config_file(path: str) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON (``.json``) file of config keys (flat table)."""
    if not os.path.isfile(path):
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
