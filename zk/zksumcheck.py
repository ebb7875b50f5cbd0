"""Zero-knowledge sumcheck: every round polynomial is sent as Pedersen commitments.

Relation (as :mod:`zk.sumcheck`): ``claim = sum_{x in {0,1}^m} f(x)`` for a sum of products of
MLE tables, except that the claim is known to the verifier only as a commitment
``C_0 = claim * U + rho_0 * H``.

Protocol (Hyrax-style, Wahby et al. 2018 §4; "commit to the round polynomials and prove their
relations"). In round ``i`` the prover commits to the evaluations ``g_i(0..d)`` of its round
polynomial one by one, ``C_{i,k} = g_i(k) U + rho_{i,k} H`` with fresh blinds, and proves the
linear relation ``g_i(0) + g_i(1) = claim_i`` by a zero opening (:func:`zk.sigma.check_zero`):
it reveals ``delta_i = rho_{i,0} + rho_{i,1} - rho_claim_i``, the blind of
``C_{i,0} + C_{i,1} - C_claim_i``. The transcript absorbs the commitments and ``delta_i`` and
yields ``r_i``; both sides set ``C_claim_{i+1} = sum_k lambda_k(r_i) C_{i,k}`` (Lagrange
coefficients of the nodes ``0..d`` at ``r_i``), the prover tracks the matching blind. The
result is the point ``r`` and a commitment ``C_final`` to ``claim_m = f(r)``, which the caller
links to committed evaluations of the tables (openings and :mod:`zk.sigma` product proofs): with
``C_v`` committing to their product ``v`` and ``e`` the summand's public factor at ``r`` (e.g.
``eq(u, r)``), ``f(r) = e v`` is the zero opening of ``C_final - e C_v``
(:func:`prove_final_claim`, :func:`verify_final_claim`).

Zero knowledge: each ``C_{i,k}`` is uniformly distributed (fresh blind), and each ``delta_i``
is uniform and independent of everything else because ``rho_{i,0}`` is used nowhere else; the
values ``g_i(k)`` never appear in the clear. Soundness: Pedersen binding turns each zero opening
into the plain sumcheck check ``g_i(0) + g_i(1) = claim_i``; the degree is fixed by the number
of commitments per round, which the verifier checks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group
from .errors import ProofFormatError, VerificationError
from .group import Point
from .sigma import check_zero, mul_point
from .sumcheck import SumcheckProver, lagrange_basis
from .transcript import Transcript

__all__ = ["CommittedSumcheck", "prove", "verify", "prove_final_claim", "verify_final_claim",
           "lagrange_coefficients"]


def lagrange_coefficients(degree: int, x) -> np.ndarray:
    """:func:`zk.sumcheck.lagrange_basis` at one field element ``x``, as field elements."""
    return field.from_int(lagrange_basis(degree, field.to_int(np.asarray(x).reshape(4))))


@dataclass(frozen=True)
class CommittedSumcheck:
    """Round commitments ``(m, d+1)`` points and zero-opening blinds ``(m, 4)``."""

    commitments: tuple[tuple[Point, ...], ...]
    deltas: np.ndarray

    @property
    def num_rounds(self) -> int:
        return len(self.commitments)

    def to_bytes(self) -> bytes:
        flat = [p for row in self.commitments for p in row]
        return group.points_to_bytes(flat) + field.to_bytes(self.deltas)

    @classmethod
    def from_bytes(cls, data: bytes, rounds: int, degree: int) -> "CommittedSumcheck":
        n_pts = rounds * (degree + 1)
        size = n_pts * group.POINT_BYTES + rounds * field.BYTES
        if len(data) != size:
            raise ProofFormatError(f"sumcheck: expected {size} bytes, got {len(data)}")
        pts = group.points_from_bytes(data[: n_pts * group.POINT_BYTES], n_pts)
        try:
            deltas = field.from_bytes(data[n_pts * group.POINT_BYTES:], rounds)
        except ValueError as exc:
            raise ProofFormatError(f"sumcheck: {exc}") from None
        rows = tuple(tuple(pts[i * (degree + 1):(i + 1) * (degree + 1)]) for i in range(rounds))
        return cls(rows, deltas.reshape(rounds, 4))

    @staticmethod
    def size(rounds: int, degree: int) -> int:
        return rounds * ((degree + 1) * group.POINT_BYTES + field.BYTES)


def _round_challenge(transcript: Transcript, i: int, points, delta) -> np.ndarray:
    """Absorb round ``i``'s commitments and zero-opening blind (one message); its challenge."""
    transcript.absorb(f"zksumcheck/round{i}", group.points_to_bytes(points) + field.to_bytes(delta))
    return transcript.challenge_scalar("zksumcheck/challenge")


def prove(prover: SumcheckProver, claim_blind, transcript: Transcript,
          key: commit.CommitKey = commit.DEFAULT_KEY):
    """Run the committed sumcheck on ``prover`` for a claim committed with blind ``claim_blind``.

    Returns ``(proof, point, finals, final_blind)``: the point ``r`` ``(m, 4)``, every table's
    value at ``r`` ``(k, 4)`` (secret) and the blind of the final claim commitment.
    """
    m, d = prover.num_vars, prover.degree
    blind = np.asarray(claim_blind, dtype=np.uint64).reshape(4)
    rounds, deltas = [], np.empty((m, 4), dtype=np.uint64)
    point = np.empty((m, 4), dtype=np.uint64)
    for i in range(m):
        evals = prover.round_polynomial()
        points, blinds = commit.commit_scalars(evals, key)
        deltas[i] = field.sub(field.add(blinds[0], blinds[1]), blind)
        point[i] = _round_challenge(transcript, i, points, deltas[i])
        blind = field.inner(lagrange_coefficients(d, point[i]), blinds)
        prover.bind(point[i])
        rounds.append(tuple(points))
    return CommittedSumcheck(tuple(rounds), deltas), point, prover.final_evaluations(), blind


def verify(claim_commitment: Point, num_vars: int, degree: int, proof: CommittedSumcheck,
           transcript: Transcript, key: commit.CommitKey = commit.DEFAULT_KEY,
           what: str = "sumcheck", checks: commit.DeferredChecks | None = None) -> tuple[np.ndarray, Point]:
    """Check the rounds; returns ``(point, C_final)`` where ``C_final`` commits to ``f(point)``.

    Raises VerificationError naming ``what`` and the failing round. Each round's claim stays a
    combination of the previous round's commitments (only ``C_final`` is computed); with ``checks``
    the rounds' zero openings join that batch instead of one multi-scalar check per round.
    """
    if proof.num_rounds != num_vars:
        raise VerificationError(f"{what}: expected {num_vars} rounds, got {proof.num_rounds}")
    if any(len(row) != degree + 1 for row in proof.commitments):
        raise VerificationError(f"{what}: round polynomials must have degree {degree}")
    deltas = proof.deltas
    if not (isinstance(deltas, np.ndarray) and deltas.dtype == np.uint64 and deltas.shape == (num_vars, 4)):
        raise VerificationError(f"{what}: expected one zero-opening blind per round ({num_vars})")
    point = np.empty((num_vars, 4), dtype=np.uint64)
    claim_points, claim_scalars = [claim_commitment], field.ONE[None]
    for i, (row, delta) in enumerate(zip(proof.commitments, proof.deltas)):
        message = f"{what} round {i}: g(0)+g(1) = claim: committed values do not satisfy the relation"
        points = [row[0], row[1], *claim_points, key.H]
        scalars = np.concatenate([field.ones(2), field.neg(claim_scalars), field.neg(delta)[None]])
        if checks is not None:
            checks.add(message, points, scalars)
        elif group.msm(points, scalars) != group.identity():
            raise VerificationError(message)
        point[i] = _round_challenge(transcript, i, row, delta)
        claim_points, claim_scalars = list(row), lagrange_coefficients(degree, point[i])
    return point, group.msm(claim_points, claim_scalars)


def prove_final_claim(final_blind, factor, value_blind) -> np.ndarray:
    """The blind of ``C_final - factor * C_v`` (``C_final``: the final claim, blind ``final_blind``;
    ``C_v``: a commitment with blind ``value_blind``), revealed to show ``f(r) = factor * v``."""
    return field.sub(final_blind, field.mul(factor, value_blind))


def verify_final_claim(final: Point, factor, value: Point, blind, key: commit.CommitKey, what: str,
                       checks: commit.DeferredChecks | None = None) -> None:
    """Check that the final claim ``final`` commits to ``factor`` times the value of ``value``
    (the zero opening ``blind`` of :func:`prove_final_claim`); VerificationError naming ``what``
    (with ``checks``: the equation joins that batch)."""
    if checks is not None:
        checks.add(f"{what}: committed values do not satisfy the relation", [final, value, key.H],
                   np.stack([field.ONE, field.neg(np.asarray(factor).reshape(4)), field.neg(np.asarray(blind).reshape(4))]))
        return
    check_zero(final - mul_point(value, factor), blind, key, what)
