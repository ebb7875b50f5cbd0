"""Integer magnitudes of the FAC4DNN equations: what makes an equation over Fr hold over the integers.

Every relation of :mod:`zk.fac4dnn` is proved modulo ``r``. An equation ``sum_i c_i v_i = 0``
whose terms are bounded, ``sum_i |c_i| |v_i| <= M``, holds over the integers as soon as
``M < r``: a nonzero integer of magnitude below ``r`` is not a multiple of ``r``. The bounds come
from the statement alone — widths, batch, steps, scale, learning rate and the declared bit widths
of the range checks — and every committed tensor is bounded either by a range check (bit planes)
or by an equation over range-checked tensors (an einsum of bounded operands, ``W_{t+1} = W_t - U``).
:func:`check` refuses, with an error naming the parameter, every statement where some ``M``
reaches :data:`LIMIT` (a margin of 14 bits below ``r/2``). docs/fac4dnn.md has the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import StatementError

if TYPE_CHECKING:
    from .fac4dnn import Circuit

#: Largest integer magnitude an equation may reach (``r / 2`` is about ``2^253.9``).
LIMIT_BITS = 240
LIMIT = 1 << LIMIT_BITS


@dataclass(frozen=True)
class Bound:
    """An equation of the circuit, the largest magnitude its terms reach, and what drives it."""

    equation: str
    magnitude: int
    drivers: str  # the statement parameters to change when the bound is too large


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def bounds(c: "Circuit") -> list[Bound]:
    """Every equation kind of ``c`` with its magnitude bound (one entry per layer where it varies)."""
    S, T, p = c.scale_bits, c.steps, c.param_scale
    act = 1 << (c.data_bits - 1)  # |X|, |Y|: two's complement of data_bits
    z = (1 << (c.q_act - 1)) + 1  # |Z| (and |H| = |(1 - s) Z|): Z - 1 in q_act bits
    g = 1 << (c.q_grad - 1)  # |G|, |GH|
    u = 1 << (c.q_update - 1)  # |U|, |UB| per step
    w = (1 << (c.param_bits - 1)) + (T * u if c.training else 0)  # |W_t|, |b_t| at any step
    nb = _pow2(c.batch)
    out = []
    for l in range(1, c.layers + 1):
        h = act if l == 1 else z
        fan_in = _pow2(c.widths[l - 1])
        bias = w if c.has_bias(l) else 0
        out.append(Bound(f"forward product and rescale of layer {l} (P + 2^S b + 2^(p-1) = 2^p Z + R)",
                         fan_in * h * w + bias * (1 << S) + (z + 2) * (1 << p),
                         f"the input width {c.widths[l - 1]} of layer {l}, the scale 2^{S} and the data and "
                         "parameter bits are too large"))
        if not c.training:
            continue
        k = c.k_update
        out.append(Bound(f"SGD update of layer {l}'s weights (lr_q G^T H = 2^{k} U + RU)",
                         c.lr_q * nb * g * h + (u + 2) * (1 << k), _sgd_drivers(c, k, c.lr_q * nb * g * h)))
        if c.has_bias(l):
            kb = c.k_bias_update
            out.append(Bound(f"SGD update of layer {l}'s bias (lr_q sum_b G = 2^{kb} UB + RUB)",
                             c.lr_q * nb * g + (u + 2) * (1 << kb), _sgd_drivers(c, kb, c.lr_q * nb * g)))
        if l >= 2:
            out.append(Bound(f"input gradient of layer {l} (G W + 2^(p-1) = 2^p GH + RH)",
                             _pow2(c.widths[l]) * g * w + (g + 2) * (1 << p),
                             f"the width {c.widths[l]} of layer {l} and the scale 2^{S} are too large"))
    if c.training:
        n = c.batch * c.widths[-1]  # the largest N of any step
        out.append(Bound("loss gradient (2^(S+1) (Z - Y) + N/2 = N G + RL)",
                         (1 << (S + 1)) * (z + act) + n * (g + 2),
                         f"the scale 2^{S}, batch size {c.batch} and output width {c.widths[-1]} are too large"))
    out.append(Bound("bit recomposition of the widest range check", 1 << (max(c.plane_widths()) + 1),
                     "the range checks (scale, data and parameter bits, learning rate) are too wide"))
    return out


def _sgd_drivers(c: "Circuit", k: int, gradient: int) -> str:
    if 1 << k >= gradient:  # the remainder dominates: the learning rate is tiny
        return (f"learning rate {c.lr_repr} is too small for scale 2^{c.scale_bits} "
                f"(its SGD remainder needs {k} bits)")
    return f"the learning rate {c.lr_repr}, batch size {c.batch} and scale 2^{c.scale_bits} are too large"


def check(c: "Circuit") -> None:
    """Raise :class:`zk.StatementError` naming the parameter if any equation of ``c`` could wrap
    modulo ``r`` (magnitude at least :data:`LIMIT`)."""
    for b in bounds(c):
        if b.magnitude >= LIMIT:
            raise StatementError(
                f"unsound statement: {b.drivers} — the {b.equation} reaches "
                f"2^{math.log2(b.magnitude):.0f}, and every equation must stay below 2^{LIMIT_BITS} to "
                "hold over the integers rather than only modulo the field order")
