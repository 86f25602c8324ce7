"""hdlif-ref: reference implementation (NumPy + Numba) of the HD-LIF spiking-neuron family.

Hao et al., "Rethinking SNN Online Training and Deployment: Gradient-Coherent
Learning via Hybrid-Driven LIF Model", arXiv:2410.07547. The equations the code
implements are numbered E1-E20 in SPEC.md (shipped in docs/spec.md).

The names a user reaches for are attributes of the package (docs/quickstart.md)::

    import hdlif_ref as h
    model = h.digits_net(neuron="membn", weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0))
    trainer = h.OnlineTrainer(model, h.Adam(h.param_groups(model, 0.0), lr=3e-3), steps=1)
    history = trainer.fit(h.DataLoader(h.get_dataset("digits", "train"), 64, shuffle=True, seed=0), epochs=3)

They are imported on first use (PEP 562), so ``import hdlif_ref`` stays cheap; each is
also importable from its subpackage (``hdlif_ref.models``, ``hdlif_ref.training``, ...).
"""
from __future__ import annotations

import importlib

from ._version import __version__
from .kernels._backend import backend, get_backend, set_backend

#: public name -> the module that defines it
_EXPORTS = {
    # autograd and the module system
    **dict.fromkeys(["Tensor", "no_grad", "enable_grad", "gradcheck"], "hdlif_ref.autograd"),
    **dict.fromkeys(["Module", "Parameter", "Sequential"], "hdlif_ref.module"),
    # neurons (SPEC E1-E10, E13)
    **dict.fromkeys(["HDLIF", "LIF", "ParallelHDLIF", "MemBNHDLIF", "SpikeQuantizer", "hdlif_seq", "lif_seq",
                     "parallel_hdlif_seq", "membn_hdlif_seq", "hdlif_step", "lif_step", "spike_quantize"],
                    "hdlif_ref.neurons"),
    # layers
    **dict.fromkeys(["Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "AvgPool2d", "MaxPool2d",
                     "AdaptiveAvgPool2d", "Flatten", "Dropout", "SECA1", "SECA2"], "hdlif_ref.layers"),
    "Monitor": "hdlif_ref.layers.monitor",
    # models
    **dict.fromkeys(["digits_net", "vgg_snn", "spiking_resnet", "build_model", "SpikingNet"], "hdlif_ref.models"),
    # training (SPEC E16, E17)
    **dict.fromkeys(["Trainer", "OnlineTrainer", "STBPTrainer", "NonFiniteError"], "hdlif_ref.training.trainer"),
    **dict.fromkeys(["SGD", "Adam", "AdamW", "param_groups", "clip_grad_norm", "CosineSchedule", "StepSchedule",
                     "ConstantSchedule", "LinearWarmup", "per_step_cross_entropy", "save_checkpoint",
                     "load_checkpoint", "Progress"], "hdlif_ref.training"),
    **dict.fromkeys(["resolve_config", "DEFAULTS"], "hdlif_ref.training.config"),
    **dict.fromkeys(["Run", "run_training", "load_trained"], "hdlif_ref.training.run"),
    # data
    **dict.fromkeys(["get_dataset", "DataLoader", "DATASETS"], "hdlif_ref.datasets"),
    **dict.fromkeys(["encode", "EncodedLoader"], "hdlif_ref.datasets.encoders"),
    # deployment (SPEC E10, E18-E20)
    "freeze": "hdlif_ref.deploy.convert",
    **dict.fromkeys(["save_frozen", "load_frozen"], "hdlif_ref.deploy.frozen_io"),
    **dict.fromkeys(["parameter_memory", "count_ops", "energy"], "hdlif_ref.deploy.metrics"),
}

__all__ = ["__version__", "backend", "get_backend", "set_backend", "oracle", *_EXPORTS]


def __getattr__(name: str):
    if name == "oracle":  # the subpackage itself: h.oracle.check(...), h.oracle.write(...)
        return importlib.import_module("hdlif_ref.oracle")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hdlif_ref' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"oracle"})
