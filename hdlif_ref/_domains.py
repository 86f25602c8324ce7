"""The domain of every stored parameter and buffer, checked wherever a file is loaded.

One table, used for checkpoints (``eval``, ``deploy``, ``resume`` and
:func:`hdlif_ref.training.run.load_trained`, through :mod:`hdlif_ref.training.validate`)
and for frozen models (``run``, :func:`hdlif_ref.deploy.frozen_io.load_frozen`, and
before ``deploy`` writes one). A file's checksum only says its bytes are the ones its
writer stamped, and anyone can re-stamp a file (docs/security.md): the values are
checked here, by name.

Every floating value must be finite. The rule of a tensor is chosen by the last
component of its name (``features.3.1.quantizer.step`` -> ``step``):

==============  =====================  ==============================================
name            domain                 why
==============  =====================  ==============================================
``step``        finite, > 0            the spike-quantizer step ``s`` (SPEC E13)
``theta``       finite, > 0            the neuron threshold (SPEC E1, E2)
``running_var`` finite, >= 0           a variance (BN, Mem-BN's ``BN_t``; E9, E10)
``lam``         finite                 the leak; the optimizer may move it anywhere
                                       (SPEC E1 DC), so any finite value is in its domain
``alpha``,      finite                 Mem-BN's mixing weights (SPEC E9)
``beta``
anything else   finite
==============  =====================  ==============================================

Imports only numpy, so every floor may use it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: name -> (lower bound, strict, what the tensor is); names not listed must only be finite.
BOUNDS: dict[str, tuple[float, bool, str]] = {
    "step": (0.0, True, "the spike-quantizer step s, SPEC E13"),
    "theta": (0.0, True, "the neuron threshold theta, SPEC E2"),
    "running_var": (0.0, False, "a running variance"),
}
#: Dtypes a floating parameter or buffer may be stored in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def rule_of(name: str) -> str:
    """What ``name`` must satisfy, in words (for messages and docs)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in BOUNDS:
        low, strict, what = BOUNDS[leaf]
        return f"finite and {'>' if strict else '>='} {low:g} ({what})"
    return "finite"


def domain_problem(name: str, value: Any) -> str | None:
    """Why the value of the tensor ``name`` is outside its domain, in one line naming it; None if it is inside.

    Only floating values are judged (integer codes and counters have no domain here).
    """
    a = np.asarray(value)
    if a.dtype.kind not in "fc":
        return None
    finite = np.isfinite(a)
    if not finite.all():
        return _describe(name, a, ~finite, "non-finite")
    leaf = name.rsplit(".", 1)[-1]
    if leaf in BOUNDS:
        low, strict, _ = BOUNDS[leaf]
        bad = ~(a > low) if strict else ~(a >= low)
        if bad.any():
            return _describe(name, a, bad, "out-of-domain")
    return None


def _describe(name: str, a: np.ndarray, bad: np.ndarray, adjective: str) -> str:
    if a.ndim == 0:
        return f"{name} = {_show(a[()])} must be {rule_of(name)}"
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(bad.sum())
    return (f"{name} holds {count} {adjective} value{'s' if count > 1 else ''} of {a.size} (first {_show(a[index])} "
            f"at index {list(index)}); it must be {rule_of(name)}")


def _show(x: Any) -> str:
    return f"{x.real:.6g}" if np.iscomplexobj(x) else f"{float(x):.6g}"
