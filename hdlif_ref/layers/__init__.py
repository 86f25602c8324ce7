"""Modules and layers: the Module system, synapses, pooling, batch norm, SECA.

Model builders live in :mod:`hdlif_ref.layers.models` and are not imported here,
so that :mod:`hdlif_ref.neurons` (which builds on :class:`Module`) and the
builders (which build on the neurons) never import each other in a cycle.
"""
from .module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential"]
