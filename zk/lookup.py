"""Range lookups by logUp-GKR: every entry of committed stacks lies in ``[0, 2^L)``.

Relation: committed stacks ``F_1, ..., F_s`` (``F_j`` on ``m_j`` variables, every entry of its
hypercube, zero padding included), public scales ``c_j`` and the table ``T = (0, 1, ..., 2^L - 1)``:
for every ``j`` and ``x``, the field element ``c_j F_j(x)`` is in ``T``. A *column* is one
``(F_j, c_j)``. At scale 1 this says ``F_j(x)`` is an integer in ``[0, 2^L)``; a scale ``2^(L - w)``
*next to scale 1 on the same entries* (in this proof or another) then checks ``[0, 2^w)`` (the
product is below ``2^(2L) < r``, so it cannot wrap): :mod:`zk.lower`'s top limbs. A scaled
column alone bounds nothing (``F = c^-1 mod r`` passes it). Against a *function table* (``function=``,
the values ``f(0), ..., f(2^L - 1)``), each column pairs a values stack ``V``: every ``(F(x), V(x))``
is a row ``(v, f(v))``, the entries and rows combined as ``F + beta V`` and ``v + beta f(v)`` by a
challenge ``beta`` drawn with ``alpha`` (cross-entropy's exp tables, :mod:`zk.lower`).

Protocol (Haböck, "Multivariate lookups based on logarithmic derivatives", ePrint 2022/1530, in the
GKR form of Papini and Haböck, "Improving logarithmic derivative lookups using GKR", ePrint
2023/1284; made zero knowledge with committed sumchecks, Hyrax-style):

1. The prover commits the multiplicities ``M`` (``M_v`` = how many looked-up entries equal ``v``,
   the unused leaves below counted as entries 0). The transcript absorbs ``L``, the columns
   (commitments and scales) and ``M``; challenge ``alpha``.
2. Two trees of fractions ``p / q``. The *lookup tree* on ``N`` variables (:class:`Layout`) has
   column ``j``'s block of leaves ``1 / (alpha - c_j F_j(x))``, the blocks largest first at offsets
   that are multiples of their sizes, and unused leaves ``1 / alpha`` (entries 0). The *table tree*
   on ``L`` variables has leaves ``-M_v / (alpha - v)``. The logUp identity says the two sums
   cancel: ``sum_leaves 1 / (alpha - a) = sum_v M_v / (alpha - v)``.
3. A tree adds fractions pairwise: layer ``i`` (``2^i`` nodes, the root is layer 0) has
   ``p_i(x) = p_{i+1}(0, x) q_{i+1}(1, x) + p_{i+1}(1, x) q_{i+1}(0, x)`` and
   ``q_i(x) = q_{i+1}(0, x) q_{i+1}(1, x)`` (the child bit is the most significant variable). The
   prover commits both roots ``(P, Q)``, ``(P', Q')`` and proves ``P Q' + P' Q = 0`` (two product
   proofs and a zero opening).
4. Layer by layer, from committed claims ``p_i~(r)``, ``q_i~(r)`` and a challenge ``lambda``, one
   committed sumcheck (:mod:`zk.zksumcheck`, degree 3) of
   ``p_i~(r) + lambda q_i~(r) = sum_x eq(r, x) (a d + b c + lambda c d)`` with
   ``a, b, c, d = p_{i+1}(0, .), p_{i+1}(1, .), q_{i+1}(0, .), q_{i+1}(1, .)`` ends at a point ``s``; the
   prover commits ``a, b, c, d`` there and the products ``ad, bc, cd`` (:func:`zk.sigma.prove_product`),
   the final claim is linked by a zero opening, and with a challenge ``mu`` the next claims are the
   commitments ``(1 - mu) A + mu B`` and ``(1 - mu) C + mu D`` at the point ``(mu, s)``. Above the
   lookup tree's leaves ``p = 1``: that layer sums ``c + d + lambda c d`` and commits ``c, d, cd`` only.
5. At the leaves the verifier knows the MLEs from the blocks. Lookup tree, at ``rho``: column ``j``
   contributes ``sel_j (alpha - c_j F_j~(rho_j))`` (``sel_j`` = eq of ``rho``'s leading variables and
   the block's index, ``rho_j`` the rest) and unused leaves ``(1 - sum_j sel_j) alpha``. Table tree,
   at ``rho'``: ``p~ = -M~(rho')``, ``q~ = alpha - t~(rho')`` with ``t~(y) = sum_v 2^(L-1-v) y_v``. The
   prover commits to the columns' and ``M``'s values there, evaluation claims that the proof opens
   with all its others (:mod:`zk.openings`); zero openings tie them to the trees' claims.

Soundness: step 3 computes ``P(alpha)``, ``Q(alpha)`` for the numerator and denominator
polynomials of each tree's sum, so the check is ``N(alpha) = 0`` for
``N = P Q' + P' Q``, the numerator of the logUp difference as a rational function. If some
``c_j F_j(x)`` is not in ``T``, that function has a pole there (its coefficient is a count below
``r``), so ``N`` is a nonzero polynomial of degree below ``2^N + 2^L`` and vanishes at ``alpha`` with
probability at most ``(2^N + 2^L) / r``. Each layer's reduction errs with probability at most
``(3 i + 2) / r`` (sumcheck, ``lambda``, ``mu``), so the total error is below
``(2^N + 2^L + 2 (N^2 + L^2)) / r``: under ``2^-220`` for ``N <= 30``. Zero knowledge: ``M`` is a
hiding commitment, every message is a Pedersen commitment, a zero-knowledge opening or product
proof, or the blind of a zero opening, which is uniform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import commit, field, group, mle, sigma, zksumcheck
from .commit import Commitment
from .device import CPU, SMALL_TABLES, Device
from .errors import ProofFormatError, VerificationError, malformed_as_verification_error
from .group import Point
from .openings import Claims, Openings
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
    """``scale * F(x)`` must be in the table for every entry of the committed stack ``F``; against a
    function table ``f`` (``prove(..., function=f)``), the pair ``(F(x), V(x))`` must be a row
    ``(v, f(v))`` of it, ``V`` the committed stack ``values`` of the same layout (scale 1)."""

    stack: Stack
    scale: int = 1
    values: Stack | None = None

    @property
    def num_vars(self) -> int:
        return self.stack.commitment.num_vars


@dataclass(frozen=True)
class Layout:
    """Where each column's block lies among the lookup tree's ``2^num_vars`` leaves: largest first,
    each at an offset that is a multiple of its size (the rest are unused leaves)."""

    num_vars: int
    offsets: tuple[int, ...]  # per column, in the columns' order
    column_vars: tuple[int, ...]
    table_bits: int
    paired: bool = False  # a function table: every column also opens its values stack

    @classmethod
    def of(cls, column_vars, table_bits: int, paired: bool = False) -> "Layout":
        column_vars = tuple(int(m) for m in column_vars)
        order = sorted(range(len(column_vars)), key=lambda j: -column_vars[j])
        offsets, at = [0] * len(column_vars), 0
        for j in order:
            offsets[j], at = at, at + (1 << column_vars[j])
        n = max(1, (at - 1).bit_length())
        if n > MAX_LEAF_VARS:
            raise ValueError(f"lookup: {at} leaves, more than 2^{MAX_LEAF_VARS}")
        return cls(n, tuple(offsets), column_vars, table_bits, paired)

    @property
    def unused(self) -> int:
        """How many leaves of the lookup tree no column fills (each an entry 0)."""
        return (1 << self.num_vars) - sum(1 << m for m in self.column_vars)

    @property
    def opened(self) -> int:
        """How many stacks the leaves' openings cover (the multiplicities excepted)."""
        return len(self.column_vars) * (2 if self.paired else 1)

    def selector(self, offset: int, vars_: int, rho: np.ndarray) -> np.ndarray:
        """``eq`` of ``rho``'s leading ``num_vars - vars_`` coordinates and the block's index bits."""
        lead = self.num_vars - vars_
        index = offset >> vars_
        bits_ = [(index >> (lead - 1 - v)) & 1 for v in range(lead)]
        return mle.eq(rho[:lead], field.from_int(bits_)) if lead else field.ONE.copy()


def _function_values(function, table_bits: int) -> np.ndarray | None:
    """A function table's values ``f(0), ..., f(2^L - 1)`` as int64 (None for a range table)."""
    if function is None:
        return None
    f = np.asarray(function, dtype=np.int64).reshape(-1)
    if len(f) != 1 << table_bits:
        raise ValueError(f"lookup: a function table of 2^{table_bits} rows needs {1 << table_bits} values, "
                         f"got {len(f)}")
    return f


def _table_mle(rho: np.ndarray) -> np.ndarray:
    """``t~(rho) = sum_v 2^(L-1-v) rho_v``: the MLE of ``(0, 1, ..., 2^L - 1)``."""
    bits_ = len(rho)
    return field.inner(field.from_int([1 << (bits_ - 1 - v) for v in range(bits_)]), rho) if bits_ else field.zeros()


def _check(columns, table_bits: int, function=None) -> Layout:
    if not 1 <= table_bits <= MAX_TABLE_BITS:
        raise ValueError(f"lookup: table of 2^{table_bits} entries (1 to {MAX_TABLE_BITS} bits)")
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise ValueError(f"lookup: 1 to {MAX_COLUMNS} columns per proof, got {len(columns)}")
    paired = function is not None
    for c in columns:
        if isinstance(c.scale, bool) or not isinstance(c.scale, int) or not 1 <= c.scale < 1 << table_bits:
            raise ValueError(f"lookup: column scale {c.scale!r} outside [1, 2^{table_bits})")
        if paired != (c.values is not None) or (paired and c.scale != 1):
            raise ValueError("lookup: a function table's columns (and only those) pair a values stack, at scale 1")
        if paired and (c.values.commitment.num_vars, c.values.commitment.col_vars) != \
                (c.stack.commitment.num_vars, c.stack.commitment.col_vars):
            raise ValueError("lookup: a column's values stack has another layout")
    return Layout.of([c.num_vars for c in columns], table_bits, paired)


def _absorb_statement(t: Transcript, columns, table_bits: int, function: np.ndarray | None = None) -> None:
    t.absorb_ints("lookup/table-bits+columns", [table_bits, len(columns)])
    if function is not None:
        t.absorb("lookup/function", np.ascontiguousarray(function, dtype="<i8").tobytes())
    for c in columns:
        t.absorb_int("lookup/scale", c.scale)
        t.absorb("lookup/column", c.stack.commitment.to_bytes())
        if c.values is not None:
            t.absorb("lookup/column-values", c.values.commitment.to_bytes())


@dataclass(frozen=True)
class LayerProof:
    """One layer's reduction: the committed sumcheck, the commitments to ``a, b, c, d, ad, bc, cd``
    at its point (above the lookup tree's leaves, where ``a = b = 1``: ``c, d, cd``), the product
    proofs and the final claim's zero-opening blind."""

    sumcheck: zksumcheck.CommittedSumcheck
    values: tuple[Point, ...]
    products: tuple[sigma.ProductProof, ...]
    final_blind: np.ndarray

    def sections(self) -> list[bytes]:
        return [self.sumcheck.to_bytes(), group.points_to_bytes(self.values),
                *(p.to_bytes() for p in self.products), field.to_bytes(self.final_blind)]

    @classmethod
    def read(cls, reader, rounds: int, unit_numerators: bool = False) -> "LayerProof":
        sc = zksumcheck.CommittedSumcheck.from_bytes(reader.section(), rounds, 3)
        values = tuple(group.points_from_bytes(reader.section(), 3 if unit_numerators else 7))
        products = tuple(sigma.ProductProof.from_bytes(reader.section()) for _ in range(1 if unit_numerators else 3))
        return cls(sc, values, products, _scalar(reader.section()))


#: Which committed values of a layer multiply to which: ``(x, y, x*y)`` indices into its values.
_PRODUCTS = ((0, 3, 4), (1, 2, 5), (2, 3, 6))
_UNIT_PRODUCTS = ((0, 1, 2),)


def _scalar(data: bytes) -> np.ndarray:
    try:
        return field.from_bytes(data, 1)[0]
    except ValueError as exc:
        raise ProofFormatError(f"lookup proof: {exc}") from None


@dataclass(frozen=True)
class TreeProof:
    """The fractional sums of one tree: its committed root ``(P, Q)`` and every layer's reduction."""

    root: tuple[Point, Point]
    layers: tuple[LayerProof, ...]

    def sections(self) -> list[bytes]:
        return [group.points_to_bytes(self.root)] + [s for layer in self.layers for s in layer.sections()]

    @classmethod
    def read(cls, reader, num_vars: int, unit_leaves: bool) -> "TreeProof":
        root = tuple(group.points_from_bytes(reader.section(), 2))
        return cls(root, tuple(LayerProof.read(reader, i, unit_leaves and i == num_vars - 1) for i in range(num_vars)))


@dataclass(frozen=True)
class LookupProof:
    multiplicities: Commitment
    lookups: TreeProof  # the lookup tree (unit numerators)
    table: TreeProof  # the table tree (numerators -M)
    roots: tuple[Point, Point]  # commitments to P Q' and P' Q
    root_products: tuple[sigma.ProductProof, sigma.ProductProof]
    root_blind: np.ndarray  # zero opening of P Q' + P' Q
    values: tuple[Point, ...]  # commitments to every column's F_j~(rho_j), then to M~(rho') (claims the openings cover)
    leaf_blinds: np.ndarray  # (3, 4): zero openings of the lookup tree's q~ and the table tree's p~, q~

    def sections(self) -> list[bytes]:
        return [self.multiplicities.to_bytes(), *self.lookups.sections(), *self.table.sections(),
                group.points_to_bytes(self.roots), *(p.to_bytes() for p in self.root_products),
                field.to_bytes(self.root_blind), group.points_to_bytes(self.values), field.to_bytes(self.leaf_blinds)]

    @classmethod
    def read(cls, reader, layout: Layout) -> "LookupProof":
        """Parse :meth:`sections` for a lookup with ``layout`` (sizes fixed by the statement)."""
        mult = Commitment.from_bytes(reader.section())
        if (mult.num_vars, mult.col_vars) != (layout.table_bits, commit.split_vars(layout.table_bits)[1]):
            raise ProofFormatError("lookup proof: multiplicities of the wrong size")
        lookups = TreeProof.read(reader, layout.num_vars, True)
        table = TreeProof.read(reader, layout.table_bits, False)
        roots = tuple(group.points_from_bytes(reader.section(), 2))
        products = tuple(sigma.ProductProof.from_bytes(reader.section()) for _ in range(2))
        root_blind = _scalar(reader.section())
        values = tuple(group.points_from_bytes(reader.section(), layout.opened + 1))
        try:
            blinds = field.from_bytes(reader.section(), 3)
        except ValueError as exc:
            raise ProofFormatError(f"lookup proof: {exc}") from None
        return cls(mult, lookups, table, roots, products, root_blind, values, blinds)

    def to_bytes(self) -> bytes:
        return b"".join(section(s) for s in self.sections())

    @classmethod
    def from_bytes(cls, data: bytes, columns, table_bits: int, function=None) -> "LookupProof":
        reader = Reader(data)
        proof = cls.read(reader, _check(columns, table_bits, function))
        reader.end()
        return proof


def _integers(stack: Stack, device: Device) -> np.ndarray:
    table = device.download(stack.opening.table)
    return table.reshape(-1).astype(np.int64) if table.dtype in SMALL_TABLES else field.to_signed(table).reshape(-1)


def multiplicities(columns, table_bits: int, unused: int = 0, device: Device = CPU, function=None) -> np.ndarray:
    """The counts over the table of the looked-up integers ``scale * F(x)`` of every column (its
    table on ``device``; ``unused`` more entries 0); ValueError naming a column with an entry
    outside ``[0, 2^table_bits)`` (or, against a ``function`` table, whose values differ from it)."""
    counts = np.zeros(1 << table_bits, dtype=np.int64)
    f = _function_values(function, table_bits)
    for j, c in enumerate(columns):
        e = _integers(c.stack, device)
        if e.size and (int(e.min()) < 0 or c.scale * int(e.max()) >= 1 << table_bits):
            raise ValueError(f"lookup: column {j} has values in [{int(e.min())}, {int(e.max())}], "
                             f"outside [0, 2^{table_bits}) at scale {c.scale}")
        if f is not None and not np.array_equal(_integers(c.values, device), f[e]):
            raise ValueError(f"lookup: column {j} pairs values that are not the table's function of its entries")
        counts += np.bincount(c.scale * e, minlength=1 << table_bits)
    counts[0] += unused
    return counts


def _lookup_denominators(columns, layout: Layout, alpha: np.ndarray, beta: np.ndarray | None, device: Device):
    """The lookup tree's leaf denominators ``alpha - c_j F_j(x)`` (``alpha - F_j(x) - beta V_j(x)``
    against a function table; ``alpha`` on unused leaves), on ``device``: each leaf written once."""
    q = device.xp.empty((1 << layout.num_vars, 4), dtype=np.uint64)
    q[len(q) - layout.unused:] = device.asarray(alpha)  # the blocks fill the leaves from 0
    for c, off in zip(columns, layout.offsets):
        block = q[off:off + (1 << c.num_vars)]
        device.scale_add_into(block, c.stack.opening.table, field.from_int(-c.scale), alpha)
        if beta is not None:
            block[...] = device.sub(block, device.mul(device.field_table(c.values.opening.table).reshape(-1, 4), beta))
    return q


def _tree(p, q, device: Device, keep_leaves: bool = True) -> list:
    """Every layer ``(p_i, q_i)`` on ``device``, the root first (step 3); ``p = None``: unit
    numerators. Without ``keep_leaves`` the leaves' entry is None and they are freed once the layer
    above them is built (the caller recomputes them: a third of the tree's memory)."""
    layers = [(p, q) if keep_leaves else None]
    while len(q) > 1:
        p, q = device.fraction_layer(p, q)
        layers.append((p, q))
    return layers[::-1]


def _line(x, y, mu):
    """``(1 - mu) x + mu y`` for two commitments (or blinds)."""
    if isinstance(x, np.ndarray):
        return field.add(x, field.mul(mu, field.sub(y, x)))
    return x + sigma.mul_point(y - x, mu)


def _eq(point, s) -> np.ndarray:
    return mle.eq(point, s) if len(s) else field.ONE.copy()


def _prove_tree(layers, roots, root_blinds, t: Transcript, key, device: Device, leaves=None):
    """Steps 4 of one tree from its committed root (values ``roots``, blinds ``root_blinds``):
    ``(TreeProof layers, leaf point, blinds of the leaves' claims p~, q~)`` (the p~ blind is None
    over unit numerators). Each layer is freed once its sumcheck has read it (the list is this
    proof's); ``leaves()`` recomputes leaves that :func:`_tree` did not keep."""
    (pv, qv), (bp, bq) = roots, root_blinds
    point = np.zeros((0, 4), dtype=np.uint64)
    proofs = []
    for i in range(len(layers) - 1):
        lam = t.challenge_scalar("lookup/lambda")
        p_next, q_next = layers[i + 1] if layers[i + 1] is not None else leaves()
        layers[i + 1] = None
        h = len(q_next) // 2
        claim_blind = field.add(bp, field.mul(lam, bq)) if bp is not None else field.mul(lam, bq)
        claim = field.add(pv, field.mul(lam, qv))
        if p_next is None:  # a = b = 1: sum eq (c + d + lambda c d)
            prover = device.eq_sumcheck(point, [q_next[:h], q_next[h:]], [(1, (0,)), (1, (1,)), (lam, (0, 1))],
                                        claim, consume=True)
        else:  # (the layer is read by this sumcheck alone: its prover folds it in place)
            prover = device.eq_sumcheck(point, [p_next[:h], p_next[h:], q_next[:h], q_next[h:]],
                                        [(1, (0, 3)), (1, (1, 2)), (lam, (2, 3))], claim, consume=True)
        sc, s, finals, final_blind = zksumcheck.prove(prover, claim_blind, t, key)
        if p_next is None:  # (a kernel device's prover lists the eq table last: ignored)
            c, d = finals[:2]
            vals, pairs = np.stack([c, d, field.mul(c, d)]), _UNIT_PRODUCTS
        else:
            a, b, c, d = finals[:4]
            vals, pairs = np.stack([a, b, c, d, field.mul(a, d), field.mul(b, c), field.mul(c, d)]), _PRODUCTS
        points, blinds = commit.commit_scalars(vals, key)
        t.absorb_points("lookup/layer-values", points)
        products = tuple(sigma.prove_product(vals[x], blinds[x], vals[y], blinds[y], blinds[z],
                                             (points[x], points[y], points[z]), t, key) for x, y, z in pairs)
        if p_next is None:  # the claim's value: c + d + lambda cd
            combined = field.add(field.add(blinds[0], blinds[1]), field.mul(lam, blinds[2]))
        else:
            combined = field.add(field.add(blinds[4], blinds[5]), field.mul(lam, blinds[6]))
        delta = zksumcheck.prove_final_claim(final_blind, _eq(point, s), combined)
        t.absorb_scalars("lookup/layer-final", delta)
        proofs.append(LayerProof(sc, tuple(points), products, delta))
        mu = t.challenge_scalar("lookup/mu")
        if p_next is None:
            bp, bq = None, _line(blinds[0], blinds[1], mu)
        else:
            bp, bq = _line(blinds[0], blinds[1], mu), _line(blinds[2], blinds[3], mu)
            pv, qv = _line(vals[0], vals[1], mu), _line(vals[2], vals[3], mu)
        point = np.concatenate([mu[None], s])
        prover = p_next = q_next = None  # this layer is freed before the next one is read
    return tuple(proofs), point, bp, bq


def _verify_tree(tree: TreeProof, num_vars: int, unit_leaves: bool, t: Transcript, key, what: str, checks=None):
    """Check one tree's layers from its committed root: ``(leaf point, claim p~ (None over unit
    numerators), claim q~)`` as commitments."""
    if len(tree.layers) != num_vars or len(tree.root) != 2:
        raise VerificationError(f"{what}: proof for another layout")
    cp, cq = tree.root
    point = np.zeros((0, 4), dtype=np.uint64)
    for i, layer in enumerate(tree.layers):
        unit = unit_leaves and i == num_vars - 1
        lam = t.challenge_scalar("lookup/lambda")
        s, final = zksumcheck.verify(cp + sigma.mul_point(cq, lam), i, 3, layer.sumcheck, t, key,
                                     what=f"{what} layer {i} sumcheck", checks=checks)
        pairs = _UNIT_PRODUCTS if unit else _PRODUCTS
        v = layer.values
        if len(v) != (3 if unit else 7) or len(layer.products) != len(pairs):
            raise VerificationError(f"{what} layer {i}: malformed")
        t.absorb_points("lookup/layer-values", v)
        for (x, y, z), pp in zip(pairs, layer.products):
            sigma.verify_product((v[x], v[y], v[z]), pp, t, key, what=f"{what} layer {i} product", checks=checks)
        value = v[0] + v[1] + sigma.mul_point(v[2], lam) if unit else v[4] + v[5] + sigma.mul_point(v[6], lam)
        zksumcheck.verify_final_claim(final, _eq(point, s), value, layer.final_blind, key,
                                      f"{what} layer {i} final claim", checks)
        t.absorb_scalars("lookup/layer-final", layer.final_blind)
        mu = t.challenge_scalar("lookup/mu")
        cp, cq = (None, _line(v[0], v[1], mu)) if unit else (_line(v[0], v[1], mu), _line(v[2], v[3], mu))
        point = np.concatenate([mu[None], s])
    return point, cp, cq


def _challenges(t: Transcript, function) -> tuple[np.ndarray, np.ndarray | None]:
    """``alpha`` and, against a function table, ``beta`` (the pairs' combination)."""
    alpha = t.challenge_scalar("lookup/alpha")
    return alpha, None if function is None else t.challenge_scalar("lookup/beta")


def prove(columns: list[Column], table_bits: int, t: Transcript, evals: Openings,
          key: commit.CommitKey = commit.DEFAULT_KEY, device: Device = CPU, function=None) -> LookupProof:
    """Prove that every entry ``scale * F(x)`` of every column is in ``[0, 2^table_bits)`` (the module
    docstring's protocol; the stacks' openings held by the prover) on ``device``; with ``function``
    (the values ``f(0..2^L-1)``) that every pair ``(F(x), V(x))`` is a row ``(v, f(v))``, the tree's
    entries being ``F + beta V`` and the table's rows ``v + beta f(v)``. ValueError naming the
    column with an entry the table lacks."""
    layout = _check(columns, table_bits, function)
    f = _function_values(function, table_bits)
    counts = multiplicities(columns, table_bits, layout.unused, device, f)
    mult, mult_open = commit.commit(counts, key, device=device)
    _absorb_statement(t, columns, table_bits, f)
    t.absorb("lookup/multiplicities", mult.to_bytes())
    alpha, beta = _challenges(t, f)
    def leaves():
        return None, _lookup_denominators(columns, layout, alpha, beta, device)

    lookup_layers = _tree(*leaves(), device, keep_leaves=False)
    rows = device.add(device.table_from_ints(-np.arange(1 << table_bits, dtype=np.int64)), alpha)
    if beta is not None:
        rows = device.sub(rows, device.mul(device.table_from_ints(f), beta))
    table_layers = _tree(device.table_from_ints(-counts), rows, device)

    pa, qa, pb, qb = (device.download(x).reshape(-1, 4)[0] for x in (*lookup_layers[0], *table_layers[0]))
    root_values = np.stack([pa, qa, pb, qb, field.mul(pa, qb), field.mul(pb, qa)])
    rp, rb = commit.commit_scalars(root_values, key)
    t.absorb_points("lookup/roots", rp)
    lookups, rho, _, bq = _prove_tree(lookup_layers, (pa, qa), (rb[0], rb[1]), t, key, device, leaves)
    del lookup_layers
    table, rho_t, bp_t, bq_t = _prove_tree(table_layers, (pb, qb), (rb[2], rb[3]), t, key, device)
    products = (sigma.prove_product(pa, rb[0], qb, rb[3], rb[4], (rp[0], rp[3], rp[4]), t, key),
                sigma.prove_product(pb, rb[2], qa, rb[1], rb[5], (rp[2], rp[1], rp[5]), t, key))
    root_blind = field.add(rb[4], rb[5])
    t.absorb_scalars("lookup/root-blind", root_blind)

    stacks = _opened(columns, layout)
    tables = [(s.opening, s.commitment) for s in stacks] + [(mult_open, mult)]
    subs = _points(layout, rho, rho_t)
    blinds = field.random(len(tables))  # the claims' statements absorb the committed values
    values = [commit.commit_scalar(evals.add(opening, com, x, t, value_blind=blind), key, blind=blind)[0]
              for (opening, com), x, blind in zip(tables, subs, blinds)]
    zq = bq
    for j, (c, off) in enumerate(zip(columns, layout.offsets)):
        sel = layout.selector(off, c.num_vars, rho)
        zq = field.add(zq, field.mul(field.mul(sel, field.from_int(c.scale)), blinds[j]))
        if beta is not None:
            zq = field.add(zq, field.mul(field.mul(sel, beta), blinds[len(columns) + j]))
    zp_t = field.add(bp_t, blinds[-1])
    leaf_blinds = np.stack([zq, zp_t, bq_t])
    return LookupProof(mult, TreeProof((rp[0], rp[1]), lookups), TreeProof((rp[2], rp[3]), table),
                       (rp[4], rp[5]), products, root_blind, tuple(values), leaf_blinds)


def _opened(columns, layout: Layout) -> list[Stack]:
    """The stacks the leaves' openings cover: the columns, then (a function table) their values."""
    return [c.stack for c in columns] + ([c.values for c in columns] if layout.paired else [])


def _points(layout: Layout, rho: np.ndarray, rho_t: np.ndarray) -> list[np.ndarray]:
    """Each opened stack's point (its block's suffix of ``rho``), then the multiplicities' ``rho_t``."""
    n = layout.num_vars
    return [rho[n - m:] for m in layout.column_vars * (2 if layout.paired else 1)] + [rho_t]


def verify(columns: list[Column], table_bits: int, proof: LookupProof, t: Transcript, evals: Claims,
           key: commit.CommitKey = commit.DEFAULT_KEY, checks: commit.DeferredChecks | None = None,
           what: str = "lookup", function=None) -> None:
    """Check a :class:`LookupProof` for ``columns`` (commitments only) against ``[0, 2^table_bits)``
    (or the ``function`` table, as :func:`prove`); raises VerificationError naming ``what`` and the
    failed part (also for a malformed proof object)."""
    with malformed_as_verification_error("LookupProof"):
        _verify(columns, table_bits, proof, t, evals, key, checks, what, function)


def _verify(columns, table_bits: int, proof: LookupProof, t: Transcript, evals: Claims, key, checks, what: str,
            function) -> None:
    try:
        layout = _check(columns, table_bits, function)
        f = _function_values(function, table_bits)
    except ValueError as exc:
        raise VerificationError(f"{what}: {exc}") from None
    if len(proof.values) != layout.opened + 1 or len(proof.roots) != 2 or \
            len(proof.root_products) != 2 or np.shape(proof.leaf_blinds) != (3, 4):
        raise VerificationError(f"{what}: proof for another layout")
    if (proof.multiplicities.num_vars, proof.multiplicities.col_vars) != \
            (table_bits, commit.split_vars(table_bits)[1]):
        raise VerificationError(f"{what}: multiplicities of the wrong size")
    _absorb_statement(t, columns, table_bits, f)
    t.absorb("lookup/multiplicities", proof.multiplicities.to_bytes())
    alpha, beta = _challenges(t, f)
    (pa, qa), (pb, qb) = proof.lookups.root, proof.table.root
    t.absorb_points("lookup/roots", [pa, qa, pb, qb, *proof.roots])
    rho, _, cq = _verify_tree(proof.lookups, layout.num_vars, True, t, key, f"{what} lookup tree", checks)
    rho_t, cp_t, cq_t = _verify_tree(proof.table, table_bits, False, t, key, f"{what} table tree", checks)
    sigma.verify_product((pa, qb, proof.roots[0]), proof.root_products[0], t, key, what=f"{what} roots",
                         checks=checks)
    sigma.verify_product((pb, qa, proof.roots[1]), proof.root_products[1], t, key, what=f"{what} roots",
                         checks=checks)
    t.absorb_scalars("lookup/root-blind", proof.root_blind)
    sigma.check_zero(proof.roots[0] + proof.roots[1], proof.root_blind, key,
                     f"{what}: the looked-up entries and the table's multiplicities do not cancel (a value outside "
                     "the table, or wrong multiplicities)", checks)

    coms = [s.commitment for s in _opened(columns, layout)] + [proof.multiplicities]
    subs = _points(layout, rho, rho_t)
    for com, x, value in zip(coms, subs, proof.values):
        evals.add(com, x, value, t)
    expected_q = group.identity()
    for j, (c, off) in enumerate(zip(columns, layout.offsets)):
        sel = layout.selector(off, c.num_vars, rho)
        expected_q = expected_q - sigma.mul_point(proof.values[j], field.mul(sel, field.from_int(c.scale)))
        if beta is not None:
            expected_q = expected_q - sigma.mul_point(proof.values[len(columns) + j], field.mul(sel, beta))
    expected_q = expected_q + sigma.mul_point(key.U, alpha)  # alpha on every leaf, minus the entries
    row = _table_mle(rho_t)
    if beta is not None:  # the rows v + beta f(v): f's MLE from its 2^L values
        row = field.add(row, field.mul(beta, mle.evaluate(field.from_int(f), rho_t)))
    leaves = (f"{what}: the trees' leaves differ from the looked-up columns and the table (a value outside the "
              "table, or wrong multiplicities)")
    sigma.check_zero(cq - expected_q, proof.leaf_blinds[0], key, leaves, checks)
    sigma.check_zero(cp_t + proof.values[-1], proof.leaf_blinds[1], key, leaves, checks)
    sigma.check_zero(cq_t - sigma.mul_point(key.U, field.sub(alpha, row)), proof.leaf_blinds[2], key, leaves, checks)
