"""hdlif-ref: reference implementation (NumPy + Numba) of the HD-LIF spiking-neuron family.

Hao et al., "Rethinking SNN Online Training and Deployment: Gradient-Coherent
Learning via Hybrid-Driven LIF Model", arXiv:2410.07547. The equations the code
implements are numbered E1-E20 in SPEC.md (shipped in docs/spec.md).
"""
from ._version import __version__
from .kernels._backend import backend, get_backend, set_backend

__all__ = ["__version__", "backend", "get_backend", "set_backend"]
