"""Zero-knowledge sumcheck for eq-weighted Hadamard products of committed stacks.

Relation: for committed stacks on ``m`` variables, a public point ``u`` and affine forms
``F = f_0 + sum_j f_j S_j``, ``G = g_0 + sum_j g_j T_j`` and ``Out = sum_j a_j O_j`` of them,

    Out~(u) = sum_{x in {0,1}^m} eq(u, x) * F(x) * G(x),

i.e. ``Out = F ∘ G`` entrywise. zkReLU (``A = (1 - s) Z`` and ``G_Z = (1 - s) G_A`` at once,
:mod:`zk.fac4dnn`) is the instance this serves. ``Out`` may also be a public constant table
``c`` (``Out~(u) = c`` at every ``u``): then nothing is opened for it (:mod:`zk.lookup`'s
``1 = H ∘ (alpha - F)``).

Protocol: the prover commits to ``Out~(u)`` (an evaluation claim on the combined stack
``sum_j a_j O_j``; for a constant, the claim ``c U`` with blind 0), runs the committed sumcheck
(:mod:`zk.zksumcheck`) on ``eq(u, .) * F * G`` down to a random point ``r``, commits to the linear
parts of ``F`` and ``G`` at ``r`` (two more claims; the proof's openings cover all claims,
:mod:`zk.openings`), proves their product (:func:`zk.sigma.prove_product`) and links ``eq(u, r)``
times it to the sumcheck's final claim by a zero opening.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field

import numpy as np

from . import commit, field, group, mle, sigma, stack, zksumcheck
from .device import CPU, Device
from .errors import ProofFormatError, VerificationError
from .group import Point
from .openings import Claims, Openings
from .stack import Stack
from .transcript import Transcript


@dataclass
class Affine:
    """``const + sum_j coeff_j * stack_j`` over stacks of one layout."""

    const: int = 0
    terms: list = dc_field(default_factory=list)  # [(coefficient (int or field), Stack)]

    def linear(self, device: Device = CPU) -> Stack:
        """The linear part ``sum_j coeff_j * stack_j`` (the prover's table on ``device``)."""
        return stack.combine([c for c, _ in self.terms], [s for _, s in self.terms], device)

    def table(self, lin: Stack, device: Device) -> np.ndarray:
        """The prover's table of the form on ``device`` (``lin`` = :meth:`linear`)."""
        base = lin.opening.field_table(device).reshape(-1, 4)
        return device.add(base, field.from_int(self.const)) if self.const else base


def _const_point(value: int, key) -> Point:
    """``value * U`` (a commitment with blind 0)."""
    return sigma.mul_point(key.U, field.from_int(value))


@dataclass(frozen=True)
class HadamardProof:
    out_value: Point | None  # commitment to Out~(u); None for a constant Out (the claim is c U)
    sumcheck: zksumcheck.CommittedSumcheck
    values: tuple[Point, Point, Point]  # linear parts of F(r), G(r); F(r) * G(r)
    product: sigma.ProductProof
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        out = [] if self.out_value is None else [group.point_to_bytes(self.out_value)]
        return out + [self.sumcheck.to_bytes(), group.points_to_bytes(self.values), self.product.to_bytes(),
                      field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader, num_vars: int, constant: bool = False) -> "HadamardProof":
        """Parse the sections of :meth:`sections` (``constant``: proved for a constant ``Out``)."""
        out_value = None if constant else group.points_from_bytes(reader.section(), 1)[0]
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), num_vars, 3)
        values = tuple(group.points_from_bytes(reader.section(), 3))
        product = sigma.ProductProof.from_bytes(reader.section())
        try:
            final_blind = field.from_bytes(reader.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"hadamard proof: {exc}") from None
        return cls(out_value, sc, values, product, final_blind)


def prove(out: Affine | int, f: Affine, g: Affine, u: np.ndarray, t: Transcript, evals: Openings,
          key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> HadamardProof:
    """Prove ``Out~(u) = sum_x eq(u, x) F(x) G(x)`` (see the module docstring) on ``device``, the
    evaluation claims going to ``evals``; ``out`` an affine form of committed stacks or a public constant."""
    blinds = field.random(4)  # Out(u), F-linear(r), G-linear(r), product
    if isinstance(out, Affine):
        out_lin = out.linear(device)
        claim = evals.add(out_lin.opening, out_lin.commitment, u, t, value_blind=blinds[0])
        out_value, _ = commit.commit_scalar(claim, key, blind=blinds[0])
    else:
        out_value, blinds[0] = None, field.ZERO  # the claim c U has blind 0
        claim = field.from_int(out)
    f_lin, g_lin = f.linear(device), g.linear(device)
    prover = device.eq_sumcheck(u, [f.table(f_lin, device), g.table(g_lin, device)], [(1, (0, 1))], claim)
    sc, r, finals, final_blind = zksumcheck.prove(prover, blinds[0], t, key)
    fv, gv = finals[0], finals[1]
    lin_values = np.stack([field.sub(fv, field.from_int(f.const)),
                           field.sub(gv, field.from_int(g.const)), field.mul(fv, gv)])
    values, _ = commit.commit_scalars(lin_values, key, blinds=blinds[1:4])
    t.absorb_points("hadamard/values", values)
    evals.add(f_lin.opening, f_lin.commitment, r, t, value_blind=blinds[1])
    evals.add(g_lin.opening, g_lin.commitment, r, t, value_blind=blinds[2])
    cf = values[0] + _const_point(f.const, key)
    cg = values[1] + _const_point(g.const, key)
    product = sigma.prove_product(fv, blinds[1], gv, blinds[2], blinds[3], (cf, cg, values[2]), t, key)
    delta = zksumcheck.prove_final_claim(final_blind, mle.eq(u, r), blinds[3])
    return HadamardProof(out_value, sc, tuple(values), product, delta)


def verify(out: Affine | int, f: Affine, g: Affine, u: np.ndarray, proof: HadamardProof, t: Transcript,
           evals: Claims, key: commit.CommitKey = commit.DEFAULT_KEY, what: str = "hadamard",
           checks: commit.DeferredChecks | None = None) -> None:
    """Check a :class:`HadamardProof` (``out`` as given to :func:`prove`), the evaluation claims
    going to ``evals``; raises VerificationError naming ``what``."""
    if isinstance(out, Affine):
        if proof.out_value is None:
            raise VerificationError(f"{what}: no commitment to Out~(u)")
        evals.add(out.linear().commitment, u, proof.out_value, t)
        claim = proof.out_value
    else:
        claim = _const_point(out, key)  # never the proof's: the statement fixes it
    r, final = zksumcheck.verify(claim, len(u), 3, proof.sumcheck, t, key,
                                 what=f"{what} sumcheck", checks=checks)
    t.absorb_points("hadamard/values", proof.values)
    evals.add(f.linear().commitment, r, proof.values[0], t)
    evals.add(g.linear().commitment, r, proof.values[1], t)
    cf = proof.values[0] + _const_point(f.const, key)
    cg = proof.values[1] + _const_point(g.const, key)
    sigma.verify_product((cf, cg, proof.values[2]), proof.product, t, key, what=f"{what} product",
                         checks=checks)
    zksumcheck.verify_final_claim(final, mle.eq(u, r), proof.values[2], proof.final_blind, key,
                                  f"{what} final claim", checks)

