"""Neurons of the HD-LIF family (SPEC E1-E10, E13): step functions, fused multi-step modules.

* modules: :class:`HDLIF` (E1-E2), :class:`LIF` (E7), :class:`ParallelHDLIF` (E8),
  :class:`MemBNHDLIF` (E9, ``reparameterize()`` for E10), :class:`SpikeQuantizer` (E13);
* pure step functions on autograd tensors: :func:`hdlif_step`, :func:`lif_step`,
  :func:`parallel_hdlif_step`, :func:`membn_hdlif_step` with the records
  :class:`NeuronState` and ``*Params``;
* fused sequences (one graph node, exact STBP or online backward): :func:`hdlif_seq`,
  :func:`lif_seq`, :func:`parallel_hdlif_seq`, :func:`membn_hdlif_seq`;
* traces for theory and golden vectors: :func:`hdlif_record`, :func:`lif_record`,
  :func:`membn_hdlif_record`; the identities of E3-E6 in :mod:`hdlif_ref.neurons.theory`.

Formulas, shapes and the documented choices: ``docs/neurons.md``.
"""
from . import theory
from .base import SpikingNeuron
from .functional import (hdlif_record, hdlif_seq, lif_record, lif_seq, membn_hdlif_record, membn_hdlif_seq,
                         parallel_hdlif_seq)
from .membn import MemBNHDLIF, Reparameterized
from .modules import HDLIF, LIF, ParallelHDLIF
from .quantizer import SpikeQuantizer, default_step, spike_quantize
from .records import (HDLIFParams, HDLIFRecord, LIFParams, LIFRecord, MemBNParams, MemBNRecord, NeuronState,
                      ParallelHDLIFParams)
from .steps import hdlif_step, lif_step, membn_hdlif_step, parallel_hdlif_step

__all__ = [
    "HDLIF", "LIF", "ParallelHDLIF", "MemBNHDLIF", "Reparameterized", "SpikingNeuron", "SpikeQuantizer",
    "spike_quantize", "default_step",
    "hdlif_step", "lif_step", "parallel_hdlif_step", "membn_hdlif_step",
    "hdlif_seq", "lif_seq", "parallel_hdlif_seq", "membn_hdlif_seq",
    "hdlif_record", "lif_record", "membn_hdlif_record",
    "NeuronState", "HDLIFParams", "LIFParams", "ParallelHDLIFParams", "MemBNParams",
    "HDLIFRecord", "LIFRecord", "MemBNRecord", "theory",
]
