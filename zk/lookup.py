"""logUp lookups: every entry of committed tensors lies in a public table.

Relation: committed tables ``F_1, ..., F_s`` (``F_i`` on ``m_i`` variables, every entry of
its hypercube, zero padding included) and a public table ``T = (t_0, ..., t_{N-1})``,
``N = 2^k``: for every ``i`` and ``x``, ``F_i(x)`` is one of the ``t_j``.

Protocol (Haböck, "Multivariate lookups based on logarithmic derivatives", ePrint 2022/1530,
in the sumcheck form with committed helper columns; one run per table, batched over every
tensor that uses it):

1. The prover commits the multiplicities ``M`` (``M_j`` = how many entries equal ``t_j``;
   a value repeated in ``T`` counts at its first place). The transcript absorbs the table
   (its size and a digest of its values), the looked-up commitments and ``M``; challenge
   ``alpha``.
2. The prover commits the helpers ``H_i = 1 / (alpha - F_i)`` (entrywise) and
   ``G = M / (alpha - T)``; the transcript absorbs them; challenge points ``u_i``, ``v``.
3. ``1 = H_i ∘ (alpha - F_i)`` and ``M = G ∘ (alpha - T)`` entrywise: one eq-weighted Hadamard
   sumcheck each (:mod:`zk.hadamard`; ``1`` is its public constant ``Out``, ``T`` a public
   commitment with blind 0, which the verifier recomputes).
4. ``sum_i sum_x H_i(x) = sum_y G(y)``: a sum over a hypercube of ``m`` variables is
   ``2^m`` times the value at ``(1/2, ..., 1/2)``; the prover opens every ``H_i`` and ``G`` there
   to committed values ``V_i``, ``V_G`` (Hyrax openings) and reveals the blind ``delta`` of
   ``sum_i 2^(m_i) V_i - 2^k V_G``, which must be ``delta * H`` (a commitment to 0).

Soundness: if some entry is not in ``T``, the rational function
``sum_{i,x} 1 / (X - F_i(x)) - sum_j M_j / (X - t_j)`` is not zero (``sum_i 2^(m_i) < r``: no
multiplicity wraps), and its numerator has degree below ``n + N`` (``n = sum_i 2^(m_i)``
entries), so the identity of step 4 holds at a random ``alpha`` with probability at most
``(n + N) / r``; step 3 fixes ``H`` and ``G`` to the functions of step 2 except with the
sumchecks' error (``O(m) / r`` each). For a 2^16-entry table and 2^30 looked-up entries the
total is below 2^-220. Zero knowledge: ``M``, ``H_i``, ``G`` are hiding commitments, the
Hadamard proofs and openings are zero knowledge, and ``delta`` is uniformly random.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import commit, field, group, hadamard, sigma
from .commit import Commitment, EvalProof, Opening
from .device import CPU, Device
from .errors import ProofFormatError, VerificationError
from .group import Point
from .hadamard import Affine, HadamardProof
from .stack import Stack
from .transcript import Transcript
from .wire import Reader, section

__all__ = ["Table", "LookupProof", "prove", "verify"]

#: Largest table, in variables (2^24 entries).
MAX_TABLE_VARS = 24
#: Most tensors one lookup proof may cover.
MAX_LOOKUPS = 1 << 12


@dataclass(frozen=True)
class Table:
    """A public lookup table: integer ``values`` (padded to a power of two by repeating the
    first). ``Table.range(bits)`` is ``0, 1, ..., 2^bits - 1``."""

    values: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a lookup table needs at least one value")
        n = 1 << (len(self.values) - 1).bit_length()
        if n > 1 << MAX_TABLE_VARS:
            raise ValueError(f"a lookup table holds at most 2^{MAX_TABLE_VARS} values, got {len(self.values)}")
        values = tuple(int(v) for v in self.values)
        object.__setattr__(self, "values", values + (values[0],) * (n - len(values)))

    @classmethod
    def range(cls, bits: int) -> "Table":
        if not 0 <= bits <= MAX_TABLE_VARS:
            raise ValueError(f"a range table of {bits} bits: at most {MAX_TABLE_VARS}")
        return cls(tuple(range(1 << bits)))

    @property
    def num_vars(self) -> int:
        return len(self.values).bit_length() - 1

    @property
    def digest(self) -> bytes:
        return _digest(self.values)

    def multiplicities(self, entries: np.ndarray) -> np.ndarray:
        """``M_j`` for integer ``entries`` (ValueError naming a value the table lacks)."""
        first = {}
        for j, v in enumerate(self.values):
            first.setdefault(v, j)
        uniq, counts = np.unique(entries, return_counts=True)
        missing = [int(v) for v in uniq if int(v) not in first]
        if missing:
            raise ValueError(f"lookup: {len(missing)} value(s) not in the table, e.g. {missing[:3]} "
                             f"(table of {len(self.values)} values from {min(self.values)} to {max(self.values)})")
        m = np.zeros(len(self.values), dtype=np.int64)
        m[[first[int(v)] for v in uniq]] = counts
        return m


@lru_cache(maxsize=64)
def _digest(values: tuple[int, ...]) -> bytes:
    h = hashlib.sha256()
    for v in values:
        h.update(v.to_bytes(32, "little", signed=True))
    return h.digest()


def _public(values, col_vars: int, key: commit.CommitKey, device: Device) -> Stack:
    """Public integer ``values`` committed with blind 0 (the same for prover and verifier)."""
    m = len(values).bit_length() - 1
    rows = 1 << commit.split_vars(m, col_vars)[0]
    com, opening = commit.commit(np.asarray(values, dtype=np.int64), key, blinds=field.zeros(rows),
                                 col_vars=col_vars, device=device)
    return Stack(com, opening, 1, 0)


@lru_cache(maxsize=32)
def _table_stack(table: Table, col_vars: int, key: commit.CommitKey, device: Device = CPU) -> Stack:
    return _public(table.values, col_vars, key, device)


def _single(commitment: Commitment, opening: Opening | None) -> Stack:
    return Stack(commitment, opening, 1, 0)


@dataclass(frozen=True)
class LookupProof:
    multiplicities: Commitment
    helpers: tuple[Commitment, ...]  # H_i
    table_helper: Commitment  # G
    entries: tuple[HadamardProof, ...]  # 1 = H_i ∘ (alpha - F_i)
    table_relation: HadamardProof  # M = G ∘ (alpha - T)
    sums: tuple[Point, ...]  # V_i, then V_G
    sum_evals: tuple[EvalProof, ...]
    delta: np.ndarray

    def to_bytes(self) -> bytes:
        parts = [self.multiplicities.to_bytes(), self.table_helper.to_bytes(),
                 *(c.to_bytes() for c in self.helpers), group.points_to_bytes(self.sums),
                 *(e.to_bytes() for e in self.sum_evals), field.to_bytes(self.delta)]
        for h in (*self.entries, self.table_relation):
            parts += h.sections()
        return len(self.helpers).to_bytes(2, "little") + b"".join(section(p) for p in parts)

    @classmethod
    def from_bytes(cls, data: bytes, lookups, table: Table) -> "LookupProof":
        """Parse against the statement (the looked-up commitments and the table fix every size)."""
        r = Reader(bytes(data))
        n = int.from_bytes(r.take(2), "little")
        if n != len(lookups):
            raise ProofFormatError(f"lookup proof for {n} tensors, the statement has {len(lookups)}")
        try:
            mult = Commitment.from_bytes(r.section())
            g = Commitment.from_bytes(r.section())
            helpers = tuple(Commitment.from_bytes(r.section()) for _ in range(n))
            sums = tuple(group.points_from_bytes(r.section(), n + 1))
            evals = tuple(EvalProof.from_bytes(r.section()) for _ in range(n + 1))
            delta = field.from_bytes(r.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"lookup proof: {exc}") from None
        entries = tuple(HadamardProof.read(r, f.num_vars, constant=True) for f in lookups)
        relation = HadamardProof.read(r, table.num_vars)
        r.end()
        return cls(mult, helpers, g, entries, relation, sums, evals, delta)


def _absorb_statement(t: Transcript, lookups, table: Table) -> None:
    t.absorb_int("lookup/table_vars", table.num_vars)
    t.absorb("lookup/table", table.digest)
    t.absorb_int("lookup/count", len(lookups))
    for c in lookups:
        t.absorb("lookup/tensor", c.to_bytes())


def _half(num_vars: int) -> np.ndarray:
    return np.broadcast_to(field.inv(field.from_int(2)), (num_vars, 4)).copy()


def _inverses(alpha: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``1 / (alpha - v)`` for field elements ``values`` (the helpers' entries)."""
    return field.inv(field.sub(alpha, values))


def _check_statement(lookups, table: Table) -> None:
    """At most :data:`MAX_LOOKUPS` tensors (of at most 2^60 entries each: multiplicities and
    the weights of step 4 stay far below ``r``)."""
    if not 1 <= len(lookups) <= MAX_LOOKUPS:
        raise ValueError(f"lookup: 1 to {MAX_LOOKUPS} tensors per proof, got {len(lookups)}")


def prove(lookups: list[tuple[Commitment, Opening]], table: Table, t: Transcript,
          key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU) -> LookupProof:
    """Prove that every entry of every committed tensor ``(commitment, opening)`` is in ``table``
    (the module docstring's protocol) on ``device``. ValueError naming a value the table lacks.
    The helpers' inverses and the multiplicities are computed on the host."""
    commitments = [c for c, _ in lookups]
    _check_statement(commitments, table)
    entries = [field.to_signed(o.field_table(CPU)).reshape(-1) for _, o in lookups]
    counts = table.multiplicities(np.concatenate(entries))
    k, col = table.num_vars, commit.split_vars(table.num_vars)[1]
    mult, mult_open = commit.commit(counts, key, col_vars=col, device=device)
    _absorb_statement(t, commitments, table)
    t.absorb("lookup/multiplicities", mult.to_bytes())
    alpha = t.challenge_scalar("lookup/alpha")
    a = field.to_int(alpha)

    helpers = [commit.commit(_inverses(alpha, o.field_table(CPU).reshape(-1, 4)), key, col_vars=c.col_vars,
                             device=device) for c, o in lookups]
    tab = _table_stack(table, col, key, device)
    g_values = field.mul(field.from_int(counts), _inverses(alpha, field.from_int(table.values)))
    g, g_open = commit.commit(g_values, key, col_vars=col, device=device)
    for h, _ in helpers:
        t.absorb("lookup/helper", h.to_bytes())
    t.absorb("lookup/table_helper", g.to_bytes())

    proofs = []
    for (c, o), (h, h_open) in zip(lookups, helpers):
        u = t.challenge_scalars("lookup/u", c.num_vars)
        proofs.append(hadamard.prove(1, Affine(0, [(1, _single(h, h_open))]),
                                     Affine(a, [(-1, _single(c, o))]), u, t, key, device))
    v = t.challenge_scalars("lookup/v", k)
    relation = hadamard.prove(Affine(0, [(1, _single(mult, mult_open))]), Affine(0, [(1, _single(g, g_open))]),
                              Affine(a, [(-1, tab)]), v, t, key, device)

    opened = [(h, h_open) for h, h_open in helpers] + [(g, g_open)]
    blinds = field.random(len(opened))
    sums, evals = [], []
    for (com, op), b in zip(opened, blinds):
        half = _half(com.num_vars)
        sums.append(commit.commit_scalar(commit.evaluate(op, half, device), key, blind=b)[0])
        evals.append(commit.prove_eval(op, com, half, t, key, value_blind=b, device=device))
    weights = field.from_int([1 << c.num_vars for c in commitments] + [-(1 << k)])
    delta = field.inner(weights, blinds)
    return LookupProof(mult, tuple(h for h, _ in helpers), g, tuple(proofs), relation, tuple(sums),
                       tuple(evals), delta)


def verify(lookups: list[Commitment], table: Table, proof: LookupProof, t: Transcript,
           key: commit.CommitKey = commit.DEFAULT_KEY, checks: commit.DeferredChecks | None = None,
           what: str = "lookup") -> None:
    """Check a :class:`LookupProof` for the committed tensors ``lookups`` against ``table``;
    raises VerificationError naming ``what`` and the failed part."""
    lookups = list(lookups)
    try:
        _check_statement(lookups, table)
    except ValueError as exc:
        raise VerificationError(f"{what}: {exc}") from None
    k, col = table.num_vars, commit.split_vars(table.num_vars)[1]
    n = len(lookups)
    if (len(proof.helpers) != n or len(proof.entries) != n or len(proof.sums) != n + 1
            or len(proof.sum_evals) != n + 1):
        raise VerificationError(f"{what}: proof for another number of tensors")
    if (proof.multiplicities.num_vars, proof.multiplicities.col_vars) != (k, col) or \
            (proof.table_helper.num_vars, proof.table_helper.col_vars) != (k, col):
        raise VerificationError(f"{what}: multiplicities or table helper of the wrong size")
    for c, h in zip(lookups, proof.helpers):
        if (h.num_vars, h.col_vars) != (c.num_vars, c.col_vars):
            raise VerificationError(f"{what}: a helper of another size than its tensor")
    _absorb_statement(t, lookups, table)
    t.absorb("lookup/multiplicities", proof.multiplicities.to_bytes())
    a = field.to_int(t.challenge_scalar("lookup/alpha"))
    for h in proof.helpers:
        t.absorb("lookup/helper", h.to_bytes())
    t.absorb("lookup/table_helper", proof.table_helper.to_bytes())

    for i, (c, h, hp) in enumerate(zip(lookups, proof.helpers, proof.entries)):
        u = t.challenge_scalars("lookup/u", c.num_vars)
        hadamard.verify(1, Affine(0, [(1, _single(h, None))]),
                        Affine(a, [(-1, _single(c, None))]), u, hp, t, key, what=f"{what} tensor {i}", checks=checks)
    v = t.challenge_scalars("lookup/v", k)
    hadamard.verify(Affine(0, [(1, _single(proof.multiplicities, None))]),
                    Affine(0, [(1, _single(proof.table_helper, None))]),
                    Affine(a, [(-1, _table_stack(table, col, key))]), v, proof.table_relation, t, key,
                    what=f"{what} multiplicities", checks=checks)

    for com, value, ev in zip((*proof.helpers, proof.table_helper), proof.sums, proof.sum_evals):
        commit.verify_eval(com, _half(com.num_vars), value, ev, t, key, checks)
    weights = field.from_int([1 << c.num_vars for c in lookups] + [-(1 << k)])
    try:
        sigma.check_zero(group.msm(list(proof.sums), weights), proof.delta, key, what)
    except VerificationError:
        raise VerificationError(f"{what}: the sums of the helpers differ (a value outside the table, or "
                                "wrong multiplicities)") from None
