"""Integer magnitudes of the FAC4DNN equations: what makes an equation over Fr hold over the integers.

Every relation of :mod:`zk.fac4dnn` is proved modulo ``r``. An equation ``sum_i c_i v_i = c``
whose terms are bounded, ``sum_i |c_i| |v_i| + |c| <= M``, holds over the integers as soon as
``M < r``: a nonzero integer of magnitude below ``r`` is not a multiple of ``r``. The bounds come
from the statement alone: every committed tensor is bounded either by a range check (limbs and sign planes)
or by the equation that defines it over bounded tensors (an einsum of bounded operands), as
:mod:`zk.lower` computes them (:attr:`zk.lower.Template.bounds`). :func:`check` refuses,
with an error naming what to change, every statement where some ``M`` reaches :data:`LIMIT` (a
margin of 14 bits below ``r/2``). docs/fac4dnn.md has the table.
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


def bounds(c: "Circuit") -> list[Bound]:
    """Every equation of one step of ``c`` (per row count) and of its range checks, with its bound."""
    out = {}

    def add(equation: str, magnitude: int, drivers: str) -> None:
        if equation not in out or out[equation].magnitude < magnitude:
            out[equation] = Bound(equation, magnitude, drivers)

    statement_bounds = {key: 1 << (width - 1) for key, width in c.range_checks()}
    for rel in c.statement_ranges():
        add(rel.equation, 2 * statement_bounds[rel.terms[0][1]], rel.drivers)
    for template in c.templates.values():
        b = template.bounds
        for rel in template.einsums:
            add(rel.equation, b[rel.c], rel.drivers)
        for rel in template.linear:
            add(rel.equation, sum(abs(coeff) * b[k] for coeff, k in rel.terms) + abs(rel.const),
                rel.drivers)
    return list(out.values())


def check(c: "Circuit") -> None:
    """Raise :class:`zk.StatementError` naming the parameter if any equation of ``c`` could wrap
    modulo ``r`` (magnitude at least :data:`LIMIT`)."""
    for b in bounds(c):
        if b.magnitude >= LIMIT:
            raise StatementError(
                f"unsound statement: {b.drivers} — the {b.equation} reaches "
                f"2^{math.log2(b.magnitude):.0f}, and every equation must stay below 2^{LIMIT_BITS} to "
                "hold over the integers rather than only modulo the field order")
