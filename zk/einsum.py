"""Zero-knowledge proofs of two-operand einsums over committed integer tensors.

Relation: Hyrax commitments ``com(A)``, ``com(B)``, ``com(C)`` open to integer tensors with
``C = einsum(spec, A, B)`` (mapped into Fr; negative integers are ``r - |x|``).

Protocol (Thaler's matrix-multiplication sumcheck, generalised). Labels are classified as

* *free*: in the output and in exactly one operand (``i`` and ``k`` of ``ij,jk->ik``),
* *batch*: in the output and in both operands (``b`` of ``bij,bjk->bik``),
* *contracted*: not in the output (``j``).

Every label ``l`` of size ``n_l`` contributes ``ceil(log2 n_l)`` MLE variables (a broadcast axis of
size 1 contributes none). The verifier draws a random point ``u`` over the output's variables;
then ``C~(u) = sum_x eq(u_batch, x_batch) A~(u_free, x) B~(u_free, x)`` over the batch and
contracted variables ``x``, which a (zero-knowledge, :mod:`zk.zksumcheck`) sumcheck reduces to
``e * A~(p_A) * B~(p_B)`` at a random point, ``e = eq(u_batch, r_batch)``. The prover commits to
``C~(u)``, ``A~(p_A)``, ``B~(p_B)`` and to their product, hands the three evaluations to the
proof's openings as claims (:mod:`zk.openings`), proves the product with :func:`zk.sigma.prove_product`,
and links the sumcheck's final claim to ``e`` times the product by a zero opening. Nothing but
commitments and uniformly blinded messages leaves the prover.

Zero padding: the relation holds over the padded tensors, so the proof also shows that ``A`` and
``B`` are zero outside their true shapes (:mod:`zk.padding`, one proof per operand that has
padding); ``C``'s padding is then forced, since every padding entry of ``C`` has a free or batch
index outside the true range of an operand that carries it, so each of its products is zero.

Statement absorbed first: the canonical spec (``str(parse_einsum(...))``; other spellings are
refused so that proof bytes are not malleable), the operand shapes and the three commitments.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from circuits import EinsumSpec, exact_einsum, parse_einsum

from . import commit, device as _device, field, group, mle, padding, sigma, zksumcheck
from .commit import Commitment
from .device import CPU, Device
from .errors import ProofFormatError, VerificationError, malformed_as_verification_error
from .group import Point
from .openings import Claims, Openings, OpeningsProof
from .padding import PaddingProof
from .stack import stack
from .transcript import Transcript
from .wire import Reader, section

__all__ = ["EinsumProof", "EinsumRelationProof", "EinsumLayout", "prove_einsum", "verify_einsum",
           "prove_relation", "verify_relation"]

DOMAIN = b"zkfhe/einsum/v1"
MAGIC = b"ZKEINSUM"
VERSION = 3  # 2: zero-padding proofs of the operands, canonical spec; 3: the openings batched at the end
#: Upper bound on any dimension a proof file may declare (2^32 entries per axis).
MAX_DIM = 1 << 32
MAX_RANK = 16


@dataclass(frozen=True)
class EinsumLayout:
    """Which MLE variables belong to which role, for a simple two-operand einsum.

    A variable is ``(label, bit)``; ``bit`` 0 is the most significant bit of that index.
    """

    spec: EinsumSpec

    def bits(self, k: int) -> dict[str, int]:
        """Label -> number of variables, for operand ``k`` (0, 1) or the output (2)."""
        if k == 2:
            labels, shape = self.spec.output, self.spec.output_shape
        else:
            labels, shape = self.spec.operands[k], self.spec.shapes[k]
        return dict(zip(labels, mle.dim_bits(shape)))

    def variables(self, k: int) -> list[tuple[str, int]]:
        """The MLE variables of operand ``k`` (or the output, ``k = 2``) in table order."""
        return [(c, j) for c, n in self.bits(k).items() for j in range(n)]

    @property
    def batch(self) -> tuple[str, ...]:
        a, b = self.spec.operands
        return tuple(c for c in self.spec.output if c in a and c in b)

    @property
    def sum_variables(self) -> list[tuple[str, int]]:
        """Sumcheck variables: batch labels (output order), then contracted labels."""
        full = self.bits(2)
        for k in (0, 1):
            for c, n in self.bits(k).items():
                full[c] = max(full.get(c, 0), n)
        labels = list(self.batch) + list(self.spec.contracted)
        return [(c, j) for c in labels for j in range(full[c])]

    @property
    def degree(self) -> int:
        """Degree of the sumcheck: eq * A * B with batch variables, A * B without."""
        return 3 if any(v[0] in self.batch for v in self.sum_variables) else 2

    def batch_eq(self, u: dict, r: dict) -> np.ndarray:
        """``eq(u_batch, r_batch)``: the public factor of the sumcheck's final claim."""
        batch = [v for v in self.sum_variables if v[0] in self.batch]
        if not batch:
            return field.ONE
        return mle.eq(np.stack([u[v] for v in batch]), np.stack([r[v] for v in batch]))

    def operand_point(self, k: int, u: dict, r: dict) -> np.ndarray:
        """Evaluation point of operand ``k``: output coordinates for free labels, sumcheck ones else."""
        free = set(self.spec.output) - set(self.batch)
        coords = [u[v] if v[0] in free else r[v] for v in self.variables(k)]
        return np.stack(coords) if coords else field.zeros(0)


def _restrict(tab, variables: list, fixed: dict, order: list, device: Device):
    """Bind the ``fixed`` variables of a table's MLE (field elements or small integers), then lay
    the rest out over ``order`` (variables of ``order`` the table lacks are broadcast): a field
    table over ``order``, on ``device``."""
    positions = [i for i, v in enumerate(variables) if v in fixed]
    values = np.stack([fixed[variables[i]] for i in positions]) if positions else np.zeros((0, 4), dtype=np.uint64)
    t = device.partial_eval(device.asarray(tab), positions, values)
    names = [v for v in variables if v not in fixed]
    perm = sorted(range(len(names)), key=lambda i: order.index(names[i]))
    t = t.reshape((2,) * len(names) + (4,)).transpose(perm + [len(names)])
    t = t.reshape(tuple(2 if v in names else 1 for v in order) + (4,))
    full = device.xp.broadcast_to(t, (2,) * len(order) + (4,))
    return device.xp.ascontiguousarray(full).reshape(-1, 4)


def _integer_operand(x, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype == object:
        if not all(isinstance(v, (int, np.integer)) for v in a.flat):
            raise TypeError(f"{name} must hold integers")
        return a
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer tensor (fixed-point values), got dtype {a.dtype}")
    return a.astype(np.int64)


def _check_spec(spec: EinsumSpec) -> None:
    if len(spec.operands) != 2:
        raise ValueError(f"zk einsum proofs take two operands, '{spec}' has {len(spec.operands)}")
    for k, ops in enumerate(spec.operands):
        if len(set(ops)) != len(ops):
            raise ValueError(f"zk einsum proofs do not support a repeated index inside an operand "
                             f"(operand {k} of '{spec}')")


@dataclass(frozen=True)
class EinsumRelationProof:
    """The proof of the relation for given commitments (the part FAC4DNN reuses on stacks)."""

    value_commitments: tuple[Point, Point, Point, Point]  # C~(u), A~(p_A), B~(p_B), product
    sumcheck: zksumcheck.CommittedSumcheck
    product: sigma.ProductProof
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        return [group.points_to_bytes(self.value_commitments), self.sumcheck.to_bytes(), self.product.to_bytes(),
                field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader: "Reader", layout: EinsumLayout) -> "EinsumRelationProof":
        values = tuple(group.points_from_bytes(reader.section(), 4))
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), len(layout.sum_variables),
                                                     layout.degree)
        product = sigma.ProductProof.from_bytes(reader.section())
        try:
            final_blind = field.from_bytes(reader.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"einsum proof: {exc}") from None
        return cls(values, sc, product, final_blind)


def _padded(shape) -> tuple[int, ...]:
    return tuple(1 << b for b in mle.dim_bits(shape))


def padded_operands(shapes) -> list[int]:
    """Which operands (0: A, 1: B) have padding entries, hence a zero-padding proof."""
    return [k for k, shape in enumerate(shapes) if padding.needs_proof(shape, _padded(shape))]


@dataclass(frozen=True)
class EinsumProof:
    """A proof that committed ``C = einsum(spec, A, B)`` with ``A`` and ``B`` zero outside their
    shapes; the statement is ``spec`` (canonical), the shapes and the three commitments."""

    spec: str
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    commitments: tuple[Commitment, Commitment, Commitment]  # A, B, C
    padding: tuple  # PaddingProof per operand in padded_operands(shapes)
    relation: EinsumRelationProof
    openings: OpeningsProof  # every evaluation claim of the padding and relation proofs

    # -- serialisation ---------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """``MAGIC || version || spec || shapes || sections``; each section is length-prefixed."""
        out = [MAGIC, bytes([VERSION])]
        spec = self.spec.encode()
        out.append(struct.pack("<H", len(spec)) + spec)
        for shape in self.shapes:
            out.append(struct.pack("<B", len(shape)) + b"".join(struct.pack("<Q", n) for n in shape))
        sections = [c.to_bytes() for c in self.commitments]
        sections += [x for p in self.padding for x in p.sections()] + self.relation.sections() + \
            self.openings.sections()
        out += [section(s) for s in sections]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data) -> "EinsumProof":
        """Parse and validate; malformed input raises :class:`zk.ProofFormatError` only."""
        try:
            return cls._parse(bytes(data))
        except ProofFormatError:
            raise
        except (ValueError, TypeError, IndexError, struct.error, UnicodeDecodeError) as exc:
            raise ProofFormatError(f"einsum proof: {exc}") from None

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", tuple(self.padding))

    @classmethod
    def _parse(cls, data: bytes) -> "EinsumProof":
        reader = Reader(data)
        if reader.take(len(MAGIC)) != MAGIC:
            raise ProofFormatError("einsum proof: not a zkfhe einsum proof (bad magic)")
        version = reader.take(1)[0]
        if version != VERSION:
            raise ProofFormatError(f"einsum proof: unsupported version {version}")
        spec_text = reader.take(reader.unpack("<H")).decode("ascii")
        shapes = []
        for _ in range(2):
            rank = reader.unpack("<B")
            if rank > MAX_RANK:
                raise ProofFormatError(f"einsum proof: rank {rank} exceeds {MAX_RANK}")
            shape = tuple(reader.unpack("<Q") for _ in range(rank))
            if any(not 1 <= n <= MAX_DIM for n in shape):
                raise ProofFormatError(f"einsum proof: dimension out of range in {shape}")
            shapes.append(shape)
        try:
            spec = parse_einsum(spec_text, *shapes)
            _check_spec(spec)
        except ValueError as exc:
            raise ProofFormatError(f"einsum proof: invalid statement ({exc})") from None
        if spec_text != str(spec):
            raise ProofFormatError(f"einsum proof: spec '{spec_text}' is not in canonical form '{spec}'")
        commitments = tuple(Commitment.from_bytes(reader.section()) for _ in range(3))
        for name, com, shape in zip("ABC", commitments, (*shapes, spec.output_shape)):
            if (com.num_vars, com.col_vars) != _layout(shape):
                raise ProofFormatError(f"einsum proof: commitment {name} does not have the layout of shape {shape}")
        pads = tuple(PaddingProof.read(reader, commitments[k].num_vars) for k in padded_operands(shapes))
        relation = EinsumRelationProof.read(reader, EinsumLayout(spec))
        openings = OpeningsProof.read(reader)
        reader.end()
        return cls(str(spec), tuple(shapes), commitments, pads, relation, openings)

    @property
    def size(self) -> int:
        return len(self.to_bytes())


def _layout(shape) -> tuple[int, int]:
    """``(num_vars, col_vars)`` of a standalone commitment to a tensor of ``shape`` (square split)."""
    m = sum(mle.dim_bits(shape))
    return m, commit.split_vars(m)[1]


def _absorb_statement(t: Transcript, spec: str, shapes, commitments) -> None:
    t.absorb_str("einsum/spec", spec)
    for k, shape in enumerate(shapes):
        t.absorb_ints(f"einsum/shape{k}", shape)
    for name, c in zip("ABC", commitments):
        t.absorb(f"einsum/commitment/{name}", c.to_bytes())


def prove_relation(parsed: EinsumSpec, openings, commitments, t: Transcript, evals: Openings,
                   key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> EinsumRelationProof:
    """Prove that ``commitments = (com A, com B, com C)`` (with their ``openings``) satisfy
    ``C = einsum(parsed, A, B)``, on ``device``, the tables' evaluation claims going to ``evals``;
    the caller has absorbed the commitments into ``t``."""
    layout = EinsumLayout(parsed)
    (open_a, open_b, open_c), (com_a, com_b, com_c) = openings, commitments
    t.absorb_str("einsum/spec", str(parsed))
    out_vars = layout.variables(2)
    u = t.challenge_scalars("einsum/u", len(out_vars))
    u_of = dict(zip(out_vars, u))
    # C~(u), committed and opened
    blinds = field.random(4)
    c_point, _ = commit.commit_scalar(evals.add(open_c, com_c, u, t, value_blind=blinds[0]), key, blind=blinds[0])

    # sumcheck over batch + contracted variables
    sum_vars = layout.sum_variables
    free_fixed = {v: u_of[v] for v in out_vars if v[0] not in layout.batch}
    tables = [_restrict(open_x.table, layout.variables(k), free_fixed, sum_vars,
                        device) for k, open_x in enumerate((open_a, open_b))]
    terms = [(1, (0, 1))]
    batch_vars = [v for v in sum_vars if v[0] in layout.batch]
    if batch_vars:
        eq = mle.eq_table(np.stack([u_of[v] for v in batch_vars]))
        tables.append(_restrict(eq, batch_vars, {}, sum_vars, device))
        terms = [(1, (0, 1, 2))]
    prover = device.sumcheck(tables, terms, consume=True)  # the restricted tables are this proof's own
    sc, r, finals, final_blind = zksumcheck.prove(prover, blinds[0], t, key)
    r_of = dict(zip(sum_vars, r))

    # A~(p_A), B~(p_B), their product, and the link to the sumcheck's final claim
    (pa, pb, pz), _ = commit.commit_scalars(
        np.stack([finals[0], finals[1], field.mul(finals[0], finals[1])]), key, blinds=blinds[1:])
    t.absorb_points("einsum/finals", (pa, pb, pz))
    evals.add(open_a, com_a, layout.operand_point(0, u_of, r_of), t, value_blind=blinds[1])
    evals.add(open_b, com_b, layout.operand_point(1, u_of, r_of), t, value_blind=blinds[2])
    product = sigma.prove_product(finals[0], blinds[1], finals[1], blinds[2], blinds[3],
                                  (pa, pb, pz), t, key)
    delta = zksumcheck.prove_final_claim(final_blind, layout.batch_eq(u_of, r_of), blinds[3])
    return EinsumRelationProof((c_point, pa, pb, pz), sc, product, delta)


def verify_relation(parsed: EinsumSpec, commitments, proof: EinsumRelationProof, t: Transcript, evals: Claims,
                    key: commit.CommitKey = commit.DEFAULT_KEY,
                    checks: commit.DeferredChecks | None = None) -> None:
    """Check an :class:`EinsumRelationProof` for ``commitments = (com A, com B, com C)``, the
    evaluation claims going to ``evals``."""
    layout = EinsumLayout(parsed)
    com_a, com_b, com_c = commitments
    for k, (com, shape) in enumerate(zip(commitments, (*parsed.shapes, parsed.output_shape))):
        if com.num_vars != sum(mle.dim_bits(shape)):
            raise VerificationError(f"statement: commitment {'ABC'[k]} does not match shape {shape}")
    t.absorb_str("einsum/spec", str(parsed))
    out_vars = layout.variables(2)
    u = t.challenge_scalars("einsum/u", len(out_vars))
    u_of = dict(zip(out_vars, u))
    c_point, pa, pb, pz = proof.value_commitments
    evals.add(com_c, u, c_point, t)
    sum_vars = layout.sum_variables
    r, final = zksumcheck.verify(c_point, len(sum_vars), layout.degree, proof.sumcheck, t, key,
                                 what=f"einsum '{parsed}' sumcheck", checks=checks)
    r_of = dict(zip(sum_vars, r))
    t.absorb_points("einsum/finals", (pa, pb, pz))
    evals.add(com_a, layout.operand_point(0, u_of, r_of), pa, t)
    evals.add(com_b, layout.operand_point(1, u_of, r_of), pb, t)
    sigma.verify_product((pa, pb, pz), proof.product, t, key, what=f"einsum '{parsed}' final product",
                         checks=checks)
    zksumcheck.verify_final_claim(final, layout.batch_eq(u_of, r_of), pz, proof.final_blind, key,
                                  f"einsum '{parsed}' final claim = eq * A(p_A) * B(p_B)", checks)


def prove_einsum(spec: str, A, B, *, C=None, key: commit.CommitKey = commit.DEFAULT_KEY,
                 device: str = "auto") -> EinsumProof:
    """Commit to integer tensors ``A``, ``B`` and ``C = einsum(spec, A, B)`` and prove the relation.

    ``C`` may be given (e.g. by a caller that already holds it); a wrong ``C`` yields a proof
    that does not verify. ``device`` (:mod:`zk.device`) picks where the heavy loops run; the
    proof does not depend on it. Returns an :class:`EinsumProof`.
    """
    return _prove_einsum(spec, A, B, C, key, _device.resolve(device))


def _prove_einsum(spec: str, A, B, C, key: commit.CommitKey, device: Device) -> EinsumProof:
    a = _integer_operand(A, "A")
    b = _integer_operand(B, "B")
    parsed = parse_einsum(spec, a.shape, b.shape)
    _check_spec(parsed)
    c = exact_einsum(str(parsed), a, b) if C is None else _integer_operand(C, "C")
    if c.shape != parsed.output_shape:
        raise ValueError(f"C has shape {c.shape}, '{parsed}' produces {parsed.output_shape}")
    committed = [commit.commit(x, key, device=device) for x in (a, b, c)]
    commitments = tuple(com for com, _ in committed)
    t = Transcript(DOMAIN)
    shapes = (a.shape, b.shape)
    _absorb_statement(t, str(parsed), shapes, commitments)
    evals = Openings(key, device)
    pads = tuple(padding.prove(stack([commitments[k]], [committed[k][1]], device), [shapes[k]], _padded(shapes[k]), t,
                               evals, key, device)
                 for k in padded_operands(shapes))
    relation = prove_relation(parsed, [o for _, o in committed], commitments, t, evals, key, device)
    return EinsumProof(str(parsed), shapes, commitments, pads, relation, evals.prove(t))


def verify_einsum(proof: EinsumProof, key: commit.CommitKey = commit.DEFAULT_KEY) -> bool:
    """Verify an :class:`EinsumProof`; returns True or raises :class:`zk.VerificationError`
    naming the failing check."""
    if not isinstance(proof, EinsumProof):
        raise VerificationError(f"expected an EinsumProof, got {type(proof).__name__}")
    with malformed_as_verification_error("EinsumProof"):
        return _verify_einsum(proof, key)


def _verify_einsum(proof: EinsumProof, key: commit.CommitKey) -> bool:
    try:
        shapes = tuple(tuple(int(n) for n in s) for s in proof.shapes)
        parsed = parse_einsum(proof.spec, *shapes)
        _check_spec(parsed)
    except ValueError as exc:
        raise VerificationError(f"statement: {exc}") from None
    if proof.spec != str(parsed):
        raise VerificationError(f"statement: spec '{proof.spec}' is not in canonical form '{parsed}'")
    for name, com, shape in zip("ABC", proof.commitments, (*shapes, parsed.output_shape)):
        if not isinstance(com, Commitment) or (com.num_vars, com.col_vars) != _layout(shape):
            raise VerificationError(f"statement: commitment {name} does not have the layout of shape {shape}")
    operands = padded_operands(shapes)
    if len(proof.padding) != len(operands) or not all(isinstance(p, PaddingProof) for p in proof.padding):
        raise VerificationError(f"the proof has {len(proof.padding)} zero-padding proofs, operands "
                                f"{', '.join('AB'[k] for k in operands) or 'none'} need one each")
    if not isinstance(proof.relation, EinsumRelationProof):
        raise VerificationError("the proof's relation is not an EinsumRelationProof")
    t = Transcript(DOMAIN)
    _absorb_statement(t, str(parsed), shapes, proof.commitments)
    checks, evals = commit.DeferredChecks(), Claims(key)
    for k, rel in zip(operands, proof.padding):
        padding.verify(stack([proof.commitments[k]]), [shapes[k]], _padded(shapes[k]), rel, t, evals, key,
                       f"zero padding of operand {'AB'[k]}", checks)
    verify_relation(parsed, proof.commitments, proof.relation, t, evals, key, checks)
    evals.verify(proof.openings, t, checks)
    checks.run()
    return True
