"""FAC4DNN stacking: many committed instances of one shape viewed as one committed tensor.

Every tensor of a proof is committed instance by instance (one Hyrax commitment per training
step, layer and bit plane) with a row width fixed by the instance's size, so the commitment of
the stacked tensor ``T[n, ...] = instance_n[...]`` is simply the concatenation of the instances'
rows (zero instances, padding the count to a power of two, contribute identity rows and zero
blinds). Stacking is free for the prover and the verifier: relations over all steps and layers
become relations over one tensor with an extra leading batch index ``n``, proved by one sumcheck.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import field
from .commit import Commitment, Opening
from .device import CPU, Device


#: Instance commitments have at most 2^6 rows and at least 2^10 columns (when the instance is
#: that big): wide rows keep the many commitments of bit planes short (small instances are one
#: row), while openings stay an inner-product argument over 2^10..2^(m-6) columns.
MAX_ROW_VARS = 6
MIN_COL_VARS = 10


def instance_col_vars(num_vars: int) -> int:
    """Column variables of an instance with ``num_vars`` variables."""
    return min(num_vars, max(MIN_COL_VARS, num_vars - MAX_ROW_VARS))


@dataclass(frozen=True)
class Stack:
    """``count`` instances (padded to ``2^index_vars``) of an instance with ``instance_vars`` variables.

    ``commitment`` is the stacked tensor's commitment; ``opening`` is its secret side (None for
    the verifier).
    """

    commitment: Commitment
    opening: Opening | None
    count: int
    index_vars: int

    @property
    def instance_vars(self) -> int:
        return self.commitment.num_vars - self.index_vars


def _pad_count(n: int) -> int:
    return max(1, 1 << (n - 1).bit_length())


def _address(a) -> int:
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data  # cupy or numpy


def _root(a):
    while isinstance(a.base, type(a)):
        a = a.base
    return a


def _adjacent(tables):
    """The tables as one array without copying when they lie one after the other in one
    C-contiguous array (instances committed in one batch, :func:`zk.fac4dnn.commit_tensors`),
    else None. Opening tables are never written in place, so sharing their memory is safe."""
    root = _root(tables[0])
    if not root.flags.c_contiguous or root.dtype != tables[0].dtype:
        return None
    start = _address(tables[0])
    end = start
    for t in tables:
        if _root(t) is not root or not t.flags.c_contiguous or _address(t) != end:
            return None
        end += t.nbytes
    offset = (start - _address(root)) // root.itemsize
    flat = root.reshape(-1)[offset:offset + (end - start) // root.itemsize]
    return flat.reshape((-1,) + tables[0].shape[1:])


def stack(commitments, openings=None, device: Device = CPU) -> Stack:
    """Stack instance commitments (and, for the prover, their openings, the stacked table on
    ``device``) of one layout."""
    commitments = list(commitments)
    if not commitments:
        raise ValueError("stack: no instances")
    m, c = commitments[0].num_vars, commitments[0].col_vars
    if any((x.num_vars, x.col_vars) != (m, c) for x in commitments):
        raise ValueError("stack: instances of different layouts")
    n = _pad_count(len(commitments))
    rows_per = len(commitments[0].rows)
    k = n.bit_length() - 1
    com = Commitment.concat(commitments, m + k, (n - len(commitments)) * rows_per)
    opening = None
    if openings is not None:
        openings = list(openings)
        zeros = n - len(openings)
        xp = device.xp
        tables = [o.table for o in openings]
        if len({t.dtype for t in tables}) > 1:  # bits beside a field table (a non-0/1 "plane")
            tables = [o.field_table(device) for o in openings]
        table = None if zeros else _adjacent(tables)
        if table is None:
            padding = xp.zeros((zeros * rows_per,) + tables[0].shape[1:], tables[0].dtype)
            table = xp.concatenate(tables + [padding])
        blinds = np.concatenate([o.blinds for o in openings] + [field.zeros(zeros * rows_per)])
        opening = Opening(table, blinds)
    return Stack(com, opening, len(commitments), k)


def combine(coeffs, stacks, device: Device = CPU) -> Stack:
    """``sum_j coeffs[j] * stacks[j]`` (same layout), with the matching opening for the prover
    (its table on ``device``).

    Coefficients ``+1``/``-1`` (the common case: ``b`` and ``1 - b``) cost point additions only.
    """
    stacks, coeffs = list(stacks), list(coeffs)
    if all(isinstance(c, int) and c in (1, -1) for c in coeffs):
        first = stacks[0].commitment
        rows = [p if coeffs[0] == 1 else -p for p in first.rows]
        for c, s in zip(coeffs[1:], stacks[1:]):
            rows = [a + b if c == 1 else a - b for a, b in zip(rows, s.commitment.rows)]
        com = Commitment(first.num_vars, tuple(rows), first.col_vars)
    else:
        com = Commitment.combine(coeffs, [s.commitment for s in stacks])
    opening = None
    if stacks[0].opening is not None:
        opening = Opening.combine(coeffs, [s.opening for s in stacks], device)
    return Stack(com, opening, stacks[0].count, stacks[0].index_vars)
