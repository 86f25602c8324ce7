"""Layers: synapses (conv, linear, binary/ternary weights), pooling, batch norm, SECA.

``Module``, ``Parameter`` and ``Sequential`` live one floor below, in
:mod:`hdlif_ref.module` (re-exported here for convenience); the model builders one
floor above, in :mod:`hdlif_ref.models` (docs/design.md).
"""
from ..module import Module, Parameter, Sequential
from .basic import Dropout, Flatten, Identity
from .monitor import Monitor
from .norm import BatchNorm1d, BatchNorm2d
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .seca import SECA1, SECA2, CurrentTap, eca_kernel_size
from .synapses import Conv2d, Linear

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "AvgPool2d",
           "MaxPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Identity", "SECA1", "SECA2", "CurrentTap",
           "eca_kernel_size", "Monitor"]
