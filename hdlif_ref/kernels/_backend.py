"""Kernel backend switch (DESIGN.md "Two backends, one set of numbers").

Every kernel exists twice: a Numba version and a plain-NumPy twin in
:mod:`hdlif_ref.kernels.reference`. The active backend decides which one the
public kernel functions call:

* ``HDLIF_REF_BACKEND=numba|numpy`` in the environment sets the default at import;
* ``with hdlif_ref.backend("numpy"): ...`` switches it for a block;
* :func:`set_backend` switches it until changed again.

The setting is process-wide (not per thread), so a background data-loading
thread sees the same backend as the thread that trains.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

BACKENDS = ("numba", "numpy")
ENV_VAR = "HDLIF_REF_BACKEND"


def _check_name(name: object, source: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise ValueError(f"{source}={name!r} is not a kernel backend; allowed: {', '.join(BACKENDS)}")
    return name.strip().lower()


_active = _check_name(os.environ.get(ENV_VAR, "numba"), ENV_VAR)


def get_backend() -> str:
    """Name of the active kernel backend: ``"numba"`` or ``"numpy"``."""
    return _active


def set_backend(name: str) -> None:
    """Make ``name`` (``"numba"`` or ``"numpy"``) the active kernel backend."""
    global _active
    _active = _check_name(name, "backend")


@contextlib.contextmanager
def backend(name: str) -> Iterator[str]:
    """Run a block on the given kernel backend, restoring the previous one after.

    >>> with backend("numpy"):
    ...     pass  # every kernel called here runs its NumPy twin
    """
    previous = get_backend()
    set_backend(name)
    try:
        yield get_backend()
    finally:
        set_backend(previous)


def dispatch(numba_impl: Callable, numpy_impl: Callable) -> Callable:
    """Return a function that calls ``numba_impl`` or ``numpy_impl`` by the active backend.

    Both must have the same signature; the NumPy one is the readable reference.
    """

    def call(*args, **kwargs):
        impl = numba_impl if _active == "numba" else numpy_impl
        return impl(*args, **kwargs)

    call.__name__ = getattr(numpy_impl, "__name__", "kernel")
    call.__qualname__ = call.__name__
    call.__doc__ = numpy_impl.__doc__
    call.numba_impl = numba_impl
    call.numpy_impl = numpy_impl
    return call
