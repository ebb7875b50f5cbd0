"""Every evaluation claim of a proof, opened at once: one committed sumcheck and one inner-product argument.

Relation
--------
Claims ``T_i~(x_i) = v_i`` (``i < k``) on Hyrax-committed tables (:mod:`zk.commit`), each value
public or committed as ``C_i = v_i U + r_i H``. A sub-protocol (einsum, zkReLU, zero padding,
lookup) that reduces its relation to such claims hands them to :class:`Openings` (prover) or
:class:`Claims` (verifier) instead of opening each table itself; the proof's top level opens
them all at the end (:meth:`Openings.prove`, :meth:`Claims.verify`).

Reduction
---------
With ``x_i = (x_i^row, x_i^col)``, ``T_i~(x_i) = <t_i, R_i>`` where ``t_i = L_i^T T_i`` is the
row combination (``L_i = eq_table(x_i^row)``), ``R_i = eq_table(x_i^col)``; both parties hold
``C'_i = sum_j L_ij C_ij``, a commitment to ``t_i`` under the key's generators with blind
``sum_j L_ij r_ij``. Tables have ``c_i`` column variables; ``c = max c_i``. Generators of
different widths are prefixes of one sequence, so ``C'_i`` also commits to ``t_i`` zero-extended
to ``2^c`` entries, and ``<t_i, R_i> = <t_i', R_i'>`` with ``R_i' = eq_table((0, ..., 0, x_i^col))``.

1. When a claim is made its statement is absorbed as :func:`zk.commit.prove_eval` does (the
   commitment, the point, ``v_i`` or ``C_i``). At the end the transcript absorbs ``(k, c)`` and
   yields ``alpha``; with ``w_i = alpha^i``, the claim is ``sum_i w_i v_i``, committed as
   ``sum_i w_i C_i``.
2. A committed sumcheck (:mod:`zk.zksumcheck`, degree 2, ``c`` rounds) of
   ``sum_b sum_i w_i R_i'(b) t_i'(b)`` yields the point ``r`` and a commitment ``C_f`` to
   ``f(r) = sum_i gamma_i t_i'~(r)`` with public ``gamma_i = w_i R_i'~(r) = w_i eq((0, x_i^col), r)``.
3. ``f(r) = <a, eq_table(r)>`` for ``a = sum_i gamma_i t_i'``, which ``sum_i gamma_i C'_i`` commits
   to: one zero-knowledge inner-product argument (:func:`zk.commit.prove_inner_product`) with
   ``b = eq_table(r)`` and ``C_v = C_f``.

Soundness: a false claim survives step 1 with probability at most ``(k - 1)/r`` (a nonzero
polynomial of degree ``k - 1`` in ``alpha``), step 2 with ``2c/r`` (the sumcheck over degree-2
rounds), and step 3 binds ``f(r)`` to the committed rows (discrete log). Zero knowledge: the
sumcheck's rounds and the inner-product argument are zero knowledge and nothing else is sent.
Cost: the prover's sumcheck runs over ``k`` vectors of ``2^c`` entries (the tables themselves are
touched once, for their row combinations) and one inner-product argument replaces ``k``; the
verifier's multi-scalar check covers every claimed table's rows, as ``k`` openings would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group, mle, zksumcheck
from .commit import Commitment, EvalProof, Opening
from .device import CPU, Device
from .errors import ProofFormatError, VerificationError, malformed_as_verification_error
from .group import Point
from .sigma import mul_point
from .transcript import Transcript

__all__ = ["Openings", "Claims", "OpeningsProof"]

#: The reduction's round polynomials: sum_i w_i R_i'(b) t_i'(b) has degree 2 in each variable.
_DEGREE = 2


@dataclass(frozen=True)
class OpeningsProof:
    """The sumcheck of step 2 over ``col_vars`` variables and the inner-product argument of step 3."""

    col_vars: int
    sumcheck: zksumcheck.CommittedSumcheck
    ipa: EvalProof

    def sections(self) -> list[bytes]:
        return [bytes([self.col_vars]), self.sumcheck.to_bytes(), self.ipa.to_bytes()]

    @classmethod
    def read(cls, reader) -> "OpeningsProof":
        head = reader.section()
        if len(head) != 1 or head[0] > commit.MAX_VARS:
            raise ProofFormatError("openings: expected one byte of column variables, at most "
                                   f"{commit.MAX_VARS}")
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), head[0], _DEGREE)
        return cls(head[0], sc, EvalProof.from_bytes(reader.section()))


@dataclass(frozen=True)
class _ProverClaim:
    row: np.ndarray  # t_i = L_i^T T_i, (2^c_i, 4)
    row_blind: np.ndarray  # sum_j L_ij r_ij
    col_point: np.ndarray  # x_i^col, (c_i, 4)
    value_blind: np.ndarray  # r_i (0 for a public value)


def _widened(col_point: np.ndarray, col_vars: int) -> np.ndarray:
    """``(0, ..., 0, x^col)`` over ``col_vars`` coordinates."""
    return np.concatenate([field.zeros(col_vars - len(col_point)), col_point])


def _absorb_count(t: Transcript, count: int, col_vars: int) -> np.ndarray:
    """Step 1's challenge powers ``w_i = alpha^i``."""
    t.absorb_ints("openings/claims", (count, col_vars))
    return field.powers(t.challenge_scalar("openings/alpha"), count)


class Openings:
    """The prover's evaluation claims of one proof, opened together by :meth:`prove`."""

    def __init__(self, key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> None:
        self.key, self.device = key, device
        self._claims: list[_ProverClaim] = []

    def __len__(self) -> int:
        return len(self._claims)

    def add(self, opening: Opening, commitment: Commitment, point, t: Transcript, value_blind=None) -> np.ndarray:
        """Claim ``T~(point) = v`` for the table of ``opening`` / ``commitment``, its statement absorbed
        now (:func:`zk.commit.claim_eval`); ``v`` is public (``value_blind=None``) or committed as
        ``commit_scalar(v, key, blind=value_blind)``, which the caller sends. Returns ``v``."""
        claim = commit.claim_eval(opening, commitment, point, t, self.key, value_blind, self.device)
        self._claims.append(_ProverClaim(claim.row, claim.row_blind, claim.x[opening.num_vars - opening.col_vars:],
                                         claim.value_blind))
        return claim.value

    def prove(self, t: Transcript) -> OpeningsProof:
        """Open every claim made so far (the module docstring's steps 1-3), then forget them."""
        claims, self._claims = self._claims, []
        if not claims:
            raise ValueError("openings: no evaluation claims to open")
        c = max(len(x.col_point) for x in claims)
        w = _absorb_count(t, len(claims), c)
        n = 1 << c
        weighted = np.stack([field.mul(wi, mle.eq_table(_widened(x.col_point, c))) for wi, x in zip(w, claims)])
        rows = np.zeros((len(claims), n, 4), dtype=np.uint64)
        for i, x in enumerate(claims):
            rows[i, :len(x.row)] = x.row
        claim_blind = field.inner(w, np.stack([x.value_blind for x in claims]))
        sc, r, finals, final_blind = zksumcheck.prove(_ReductionProver(weighted, rows), claim_blind, t, self.key)
        gamma = finals[:len(claims)]
        a = field.sum(field.mul(gamma[:, None, :], rows), axis=0)
        blind = field.inner(gamma, np.stack([x.row_blind for x in claims]))
        ipa = commit.prove_inner_product(a, mle.eq_table(r), blind, final_blind, t, self.key, self.device)
        return OpeningsProof(c, sc, ipa)


class _ReductionProver:
    """Step 2's sumcheck prover for ``sum_b sum_i W_i(b) T_i(b)`` over ``(k, 2^c, 4)`` arrays
    ``W`` (the weighted ``R_i'``) and ``T`` (the rows ``t_i'``), the first variable bound first."""

    degree = _DEGREE

    def __init__(self, weights: np.ndarray, rows: np.ndarray) -> None:
        self._w, self._t = weights, rows
        self.num_vars = weights.shape[1].bit_length() - 1

    def round_polynomial(self) -> np.ndarray:
        h = self._w.shape[1] // 2
        (w0, w1), (t0, t1) = (self._w[:, :h], self._w[:, h:]), (self._t[:, :h], self._t[:, h:])
        w2, t2 = field.sub(field.add(w1, w1), w0), field.sub(field.add(t1, t1), t0)
        return np.stack([field.sum(field.mul(w, t).reshape(-1, 4), axis=0) for w, t in ((w0, t0), (w1, t1), (w2, t2))])

    def bind(self, challenge) -> None:
        h = self._w.shape[1] // 2
        self._w, self._t = (field.add(x[:, :h], field.mul(challenge, field.sub(x[:, h:], x[:, :h])))
                            for x in (self._w, self._t))

    def final_evaluations(self) -> np.ndarray:
        """``W_i(r)`` for every claim, then ``T_i(r)``."""
        return np.concatenate([self._w[:, 0], self._t[:, 0]])


@dataclass(frozen=True)
class _VerifierClaim:
    rows: tuple[Point, ...]
    left: np.ndarray  # L_i
    col_point: np.ndarray
    value: Point  # C_i, or v_i U for a public value


class Claims:
    """The verifier's evaluation claims of one proof, checked together by :meth:`verify`."""

    def __init__(self, key: commit.CommitKey = commit.DEFAULT_KEY) -> None:
        self.key = key
        self._claims: list[_VerifierClaim] = []

    def __len__(self) -> int:
        return len(self._claims)

    def add(self, commitment: Commitment, point, value, t: Transcript) -> None:
        """Claim that the committed table evaluates at ``point`` to ``value`` (a public int or field
        element, or a :data:`Point` ``C_v``), its statement absorbed as :meth:`Openings.add` does."""
        x, left, _, value = commit.absorb_claim(commitment, point, value, t)
        self._claims.append(_VerifierClaim(commitment.rows, left, x[commitment.num_vars - commitment.col_vars:],
                                           value if isinstance(value, Point) else mul_point(self.key.U, value)))

    def verify(self, proof: OpeningsProof, t: Transcript, checks: commit.DeferredChecks | None = None) -> None:
        """Check ``proof`` opens every claim made so far, then forget them; VerificationError
        otherwise (with ``checks``, the multi-scalar equations join that batch)."""
        claims, self._claims = self._claims, []
        with malformed_as_verification_error("OpeningsProof"):
            self._verify(claims, proof, t, checks)

    def _verify(self, claims: list[_VerifierClaim], proof: OpeningsProof, t: Transcript, checks) -> None:
        if not isinstance(proof, OpeningsProof) or not isinstance(proof.sumcheck, zksumcheck.CommittedSumcheck) or \
                not isinstance(proof.ipa, EvalProof):
            raise VerificationError("openings: expected an OpeningsProof of a sumcheck and an inner-product argument")
        if not claims:
            raise VerificationError("openings: no evaluation claims to check")
        c = max(len(x.col_point) for x in claims)
        if proof.col_vars != c or len(proof.ipa.L) != c:
            raise VerificationError(f"openings: the proof reduces over {proof.col_vars} column variables "
                                    f"({len(proof.ipa.L)} inner-product rounds), the claims need {c}")
        w = _absorb_count(t, len(claims), c)
        start = group.msm([x.value for x in claims], w)
        r, final = zksumcheck.verify(start, c, _DEGREE, proof.sumcheck, t, self.key,
                                     what="the evaluation claims' sumcheck", checks=checks)
        gamma = [field.mul(wi, mle.eq(_widened(x.col_point, c), r)) for wi, x in zip(w, claims)]
        rows = [p for x in claims for p in x.rows]
        scalars = np.concatenate([field.mul(g, x.left) for g, x in zip(gamma, claims)])
        points, scalars = commit.inner_product_equation(proof.ipa, mle.eq_table(r), rows, scalars, final, t,
                                                        self.key)
        what = "the evaluation claims' inner-product argument check failed (a committed table opens to another value)"
        if checks is not None:
            checks.add(what, points, scalars)
        elif group.msm(points, scalars) != group.identity():
            raise VerificationError(what)
