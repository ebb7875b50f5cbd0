"""Sigma protocols on Pedersen scalar commitments ``C = v * U + r * H`` (:mod:`zk.commit` key).

* **Zero opening.** ``C`` commits to 0 iff the prover knows ``r`` with ``C = r * H``; the prover
  reveals ``r``. Binding makes this sound; revealing the blind of a commitment to a *known* value
  (0) leaks nothing, because every blind the prover reveals is a combination of fresh uniform
  blinds that no other revealed value depends on.
* **Proof of product** (Hyrax, Wahby et al. 2018, appendix A; Maxwell's product proof).
  Relation: ``C_x = x U + r_x H``, ``C_y = y U + r_y H``, ``C_z = z U + r_z H`` with ``z = x y``.
  The prover samples ``b_1..b_5`` and sends ``alpha = b_1 U + b_2 H``, ``beta = b_3 U + b_4 H``,
  ``delta = b_3 C_x + b_5 H``; on challenge ``c`` it answers ``z_1 = b_1 + c x``,
  ``z_2 = b_2 + c r_x``, ``z_3 = b_3 + c y``, ``z_4 = b_4 + c r_y``,
  ``z_5 = b_5 + c (r_z - r_x y)``. The verifier checks ``alpha + c C_x = z_1 U + z_2 H``,
  ``beta + c C_y = z_3 U + z_4 H`` and ``delta + c C_z = z_3 C_x + z_5 H``. Honest-verifier zero
  knowledge: the responses are uniform given ``c`` and the first messages are then determined.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group
from .errors import ProofFormatError, VerificationError
from .group import Point
from .transcript import Transcript

__all__ = ["mul_point", "check_zero", "ProductProof", "prove_product", "verify_product"]


def mul_point(point: Point, scalar) -> Point:
    """``scalar * point`` for one field element (``(4,)`` array)."""
    return point * group.to_scalars(np.asarray(scalar).reshape(1, 4))[0]


def check_zero(point: Point, blind, key: commit.CommitKey, what: str,
               checks: commit.DeferredChecks | None = None) -> None:
    """Verify a zero opening: ``point == blind * H``, else VerificationError naming ``what``; with
    ``checks`` the equation joins that batch instead (checked by its ``run``)."""
    if checks is not None:
        checks.add(f"{what}: committed values do not satisfy the relation", [point, key.H],
                   np.stack([field.ONE, field.neg(np.asarray(blind).reshape(4))]))
        return
    if point != mul_point(key.H, blind):
        raise VerificationError(f"{what}: committed values do not satisfy the relation")


@dataclass(frozen=True)
class ProductProof:
    """``alpha, beta, delta`` (points) and ``z`` (five responses, ``(5, 4)``)."""

    alpha: Point
    beta: Point
    delta: Point
    z: np.ndarray

    SIZE = 3 * group.POINT_BYTES + 5 * field.BYTES

    def to_bytes(self) -> bytes:
        return group.points_to_bytes((self.alpha, self.beta, self.delta)) + field.to_bytes(self.z)

    @classmethod
    def from_bytes(cls, data) -> "ProductProof":
        if len(data) != cls.SIZE:
            raise ProofFormatError(f"product proof: expected {cls.SIZE} bytes, got {len(data)}")
        pts = group.points_from_bytes(data[: 3 * group.POINT_BYTES], 3)
        try:
            z = field.from_bytes(bytes(data[3 * group.POINT_BYTES:]), 5)
        except ValueError as exc:
            raise ProofFormatError(f"product proof: {exc}") from None
        return cls(*pts, z)


def _challenge(transcript: Transcript, points) -> np.ndarray:
    """Absorb the statement and first messages ``(C_x, C_y, C_z, alpha, beta, delta)``; ``c``."""
    transcript.absorb_points("product/statement+commit", points)
    return transcript.challenge_scalar("product/challenge")


def prove_product(x, rx, y, ry, rz, commitments, transcript: Transcript,
                  key: commit.CommitKey = commit.DEFAULT_KEY) -> ProductProof:
    """Prove that ``commitments = (C_x, C_y, C_z)`` open to ``x, y, x*y`` with blinds ``rx, ry, rz``."""
    b = field.random(5)
    U, H = key.U, key.H
    alpha = mul_point(U, b[0]) + mul_point(H, b[1])
    beta = mul_point(U, b[2]) + mul_point(H, b[3])
    delta = mul_point(commitments[0], b[2]) + mul_point(H, b[4])
    c = _challenge(transcript, (*commitments, alpha, beta, delta))
    secrets_ = np.stack([x, rx, y, ry, field.sub(rz, field.mul(rx, y))])
    z = field.add(b, field.mul(c, secrets_))
    return ProductProof(alpha, beta, delta, z)


def verify_product(commitments, proof: ProductProof, transcript: Transcript,
                   key: commit.CommitKey = commit.DEFAULT_KEY, what: str = "product",
                   checks: commit.DeferredChecks | None = None) -> None:
    """Check a :class:`ProductProof` for ``(C_x, C_y, C_z)``; VerificationError naming ``what``
    (with ``checks``: its three equations join that batch)."""
    cx, cy, cz = commitments
    c = _challenge(transcript, (cx, cy, cz, proof.alpha, proof.beta, proof.delta))
    U, H = key.U, key.H
    z = proof.z
    one, neg = field.ONE, field.neg
    for name, pts, sc in (("first factor", [proof.alpha, cx, U, H], [one, c, neg(z[0]), neg(z[1])]),
                          ("second factor", [proof.beta, cy, U, H], [one, c, neg(z[2]), neg(z[3])]),
                          ("product", [proof.delta, cz, cx, H], [one, c, neg(z[2]), neg(z[4])])):
        message = f"{what}: proof of product, {name} check failed"
        if checks is not None:
            checks.add(message, pts, np.stack(sc))
        elif group.msm(pts, np.stack(sc)) != group.identity():
            raise VerificationError(message)
