"""Softmax cross-entropy's gradient, ``ce_grad``: in float64 and in exact fixed point from public tables.

The gradient of ``torch.nn.functional.cross_entropy(out, target)`` (mean reduction over the ``rows``
of a ``(rows, C)`` batch, ``target`` given as rows of probabilities, class indices as one-hot rows)
w.r.t. ``out`` is ``(softmax(out) - target) / rows``. In fixed point (``out`` and ``target`` at scale
``S``, the result at ``2S``; ``F = exp_bits = min(S, 10)``, ``H = hi_bits = 6``), per row ``b`` and
class ``j``, all integers and exact:

====================================  ==========================================================
``c_b = max_j z_bj``                  the row's largest logit (``".max"``, shape ``(rows,)``)
``d_bj = c_b - z_bj >= 0``            (``".d"``); ``d_hi = d >> S < 2^H`` or ``ValueError``,
                                      ``d_mid = (d >> (S - F)) & (2^F - 1)``, ``d_lo`` the low
                                      ``S - F`` bits, dropped (``".d.hi"``, ``".d.mid"``, ``".d.lo"``)
``e = floor((E_hi[d_hi] E_mid[d_mid]  ``2^S exp(-d)`` for ``d`` truncated to ``F`` fractional bits
+ 2^(S-1)) / 2^S)``                   (``".e"``; remainder ``".e.rem"`` in ``[0, 2^S)``; the factors
                                      ``".e.hi"``, ``".e.mid"``)
``s_b = sum_j e_bj``                  (``".sum"``, shape ``(rows,)``; ``>= 2^S``: the max class has
                                      ``d = 0``, ``E_hi[0] = E_mid[0] = 2^S``, so ``e = 2^S``)
``p = floor((2^(S+1) e + s)           ``2^S e / s`` rounded to nearest, ties up (``".p"``; remainder
/ (2 s))``                            ``".p.rem" = 2^(S+1) e + s - 2 s p`` in ``[0, 2 s)``)
``G = floor((2^S (p - y)              the gradient at scale ``2S`` (the node's output; remainder
+ rows // 2) / rows)``                ``".rem"`` in ``[0, rows)``)
====================================  ==========================================================

The public tables (:func:`exp_tables`) are ``E_hi[h] = rint(2^S exp(-h))`` for ``h < 2^H`` and
``E_mid[m] = rint(2^S exp(-m / 2^F))`` for ``m < 2^F``, float64 rounded with ``numpy.rint``.

Accuracy: the truncation of ``d`` to ``F`` fractional bits multiplies each ``exp(-d)`` by a factor in
``[1, exp(2^-F))``, the same direction for every class, so ``e / s`` is within a relative
``exp(2^-F) - 1`` of the softmax of the (fixed-point) logits; the tables' and ``e``'s roundings add
at most ``1.51`` units of ``2^-S`` to each ``e`` (none to the max class's), and ``p`` rounds to
``2^-(S+1)``. So ``|p / 2^S - softmax| <= exp(2^-F) - 1 + (1.51 C + 0.5) 2^-S`` and the decoded ``G``
is within that divided by ``rows``, plus ``2^-(2S+1)``, of the float gradient.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .fixed_point import INT64_SAFE

#: most fractional bits of the exponent's argument (``exp_bits = min(scale_bits, EXP_BITS)``)
EXP_BITS = 10
#: bits of the exponent's integer part: the logits of a row may spread by less than ``2^HI_BITS``
HI_BITS = 6


def exp_bits_for(scale_bits: int) -> int:
    """``F = min(scale_bits, EXP_BITS)``: the fractional bits of ``d`` that the exp tables resolve."""
    return min(scale_bits, EXP_BITS)


@lru_cache(maxsize=None)
def _tables(S: int, F: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    hi = np.rint(np.array([math.exp(-h) for h in range(1 << H)], dtype=np.float64) * float(2**S))
    mid = np.rint(np.array([math.exp(-m / 2**F) for m in range(1 << F)], dtype=np.float64) * float(2**S))
    out = hi.astype(np.int64), mid.astype(np.int64)
    for t in out:
        t.flags.writeable = False
    return out


def exp_tables(S: int, F: int, H: int = HI_BITS) -> tuple[np.ndarray, np.ndarray]:
    """The public tables ``(E_hi, E_mid)`` (read-only int64): ``E_hi[h] = rint(2^S exp(-h))`` for
    ``h`` in ``[0, 2^H)`` and ``E_mid[m] = rint(2^S exp(-m / 2^F))`` for ``m`` in ``[0, 2^F)``."""
    for what, v, lo, hi in (("S", S, 1, 40), ("F", F, 0, S), ("H", H, 0, 16)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"exp_tables: {what} must be an integer in [{lo}, {hi}], got {v!r}")
    return _tables(int(S), int(F), int(H))


def ce_grad_float(out: np.ndarray, target: np.ndarray, count: int) -> np.ndarray:
    """``(softmax(out) - target) / count`` in float64, softmax over the last axis (stable)."""
    z = out - out.max(axis=-1, keepdims=True)
    ez = np.exp(z)
    return (ez / ez.sum(axis=-1, keepdims=True) - target) / count


def normalise(e: np.ndarray, s: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
    """``p = floor((2^(S+1) e + s) / (2 s))`` (``2^S e / s`` to nearest, ties up) and its remainder
    ``2^(S+1) e + s - 2 s p`` in ``[0, 2 s)``, for ``e`` of shape ``(rows, C)`` and row sums ``s``."""
    from .interpret import _add, _compact, _mul_const, _wide

    num = _add(_mul_const(e, 1 << (S + 1)), np.broadcast_to(s[:, None], e.shape))
    den = np.broadcast_to(2 * s[:, None], e.shape)
    if num.dtype == object:
        den = _wide(den)
    p = num // den
    return _compact(p), _compact(num - den * p)


def ce_grad_fixed(z: np.ndarray, y: np.ndarray, S: int, F: int, H: int, count: int,
                  name: str = "ce_grad") -> dict[str, np.ndarray]:
    """The exact integer rule of the module docstring on logits ``z`` and targets ``y`` (integers at
    scale ``S``, shape ``(rows, C)``); returns ``name -> G`` and every intermediate under
    ``name + suffix``. Raises ``ValueError`` if a row's logits spread by ``2^H`` or more."""
    from .interpret import _add, _compact, _maxabs, _mul_const, _round_div, _wide

    E_hi, E_mid = exp_tables(S, F, H)
    c = z.max(axis=1)
    d = _add(c[:, None], z, sign=-1)
    if _maxabs(d) >= 1 << (S + H):
        spread = _maxabs(d) / 2**S
        raise ValueError(f"ce_grad {name!r}: the logits of a row spread by {spread:.6g}, more than the "
                         f"exp table's 2^{H} = {1 << H} (max - min of a row must stay below {1 << H})")
    d = d.astype(np.int64)  # < 2^(S+H)
    d_hi, d_mid = d >> S, (d >> (S - F)) & ((1 << F) - 1)
    d_lo = d & ((1 << (S - F)) - 1)
    a, b = E_hi[d_hi], E_mid[d_mid]  # each at most 2^S
    prod = a * b if 1 << (2 * S) < INT64_SAFE else _compact(_wide(a) * _wide(b))
    e, e_rem = _round_div(prod, 1 << S)
    e = e.astype(np.int64)  # at most 2^S
    s = e.sum(axis=1)  # at most C 2^S
    p, p_rem = normalise(e, s, S)
    g, g_rem = _round_div(_mul_const(_add(p, y, sign=-1), 1 << S), count)
    return {name: g, name + ".rem": g_rem, name + ".max": c, name + ".d": d, name + ".d.hi": d_hi,
            name + ".d.mid": d_mid, name + ".d.lo": d_lo, name + ".e.hi": a, name + ".e.mid": b, name + ".e": e,
            name + ".e.rem": e_rem,
            name + ".sum": s, name + ".p": p, name + ".p.rem": p_rem}
