"""Numba kernels (private, ``_name``) and their public checked wrappers.

Each kernel has a plain-NumPy twin in :mod:`hdlif_ref.kernels.reference` with the
same signature; :func:`hdlif_ref.backend` chooses which one runs. This floor
imports only numpy and numba (DESIGN.md).
"""
from ._backend import BACKENDS, backend, dispatch, get_backend, set_backend
from ._threads import get_num_threads, num_threads, set_num_threads

__all__ = ["BACKENDS", "backend", "dispatch", "get_backend", "set_backend", "get_num_threads", "num_threads",
           "set_num_threads"]
