"""``Monitor``: record the spikes, membranes, input currents and firing rates of named layers during a run.

Built on forward hooks (:meth:`Module.register_forward_hook`) only; the model is
not changed and runs as it would without the monitor::

    with Monitor(model, ["features.2", "features.5"]) as mon:
        model.reset_state()
        model(x)                              # or T single steps
    mon.spikes["features.2"]                  # [T, N, ...], what the layer emitted
    mon.membranes["features.2"]               # [T, N, ...], u_t after the reset
    mon.firing_rates()                        # {"features.2": 0.23, ...}

What a layer's entry holds, per forward call of that layer:

* ``spikes``: its output (a neuron's emitted spikes, after the E13 quantizer if any;
  any other module's output);
* ``inputs``: its first input (a neuron's input current ``I_t``);
* ``membranes`` (neurons only): ``u_t`` after the reset. In single-step mode it is
  the neuron's state after the call; in multi-step mode the neuron's ``record(I)``
  recomputes it from the input with the NumPy twins (the fused kernels keep no
  membrane). A layer without a membrane (Parallel HD-LIF, a non-neuron) has no entry.

A single-step call adds one step, a multi-step call its ``T`` steps; the arrays
are the calls concatenated along time, ``[steps, N, ...]``. Record one run (one
batch) at a time and :meth:`clear` in between, or pass ``keep=False`` to count
firing rates only (they accumulate over every call until :meth:`clear`).

This module sits on the layers floor and imports no neuron class: a neuron is
recognized by what it offers (``state`` and ``firing_counts``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Sequence

import numpy as np

from ..module import Module

RECORDS = ("spikes", "membranes", "inputs")


def is_neuron(module: Module) -> bool:
    """A spiking neuron module (what :class:`~hdlif_ref.neurons.SpikingNeuron` offers), by duck typing."""
    return hasattr(module, "firing_counts") and hasattr(module, "state") and hasattr(module, "T")


def neuron_names(model: Module) -> list[str]:
    """Names of the neuron layers of ``model`` in depth order (as ``named_modules`` gives them)."""
    return [name for name, m in model.named_modules() if is_neuron(m)]


def _array(x) -> np.ndarray:
    return np.array(getattr(x, "data", x), copy=True)


class _Trace(OrderedDict):
    """``name -> [steps, N, ...]`` from the recorded calls; a missing name says what was recorded."""

    def __init__(self, kind: str, calls: dict[str, list[np.ndarray]]):
        super().__init__()
        self.kind = kind
        for name, parts in calls.items():
            if parts:
                shapes = {p.shape[1:] for p in parts}
                if len(shapes) > 1:
                    raise ValueError(f"Monitor: the recorded {kind} of {name!r} have different shapes "
                                     f"{sorted(shapes)} (batches of different sizes?); call clear() between "
                                     f"batches")
                self[name] = np.concatenate(parts, axis=0)

    def __missing__(self, name: str):
        raise KeyError(f"Monitor: no {self.kind} recorded for {name!r}; recorded: {', '.join(self) or 'none'}")


class Monitor:
    """Record ``spikes``, ``membranes`` and/or ``inputs`` of named layers of ``model`` (forward hooks).

    Parameters
    ----------
    model : Module
    layers : names from ``model.named_modules()`` (e.g. ``"features.2"``), or None for every neuron layer
    record : which of ``"spikes"``, ``"membranes"``, ``"inputs"`` to keep (default spikes and membranes)
    keep : False to keep no arrays, only the firing-rate counts

    The hooks are attached at construction and removed by :meth:`remove` or on leaving
    a ``with`` block; the recorded data stay readable after that.
    """

    def __init__(self, model: Module, layers: Iterable[str] | str | None = None,
                 record: Sequence[str] = ("spikes", "membranes"), keep: bool = True):
        if not isinstance(model, Module):
            raise TypeError(f"Monitor: model must be a Module, got {type(model).__name__}")
        if isinstance(record, str):
            record = (record,)
        bad = [r for r in record if r not in RECORDS]
        if bad:
            raise ValueError(f"Monitor: record={list(record)!r}; allowed: {', '.join(RECORDS)}")
        modules = dict(model.named_modules())
        if layers is None:
            layers = neuron_names(model)
        elif isinstance(layers, str):
            layers = [layers]
        layers = list(layers)
        unknown = [n for n in layers if n not in modules or n == ""]
        if unknown:
            raise ValueError(f"Monitor: no layer named {', '.join(repr(n) for n in unknown)}; neuron layers: "
                             f"{', '.join(neuron_names(model)) or 'none'} (any name of model.named_modules() "
                             f"is allowed)")
        self.layers, self.record, self.keep = layers, tuple(record), bool(keep)
        self._calls: dict[str, dict[str, list[np.ndarray]]] = {}
        self._counts: dict[str, list[int]] = {}
        self.clear()
        self._handles = [modules[name].register_forward_hook(self._hook_for(name)) for name in layers]

    # ------------------------------------------------------------ recording
    def _hook_for(self, name: str):
        def hook(module, inputs, out):
            seq = getattr(module, "step_mode", "s") == "m"
            data = getattr(out, "data", out)
            counts = self._counts[name]
            counts[0] += int(np.count_nonzero(data))
            counts[1] += int(np.size(data))
            if not self.keep:
                return
            as_steps = (lambda a: a) if seq else (lambda a: a[None])  # noqa: E731 - one step -> [1, N, ...]
            calls = self._calls
            if "spikes" in self.record:
                calls["spikes"][name].append(as_steps(_array(out)))
            if "inputs" in self.record:
                calls["inputs"][name].append(as_steps(_array(inputs[0])))
            if "membranes" in self.record and is_neuron(module):
                u = self._membrane(module, inputs[0], seq)
                if u is not None:
                    calls["membranes"][name].append(as_steps(u))
        return hook

    @staticmethod
    def _membrane(module, I, seq: bool) -> np.ndarray | None:
        if not seq:
            u = module.state.u
            return None if u is None else _array(u)
        if not hasattr(module, "record"):
            return None  # Parallel HD-LIF: no membrane
        return _array(module.record(I).u)

    def clear(self) -> "Monitor":
        """Forget everything recorded (arrays and firing-rate counts); the hooks stay."""
        self._calls = {kind: {name: [] for name in self.layers} for kind in RECORDS}
        self._counts = {name: [0, 0] for name in self.layers}
        return self

    # ------------------------------------------------------------ results
    @property
    def spikes(self) -> dict[str, np.ndarray]:
        """``name -> [steps, N, ...]``: what each layer emitted."""
        return _Trace("spikes", self._calls["spikes"])

    @property
    def membranes(self) -> dict[str, np.ndarray]:
        """``name -> [steps, N, ...]``: ``u_t`` after the reset, for neuron layers with a membrane."""
        return _Trace("membranes", self._calls["membranes"])

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        """``name -> [steps, N, ...]``: each layer's first input (a neuron's current ``I_t``)."""
        return _Trace("inputs", self._calls["inputs"])

    def firing_rates(self) -> dict[str, float]:
        """``name -> non-zero outputs / outputs`` over every call since the last :meth:`clear` (0 if none)."""
        return {name: (nonzero / total if total else 0.0) for name, (nonzero, total) in self._counts.items()}

    # ------------------------------------------------------------ hooks
    def remove(self) -> None:
        """Detach the hooks (the recorded data stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Monitor(layers={self.layers!r}, record={list(self.record)!r}, keep={self.keep})"
