"""Bit decompositions: the auxiliary inputs that turn range and sign checks into linear ones.

A value ``v`` with ``0 <= v < 2^k`` is ``sum_i 2^i b_i`` (:func:`unsigned`); a signed value with
``-2^(q-1) <= v < 2^(q-1)`` is ``-2^(q-1) b_{q-1} + sum_{i<q-1} 2^i b_i`` (two's complement,
:func:`signed`), whose top bit is the sign. The prover commits to every bit plane; the verifier
checks recomposition homomorphically (a linear relation of commitments) and booleanity
``b (1 - b) = 0`` with one Hadamard sumcheck over all planes.
"""
from __future__ import annotations

import numpy as np


def unsigned_weights(k: int) -> list[int]:
    return [1 << i for i in range(k)]


def signed_weights(q: int) -> list[int]:
    return [1 << i for i in range(q - 1)] + [-(1 << (q - 1))]


def _int64(values: np.ndarray, lo: int, hi: int, what: str) -> np.ndarray:
    """``values`` as int64 after checking ``lo <= v < hi`` (ValueError naming ``what``)."""
    a = np.asarray(values)
    if a.size:
        vmin, vmax = int(a.min()), int(a.max())
        if vmin < lo or vmax >= hi:
            raise ValueError(f"{what}: values in [{vmin}, {vmax}] leave the proof's range [{lo}, {hi})")
    return a.astype(np.int64)


def unsigned(values, k: int, what: str) -> np.ndarray:
    """Planes ``(k, *shape)`` (uint8) of values in ``[0, 2^k)``; ValueError naming ``what`` otherwise."""
    a = _int64(values, 0, 1 << k, what)
    return np.stack([(a >> i) & 1 for i in range(k)]).astype(np.uint8) if k else \
        np.zeros((0, *a.shape), np.uint8)


def signed(values, q: int, what: str) -> np.ndarray:
    """Two's-complement planes ``(q, *shape)`` of values in ``[-2^(q-1), 2^(q-1))``."""
    a = _int64(values, -(1 << (q - 1)), 1 << (q - 1), what)
    return np.stack([(a >> i) & 1 for i in range(q)]).astype(np.uint8)
