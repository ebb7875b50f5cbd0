"""Bit decompositions: the auxiliary inputs that turn range and sign checks into linear ones.

A value ``v`` with ``0 <= v < 2^k`` is ``sum_i 2^i b_i`` (:func:`unsigned`); a signed value with
``-2^(q-1) <= v < 2^(q-1)`` is ``-2^(q-1) b_{q-1} + sum_{i<q-1} 2^i b_i`` (two's complement,
:func:`signed`), whose top bit is the sign. The prover commits to every bit plane; the verifier
checks recomposition homomorphically (a linear relation of commitments) and booleanity
``b - b^2 = 0`` with one committed sumcheck per stack of planes (:func:`prove_booleanity`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group, mle, sigma, zksumcheck
from .commit import EvalProof
from .device import CPU, Device
from .errors import ProofFormatError
from .stack import Stack
from .transcript import Transcript


def unsigned_weights(k: int) -> list[int]:
    return [1 << i for i in range(k)]


def signed_weights(q: int) -> list[int]:
    return [1 << i for i in range(q - 1)] + [-(1 << (q - 1))]


def signed_width(arrays) -> int:
    """The narrowest two's-complement width (at least 2) that holds every integer of ``arrays``."""
    lo = min((int(np.min(a)) for a in arrays if np.size(a)), default=0)
    hi = max((int(np.max(a)) for a in arrays if np.size(a)), default=0)
    return max(2, max(hi.bit_length(), (-lo - 1).bit_length()) + 1)


def _checked(values: np.ndarray, lo: int, hi: int, what: str) -> np.ndarray:
    """``values`` after checking ``lo <= v < hi`` (ValueError naming ``what``): int64 when the
    range fits, Python integers (object array) when it does not."""
    a = np.asarray(values)
    if a.size:
        vmin, vmax = int(a.min()), int(a.max())
        if vmin < lo or vmax >= hi:
            raise ValueError(f"{what}: values in [{vmin}, {vmax}] leave the proof's range [{lo}, {hi})")
    return a.astype(np.int64) if -(1 << 63) <= lo and hi <= 1 << 63 else a.astype(object)


def unsigned(values, k: int, what: str) -> np.ndarray:
    """Planes ``(k, *shape)`` (uint8) of values in ``[0, 2^k)``; ValueError naming ``what`` otherwise."""
    a = _checked(values, 0, 1 << k, what)
    return np.stack([(a >> i) & 1 for i in range(k)]).astype(np.uint8) if k else \
        np.zeros((0, *a.shape), np.uint8)


def signed(values, q: int, what: str) -> np.ndarray:
    """Two's-complement planes ``(q, *shape)`` of values in ``[-2^(q-1), 2^(q-1))``."""
    a = _checked(values, -(1 << (q - 1)), 1 << (q - 1), what)
    return np.stack([(a >> i) & 1 for i in range(q)]).astype(np.uint8)


# ----------------------------------------------------------------------------------------
# booleanity: sum_x eq(u, x) (b(x) - b(x)^2) = 0 for a committed stack of planes
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BooleanityProof:
    """Committed sumcheck of ``eq * (b - b^2)``, the opening of ``b`` at its point, a proof that a
    second commitment holds ``b(r)^2``, and the final zero opening."""

    sumcheck: zksumcheck.CommittedSumcheck
    values: tuple  # commitments to b(r) and b(r)^2
    opening: EvalProof
    square: sigma.ProductProof
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        return [self.sumcheck.to_bytes(), group.points_to_bytes(self.values), self.opening.to_bytes(),
                self.square.to_bytes(), field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader, num_vars: int) -> "BooleanityProof":
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), num_vars, 3)
        values = tuple(group.points_from_bytes(reader.section(), 2))
        opening = EvalProof.from_bytes(reader.section())
        square = sigma.ProductProof.from_bytes(reader.section())
        try:
            final_blind = field.from_bytes(reader.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"booleanity proof: {exc}") from None
        return cls(sc, values, opening, square, final_blind)


_BOOLEANITY_TERMS = [(1, (0,)), (-1, (0, 0))]  # b - b^2, weighted by eq(u, .)


def prove_booleanity(planes: Stack, u: np.ndarray, t: Transcript,
                     key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> BooleanityProof:
    """Prove that every entry of the committed stack is 0 or 1, at the random point ``u``, on ``device``."""
    expanded = planes.opening.expanded(device)  # field elements for this proof only
    prover = device.eq_sumcheck(u, [expanded.table.reshape(-1, 4)], _BOOLEANITY_TERMS)
    sc, r, finals, final_blind = zksumcheck.prove(prover, field.zeros(), t, key)
    b = finals[0]
    blinds = field.random(2)
    values, _ = commit.commit_scalars(np.stack([b, field.square(b)]), key, blinds=blinds)
    t.absorb_points("booleanity/values", values)
    opening = commit.prove_eval(expanded, planes.commitment, r, t, key, value_blind=blinds[0], device=device)
    square = sigma.prove_product(b, blinds[0], b, blinds[0], blinds[1], (values[0], values[0], values[1]),
                                 t, key)
    delta = zksumcheck.prove_final_claim(final_blind, mle.eq(u, r), field.sub(blinds[0], blinds[1]))
    return BooleanityProof(sc, tuple(values), opening, square, delta)


def verify_booleanity(planes: Stack, u: np.ndarray, proof: BooleanityProof, t: Transcript,
                      key: commit.CommitKey = commit.DEFAULT_KEY,
                      checks: commit.DeferredChecks | None = None) -> None:
    """Check a :class:`BooleanityProof`; VerificationError naming the check otherwise."""
    what = "booleanity of committed bits"
    r, final = zksumcheck.verify(group.identity(), len(u), 3, proof.sumcheck, t, key,
                                 what=f"{what} sumcheck", checks=checks)
    t.absorb_points("booleanity/values", proof.values)
    commit.verify_eval(planes.commitment, r, proof.values[0], proof.opening, t, key, checks)
    cb, cz = proof.values
    sigma.verify_product((cb, cb, cz), proof.square, t, key, what=f"{what} (square)", checks=checks)
    zksumcheck.verify_final_claim(final, mle.eq(u, r), cb - cz, proof.final_blind, key, f"{what}: final claim",
                                  checks)
