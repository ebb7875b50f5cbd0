"""Hyrax-style Pedersen commitments to multilinear tables, opened by a zero-knowledge inner-product argument.

Layout
------
A tensor's table is its MLE table (:func:`zk.mle.table`: dimensions zero-padded to powers of two,
flattened in C order; ``n = 2^m`` entries, variable 0 the most significant index bit). It is viewed
row-major as a matrix of ``2^m_row`` rows and ``2^m_col`` columns, ``m_row = m // 2``,
``m_col = m - m_row``: ``T[i, j] = table[i * cols + j]``, so the first ``m_row`` variables index rows.

Commitment
----------
One blinded Pedersen commitment per row, ``C_i = sum_j T[i, j] * G_j + r_i * H``, with
generators ``G_j``, ``H`` (and ``U`` for values) of a :class:`CommitKey` and secret uniformly random
``r_i``. Commitments are hiding (each row is uniformly distributed) and binding (under discrete
log). They are additively homomorphic: ``C_A + C_B`` commits to ``A + B`` with summed blinds.

Evaluation
----------
With ``eq_table(p)[b] = prod_k (p_k if bit_k(b) else 1 - p_k)`` (:func:`zk.mle.eq_table`, ``bit_k``
the k-th most significant bit of ``b``), at a point ``x = (x_row, x_col)`` (the first ``m_row`` coordinates are
the row variables), ``T~(x) = L^T T R`` with ``L = eq_table(x_row)`` and ``R = eq_table(x_col)``.
Both parties compute ``C' = sum_i L_i C_i``, a commitment to ``t = L^T T`` with blind
``r_t = sum_i L_i r_i``. The value ``v = T~(x)`` is either public or given as a Pedersen commitment
``C_v = v * U + r_v * H`` (the sumcheck layer passes committed evaluations); a public ``v`` is
the case ``C_v = v * U``, ``r_v = 0``.

Opening protocol (non-interactive through :class:`zk.transcript.Transcript`)
---------------------------------------------------------------------------
Relation: knowledge of ``t, r_t, r_v`` with ``C' = <t, G> + r_t H`` and
``C_v = <t, R> U + r_v H``. This is the zero-knowledge inner-product argument of Bulletproofs
(Bünz et al. 2018, protocol 2 with blinded cross terms) as used by Hyrax (Wahby et al. 2018, §A):

1. The transcript absorbs ``m``, the row commitments, ``x`` and ``v`` (or ``C_v``); challenge
   ``xi``. Set ``U' = xi U``, ``P = C' + xi C_v = <t, G> + <t, R> U' + rho H`` with
   ``rho = r_t + xi r_v``; write ``a = t``, ``b = R``.
2. ``m_col`` halving rounds. With ``a = (a_L, a_R)``, ``b = (b_L, b_R)``, ``G = (G_L, G_R)`` and
   fresh random ``l, r``, the prover sends ``L = <a_L, G_R> + <a_L, b_R> U' + l H`` and
   ``R = <a_R, G_L> + <a_R, b_L> U' + r H``; challenge ``u``; both fold
   ``a <- u a_L + u^-1 a_R``, ``b <- u^-1 b_L + u b_R``, ``G <- u^-1 G_L + u G_R``,
   ``P <- u^2 L + P + u^-2 R`` (the prover: ``rho <- rho + u^2 l + u^-2 r``).
3. Now ``P = a (G + b U') + rho H`` for scalars ``a, b`` and one point ``G``. A Schnorr (Okamoto)
   proof of knowledge of ``(a, rho)``: the prover sends ``A = d (G + b U') + s H`` for random
   ``d, s``; challenge ``c``; it sends ``z1 = d + c a``, ``z2 = s + c rho``; the verifier checks
   ``z1 (G + b U') + z2 H = A + c P``.

The folded ``G`` and ``b`` are ``sum_i s_i G_i`` and ``sum_i s_i R_i`` with
``s = tensor_i (u_i^-1, u_i)`` (round ``i`` folds the i-th most significant column bit); the
verifier evaluates its whole check, ``C'`` and ``P`` included, as one multi-scalar multiplication.
Proof: ``2 m_col + 1`` points and 2 scalars. Zero knowledge (honest verifier, then Fiat–Shamir):
every ``L``, ``R`` and ``A`` is uniformly random thanks to its fresh blind and ``z1, z2`` are
uniform given ``c``, so a simulator samples them and solves for ``A``.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np

from . import field, group, mle
from .device import CPU, SMALL_TABLES, Device
from .errors import ProofFormatError, VerificationError
from .group import Point
from .transcript import Transcript

__all__ = [
    "CommitKey", "DEFAULT_KEY", "Commitment", "Opening", "EvalProof",
    "split_vars", "commit", "commit_scalars", "commit_scalar", "evaluate", "RowClaim",
    "claim_eval", "prove_eval", "prove_inner_product", "absorb_claim", "verify_eval", "inner_product_equation",
]

#: Largest number of table variables a serialised commitment may declare.
MAX_VARS = 60
_COMMITMENT_VERSION = 1
_PROOF_VERSION = 1


@dataclass(frozen=True)
class CommitKey:
    """Public parameters: the generator family ``label`` (see :func:`zk.group.generators`).

    ``G_j`` is generator ``j`` of ``label``; ``H`` and ``U`` are generator 0 of ``label + b"/H"``
    and ``label + b"/U"``. Generators of different sizes are prefixes of one sequence, so a key
    serves every table size.
    """

    label: bytes = b"zkfhe/hyrax/v1"

    def g(self, n: int) -> list[Point]:
        return group.generators(n, self.label)

    @property
    def H(self) -> Point:
        return _fixed_base(self.label + b"/H").point

    @property
    def U(self) -> Point:
        return _fixed_base(self.label + b"/U").point


DEFAULT_KEY = CommitKey()


@lru_cache(maxsize=None)
def _fixed_base(label: bytes) -> group.FixedBase:
    return group.FixedBase(group.generators(1, label)[0])


def split_vars(num_vars: int, col_vars: int | None = None) -> tuple[int, int]:
    """``(m_row, m_col)`` of a table with ``num_vars`` variables: ``col_vars`` columns bits if given
    (as many as there are variables at most), else the square split ``m_col = ceil(m / 2)``."""
    if col_vars is None:
        return num_vars // 2, num_vars - num_vars // 2
    if not 0 <= col_vars <= num_vars:
        raise ValueError(f"{col_vars} column variables for a table of {num_vars} variables")
    return num_vars - col_vars, col_vars


def _scalar(c) -> np.ndarray:
    """One field element from a Python int or a field element."""
    if isinstance(c, np.ndarray):
        if c.dtype != np.uint64 or c.shape != (4,):
            raise TypeError(f"expected one field element (uint64, shape (4,)), got {c.dtype} {c.shape}")
        return c
    return field.from_int(operator.index(c))


def _field_vector(values, n: int, what: str) -> np.ndarray:
    """An ``(n, 4)`` field array from a field array or a sequence of ints."""
    if isinstance(values, np.ndarray) and values.dtype == np.uint64:
        arr = values
    else:
        ints = [operator.index(v) for v in values]
        arr = field.from_int(ints) if ints else field.zeros(0)
    if arr.shape != (n, 4):
        raise ValueError(f"{what}: expected {n} field elements, got shape {arr.shape[:-1]}")
    return arr


def _tensor_table(pairs: np.ndarray) -> np.ndarray:
    """``out[b] = prod_k pairs[k, bit_k(b)]`` (bit 0 the most significant) for ``pairs`` of shape (m, 2, 4)."""
    out = field.ones(1)
    for pair in pairs:
        out = field.mul(out[:, None, :], pair[None, :, :]).reshape(-1, 4)
    return out


def _table(values) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(table, None)``: the MLE table (:func:`zk.mle.table`) of a field array or of Python
    integers; or ``(None, entries)`` for an integer tensor, its padded entries flattened (uint8
    for 0/1 planes, uint16 for entries in ``[0, 2^16)`` such as limbs, else int64), which the
    prover's device turns into a table."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype.kind in "iub" and arr.dtype != np.uint64:
        ints = mle.pad_pow2(arr).reshape(-1)
        if arr.dtype in (np.bool_, np.uint8) and ints.max() <= 1:
            return None, ints.astype(np.uint8)
        if ints.min() >= 0 and ints.max() < 1 << 16:
            return None, ints.astype(np.uint16)
        return None, ints.astype(np.int64)
    return mle.table(arr), None


@dataclass(frozen=True)
class Commitment:
    """Row commitments of a table with ``num_vars`` variables, ``col_vars`` of which index
    columns (default: the square split of :func:`split_vars`). Public."""

    num_vars: int
    rows: tuple[Point, ...]
    col_vars: int | None = None

    def __post_init__(self) -> None:
        m_row, m_col = split_vars(self.num_vars, self.col_vars)
        object.__setattr__(self, "col_vars", m_col)
        if len(self.rows) != 1 << m_row:
            raise ValueError(f"Commitment: {self.num_vars} variables need {1 << m_row} rows, got {len(self.rows)}")

    @cached_property
    def row_bytes(self) -> bytes:
        """The rows' compressed encodings, concatenated (computed once per commitment)."""
        return group.points_to_bytes(self.rows)

    def to_bytes(self) -> bytes:
        """``version (1 byte) || num_vars (1 byte) || col_vars (1 byte) || rows (48 bytes each)``."""
        return bytes([_COMMITMENT_VERSION, self.num_vars, self.col_vars]) + self.row_bytes

    @classmethod
    def concat(cls, parts, num_vars: int, padding_rows: int = 0) -> "Commitment":
        """The commitment whose rows are ``parts``' rows in order, then ``padding_rows`` identity
        rows (commitments to zero rows with blind 0); it reuses the parts' encodings."""
        identity = group.identity()
        out = cls(num_vars, tuple(p for c in parts for p in c.rows) + (identity,) * padding_rows,
                  parts[0].col_vars)
        out.__dict__["row_bytes"] = (b"".join(c.row_bytes for c in parts)
                                     + group.point_to_bytes(identity) * padding_rows)
        return out

    @classmethod
    def from_bytes(cls, data) -> Commitment:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 3:
            raise ProofFormatError("commitment: expected at least 3 bytes")
        data = bytes(data)
        if data[0] != _COMMITMENT_VERSION:
            raise ProofFormatError(f"commitment: unknown version {data[0]}")
        if data[1] > MAX_VARS:
            raise ProofFormatError(f"commitment: {data[1]} variables exceed the maximum {MAX_VARS}")
        if data[2] > data[1]:
            raise ProofFormatError(f"commitment: {data[2]} column variables exceed {data[1]} variables")
        m_row, _ = split_vars(data[1], data[2])
        return cls(data[1], tuple(group.points_from_bytes(data[3:], 1 << m_row)), data[2])

    def _same_shape(self, other: Commitment) -> None:
        if not isinstance(other, Commitment) or (other.num_vars, other.col_vars) != (self.num_vars, self.col_vars):
            raise ValueError("commitments of different sizes or layouts do not combine")

    def __add__(self, other: Commitment) -> Commitment:
        self._same_shape(other)
        return Commitment(self.num_vars, tuple(a + b for a, b in zip(self.rows, other.rows)), self.col_vars)

    def __sub__(self, other: Commitment) -> Commitment:
        self._same_shape(other)
        return Commitment(self.num_vars, tuple(a - b for a, b in zip(self.rows, other.rows)), self.col_vars)

    @classmethod
    def combine(cls, coeffs, commitments) -> Commitment:
        """``sum_k coeffs[k] * commitments[k]`` (public coefficients: ints or field elements)."""
        coeffs, commitments = list(coeffs), list(commitments)
        if len(coeffs) != len(commitments) or not commitments:
            raise ValueError(f"combine: {len(coeffs)} coefficients for {len(commitments)} commitments")
        for other in commitments[1:]:
            commitments[0]._same_shape(other)
        if all(isinstance(x, (int, np.integer)) for x in coeffs):  # a few doublings per coefficient bit
            rows = tuple(group.combine_rows([int(x) for x in coeffs], [x.rows for x in commitments]))
        else:
            c = np.stack([_scalar(x) for x in coeffs])
            rows = tuple(group.msm(list(column), c) for column in zip(*(x.rows for x in commitments)))
        return cls(commitments[0].num_vars, rows, commitments[0].col_vars)


@dataclass(frozen=True)
class Opening:
    """The secret side of a commitment: the table and the row blinds (on the host). The table is
    on the device that committed it (:mod:`zk.device`; another device uploads it): a ``(rows, cols,
    4)`` field array, or for integer entries (a bit plane's 0/1 bytes, 16-bit limbs, int64 values)
    their ``(rows, cols)`` integers (:data:`zk.device.SMALL_TABLES`), 32, 16 or 4 times smaller,
    expanded only where a relation computes on them (:meth:`field_table`)."""

    table: np.ndarray
    blinds: np.ndarray

    def field_table(self, device: Device):
        """The table as field elements ``(rows, cols, 4)`` on ``device``."""
        return device.field_table(self.table)

    def expanded(self, device: Device) -> "Opening":
        """This opening with its table as field elements on ``device`` (the same opening for a
        field table)."""
        return self if self.table.ndim == 3 else Opening(self.field_table(device), self.blinds)

    @property
    def num_vars(self) -> int:
        return (self.table.shape[0] * self.table.shape[1]).bit_length() - 1

    @property
    def col_vars(self) -> int:
        return self.table.shape[1].bit_length() - 1

    def __repr__(self) -> str:  # never print secrets
        return f"Opening(num_vars={self.num_vars})"

    @classmethod
    def combine(cls, coeffs, openings, device: Device) -> Opening:
        """The opening of ``Commitment.combine(coeffs, commitments)``, its table on ``device``."""
        coeffs, openings = list(coeffs), list(openings)
        if len(coeffs) != len(openings) or not openings:
            raise ValueError(f"combine: {len(coeffs)} coefficients for {len(openings)} openings")
        c = np.stack([_scalar(x) for x in coeffs])
        table = device.lincomb(c, [o.field_table(device) for o in openings])
        blinds = field.sum(field.mul(c[:, None, :], np.stack([o.blinds for o in openings])), axis=0)
        return cls(table, blinds)


def commit(values, key: CommitKey = DEFAULT_KEY, *, blinds=None, col_vars: int | None = None,
           device: Device = CPU) -> tuple[Commitment, Opening]:
    """Commit to a tensor: an integer array / torch tensor (bits and small values commit through
    :func:`zk.group.msm_small`) or a field array ``(..., 4)``. Dimensions are zero-padded to powers
    of two. ``blinds`` (``(rows, 4)``) defaults to fresh secret randomness; ``col_vars`` fixes the
    row width (``2^col_vars``) instead of the square split. The opening's table and the row
    commitments are computed on ``device``."""
    table, ints, m, m_col = _layout(values, col_vars, device)
    rows = table.shape[0]
    blinds = field.random(rows) if blinds is None else _field_vector(blinds, rows, "commit blinds")
    points = device.commit_rows(key, table, None if ints is None else ints.reshape(rows, -1),
                                blinds, _fixed_base(key.label + b"/H"))
    return Commitment(m, tuple(points), m_col), Opening(table, blinds)


def _layout(values, col_vars: int | None, device: Device):
    """``(table, integer entries or None, num_vars, col_vars)``: a tensor as :func:`commit` holds
    it on ``device`` (rows of ``2^col_vars`` entries; bit planes and limbs stay small integers)."""
    table, ints = _table(values)
    m = len(table if ints is None else ints).bit_length() - 1
    m_row, m_col = split_vars(m, col_vars)
    rows, cols = 1 << m_row, 1 << m_col
    if ints is None:
        table = device.asarray(table).reshape(rows, cols, 4)
    elif ints.dtype in SMALL_TABLES:
        table = device.asarray(ints).reshape(rows, cols)
    else:
        table = device.table_from_ints(ints).reshape(rows, cols, 4)
    return table, ints, m, m_col


def opening_of(values, blinds, col_vars: int | None = None, device: Device = CPU) -> Opening:
    """The opening :func:`commit` makes of ``values`` with row ``blinds``, without the commitment."""
    table, _, _, _ = _layout(values, col_vars, device)
    return Opening(table, _field_vector(blinds, table.shape[0], "opening blinds"))


def opens(commitment: Commitment, opening: Opening, key: CommitKey = DEFAULT_KEY) -> bool:
    """Whether ``opening`` (table and row blinds) opens ``commitment``, checked on a random combination
    of the rows (``sum_i rho_i C_i = Com(sum_i rho_i T_i; sum_i rho_i b_i)``: one MSM of the row width
    instead of committing every row again; a wrong row passes with probability ``1/r``)."""
    rows = len(commitment.rows)
    if opening.table.shape[0] != rows or len(opening.blinds) != rows or \
            opening.table.shape[1] != 1 << commitment.col_vars:
        return False
    rho = field.random(rows)
    combined = CPU.vecmat(rho, opening.table)
    blind = field.inner(rho, opening.blinds)
    lhs = group.msm(list(commitment.rows), rho)
    return lhs == group.msm(key.g(len(combined)) + [key.H], np.concatenate([combined, blind[None]]))


def derive(values, coeff: int, terms, const: int, ones: Point, col_vars: int,
           device: Device = CPU) -> tuple[Commitment, Opening]:
    """Commit to ``values`` (the tensor ``D``) by the linear relation ``coeff D + sum_j c_j T_j = const``
    (entrywise) over tensors ``T_j`` already committed, instead of an MSM over its entries:
    ``C_D = coeff^-1 (const ONES - sum_j c_j C_j)`` row by row, and the blinds alike (``terms``:
    ``(c_j, Commitment, Opening)`` in the layout of ``D``: ``2^col_vars`` columns; ``ones``: the row
    commitment of ones, blind 0). A few point operations per row, whatever the row's width.

    The relation then holds on the commitments with blind 0. Binding fixes ``D``'s table as the one
    the relation implies: an honest witness's ``values``, whose claims open; other values do not."""
    table, _, m, c = _layout(values, col_vars, device)
    rows = table.shape[0]
    for _, term, term_opening in terms:
        if (term.num_vars, term.col_vars) != (m, c) or len(term_opening.blinds) != rows:
            raise ValueError(f"derive: a term of {term.num_vars} variables and {term.col_vars} column variables "
                             f"in a relation over {m} and {c}")
    if coeff % field.R == 0:
        raise ValueError("derive: the derived tensor's coefficient is 0 modulo r")
    scale = pow(coeff, -1, field.R)
    com = Commitment.combine([-cj for cj, _, _ in terms] + [const],
                             [term for _, term, _ in terms] + [Commitment(m, (ones,) * rows, c)])
    blinds = field.zeros(rows)
    for cj, _, term_opening in terms:
        blinds = field.sub(blinds, field.mul(field.from_int(cj), term_opening.blinds))
    if scale != 1:
        com = Commitment.combine([scale], [com])
        blinds = field.mul(field.from_int(scale), blinds)
    return com, Opening(table, blinds)


def commit_scalars(values, key: CommitKey = DEFAULT_KEY, *, blinds=None) -> tuple[list[Point], np.ndarray]:
    """Pedersen commitments ``v_k * U + r_k * H`` to field elements (an ``(n, 4)`` array or ints); returns (points, blinds)."""
    v = _field_vector(values, len(values), "commit_scalars")
    r = field.random(len(v)) if blinds is None else _field_vector(blinds, len(v), "commit_scalars blinds")
    vu = _fixed_base(key.label + b"/U").mul(v)
    rh = _fixed_base(key.label + b"/H").mul(r)
    return [a + b for a, b in zip(vu, rh)], r


def commit_scalar(value, key: CommitKey = DEFAULT_KEY, *, blind=None) -> tuple[Point, np.ndarray]:
    """``v * U + r * H`` for one value; returns (point, blind)."""
    points, r = commit_scalars(_scalar(value)[None], key, blinds=None if blind is None else _scalar(blind)[None])
    return points[0], r[0]


def _point_tables(point, num_vars: int, col_vars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, L, R)``: the point as a field array and its row and column eq tables."""
    x = _field_vector(point, num_vars, "evaluation point")
    m_row, _ = split_vars(num_vars, col_vars)
    return x, mle.eq_table(x[:m_row]), mle.eq_table(x[m_row:])


def evaluate(opening: Opening, point, device: Device = CPU) -> np.ndarray:
    """``T~(point)``, one field element (the row combination computed on ``device``)."""
    _, left, right = _point_tables(point, opening.num_vars, opening.col_vars)
    return field.inner(_row_combination(opening, left, device), right)


def _row_combination(opening: Opening, left: np.ndarray, device: Device) -> np.ndarray:
    """``t = L^T T`` (computed on ``device``, returned to the host)."""
    return device.vecmat(left, opening.table)


@dataclass(frozen=True)
class EvalProof:
    """Inner-product argument messages: round points ``L``, ``R``, Schnorr point ``A``, responses ``z1``, ``z2``."""

    L: tuple[Point, ...]
    R: tuple[Point, ...]
    A: Point
    z1: np.ndarray
    z2: np.ndarray

    def to_bytes(self) -> bytes:
        """``version || rounds k (1 byte) || L_1..L_k || R_1..R_k || A (48 bytes each) || z1 || z2 (32 bytes each)``."""
        head = bytes([_PROOF_VERSION, len(self.L)])
        return head + group.points_to_bytes((*self.L, *self.R, self.A)) + field.to_bytes(np.stack([self.z1, self.z2]))

    @classmethod
    def from_bytes(cls, data) -> EvalProof:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 2:
            raise ProofFormatError("eval proof: expected at least 2 bytes")
        data = bytes(data)
        if data[0] != _PROOF_VERSION:
            raise ProofFormatError(f"eval proof: unknown version {data[0]}")
        k = data[1]
        if k > MAX_VARS:
            raise ProofFormatError(f"eval proof: {k} rounds exceed the maximum {MAX_VARS}")
        npts = 2 * k + 1
        if len(data) != 2 + 48 * npts + 64:
            raise ProofFormatError(f"eval proof: {k} rounds need {2 + 48 * npts + 64} bytes, got {len(data)}")
        pts = group.points_from_bytes(data[2:2 + 48 * npts], npts)
        try:
            z = field.from_bytes(data[2 + 48 * npts:], 2)
        except ValueError as exc:
            raise ProofFormatError(f"eval proof: {exc}") from None
        return cls(tuple(pts[:k]), tuple(pts[k:2 * k]), pts[2 * k], z[0], z[1])


def _absorb_statement(transcript: Transcript, commitment: Commitment, x: np.ndarray, value, value_commitment) -> None:
    transcript.absorb("hyrax/commitment", commitment.to_bytes())
    transcript.absorb_scalars("hyrax/point", x)
    if value_commitment is None:
        transcript.absorb_scalars("hyrax/value", value)
    else:
        transcript.absorb_point("hyrax/value-commitment", value_commitment)


#: Folded generators are kept as coefficients on the original ones (one MSM of ``n/2`` points
#: per round) until this few remain, then computed explicitly (``len`` MSMs of ``n/len`` points),
#: after which rounds are MSMs over the shrinking explicit vector.
_EXPLICIT_GENERATORS = 32


class RowClaim(NamedTuple):
    """The prover's side of a claim ``T~(x) = v`` once its statement is absorbed: the row
    combination ``t = L^T T`` and its blind, the column eq table ``R`` (``v = <t, R>``), ``v`` and
    its commitment's blind (0 for a public value)."""

    x: np.ndarray
    row: np.ndarray
    row_blind: np.ndarray
    right: np.ndarray
    value: np.ndarray
    value_blind: np.ndarray


def claim_eval(opening: Opening, commitment: Commitment, point, transcript: Transcript, key: CommitKey = DEFAULT_KEY,
               value_blind=None, device: Device = CPU) -> RowClaim:
    """Absorb the statement of ``T~(point) = v`` (step 1 up to ``xi``) and return its :class:`RowClaim`;
    ``v`` is public (``value_blind=None``) or sent as ``commit_scalar(v, key, blind=value_blind)``."""
    if (commitment.num_vars, commitment.col_vars) != (opening.num_vars, opening.col_vars):
        raise ValueError(f"prove_eval: opening has layout {opening.num_vars}/{opening.col_vars} variables, "
                         f"commitment {commitment.num_vars}/{commitment.col_vars}")
    x, left, right = _point_tables(point, opening.num_vars, opening.col_vars)
    row = _row_combination(opening, left, device)
    value = field.inner(row, right)
    if value_blind is None:
        _absorb_statement(transcript, commitment, x, value, None)
        value_blind = field.ZERO
    else:
        value_blind = _scalar(value_blind)
        _absorb_statement(transcript, commitment, x, None, commit_scalar(value, key, blind=value_blind)[0])
    return RowClaim(x, row, field.inner(left, opening.blinds), right, value, value_blind)


def prove_eval(opening: Opening, commitment: Commitment, point, transcript: Transcript,
               key: CommitKey = DEFAULT_KEY, *, value_blind=None, device: Device = CPU) -> EvalProof:
    """Prove ``T~(point) = v`` for the table of ``opening`` / ``commitment`` (the row combination
    and the MSMs over the key's generators on ``device``).

    With ``value_blind=None`` the value ``v`` is public (the verifier gets ``evaluate(opening, point)``);
    otherwise the verifier gets ``C_v = commit_scalar(v, key, blind=value_blind)[0]``.
    """
    claim = claim_eval(opening, commitment, point, transcript, key, value_blind, device)
    return prove_inner_product(claim.row, claim.right, claim.row_blind, claim.value_blind, transcript, key, device)


def prove_inner_product(a: np.ndarray, b: np.ndarray, blind: np.ndarray, value_blind: np.ndarray,
                        transcript: Transcript, key: CommitKey = DEFAULT_KEY, device: Device = CPU) -> EvalProof:
    """Steps 1 (from ``xi``) to 3 of the opening protocol: knowledge of ``a`` with
    ``C' = <a, G> + blind H`` and ``C_v = <a, b> U + value_blind H`` (``b`` public; the statement
    already absorbed by the caller)."""
    xi = transcript.challenge_scalar("hyrax/xi")
    rho = field.add(blind, field.mul(xi, value_blind))
    n = a.shape[0]
    base_u, base_h = _fixed_base(key.label + b"/U"), _fixed_base(key.label + b"/H")
    # The current generator k is sum_i coef[i] * g[i] over i = k mod len(a), where g is the key's
    # generators (by index, on the device) until few remain, then explicit points.
    g: np.ndarray | list = np.arange(n)
    coef = field.ones(n)

    def msms(jobs):  # sum_k scalars[k] g[index[k]] per job (index, scalars)
        if isinstance(g, list):
            return group.msm_many([([g[i] for i in idx.tolist()], sc) for idx, sc in jobs])
        return device.generator_msms(key, [(g[idx], sc) for idx, sc in jobs])

    ls, rs = [], []
    while len(a) > 1:
        if len(g) > len(a) and len(a) <= _EXPLICIT_GENERATORS:
            # the folded generators are now few: compute them once, then fold explicit points
            blocks = np.arange(len(g)).reshape(-1, len(a))
            cblocks = coef.reshape(-1, len(a), 4)
            g = msms([(blocks[:, k], cblocks[:, k]) for k in range(len(a))])
            coef = field.ones(len(a))
        h = len(a) // 2
        cg = coef.reshape(-1, 2, h, 4)  # [block, half, k]: original index (2 block + half) h + k
        gi = np.arange(len(g)).reshape(-1, 2, h)
        lr_blinds = field.random(2)
        # <a_half, G_other> + <a_half, b_other> U' + blind H for both halves
        halves = ((a[:h], b[h:], 1), (a[h:], b[:h], 0))
        cross = np.stack([field.mul(xi, field.inner(a_half, b_other)) for a_half, b_other, _ in halves])
        parts = msms([(gi[:, other].reshape(-1), field.mul(cg[:, other], a_half[None]).reshape(-1, 4))
                      for a_half, _, other in halves])
        left, right = (p + cu + bh for p, cu, bh in zip(parts, base_u.mul(cross), base_h.mul(lr_blinds)))
        ls.append(left)
        rs.append(right)
        transcript.absorb_point("hyrax/L", ls[-1])
        transcript.absorb_point("hyrax/R", rs[-1])
        u = transcript.challenge_scalar("hyrax/u")
        u_inv = field.inv(u)
        rho = field.add(rho, field.add(field.mul(field.square(u), lr_blinds[0]),
                                       field.mul(field.square(u_inv), lr_blinds[1])))
        a = field.add(field.mul(u, a[:h]), field.mul(u_inv, a[h:]))
        b = field.add(field.mul(u_inv, b[:h]), field.mul(u, b[h:]))
        coef = field.mul(cg, np.stack([u_inv, u])[None, :, None, :]).reshape(-1, 4)

    g_final = msms([(np.arange(len(g)), coef)])[0]
    d, s = field.random(2)
    ub = field.mul(xi, b[0])
    big_a = group.msm([g_final, key.U, key.H], np.stack([d, field.mul(d, ub), s]))
    transcript.absorb_point("hyrax/A", big_a)
    c = transcript.challenge_scalar("hyrax/c")
    z1 = field.add(d, field.mul(c, a[0]))
    z2 = field.add(s, field.mul(c, rho))
    transcript.absorb_scalars("hyrax/z", np.stack([z1, z2]))
    return EvalProof(tuple(ls), tuple(rs), big_a, z1, z2)


class DeferredChecks:
    """Equations ``sum_i scalars_i * points_i = 0`` collected while verifying and checked at the
    end as one random linear combination (batch verification; the weights are the verifier's own
    randomness, so a false equation survives with probability 1/r). A failing batch is re-checked
    one equation at a time to name the failing check."""

    def __init__(self) -> None:
        self._checks: list[tuple[str, list, np.ndarray]] = []

    def add(self, what: str, points: list, scalars: np.ndarray) -> None:
        self._checks.append((what, points, scalars))

    def __len__(self) -> int:
        return len(self._checks)

    def scoped(self, prefix: str) -> "_ScopedChecks":
        """A view whose equations join these ones, their failure messages prefixed with ``prefix``
        (e.g. ``"proof 3 of 8: "`` when one batch checks several proofs)."""
        return _ScopedChecks(self, prefix)

    def run(self) -> None:
        """Check every equation added so far (VerificationError naming a failing one), then forget them."""
        checks, self._checks = self._checks, []
        if not checks:
            return
        weights = field.random(len(checks))
        # a point object that recurs (the key's generators, U, H in every opening) is one MSM term
        slot: dict[int, int] = {}
        points, index = [], []
        for _, pts, _ in checks:
            for p in pts:
                k = slot.setdefault(id(p), len(points))
                if k == len(points):
                    points.append(p)
                index.append(k)
        scalars = np.concatenate([field.mul(w, sc) for w, (_, _, sc) in zip(weights, checks)])
        if group.msm(points, field.scatter_add(index, scalars, len(points))) == group.identity():
            return
        for what, pts, sc in checks:
            if group.msm(pts, sc) != group.identity():
                raise VerificationError(what)
        raise VerificationError("batched verification equations do not hold")


@dataclass(frozen=True)
class _ScopedChecks:
    parent: DeferredChecks
    prefix: str

    def add(self, what: str, points: list, scalars: np.ndarray) -> None:
        self.parent.add(self.prefix + what, points, scalars)


def absorb_claim(commitment: Commitment, point, value, transcript: Transcript) -> tuple:
    """The verifier's side of :func:`claim_eval`: absorb the statement; ``(x, L, R, value)`` with
    ``value`` a :data:`Point` ``C_v`` or the public value as a field element. VerificationError for
    a malformed statement."""
    if not isinstance(commitment, Commitment):
        raise VerificationError("eval: expected a Commitment, a point, a value and an EvalProof")
    try:
        x, left, right = _point_tables(point, commitment.num_vars, commitment.col_vars)
        value = value if isinstance(value, Point) else _scalar(value)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"eval: bad evaluation point or value ({exc})") from None
    committed = isinstance(value, Point)
    _absorb_statement(transcript, commitment, x, None if committed else value, value if committed else None)
    return x, left, right, value


def verify_eval(commitment: Commitment, point, value, proof: EvalProof, transcript: Transcript,
                key: CommitKey = DEFAULT_KEY, checks: DeferredChecks | None = None) -> None:
    """Check ``proof`` that the committed table evaluates at ``point`` to ``value``.

    ``value`` is the public value (an int or field element) or a :data:`Point` ``C_v = v U + r_v H``.
    Raises :class:`zk.errors.VerificationError` naming the failed check; with ``checks`` the
    final multi-scalar equation is added there instead of being checked now.
    """
    _, left, right, value = absorb_claim(commitment, point, value, transcript)
    points, scalars = inner_product_equation(proof, right, list(commitment.rows), left, value, transcript, key)
    if checks is not None:
        checks.add("eval: inner-product argument check failed", points, scalars)
    elif group.msm(points, scalars) != group.identity():
        raise VerificationError("eval: inner-product argument check failed")


def inner_product_equation(proof: EvalProof, b: np.ndarray, points: list, scalars: np.ndarray, value,
                           transcript: Transcript, key: CommitKey = DEFAULT_KEY) -> tuple[list, np.ndarray]:
    """The verifier's side of :func:`prove_inner_product`: the multi-scalar equation (points and
    scalars summing to the identity) that holds iff ``proof`` shows ``<a, b> = v`` for the vector
    ``a`` committed by ``C' = sum_i scalars_i points_i``, ``value`` being ``C_v`` (a
    :data:`Point`) or the public ``v``. VerificationError for a proof of the wrong length."""
    if not isinstance(proof, EvalProof):
        raise VerificationError("eval: expected an EvalProof")
    m_col = b.shape[0].bit_length() - 1
    k = len(proof.L)
    if k != m_col or len(proof.R) != m_col:
        raise VerificationError(f"eval: proof has {k} L and {len(proof.R)} R round points, the commitment "
                                f"needs {m_col} of each")
    xi = transcript.challenge_scalar("hyrax/xi")
    us = []
    for lp, rp in zip(proof.L, proof.R):
        transcript.absorb_point("hyrax/L", lp)
        transcript.absorb_point("hyrax/R", rp)
        us.append(transcript.challenge_scalar("hyrax/u"))
    transcript.absorb_point("hyrax/A", proof.A)
    c = transcript.challenge_scalar("hyrax/c")
    transcript.absorb_scalars("hyrax/z", np.stack([proof.z1, proof.z2]))

    us = np.stack(us) if us else field.zeros(0)
    if field.equal(us, field.ZERO).any():
        raise VerificationError("eval: zero folding challenge")
    us_inv = field.inv(us) if k else us
    s = _tensor_table(np.stack([us_inv, us], axis=1))
    neg_c = field.neg(c)
    # z1 (G_f + b_f xi U) + z2 H - A - c (C' + xi C_v + sum_j u_j^2 L_j + u_j^-2 R_j) = 0, as one MSM,
    # with G_f = sum_i s_i G_i and b_f = <s, b>.
    u_coeff = field.mul(field.mul(proof.z1, field.inner(s, b)), xi)
    if isinstance(value, Point):
        value_terms = [value], field.mul(neg_c, xi)[None]
    else:
        u_coeff = field.add(u_coeff, field.mul(field.mul(neg_c, xi), value))
        value_terms = [], field.zeros(0)
    points_ = [*key.g(len(s)), *points, *proof.L, *proof.R, key.U, key.H, proof.A, *value_terms[0]]
    scalars_ = np.concatenate([
        field.mul(proof.z1, s), field.mul(neg_c, scalars),
        field.mul(neg_c, field.square(us)), field.mul(neg_c, field.square(us_inv)),
        np.stack([u_coeff, proof.z2, field.neg(field.ONE)]), value_terms[1],
    ])
    return points_, scalars_
