"""Zero padding: every entry of a committed tensor outside its true shape is zero.

Every relation here is proved over tensors zero-padded to powers of two (:mod:`zk.mle`), and a
commitment binds the padded table, so junk in the padding (hidden input features, hidden units,
hidden samples) would be a part of the computation the statement does not show. This relation
closes that gap.

Relation: a committed stack ``T`` on ``m`` variables (:mod:`zk.stack`; ``count`` instances of one
padded shape ``p``, instance ``n`` of true shape ``s_n``, padding instances zero by construction)
and the public mask ``M(n, x) = [x < s_n entrywise]``; then ``(1 - M) T = 0`` on ``{0,1}^m``.

Protocol: the verifier draws ``u``; the prover shows

    sum_{x in {0,1}^m} eq(u, x) (1 - M(x)) T(x) = 0

— the multilinear extension of ``(1 - M) T`` at ``u``, nonzero with probability at least
``1 - m / r`` when ``(1 - M) T`` is (Schwartz–Zippel) — by a committed sumcheck
(:mod:`zk.zksumcheck`, claim 0 committed with blind 0) down to a random point ``r``. The prover
commits to ``T~(r)``, an evaluation claim the proof's openings cover (:mod:`zk.openings`); the
verifier evaluates ``1 - M~(r)`` itself in ``O(count * m)`` (:func:`mask_mle`) and checks the
final claim ``eq(u, r) (1 - M~(r)) T~(r)`` by a zero opening. Zero knowledge as for every other
relation: only commitments and blinds that include a fresh uniform blind leave the prover.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group, mle, zksumcheck
from .device import CPU, Device, flat
from .errors import ProofFormatError
from .openings import Claims, Openings
from .stack import Stack
from .transcript import Transcript

__all__ = ["PaddingProof", "needs_proof", "mask", "mask_mle", "prove", "verify"]

_TERMS = [(1, (0, 1))]  # (1 - M) * T, weighted by eq(u, .)


def needs_proof(true_shape, padded_shape) -> bool:
    """Whether a tensor of ``true_shape`` has padding entries inside ``padded_shape``."""
    return tuple(true_shape) != tuple(padded_shape)


def mask(true_shapes, padded_shape) -> np.ndarray:
    """The table of ``1 - M`` for a stack of instances of ``true_shapes`` (uint8, 1 on padding
    entries, padding instances included) — the prover's side."""
    count = 1 << (len(true_shapes) - 1).bit_length()
    out = np.ones((count, *padded_shape), dtype=np.uint8)
    for n, shape in enumerate(true_shapes):
        out[(n, *(slice(0, d) for d in shape))] = 0
    return out.reshape(-1)


def _less_than(s: int, bits: int, x: list[int]) -> int:
    """The MLE of ``i -> [i < s]`` over ``bits`` index bits (most significant first) at ``x``."""
    if s >= 1 << bits:
        return 1
    out, prefix = 0, 1  # prefix: eq of the leading coordinates with the leading bits of s
    for v in range(bits):
        bit = (s >> (bits - 1 - v)) & 1
        if bit:
            out = (out + prefix * (1 - x[v])) % field.R
            prefix = prefix * x[v] % field.R
        else:
            prefix = prefix * (1 - x[v]) % field.R
    return out


def mask_mle(true_shapes, padded_shape, point) -> int:
    """``M~(point)`` (a Python integer mod r) of a stack of ``true_shapes`` in ``padded_shape``:
    ``sum_n eq(point_index, n) prod_d [i_d < s_{n,d}]~(point_d)`` — the verifier's side."""
    r = [int(v) for v in field.to_int(np.asarray(point).reshape(-1, 4))]
    k = (len(true_shapes) - 1).bit_length()
    index, rest = r[:k], r[k:]
    dims = mle.dim_bits(padded_shape)
    total = 0
    for n, shape in enumerate(true_shapes):
        eq = 1
        for v in range(k):
            bit = (n >> (k - 1 - v)) & 1
            eq = eq * (index[v] if bit else 1 - index[v]) % field.R
        offset, value = 0, eq
        for d, b in zip(shape, dims):
            value = value * _less_than(d, b, rest[offset:offset + b]) % field.R
            offset += b
        total = (total + value) % field.R
    return total


@dataclass(frozen=True)
class PaddingProof:
    """The committed sumcheck, a commitment to ``T~(r)`` (an evaluation claim the proof's openings
    cover) and the final zero opening."""

    sumcheck: zksumcheck.CommittedSumcheck
    value: group.Point
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        return [self.sumcheck.to_bytes(), group.point_to_bytes(self.value), field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader, num_vars: int) -> "PaddingProof":
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), num_vars, 3)
        value = group.points_from_bytes(reader.section(), 1)[0]
        try:
            final_blind = field.from_bytes(reader.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"zero-padding proof: {exc}") from None
        return cls(sc, value, final_blind)


def prove(tensor: Stack, true_shapes, padded_shape, t: Transcript, evals: Openings,
          key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> PaddingProof:
    """Prove that the committed stack is zero outside ``true_shapes`` (one per instance), on
    ``device``, the evaluation claim going to ``evals``."""
    u = t.challenge_scalars("padding/u", tensor.commitment.num_vars)
    outside = device.asarray(mask(true_shapes, padded_shape)).reshape(-1)
    table = flat(tensor.opening.table)  # integer tables go to the prover as they are (it expands them in chunks)
    prover = device.eq_sumcheck(u, [outside, table], _TERMS, field.zeros())
    sc, r, finals, final_blind = zksumcheck.prove(prover, field.zeros(), t, key)
    blind = field.random()
    value, _ = commit.commit_scalar(finals[1], key, blind=blind)
    t.absorb_point("padding/value", value)
    evals.add(tensor.opening, tensor.commitment, r, t, value_blind=blind)
    delta = zksumcheck.prove_final_claim(final_blind, field.mul(mle.eq(u, r), finals[0]), blind)
    return PaddingProof(sc, value, delta)


def verify(tensor: Stack, true_shapes, padded_shape, proof: PaddingProof, t: Transcript, evals: Claims,
           key: commit.CommitKey = commit.DEFAULT_KEY, what: str = "zero padding",
           checks: commit.DeferredChecks | None = None) -> None:
    """Check a :class:`PaddingProof`, the evaluation claim going to ``evals``; VerificationError
    naming ``what`` otherwise."""
    u = t.challenge_scalars("padding/u", tensor.commitment.num_vars)
    r, final = zksumcheck.verify(group.identity(), len(u), 3, proof.sumcheck, t, key,
                                 what=f"{what} sumcheck", checks=checks)
    t.absorb_point("padding/value", proof.value)
    evals.add(tensor.commitment, r, proof.value, t)
    outside = (1 - mask_mle(true_shapes, padded_shape, r)) % field.R
    factor = field.mul(mle.eq(u, r), field.from_int(outside))
    zksumcheck.verify_final_claim(final, factor, proof.value, proof.final_blind, key, f"{what}: final claim", checks)
