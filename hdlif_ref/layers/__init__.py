"""Modules and layers: the Module system, synapses, pooling, batch norm, SECA.

Model builders live in :mod:`hdlif_ref.layers.models` and are not imported here,
so that :mod:`hdlif_ref.neurons` (which builds on :class:`Module`) and the
builders (which build on the neurons) never import each other in a cycle.
"""
from .basic import Dropout, Flatten, Identity
from .module import Module, Parameter, Sequential
from .norm import BatchNorm1d, BatchNorm2d
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .seca import SECA1, SECA2, CurrentTap, eca_kernel_size
from .synapses import Conv2d, Linear

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "AvgPool2d",
           "MaxPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Identity", "SECA1", "SECA2", "CurrentTap",
           "eca_kernel_size"]
