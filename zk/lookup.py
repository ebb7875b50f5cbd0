"""Range lookups by logUp-GKR: every entry of committed stacks lies in ``[0, 2^L)``.

Relation: committed stacks ``F_1, ..., F_s`` (``F_j`` on ``m_j`` variables, every entry of its
hypercube, zero padding included), public scales ``c_j`` and the table ``T = (0, 1, ..., 2^L - 1)``:
for every ``j`` and ``x``, the integer ``c_j F_j(x)`` is in ``T``. A *column* is one ``(F_j, c_j)``;
a scale ``2^(L - w)`` next to scale 1 on the same stack checks ``[0, 2^w)`` (:mod:`zk.lower`'s top
limbs).

Protocol (Haböck, "Multivariate lookups based on logarithmic derivatives", ePrint 2022/1530, in the
GKR form of Papini and Haböck, "Improving logarithmic derivative lookups using GKR", ePrint
2023/1284; made zero knowledge with committed sumchecks, Hyrax-style):

1. The prover commits the multiplicities ``M`` (``M_v`` = how many looked-up entries equal ``v``).
   The transcript absorbs ``L``, the columns (commitments and scales) and ``M``; challenge ``alpha``.
2. The *leaves* are fractions ``p / q`` on ``N`` variables (:class:`Layout`): column ``j``'s block
   holds ``1 / (alpha - c_j F_j(x))``, the table's block ``-M_v / (alpha - v)``, unused leaves
   ``0 / 1``. The logUp identity ``sum_{j,x} 1 / (alpha - c_j F_j(x)) = sum_v M_v / (alpha - v)``
   says the leaves sum to 0.
3. A binary tree adds the fractions: layer ``i`` (``2^i`` nodes, the root is layer 0) has
   ``p_i(x) = p_{i+1}(0, x) q_{i+1}(1, x) + p_{i+1}(1, x) q_{i+1}(0, x)`` and
   ``q_i(x) = q_{i+1}(0, x) q_{i+1}(1, x)`` (the child bit is the most significant variable). The
   root numerator must be 0: its claim is the public commitment to 0. The prover commits the root
   denominator.
4. Layer by layer, from committed claims ``p_i~(r)``, ``q_i~(r)`` and a challenge ``lambda``, one
   committed sumcheck (:mod:`zk.zksumcheck`, degree 3) of
   ``p_i~(r) + lambda q_i~(r) = sum_x eq(r, x) (a d + b c + lambda c d)`` with
   ``a, b, c, d = p_{i+1}(0, .), p_{i+1}(1, .), q_{i+1}(0, .), q_{i+1}(1, .)`` ends at a point ``s``; the
   prover commits ``a, b, c, d`` there and the products ``ad, bc, cd`` (:func:`zk.sigma.prove_product`),
   the final claim is linked by a zero opening, and with a challenge ``mu`` the next claims are the
   commitments ``(1 - mu) A + mu B`` and ``(1 - mu) C + mu D`` at the point ``(mu, s)``.
5. At the leaves' point ``rho`` the verifier knows ``p~`` and ``q~`` from the blocks: each column
   contributes ``sel_j (alpha - c_j F_j~(rho_j))`` to ``q~`` and ``sel_j`` to ``p~`` (``sel_j`` = eq of
   ``rho``'s leading variables and the block's offset, ``rho_j`` the rest), the table
   ``sel_T (alpha - t~)`` with ``t~(y) = sum_v 2^(L-1-v) y_v`` and ``-sel_T M~``, unused leaves
   ``1 - sum sel`` to ``q~``. The prover opens every ``F_j`` and ``M`` there to committed values
   (Hyrax openings) and two zero openings tie them to the claims.

Soundness: step 3 computes ``P(alpha)`` for ``P(X) = sum_x p_x prod_{y != x} (X - a_y)``, the numerator
of the leaves' sum as a rational function of ``alpha``. If some ``c_j F_j(x)`` is not in ``T``, that
rational function has a pole there (its coefficient is a count below ``r``), so ``P`` is a nonzero
polynomial of degree below ``2^N`` and ``P(alpha) = 0`` with probability at most ``2^N / r``. Each
layer's reduction errs with probability at most ``(3 i + 2) / r`` (sumcheck, ``lambda``, ``mu``), so
the total error is below ``(2^N + 2 N^2) / r``: under ``2^-220`` for ``N <= 30``. Zero knowledge: ``M``
is a hiding commitment, every message is a Pedersen commitment, a zero-knowledge opening or
product proof, or the blind of a zero opening, which is uniform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group, mle, sigma, zksumcheck
from .commit import Commitment, EvalProof
from .device import CPU, Device
from .errors import ProofFormatError, VerificationError
from .group import Point
from .stack import Stack
from .transcript import Transcript
from .wire import Reader, section

__all__ = ["Column", "Layout", "LookupProof", "prove", "verify", "MAX_TABLE_BITS", "MAX_LEAF_VARS"]

#: Largest table, in bits (2^20 entries).
MAX_TABLE_BITS = 20
#: Largest tree, in variables: every looked-up entry and the table fit in 2^30 leaves.
MAX_LEAF_VARS = 30
#: Most columns one lookup proof may cover.
MAX_COLUMNS = 1 << 12


@dataclass(frozen=True)
class Column:
    """``scale * F(x)`` must be in the table for every entry of the committed stack ``F``."""

    stack: Stack
    scale: int = 1

    @property
    def num_vars(self) -> int:
        return self.stack.commitment.num_vars


@dataclass(frozen=True)
class Layout:
    """Where each block lies among the ``2^num_vars`` leaves: the columns' blocks and the table's,
    largest first, each at an offset that is a multiple of its size."""

    num_vars: int
    offsets: tuple[int, ...]  # per column, in the columns' order
    table_offset: int
    column_vars: tuple[int, ...]
    column_cols: tuple[int, ...]  # each column's row width (col_vars), which decides the batched openings
    table_bits: int

    @classmethod
    def of(cls, column_vars, column_cols, table_bits: int) -> "Layout":
        column_vars, column_cols = tuple(int(m) for m in column_vars), tuple(int(c) for c in column_cols)
        if len(column_cols) != len(column_vars):
            raise ValueError("lookup: one row width per column")
        sizes = list(column_vars) + [table_bits]
        order = sorted(range(len(sizes)), key=lambda j: -sizes[j])
        offsets, at = [0] * len(sizes), 0
        for j in order:
            offsets[j], at = at, at + (1 << sizes[j])
        n = max(1, (at - 1).bit_length())
        if n > MAX_LEAF_VARS:
            raise ValueError(f"lookup: {at} leaves, more than 2^{MAX_LEAF_VARS}")
        return cls(n, tuple(offsets[:-1]), offsets[-1], column_vars, column_cols, table_bits)

    @property
    def opening_groups(self) -> list[list[int]]:
        """The tables opened by one batched Hyrax opening each: columns (their indices) and the
        multiplicities (index ``len(offsets)``) of one row width, by row width."""
        cols = list(self.column_cols) + [commit.split_vars(self.table_bits)[1]]
        return [[j for j, c in enumerate(cols) if c == width] for width in sorted(set(cols))]

    def selector(self, offset: int, vars_: int, rho: np.ndarray) -> np.ndarray:
        """``eq`` of ``rho``'s leading ``num_vars - vars_`` coordinates and the block's index bits."""
        lead = self.num_vars - vars_
        index = offset >> vars_
        bits_ = [(index >> (lead - 1 - v)) & 1 for v in range(lead)]
        return mle.eq(rho[:lead], field.from_int(bits_)) if lead else field.ONE.copy()


def _table_mle(rho: np.ndarray) -> np.ndarray:
    """``t~(rho) = sum_v 2^(L-1-v) rho_v``: the MLE of ``(0, 1, ..., 2^L - 1)``."""
    bits_ = len(rho)
    return field.inner(field.from_int([1 << (bits_ - 1 - v) for v in range(bits_)]), rho) if bits_ else field.zeros()


def _check(columns, table_bits: int) -> Layout:
    if not 1 <= table_bits <= MAX_TABLE_BITS:
        raise ValueError(f"lookup: table of 2^{table_bits} entries (1 to {MAX_TABLE_BITS} bits)")
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise ValueError(f"lookup: 1 to {MAX_COLUMNS} columns per proof, got {len(columns)}")
    for c in columns:
        if not isinstance(c.scale, int) or not 1 <= c.scale < 1 << table_bits:
            raise ValueError(f"lookup: column scale {c.scale!r} outside [1, 2^{table_bits})")
    return Layout.of([c.num_vars for c in columns], [c.stack.commitment.col_vars for c in columns], table_bits)


def _absorb_statement(t: Transcript, columns, table_bits: int) -> None:
    t.absorb_ints("lookup/table-bits+columns", [table_bits, len(columns)])
    for c in columns:
        t.absorb_int("lookup/scale", c.scale)
        t.absorb("lookup/column", c.stack.commitment.to_bytes())


@dataclass(frozen=True)
class LayerProof:
    """One layer's reduction: the committed sumcheck, the commitments to ``a, b, c, d, ad, bc, cd``
    at its point, the three product proofs and the final claim's zero-opening blind."""

    sumcheck: zksumcheck.CommittedSumcheck
    values: tuple[Point, ...]
    products: tuple[sigma.ProductProof, ...]
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        return [self.sumcheck.to_bytes(), group.points_to_bytes(self.values),
                *(p.to_bytes() for p in self.products), field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader, rounds: int) -> "LayerProof":
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), rounds, 3)
        values = tuple(group.points_from_bytes(reader.section(), 7))
        products = tuple(sigma.ProductProof.from_bytes(reader.section()) for _ in range(3))
        return cls(sc, values, products, _scalar(reader.section()))


def _scalar(data: bytes) -> np.ndarray:
    try:
        return field.from_bytes(data, 1)[0]
    except ValueError as exc:
        raise ProofFormatError(f"lookup proof: {exc}") from None


@dataclass(frozen=True)
class LookupProof:
    multiplicities: Commitment
    root_denominator: Point
    layers: tuple[LayerProof, ...]
    values: tuple[Point, ...]  # commitments to every column's F_j~(rho_j), then to M~(rho_T)
    evals: tuple[EvalProof, ...]  # one batched opening per row width (Layout.opening_groups)
    leaf_blinds: np.ndarray  # (2, 4): zero-opening blinds of the leaf claims p~, q~

    def sections(self) -> list[bytes]:
        out = [self.multiplicities.to_bytes(), group.point_to_bytes(self.root_denominator)]
        for layer in self.layers:
            out += layer.sections()
        return out + [group.points_to_bytes(self.values), *(e.to_bytes() for e in self.evals),
                      field.to_bytes(self.leaf_blinds)]

    @classmethod
    def read(cls, reader, layout: Layout) -> "LookupProof":
        """Parse :meth:`sections` for a lookup with ``layout`` (sizes fixed by the statement)."""
        mult = Commitment.from_bytes(reader.section())
        if (mult.num_vars, mult.col_vars) != (layout.table_bits, commit.split_vars(layout.table_bits)[1]):
            raise ProofFormatError("lookup proof: multiplicities of the wrong size")
        root = group.points_from_bytes(reader.section(), 1)[0]
        layers = tuple(LayerProof.read(reader, i) for i in range(layout.num_vars))
        values = tuple(group.points_from_bytes(reader.section(), len(layout.offsets) + 1))
        evals = tuple(EvalProof.from_bytes(reader.section()) for _ in layout.opening_groups)
        try:
            blinds = field.from_bytes(reader.section(), 2)
        except ValueError as exc:
            raise ProofFormatError(f"lookup proof: {exc}") from None
        return cls(mult, root, layers, values, evals, blinds)

    def to_bytes(self) -> bytes:
        return b"".join(section(s) for s in self.sections())

    @classmethod
    def from_bytes(cls, data: bytes, columns, table_bits: int) -> "LookupProof":
        reader = Reader(data)
        proof = cls.read(reader, _check(columns, table_bits))
        reader.end()
        return proof


def _leaves(columns, table_bits: int, layout: Layout, alpha: np.ndarray, counts: np.ndarray, entries):
    """The leaf numerators and denominators ``(2^N, 4)`` each (step 2), from the looked-up
    ``entries`` (scaled) and their ``counts``."""
    size = 1 << layout.num_vars
    p, q = field.zeros(size), field.ones(size)
    for c, off, e in zip(columns, layout.offsets, entries):
        n = len(e)
        p[off:off + n] = field.ONE
        q[off:off + n] = field.sub(alpha, field.from_int(e))
    off, n = layout.table_offset, 1 << table_bits
    p[off:off + n] = field.neg(field.from_int(counts))
    q[off:off + n] = field.sub(alpha, field.from_int(np.arange(n, dtype=np.int64)))
    return p, q


def _tree(p: np.ndarray, q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every layer ``(p_i, q_i)``, the root first (step 3)."""
    layers = [(p, q)]
    while len(p) > 1:
        h = len(p) // 2
        a, b, c, d = p[:h], p[h:], q[:h], q[h:]
        p, q = field.add(field.mul(a, d), field.mul(b, c)), field.mul(c, d)
        layers.append((p, q))
    return layers[::-1]


def _claim(cp, cq, lam):
    return cp + sigma.mul_point(cq, lam)


def _line(x, y, mu):
    """``(1 - mu) x + mu y`` for two commitments (or blinds)."""
    if isinstance(x, np.ndarray):
        return field.add(x, field.mul(mu, field.sub(y, x)))
    return x + sigma.mul_point(y - x, mu)


def multiplicities(columns, table_bits: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The looked-up integers ``scale * F(x)`` of every column and their counts over the table;
    ValueError naming a column with an entry outside ``[0, 2^table_bits)``."""
    entries = []
    for j, c in enumerate(columns):
        e = c.scale * field.to_signed(c.stack.opening.field_table(CPU)).reshape(-1)
        if e.size and (int(e.min()) < 0 or int(e.max()) >= 1 << table_bits):
            raise ValueError(f"lookup: column {j} has values in [{int(e.min())}, {int(e.max())}], "
                             f"outside [0, 2^{table_bits})")
        entries.append(e)
    return entries, np.bincount(np.concatenate(entries), minlength=1 << table_bits).astype(np.int64)


def prove(columns: list[Column], table_bits: int, t: Transcript, key: commit.CommitKey = commit.DEFAULT_KEY,
          device: Device = CPU) -> LookupProof:
    """Prove that every entry ``scale * F(x)`` of every column is in ``[0, 2^table_bits)`` (the module
    docstring's protocol; the stacks' openings held by the prover) on ``device``. ValueError naming
    the column with an entry the table lacks."""
    layout = _check(columns, table_bits)
    entries, counts = multiplicities(columns, table_bits)
    mult, mult_open = commit.commit(counts, key, device=device)
    _absorb_statement(t, columns, table_bits)
    t.absorb("lookup/multiplicities", mult.to_bytes())
    alpha = t.challenge_scalar("lookup/alpha")
    layers = _tree(*_leaves(columns, table_bits, layout, alpha, counts, entries))
    del entries

    root_q, bq = commit.commit_scalar(layers[0][1][0], key)
    t.absorb_point("lookup/root-denominator", root_q)
    bp = field.zeros()
    point = np.zeros((0, 4), dtype=np.uint64)
    proofs = []
    for i in range(layout.num_vars):
        lam = t.challenge_scalar("lookup/lambda")
        p_next, q_next = layers[i + 1]
        h = len(p_next) // 2
        prover = device.eq_sumcheck(point, [p_next[:h], p_next[h:], q_next[:h], q_next[h:]],
                                    [(1, (0, 3)), (1, (1, 2)), (lam, (2, 3))])
        sc, s, finals, final_blind = zksumcheck.prove(prover, field.add(bp, field.mul(lam, bq)), t, key)
        a, b, c, d = finals
        vals = np.stack([a, b, c, d, field.mul(a, d), field.mul(b, c), field.mul(c, d)])
        points, blinds = commit.commit_scalars(vals, key)
        t.absorb_points("lookup/layer-values", points)
        products = tuple(sigma.prove_product(vals[x], blinds[x], vals[y], blinds[y], blinds[z],
                                             (points[x], points[y], points[z]), t, key)
                         for x, y, z in ((0, 3, 4), (1, 2, 5), (2, 3, 6)))
        combined = field.add(field.add(blinds[4], blinds[5]), field.mul(lam, blinds[6]))
        delta = zksumcheck.prove_final_claim(final_blind, mle.eq(point, s) if len(s) else field.ONE, combined)
        t.absorb_scalars("lookup/layer-final", delta)
        proofs.append(LayerProof(sc, tuple(points), products, delta))
        mu = t.challenge_scalar("lookup/mu")
        bp, bq = _line(blinds[0], blinds[1], mu), _line(blinds[2], blinds[3], mu)
        point = np.concatenate([mu[None], s])
    del layers

    rho, n = point, layout.num_vars
    tables = [(c.stack.opening, c.stack.commitment) for c in columns] + [(mult_open, mult)]
    subs = [rho[n - m:] for m in (*layout.column_vars, table_bits)]
    values, blinds = commit.commit_scalars(np.stack([commit.evaluate(o, x, device) for (o, _), x in zip(tables, subs)]),
                                           key)
    evals = tuple(commit.prove_evals([tables[j][0] for j in g], [tables[j][1] for j in g], [subs[j] for j in g], t,
                                     key, value_blinds=blinds[g], device=device) for g in layout.opening_groups)
    zq = bq
    for c, off, blind in zip(columns, layout.offsets, blinds):
        zq = field.add(zq, field.mul(field.mul(layout.selector(off, c.num_vars, rho), field.from_int(c.scale)), blind))
    zp = field.add(bp, field.mul(layout.selector(layout.table_offset, table_bits, rho), blinds[-1]))
    return LookupProof(mult, root_q, tuple(proofs), tuple(values), evals, np.stack([zp, zq]))


def verify(columns: list[Column], table_bits: int, proof: LookupProof, t: Transcript,
           key: commit.CommitKey = commit.DEFAULT_KEY, checks: commit.DeferredChecks | None = None,
           what: str = "lookup") -> None:
    """Check a :class:`LookupProof` for ``columns`` (commitments only) against ``[0, 2^table_bits)``;
    raises VerificationError naming ``what`` and the failed part."""
    try:
        layout = _check(columns, table_bits)
    except ValueError as exc:
        raise VerificationError(f"{what}: {exc}") from None
    if len(proof.layers) != layout.num_vars or len(proof.values) != len(columns) + 1 or \
            len(proof.evals) != len(layout.opening_groups):
        raise VerificationError(f"{what}: proof for another layout")
    if (proof.multiplicities.num_vars, proof.multiplicities.col_vars) != \
            (table_bits, commit.split_vars(table_bits)[1]):
        raise VerificationError(f"{what}: multiplicities of the wrong size")
    _absorb_statement(t, columns, table_bits)
    t.absorb("lookup/multiplicities", proof.multiplicities.to_bytes())
    alpha = t.challenge_scalar("lookup/alpha")
    t.absorb_point("lookup/root-denominator", proof.root_denominator)
    cp, cq = group.identity(), proof.root_denominator  # the root numerator is 0: its claim is 0 U + 0 H
    point = np.zeros((0, 4), dtype=np.uint64)
    for i, layer in enumerate(proof.layers):
        lam = t.challenge_scalar("lookup/lambda")
        s, final = zksumcheck.verify(_claim(cp, cq, lam), i, 3, layer.sumcheck, t, key,
                                     what=f"{what} layer {i} sumcheck")
        if len(layer.values) != 7 or len(layer.products) != 3:
            raise VerificationError(f"{what} layer {i}: malformed")
        v = layer.values
        t.absorb_points("lookup/layer-values", v)
        for (x, y, z), pp in zip(((0, 3, 4), (1, 2, 5), (2, 3, 6)), layer.products):
            sigma.verify_product((v[x], v[y], v[z]), pp, t, key, what=f"{what} layer {i} product")
        zksumcheck.verify_final_claim(final, mle.eq(point, s) if len(s) else field.ONE,
                                      v[4] + v[5] + sigma.mul_point(v[6], lam), layer.final_blind, key,
                                      f"{what} layer {i} final claim")
        t.absorb_scalars("lookup/layer-final", layer.final_blind)
        mu = t.challenge_scalar("lookup/mu")
        cp, cq = _line(v[0], v[1], mu), _line(v[2], v[3], mu)
        point = np.concatenate([mu[None], s])

    rho, n = point, layout.num_vars
    coms = [c.stack.commitment for c in columns] + [proof.multiplicities]
    subs = [rho[n - m:] for m in (*layout.column_vars, table_bits)]
    for g, ev in zip(layout.opening_groups, proof.evals):
        commit.verify_evals([coms[j] for j in g], [subs[j] for j in g], [proof.values[j] for j in g], ev, t, key,
                            checks)
    sel_sum = field.zeros()
    expected_q = group.identity()
    for c, off, value in zip(columns, layout.offsets, proof.values):
        sel = layout.selector(off, c.num_vars, rho)
        sel_sum = field.add(sel_sum, sel)
        expected_q = expected_q + sigma.mul_point(key.U, field.mul(sel, alpha)) - \
            sigma.mul_point(value, field.mul(sel, field.from_int(c.scale)))
    sub = subs[-1]
    sel_t = layout.selector(layout.table_offset, table_bits, rho)
    unused = field.sub(field.sub(field.ONE, sel_sum), sel_t)
    q_const = field.add(field.mul(sel_t, field.sub(alpha, _table_mle(sub))), unused)
    expected_q = expected_q + sigma.mul_point(key.U, q_const)
    expected_p = sigma.mul_point(key.U, sel_sum) - sigma.mul_point(proof.values[-1], sel_t)
    try:
        sigma.check_zero(cp - expected_p, proof.leaf_blinds[0], key, what)
        sigma.check_zero(cq - expected_q, proof.leaf_blinds[1], key, what)
    except VerificationError:
        raise VerificationError(f"{what}: the leaves differ from the looked-up columns and the table "
                                "(a value outside the table, or wrong multiplicities)") from None
