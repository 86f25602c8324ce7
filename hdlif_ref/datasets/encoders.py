"""Input encoders: a batch of samples ``[N, ...]`` with values in ``[0, 1]`` to ``T`` steps ``[T, N, ...]``.

* :func:`direct`: the sample itself at every step (what the trainers did before
  encoders existed; the first layer sees analog values);
* :func:`rate`: spikes whose mean per step is the value: ``"bernoulli"`` draws
  ``s_t ~ Bernoulli(x)`` (binary, SpikingJelly's ``PoissonEncoder`` and snnTorch's
  ``spikegen.rate`` do this), ``"poisson"`` draws spike counts ``s_t ~ Poisson(x)``
  (integers, may exceed 1; the count of a Poisson process of rate ``x`` per step);
* :func:`latency`: one spike per element, earlier for a larger value, at step
  ``t = rint((T - 1) (1 - x))`` (0-based; ``x = 1`` fires at step 0, ``x = 0`` at the
  last step; ``rint`` rounds half to even). This is SpikingJelly's linear
  ``LatencyEncoder``; snnTorch's ``spikegen.latency(linear=True, normalize=True)``
  uses the same line.

Randomness is passed in (an ``np.random.Generator``), never global. Every encoder
checks its input: ``x`` a real array with at least one dim (the batch), finite, in
``[0, 1]`` for ``rate`` and ``latency``; ``T`` an integer >= 1. The output has ``x``'s
float dtype (float64 stays float64, anything else becomes float32).

:class:`EncodedLoader` applies an encoding to every batch of a loader (what
``hdlif-ref train --encoding`` uses); formulas and examples: ``docs/datasets.md``.
"""
from __future__ import annotations

import numbers
from typing import Iterable, Iterator

import numpy as np

ENCODINGS = ("direct", "rate", "latency")
RATE_MODES = ("bernoulli", "poisson")


def _check_T(op: str, T) -> int:
    if isinstance(T, bool) or not isinstance(T, (numbers.Integral, np.integer)) or T < 1:
        raise ValueError(f"{op}: T={T!r} must be an integer >= 1 (the number of time steps)")
    return int(T)


def _as_batch(op: str, x, unit_range: bool) -> np.ndarray:
    """``x`` as a float32/float64 array ``[N, ...]``, checked."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{op}: x has dtype {x.dtype}; allowed: a real (bool, integer or float) array")
    if x.ndim < 1:
        raise ValueError(f"{op}: x has shape {x.shape}; expected a batch [N, ...] with at least one dim")
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{op}: x holds non-finite values (nan or inf); allowed: finite values in [0, 1]")
    if unit_range and x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{op}: x has values in [{x.min():.6g}, {x.max():.6g}]; allowed: [0, 1] (scale the "
                         f"data to [0, 1] first, e.g. normalize='unit' for the datasets)")
    return x


def direct(x, T: int) -> np.ndarray:
    """Direct encoding: ``[N, ...] -> [T, N, ...]``, the sample at every step (a read-only broadcast view).

    Any finite values are allowed (the first layer sees analog input).
    """
    T = _check_T("direct", T)
    x = _as_batch("direct", x, unit_range=False)
    return np.broadcast_to(x, (T,) + x.shape)


def rate(x, T: int, rng: np.random.Generator, mode: str = "bernoulli") -> np.ndarray:
    """Rate encoding: ``[N, ...] -> [T, N, ...]`` spikes with mean ``x`` per step, independent over steps.

    ``mode="bernoulli"``: ``s_t = 1[U_t < x]`` with ``U_t ~ Uniform[0, 1)`` (binary; ``x = 0``
    never fires, ``x = 1`` fires at every step). ``mode="poisson"``: ``s_t ~ Poisson(x)``
    (counts 0, 1, 2, ...). ``x`` must lie in ``[0, 1]``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rate: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                        f"{type(rng).__name__}")
    if mode not in RATE_MODES:
        raise ValueError(f"rate: mode={mode!r}; allowed: {', '.join(RATE_MODES)}")
    T = _check_T("rate", T)
    x = _as_batch("rate", x, unit_range=True)
    shape = (T,) + x.shape
    if mode == "bernoulli":
        return (rng.random(shape) < x).astype(x.dtype)
    return rng.poisson(np.broadcast_to(x, shape)).astype(x.dtype)


def latency(x, T: int) -> np.ndarray:
    """Latency encoding: ``[N, ...] -> [T, N, ...]``, one spike per element at ``t = rint((T - 1)(1 - x))``.

    Larger values fire earlier: ``x = 1`` at step 0, ``x = 0`` at step ``T - 1``. ``x`` must lie in ``[0, 1]``.
    """
    T = _check_T("latency", T)
    x = _as_batch("latency", x, unit_range=True)
    when = np.rint((T - 1) * (1.0 - x.astype(np.float64))).astype(np.int64)  # in 0..T-1 since x in [0, 1]
    return (np.arange(T).reshape((T,) + (1,) * x.ndim) == when[None]).astype(x.dtype)


def encode(x, T: int, encoding: str, rng: np.random.Generator | None = None, mode: str = "bernoulli") -> np.ndarray:
    """``[N, ...] -> [T, N, ...]`` by name: ``"direct"``, ``"rate"`` (needs ``rng``; ``mode``) or ``"latency"``."""
    if encoding == "direct":
        return direct(x, T)
    if encoding == "rate":
        return rate(x, T, rng, mode)
    if encoding == "latency":
        return latency(x, T)
    raise ValueError(f"encode: encoding={encoding!r}; allowed: {', '.join(ENCODINGS)}")


class EncodedLoader:
    """A loader whose static batches ``x: [N, ...]`` come out encoded as ``[T, N, ...]`` (float32).

    Values are clipped to ``[0, 1]`` before encoding (added input noise may leave the
    range; ``direct`` is not clipped). Randomness of ``rate``, per pass over the loader:

    * ``rng``: one seed is drawn from it at the start of each pass, so passes differ
      and a run that saves the generator's state resumes with the same draws;
    * ``seed``: every pass uses ``default_rng(seed)``, the same encoding each time
      (evaluation: the test accuracy of two epochs is measured on the same spikes).
    """

    def __init__(self, loader: Iterable, encoding: str, T: int, rng: np.random.Generator | None = None,
                 seed: int | None = None, mode: str = "bernoulli"):
        if encoding not in ENCODINGS:
            raise ValueError(f"EncodedLoader: encoding={encoding!r}; allowed: {', '.join(ENCODINGS)}")
        if mode not in RATE_MODES:
            raise ValueError(f"EncodedLoader: mode={mode!r}; allowed: {', '.join(RATE_MODES)}")
        if (rng is None) == (seed is None) and encoding == "rate":
            raise ValueError("EncodedLoader: rate encoding needs randomness: pass rng= (a new draw per pass) or "
                             "seed= (the same draw every pass), not both")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"EncodedLoader: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.loader, self.encoding, self.T = loader, encoding, _check_T("EncodedLoader", T)
        self.rng, self.seed, self.mode = rng, seed, mode

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        if name == "loader":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)  # batch_size, dataset, ... of the wrapped loader

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        batches = iter(self.loader)  # the loader draws its own plan (order, augmentation) first
        rng = None
        if self.encoding == "rate":
            rng = np.random.default_rng(self.seed if self.rng is None else int(self.rng.integers(0, 2 ** 63 - 1)))
        for x, y in batches:
            x = np.asarray(x)
            if self.encoding != "direct":
                x = np.clip(x, 0.0, 1.0)
            yield np.ascontiguousarray(encode(x, self.T, self.encoding, rng, self.mode), dtype=np.float32), y

    def __repr__(self) -> str:
        return f"EncodedLoader({self.loader!r}, encoding={self.encoding!r}, T={self.T})"
