"""Deployment: frozen models (BN and Mem-BN folded, packed ternary codes), counters (SPEC E18-E20).

Golden vectors and verify live in :mod:`hdlif_ref.oracle`.

``freeze(model)`` turns a trained network into a :class:`FrozenModel` that runs without
autograd; ``save_frozen``/``load_frozen`` write and read it (docs/deploy.md). The names
below are imported on first use, so that importing the frozen runner
(``hdlif_ref.deploy.frozen``) never pulls in autograd or the training-form layers.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"freeze": "convert", "FrozenModel": "frozen", "FrozenModelError": "frozen_io",
            "save_frozen": "frozen_io", "load_frozen": "frozen_io", "parameter_memory": "metrics",
            "count_ops": "metrics", "count_nops": "metrics", "energy": "metrics"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hdlif_ref.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
