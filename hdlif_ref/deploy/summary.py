"""``summary(model, input_shape, T)``: a per-layer table of shapes, parameters, memory and NOPs."""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, no_grad
from ..module import Module
from .metrics import NOP_COST, count_nops, parameter_memory


def _output_shapes(model: Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Per-step output shape (batch 1) of every module, from one single-step forward."""
    shapes: dict[str, tuple[int, ...]] = {}
    names = {id(m): n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(lambda mod, args, out: shapes.__setitem__(names[id(mod)], out.shape))
               for m in model.modules() if m is not model]
    was_training, mode = model.training, model.step_mode
    try:
        model.eval().set_step_mode("s").reset_state()
        with no_grad():
            model(Tensor(np.zeros((1,) + tuple(input_shape), dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
        model.reset_state().train(was_training).set_step_mode(mode)
    return shapes


def summary(model: Module, input_shape: tuple[int, ...], T: int | None = None, print_fn=print) -> dict:
    """Print a table (name, output shape, params, bits, bytes, neurons, NOPs) and return the totals.

    ``input_shape``: one sample ``[C, H, W]``. NOPs are per sample over ``T`` steps (SPEC E19);
    bytes follow SPEC E18 (see :func:`parameter_memory`).
    """
    T = int(T if T is not None else getattr(model, "T", 1))
    shapes = _output_shapes(model, input_shape)
    memory = {name: row for name, *row in parameter_memory(model)["layers"]}
    nops = {name: value for name, _, value in count_nops(model, input_shape, T).layers}
    header = f"{'layer':<34} {'output':<18} {'params':>10} {'bits':>4} {'bytes':>12} {'neurons':>9} {'NOPs':>12}"
    lines = [header, "-" * len(header)]
    totals = dict(params=0, bytes=0.0, neurons=0, nops=0.0)
    for name, module in model.named_modules():
        if not name or module._modules and name not in memory:
            continue
        params, bits, nbytes = memory.get(name, (0, "", 0.0))
        neurons = int(np.prod(shapes[name][1:])) if type(module) in NOP_COST and name in shapes else 0
        layer_nops = 0.0
        if neurons:
            mul, add = NOP_COST[type(module)]
            layer_nops = nops.get(name, 0.0) * (mul + add)
        shape = "x".join(str(d) for d in shapes.get(name, ())[1:])
        lines.append(f"{name:<34} {shape:<18} {params:>10,} {bits!s:>4} {nbytes:>12,.0f} {neurons:>9,} "
                     f"{layer_nops:>12,.0f}")
        totals["params"] += params
        totals["bytes"] += nbytes
        totals["neurons"] += neurons
        totals["nops"] += layer_nops
    lines.append("-" * len(header))
    lines.append(f"{'total':<34} {'':<18} {totals['params']:>10,} {'':>4} {totals['bytes']:>12,.0f} "
                 f"{totals['neurons']:>9,} {totals['nops']:>12,.0f}")
    lines.append(f"parameter memory {totals['bytes'] / 1e6:.2f} MB; NOPs {totals['nops'] / 1e6:.2f} M "
                 f"(T={T}, per sample)")
    for line in lines:
        print_fn(line)
    return totals
