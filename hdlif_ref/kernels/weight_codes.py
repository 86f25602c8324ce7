"""Binary and ternary weight codes (SPEC E11, E12) and 2-bit packing for deployment.

Plain NumPy (a few vectorized passes over the weights, once per forward), shared
by the training-time quantizer ops and by the deployment converter, so both
quantize with literally the same code. The output channel is dim 0; means run
over all other dims.
"""
from __future__ import annotations

import math

import numpy as np


def _channel_view(w: np.ndarray) -> np.ndarray:
    return w.reshape(w.shape[0], -1)


def binary_codes(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SPEC E11: ``codes = sign(w)`` with ``sign(0) = +1``, ``a_c = mean_k |w_{c,k}|``.

    Returns ``(codes int8 [same shape as w], a float [C_out])``; ``w_b = a_c * codes``.
    """
    codes = np.where(w >= 0, 1, -1).astype(np.int8)
    a = np.mean(np.abs(_channel_view(w)), axis=1)
    return codes, a.astype(w.dtype)


def ternary_codes(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SPEC E12: ``codes = sign(w) * 1[|w| > delta_c]``, ``delta_c = 0.7 mean_k |w_{c,k}|``,
    ``a_c`` = mean of ``|w|`` over the kept weights of channel ``c`` (0 if none is kept).

    Returns ``(codes int8 in {-1, 0, +1} [same shape as w], a float [C_out])``.
    """
    flat = np.abs(_channel_view(w))
    delta = 0.7 * np.mean(flat, axis=1, keepdims=True)
    keep = flat > delta
    kept = np.count_nonzero(keep, axis=1)
    # |w| * keep: the kept values and zeros, summed as np.where(keep, |w|, 0) would be (the same numbers
    # in the same order) but 8x faster; a row with a NaN or inf keeps nothing, so its a_c is 0 either way
    total = (flat * keep).sum(axis=1)
    a = np.divide(total, kept, out=np.zeros_like(total), where=kept > 0)
    codes = (np.sign(_channel_view(w)) * keep).astype(np.int8).reshape(w.shape)
    return codes, a.astype(w.dtype)


def apply_scale(codes: np.ndarray, a: np.ndarray, dtype) -> np.ndarray:
    """``a_c * codes`` with ``a`` broadcast over the output channel (dim 0)."""
    return codes.astype(dtype) * a.astype(dtype, copy=False).reshape((-1,) + (1,) * (codes.ndim - 1))


def pack_ternary(codes: np.ndarray) -> np.ndarray:
    """Pack ternary codes 2 bits each, 4 per byte, little end first.

    Code map: ``0 -> 0b00``, ``+1 -> 0b01``, ``-1 -> 0b10`` (``0b11`` unused). The flat
    (C-order) code sequence is zero-padded to a multiple of 4.
    """
    flat = codes.reshape(-1)
    if flat.size and (flat.min() < -1 or flat.max() > 1):
        raise ValueError("pack_ternary: codes must be in {-1, 0, +1}")
    bits = np.where(flat < 0, 2, flat).astype(np.uint8)
    bits = np.concatenate([bits, np.zeros((-bits.size) % 4, dtype=np.uint8)]).reshape(-1, 4)
    return (bits[:, 0] | (bits[:, 1] << 2) | (bits[:, 2] << 4) | (bits[:, 3] << 6)).astype(np.uint8)


def unpack_ternary(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_ternary`: int8 codes of the given shape."""
    count = math.prod(shape)
    if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != (count + 3) // 4:
        raise ValueError(f"unpack_ternary: expected {(count + 3) // 4} uint8 bytes for shape {shape}, "
                         f"got {packed.size} of dtype {packed.dtype}")
    bits = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=1).reshape(-1)[:count]
    if (bits == 3).any():
        raise ValueError("unpack_ternary: found the unused 2-bit code 0b11 (corrupt payload)")
    return np.where(bits == 2, -1, bits).astype(np.int8).reshape(shape)
