"""A malicious prover: the library's own commitment and relation provers run on a doctored witness.

``honest_witness`` gives the exact fixed-point witness of a real training run; a test edits any
tensor (or the claimed circuit) and ``forge`` proves it with the real provers, skipping only the
prover-side refusals (of unsound statements, and of looked-up entries outside their table: the
lookups' multiplicities are counted by :func:`lenient_multiplicities`) — what an attacker would do.
``rejection`` verifies and returns the failing check's message. :func:`range_check_of` finds the
:class:`zk.lower.RangeCheck` behind a range-checked tensor, from the statement's relations alone.
"""
from __future__ import annotations

import numpy as np
import pytest

import zk
from zk import commit, fac4dnn, field, lookup, training
from zk.device import CPU, SMALL_TABLES
from zk.fac4dnn import pad
from zk.keys import TensorKind
from zk.lower import RangeCheck


def honest_witness(widths, batch, steps=1, lr=0.1, bias=False, seed=0, param_scale=None):
    """``(circuit, values)``: the honest witness of ``steps`` SGD steps of a seeded MLP (updates
    that round away are not refused: the witness is an attacker's starting point)."""
    model = training.synthetic_mlp(widths, seed=seed, bias=bias)
    data = training.synthetic_batches(widths, batch, steps, seed=seed)
    circuit, values, _ = training.training_witness(model, data, lr, param_scale=param_scale,
                                                   refuse_underflow=False)
    return circuit, {k: np.array(v, copy=True) for k, v in values.items()}


def _entries(table) -> np.ndarray:
    """A committed table's entries as Python integers in ``[0, r)`` (small-integer tables as they are)."""
    if table.dtype in SMALL_TABLES:
        return table.reshape(-1).astype(object)
    try:
        return field.to_signed(table).reshape(-1).astype(object) % field.R
    except ValueError:  # entries beyond int64 (a wrapped value)
        return np.atleast_1d(field.to_int(table.reshape(-1, 4)))


def lenient_multiplicities(columns, table_bits, unused=0, device=CPU, function=None):
    """:func:`zk.lookup.multiplicities` as a cheating prover computes it: every entry ``c F mod r``
    outside the table is counted as an entry 0 instead of refused (the lookup tree's leaves still
    hold the true entries, so the verifier must catch it; against a function table, pairs that are
    not its rows are not refused either)."""
    size = 1 << table_bits
    counts = np.zeros(size, dtype=np.int64)
    for c in columns:
        e = _entries(device.download(c.stack.opening.table)) * c.scale % field.R
        inside = np.array([int(v) < size for v in e], dtype=bool) if e.size else np.zeros(0, bool)
        counts += np.bincount(np.where(inside, e, 0).astype(np.int64), minlength=size)
    counts[0] += unused
    return counts


def forge(circuit, values, lr=None, commit_all=True):
    """Commit to ``values`` and prove ``circuit`` with the real provers (no soundness refusal, and
    looked-up entries outside their table proved all the same). ``commit_all``: commit every tensor
    by itself, as a cheating prover may (the honest one derives a tensor's commitment from each
    linear relation it can, :attr:`zk.fac4dnn.Circuit.derived`, which would enforce the relation
    before the verifier's linear check could catch it)."""
    lr = float(circuit.lr_q / (1 << circuit.lr_bits)) if lr is None else lr
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lookup, "multiplicities", lenient_multiplicities)
        if commit_all:
            mp.setattr(fac4dnn.Circuit, "derived", property(lambda self: {}))
        return training.commit_and_prove(circuit, values, lr, commit.DEFAULT_KEY, None)[0]


def range_check_of(circuit, key) -> RangeCheck | None:
    """The :class:`zk.lower.RangeCheck` of the range-checked tensor ``key`` (None if it has none),
    read off the circuit's recomposition relation (its limbs and sign plane, width and offset) and
    checked against it."""
    for rel in circuit.linear_relations:
        if not rel.terms or rel.terms[0] != (1, key) or not rel.equation.startswith("range check of"):
            continue
        rest = [k for _, k in rel.terms[1:]]
        if not rest or any(k.kind not in (TensorKind.LIMBS, TensorKind.BITS) or (k.step, k.tensor) != key[1:3]
                           for k in rest):
            continue
        sign = rest[-1].kind is TensorKind.BITS
        width = sum(circuit.lookup_bits[k] for k in rest if k.kind is TensorKind.LIMBS) + sign
        offset = rel.const if sign else rel.const + (1 << (width - 1))
        check = RangeCheck(key, width, offset, sign, circuit.limb_bits)
        again = check.recomposition("")
        assert (again.terms, again.const) == (rel.terms, rel.const), rel.equation
        return check
    return None


def redecompose(circuit, values, key):
    """Refill the limbs (and sign plane) of ``key``'s range check from ``values[key]`` (padded), so
    that its own range check holds; nothing when ``key`` has none."""
    check = range_check_of(circuit, key)
    if check is not None:
        values.update(check.decompose(pad(values[key], circuit.shapes[key]), str(key)))
    return values


def padded(values, key, shape):
    """``values[key]`` zero-padded to ``shape`` (so a test can write into its padding)."""
    values[key] = pad(values[key], shape)
    return values[key]


def rejection(proof, verify=zk.verify_training) -> str:
    """The message of the VerificationError ``verify(proof)`` must raise."""
    with pytest.raises(zk.VerificationError) as err:
        verify(proof)
    return str(err.value)
