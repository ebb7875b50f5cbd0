"""Zero-knowledge sumcheck for eq-weighted Hadamard products of committed stacks.

Relation: for committed stacks on ``m`` variables, a public point ``u`` and affine forms
``F = f_0 + sum_j f_j S_j``, ``G = g_0 + sum_j g_j T_j`` and ``Out = sum_j a_j O_j`` of them,

    Out~(u) = sum_{x in {0,1}^m} eq(u, x) * F(x) * G(x),

i.e. ``Out = F ∘ G`` entrywise. zkReLU (``A = (1 - s) Z`` and ``G_Z = (1 - s) G_A`` at once,
:mod:`zk.fac4dnn`) is the instance this serves. ``Out`` may also be a public constant table
``c`` (``Out~(u) = c`` at every ``u``): then nothing is opened for it (:mod:`zk.lookup`'s
``1 = H ∘ (alpha - F)``).

Protocol: the prover opens ``Out`` at ``u`` to a committed value (one Hyrax opening of the
combined stack ``sum_j a_j O_j``; for a constant, the claim ``c U`` with blind 0), runs the committed sumcheck (:mod:`zk.zksumcheck`) on
``eq(u, .) * F * G`` down to a random point ``r``, opens the linear parts of ``F`` and ``G`` at ``r``
to committed values (one batched Hyrax opening, :func:`zk.commit.prove_evals`), proves their product (:func:`zk.sigma.prove_product`)
and links ``eq(u, r)`` times it to the sumcheck's final claim by a zero opening.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field

import numpy as np

from . import commit, field, group, mle, sigma, stack, zksumcheck
from .commit import EvalProof
from .device import CPU, Device
from .errors import ProofFormatError, VerificationError
from .group import Point
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
    out_eval: EvalProof | None
    sumcheck: zksumcheck.CommittedSumcheck
    values: tuple[Point, Point, Point]  # linear parts of F(r), G(r); F(r) * G(r)
    evals: tuple[EvalProof]  # one batched opening of F and G at r
    product: sigma.ProductProof
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        out = [] if self.out_eval is None else [group.point_to_bytes(self.out_value), self.out_eval.to_bytes()]
        return out + [self.sumcheck.to_bytes(), group.points_to_bytes(self.values),
                      *(e.to_bytes() for e in self.evals), self.product.to_bytes(),
                      field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader, num_vars: int, constant: bool = False) -> "HadamardProof":
        """Parse the sections of :meth:`sections` (``constant``: proved for a constant ``Out``)."""
        out_value = out_eval = None
        if not constant:
            out_value = group.points_from_bytes(reader.section(), 1)[0]
            out_eval = EvalProof.from_bytes(reader.section())
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), num_vars, 3)
        values = tuple(group.points_from_bytes(reader.section(), 3))
        evals = (EvalProof.from_bytes(reader.section()),)
        product = sigma.ProductProof.from_bytes(reader.section())
        try:
            final_blind = field.from_bytes(reader.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"hadamard proof: {exc}") from None
        return cls(out_value, out_eval, sc, values, evals, product, final_blind)


def prove(out: Affine | int, f: Affine, g: Affine, u: np.ndarray, t: Transcript,
          key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> HadamardProof:
    """Prove ``Out~(u) = sum_x eq(u, x) F(x) G(x)`` (see the module docstring) on ``device``;
    ``out`` an affine form of committed stacks or a public constant."""
    blinds = field.random(4)  # Out(u), F-linear(r), G-linear(r), product
    if isinstance(out, Affine):
        out_lin = out.linear(device)
        claim = commit.evaluate(out_lin.opening, u, device)
        out_value, _ = commit.commit_scalar(claim, key, blind=blinds[0])
        out_eval = commit.prove_eval(out_lin.opening, out_lin.commitment, u, t, key, value_blind=blinds[0],
                                     device=device)
    else:
        out_value, out_eval, blinds[0] = None, None, field.ZERO  # the claim c U has blind 0
        claim = field.from_int(out)
    f_lin, g_lin = f.linear(device), g.linear(device)
    prover = device.eq_sumcheck(u, [f.table(f_lin, device), g.table(g_lin, device)], [(1, (0, 1))], claim)
    sc, r, finals, final_blind = zksumcheck.prove(prover, blinds[0], t, key)
    fv, gv = finals[0], finals[1]
    lin_values = np.stack([field.sub(fv, field.from_int(f.const)),
                           field.sub(gv, field.from_int(g.const)), field.mul(fv, gv)])
    values, _ = commit.commit_scalars(lin_values, key, blinds=blinds[1:4])
    t.absorb_points("hadamard/values", values)
    evals = (commit.prove_evals([f_lin.opening, g_lin.opening], [f_lin.commitment, g_lin.commitment], [r, r], t, key,
                                value_blinds=blinds[1:3], device=device),)
    cf = values[0] + _const_point(f.const, key)
    cg = values[1] + _const_point(g.const, key)
    product = sigma.prove_product(fv, blinds[1], gv, blinds[2], blinds[3], (cf, cg, values[2]), t, key)
    delta = zksumcheck.prove_final_claim(final_blind, mle.eq(u, r), blinds[3])
    return HadamardProof(out_value, out_eval, sc, tuple(values), evals, product, delta)


def verify(out: Affine | int, f: Affine, g: Affine, u: np.ndarray, proof: HadamardProof, t: Transcript,
           key: commit.CommitKey = commit.DEFAULT_KEY, what: str = "hadamard",
           checks: commit.DeferredChecks | None = None) -> None:
    """Check a :class:`HadamardProof` (``out`` as given to :func:`prove`); raises
    VerificationError naming ``what``."""
    if isinstance(out, Affine):
        if proof.out_eval is None or proof.out_value is None:
            raise VerificationError(f"{what}: no opening of Out")
        commit.verify_eval(out.linear().commitment, u, proof.out_value, proof.out_eval, t, key, checks)
        claim = proof.out_value
    else:
        claim = _const_point(out, key)  # never the proof's: the statement fixes it
    r, final = zksumcheck.verify(claim, len(u), 3, proof.sumcheck, t, key,
                                 what=f"{what} sumcheck", checks=checks)
    t.absorb_points("hadamard/values", proof.values)
    if len(proof.evals) != 1:
        raise VerificationError(f"{what}: expected one batched opening of F and G")
    commit.verify_evals([f.linear().commitment, g.linear().commitment], [r, r], proof.values[:2], proof.evals[0], t,
                        key, checks)
    cf = proof.values[0] + _const_point(f.const, key)
    cg = proof.values[1] + _const_point(g.const, key)
    sigma.verify_product((cf, cg, proof.values[2]), proof.product, t, key, what=f"{what} product",
                         checks=checks)
    zksumcheck.verify_final_claim(final, mle.eq(u, r), proof.values[2], proof.final_blind, key,
                                  f"{what} final claim", checks)

