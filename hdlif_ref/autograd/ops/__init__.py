"""The op set: one explicit table of differentiable ops, and the non-differentiable ones.

``OPS`` maps each op's name to its ``Function`` class (no reflection: adding an
op means adding a line here). ``NON_DIFFERENTIABLE`` names the functions that
take tensors but return plain ndarrays (comparisons, argmax, sign). Later
floors (convolution, pooling, batch norm, neurons) add their ``Function``s to
this same table.
"""
from __future__ import annotations

from .elementwise import (Abs, Add, AsType, Clip, Div, Exp, Log, Maximum, Minimum, Mul, Neg,
                          Pow, Relu, Sigmoid, Sqrt, Sub, Tanh, Where)
from .functional import *  # noqa: F401,F403 - the public op functions
from .functional import normalize_axes  # noqa: F401
from .linalg import MatMul
from .loss import CrossEntropy, LogSoftmax
from .reduce import Max, Mean, Sum, Var
from .shape import BroadcastTo, Concatenate, GetItem, Pad, Permute, Reshape, Stack, Unstack
from .weight_quant import WEIGHT_MODES, BinarizeWeight, TernarizeWeight, quantize_weight  # noqa: F401
from .conv import Conv1dChannels, Conv2d, conv1d_channels, conv2d  # noqa: F401
from .nn import Linear, linear  # noqa: F401
from .norm import BatchNorm, BatchNormSteps, batch_norm, batch_norm_steps  # noqa: F401
from .pool import AvgPool2d, MaxPool2d, adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from .neuron import (BNHDLIFStep, BNLIFStep, HDLIFSeq, HDLIFStep, LIFSeq, LIFStep, MemBNHDLIFSeq, MemBNHDLIFStep,
                     ParallelHDLIFSeq, ParallelHDLIFStep)
from .spike_quantize import SpikeQuantize

OPS = {
    # element-wise
    "add": Add,
    "sub": Sub,
    "mul": Mul,
    "div": Div,
    "neg": Neg,
    "pow": Pow,
    "exp": Exp,
    "log": Log,
    "sqrt": Sqrt,
    "abs": Abs,
    "relu": Relu,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "maximum": Maximum,
    "minimum": Minimum,
    "where": Where,
    "clip": Clip,
    "astype": AsType,
    # linear algebra
    "matmul": MatMul,
    # reductions
    "sum": Sum,
    "mean": Mean,
    "max": Max,
    "var": Var,
    # shape
    "reshape": Reshape,
    "permute": Permute,
    "broadcast_to": BroadcastTo,
    "getitem": GetItem,
    "concatenate": Concatenate,
    "stack": Stack,
    "unstack": Unstack,
    "pad": Pad,
    # losses
    "log_softmax": LogSoftmax,
    "cross_entropy": CrossEntropy,
    # compressed synapses (SPEC E11, E12; straight-through backward)
    "binarize_weight": BinarizeWeight,
    "ternarize_weight": TernarizeWeight,
    # layers (issue 3): convolution, pooling, batch norm, linear, SECA's channel conv
    "conv2d": Conv2d,
    "conv1d_channels": Conv1dChannels,
    "avg_pool2d": AvgPool2d,
    "max_pool2d": MaxPool2d,
    "batch_norm": BatchNorm,
    "batch_norm_steps": BatchNormSteps,
    "linear": Linear,
    # neurons (issue 4, SPEC E1-E9): fused sequences and single steps; spike quantizer (E13)
    "hdlif_seq": HDLIFSeq,
    "hdlif_step": HDLIFStep,
    "lif_seq": LIFSeq,
    "lif_step": LIFStep,
    "parallel_hdlif_seq": ParallelHDLIFSeq,
    "parallel_hdlif_step": ParallelHDLIFStep,
    "membn_hdlif_seq": MemBNHDLIFSeq,
    "membn_hdlif_step": MemBNHDLIFStep,
    "spike_quantize": SpikeQuantize,
    # batch norm + HD-LIF step + quantizer of a recorded training step in one node (issue 21)
    "bn_hdlif_step": BNHDLIFStep,
    "bn_lif_step": BNLIFStep,
}

NON_DIFFERENTIABLE = ("lt", "le", "gt", "ge", "eq", "ne", "sign", "argmax", "argmin")

