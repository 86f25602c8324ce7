"""The validation pass on load: every tensor of a checkpoint checked against the rebuilt model.

Shared by ``eval``, ``deploy``, ``report``, ``plot`` and the Python loader
(:func:`~.run.load_trained`) and by ``--resume`` (:meth:`~.run.Run.restore`): what one of
them loads, all of them load, and ``deploy`` never writes what ``run`` would refuse
(the frozen model applies the same domains, :mod:`hdlif_ref._domains`).

For every entry of the model's ``state_dict``, in order, the stored tensor must

* be an array (not a number, string or tree);
* have a dtype of the model's kind: float32 or float64 where the model's tensor is
  floating (int8 weights are refused, not silently cast), the same kind otherwise;
* have the model's shape;
* lie in its domain (:func:`hdlif_ref._domains.domain_problem`): finite, and
  ``step > 0``, ``theta > 0``, ``running_var >= 0``.

Missing and unexpected names are refused too. Every refusal is one
:class:`~.checkpoint.CheckpointError` line naming the file and the tensor.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._domains import FLOAT_DTYPES, domain_problem
from .checkpoint import CheckpointError


def validate_state(model: Any, state: Any, source: str, error: type[Exception] = CheckpointError) -> None:
    """Refuse ``state`` (a loaded ``model_state``) unless every tensor fits ``model`` and its domain.

    ``source`` names the file in messages (``"checkpoint 'runs/x/last.h5'"``).
    """
    if not isinstance(state, dict):
        raise error(f"{source}: the model state is a {type(state).__name__}, not a table of tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = ([f"missing tensors {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"] if missing else []) \
            + ([f"unexpected tensors {', '.join(map(str, unexpected[:6]))}{' ...' if len(unexpected) > 6 else ''}"]
               if unexpected else [])
        raise error(f"{source} does not fit the network its config describes: {'; '.join(parts)}")
    for name, target in expected.items():
        value = state[name]
        if not isinstance(value, np.ndarray):
            raise error(f"{source}: tensor {name} is a {type(value).__name__}, expected an array of shape "
                        f"{tuple(target.shape)}")
        if target.dtype.kind == "f":
            if value.dtype not in FLOAT_DTYPES:
                raise error(f"{source}: tensor {name} has dtype {value.dtype}; a floating parameter or buffer is "
                            f"stored as float32 or float64")
        elif value.dtype.kind != target.dtype.kind:
            raise error(f"{source}: tensor {name} has dtype {value.dtype}; the model's is {target.dtype}")
        if value.shape != target.shape:
            raise error(f"{source} does not fit the network its config describes: tensor {name} has shape "
                        f"{tuple(value.shape)}, the network's is {tuple(target.shape)}")
        problem = domain_problem(name, value)
        if problem:
            raise error(f"{source}: tensor {problem}")


def validate_finite_tree(tree: Any, what: str, source: str, error: type[Exception] = CheckpointError) -> None:
    """Refuse a tree (optimizer state) holding a non-finite floating value; the message names its path."""
    stack: list[tuple[str, Any]] = [(what, tree)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((f"{where}[{k!r}]", v) for k, v in reversed(list(node.items())))
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node))))
        elif isinstance(node, (float, np.floating, np.ndarray)) and not isinstance(node, bool):
            a = np.asarray(node)
            if a.dtype.kind in "fc" and not np.isfinite(a).all():
                raise error(f"{source}: {where} holds non-finite values; a checkpoint to resume from must be finite")
