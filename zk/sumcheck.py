"""Sumcheck for a sum of products of multilinear polynomials: the prover.

Relation. For MLE tables ``P_0, ..., P_{k-1}`` on ``m`` variables (``zk.mle`` convention) and
*terms* ``(c_t, (j_1, ..., j_l))`` (a coefficient and indices into the tables; an index may repeat),

    claim = sum_{x in {0,1}^m} sum_t c_t * prod_{j in term t} P_j(x).

The degree ``d`` of the summand in each variable is the longest term (at least 1); the verifier
fixes it and rejects round polynomials of another degree.

Protocol. Variables are bound in order, variable 0 (the most significant index bit) first. In
round ``i`` the prover sends the round polynomial

    g_i(X) = sum_{x in {0,1}^(m-i-1)} sum_t c_t prod_j P_j(r_0, ..., r_{i-1}, X, x)

as its evaluations ``g_i(0), g_i(1), ..., g_i(d)`` (``d + 1`` field elements). The verifier checks
``g_i(0) + g_i(1) = claim_i``, draws ``r_i`` and sets ``claim_{i+1} = g_i(r_i)`` (Lagrange
interpolation, :func:`interpolate`). It ends with the point ``r`` and the value ``claim_m``, which
must equal ``sum_t c_t prod_j P_j(r)`` at evaluations it trusts (commitment openings).

This module computes the messages: :class:`SumcheckProver` (and :class:`EqSumcheckProver`, for an
``eq(u, .)`` factor) one round at a time, :meth:`~SumcheckProver.round_polynomial` then
:meth:`~SumcheckProver.bind`. Every proof sends them through :mod:`zk.zksumcheck`, which commits to
each evaluation and holds the verifier. :func:`prove` runs the protocol with the messages in the
clear (transcript labels ``"sumcheck/round"`` and ``"sumcheck/challenge"``): the reference the
tests and ``benchmarks/bench_field.py`` drive.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from numba import prange

from . import field, mle
from .field import ONE, R, add_mod, kernel, load, mont_mul, store, sub_mod
from .transcript import Transcript

__all__ = ["SumcheckProver", "EqSumcheckProver", "SumcheckResult", "check_terms", "prove", "lagrange_basis",
           "interpolate"]


class SumcheckResult(NamedTuple):
    """What the prover produces: messages ``(m, d+1, 4)``, the point ``r`` ``(m, 4)``, and
    ``finals`` ``(k, 4)``: every table's MLE evaluated at ``r``."""

    messages: np.ndarray
    point: np.ndarray
    finals: np.ndarray


@kernel
def _round_kernel(tables, n, weights, factors, counts, coeffs, width, skip, chunks, out):
    """Evaluations at ``X = 0..width-1`` (``skip``: at ``X = 0, 2, ..., width``) of ``sum_t coeffs[t]
    sum_{i < n/2} w_i prod_l P_{factors[t, l]}(X; i)`` over the current (size ``n``) ``tables``, with
    ``P(X; i) = P[i] + X (P[i + n/2] - P[i])`` and ``w_i = weights[i]`` (1 if ``weights`` is empty).
    """
    k = len(tables)
    half = n // 2
    terms = factors.shape[0]
    weighted = weights.shape[0] > 0
    part = np.zeros((chunks * terms * width, 4), dtype=np.uint64)
    step = (half + chunks - 1) // chunks
    one = (ONE[0], ONE[1], ONE[2], ONE[3])
    z = np.uint64(0)
    for c in prange(chunks):
        ev = np.empty((k * width, 4), dtype=np.uint64)  # ev[f * width + X] = P_f(X; i)
        for i in range(c * step, min(half, (c + 1) * step)):
            for f in range(k):
                low = load(tables[f], i)
                slope = sub_mod(load(tables[f], i + half), low)
                store(ev, f * width, low)
                if skip:
                    low = add_mod(low, slope)
                for x in range(1, width):
                    low = add_mod(low, slope)
                    store(ev, f * width + x, low)
            w = load(weights, i) if weighted else one
            for t in range(terms):
                for x in range(width):
                    p = w if counts[t] == 0 else load(ev, factors[t, 0] * width + x)
                    for l in range(1, counts[t]):
                        p = mont_mul(p, load(ev, factors[t, l] * width + x))
                    if weighted and counts[t] > 0:
                        p = mont_mul(p, w)
                    slot = (c * terms + t) * width + x
                    store(part, slot, add_mod(load(part, slot), p))
    for x in range(width):
        acc = (z, z, z, z)
        for t in range(terms):
            s = load(part, t * width + x)
            for c in range(1, chunks):
                s = add_mod(s, load(part, (c * terms + t) * width + x))
            acc = add_mod(acc, mont_mul(load(coeffs, t), s))
        store(out, x, acc)


_NO_WEIGHTS = np.zeros((0, 4), dtype=np.uint64)


def _coefficient(c) -> np.ndarray:
    return field.from_int(c) if isinstance(c, (int, np.integer)) else field.asarray(c, "term coefficient").reshape(4)


def check_terms(terms: Sequence[tuple], k: int) -> tuple[int, np.ndarray]:
    """Validate ``(coefficient, table indices)`` terms over ``k`` tables: ``(degree, coefficients)``,
    the degree being the longest term (at least 1) and the coefficients a field array ``(terms, 4)``."""
    if not terms:
        raise ValueError("sumcheck: no terms")
    for t, (_, idx) in enumerate(terms):
        for j in idx:
            if not 0 <= j < k:
                raise ValueError(f"sumcheck: term {t} refers to table {j}, but there are {k} tables")
    degree = max(1, *(len(idx) for _, idx in terms))
    return degree, np.array([_coefficient(c) for c, _ in terms], dtype=np.uint64)


#: Pairs of entries an integer table's first round expands at a time.
INTEGER_CHUNK = 1 << 18


def _is_integer(t) -> bool:
    return isinstance(t, np.ndarray) and t.ndim == 1 and field.is_integers(t)


class SumcheckProver:
    """Prover state for ``sum_x sum_t c_t prod_j P_j(x)``: the tables, bound one variable per round.

    ``tables``: a sequence of MLE tables (field arrays ``(2^m, 4)``, all the same size) or one
    ``(k, 2^m, 4)`` array; they are never modified (the first :meth:`bind` folds them into new
    arrays of half the size, later ones fold those in place), unless ``consume``: the caller hands
    them over and every bind folds in place. A table may also be integers ``(2^m,)`` (small
    integers or int64, e.g. a committed tensor and a 0/1 mask): the first round and the first
    bind then read them in chunks of :data:`INTEGER_CHUNK` pairs, expanded as they go, so the full
    table is never held as field elements (the bound one has half the entries). ``terms``:
    ``(coefficient, indices)`` pairs. Per round call :meth:`round_polynomial`, then :meth:`bind`
    with the challenge.
    """

    def __init__(self, tables, terms: Sequence[tuple], *, consume: bool = False) -> None:
        tables = [t if _is_integer(t) else field.asarray(t, "table") for t in tables]
        self._integer = any(_is_integer(t) for t in tables)
        sizes = {(len(t), t.ndim - (not _is_integer(t))) for t in tables}
        n = len(tables[0])
        if len(sizes) != 1 or sizes != {(n, 1)} or not n or n & (n - 1):
            raise ValueError("sumcheck: expected tables of one shape (2^m, 4) (or integers (2^m,)), got shapes "
                             f"{sorted({t.shape for t in tables})}")
        # the kernel takes the tables as one tuple of a single array type: read-only ones are copied
        self._tables = tuple(t if _is_integer(t) else np.ascontiguousarray(t) if t.flags.writeable else np.array(t)
                             for t in tables)
        self._owned = consume  # the tables are the caller's until the first bind, unless handed over
        self.degree, self._coeffs = check_terms(terms, len(tables))
        counts = [len(idx) for _, idx in terms]
        self._factors = np.zeros((len(terms), self.degree), dtype=np.int64)
        for t, (_, idx) in enumerate(terms):
            self._factors[t, :len(idx)] = idx
        self._counts = np.array(counts, dtype=np.int64)
        self._n = n
        self.num_vars = n.bit_length() - 1

    def evaluate(self, width: int, weights: np.ndarray = _NO_WEIGHTS, skip: bool = False) -> np.ndarray:
        """``(width, 4)``: at ``X = 0..width-1`` (``skip``: ``X = 0, 2, ..., width``),
        ``sum_{x'} w(x') sum_t c_t prod_j P_j(r, X, x')`` over the unbound variables ``x'`` after the
        current one (``w`` = 1, or the table ``weights``)."""
        if self._n < 2:
            raise ValueError("sumcheck: every variable is already bound")
        if not self._integer:
            return self._evaluate(self._tables, self._n, width, weights, skip)
        out, half = field.zeros(width), self._n // 2
        for lo in range(0, half, INTEGER_CHUNK):
            hi = min(half, lo + INTEGER_CHUNK)
            chunk = tuple(self._pairs(t, lo, hi) for t in self._tables)
            out = field.add(out, self._evaluate(chunk, 2 * (hi - lo), width, weights[lo:hi] if len(weights) else weights,
                                                skip))
        return out

    def _evaluate(self, tables, n: int, width: int, weights, skip: bool) -> np.ndarray:
        out = np.empty((width, 4), dtype=np.uint64)
        _round_kernel[n * len(tables)](tables, n, weights, self._factors, self._counts, self._coeffs, width, skip,
                                       field.parallel_chunks(n // 2, 1024), out)
        return out

    def _pairs(self, table, lo: int, hi: int) -> np.ndarray:
        """Entries ``lo:hi`` of both halves of ``table``, one field table (a chunk of the pairs the
        first round combines)."""
        half = self._n // 2
        both = np.concatenate([table[lo:hi], table[half + lo:half + hi]])
        return field.from_int(both) if _is_integer(table) else both

    def round_polynomial(self) -> np.ndarray:
        """Evaluations ``(d+1, 4)`` of the current round polynomial at ``0, 1, ..., d``."""
        return self.evaluate(self.degree + 1)

    def bind(self, challenge) -> None:
        """Fix the current first variable of every table to ``challenge`` (one field element)."""
        self._tables = tuple(self._bind_integers(t, challenge) if _is_integer(t) else
                             mle.fold(t, challenge, in_place=self._owned) for t in self._tables)
        self._owned, self._integer = True, False
        self._n //= 2

    def _bind_integers(self, table, challenge) -> np.ndarray:
        half = self._n // 2
        out = field.empty((half, 4))
        for lo in range(0, half, INTEGER_CHUNK):
            hi = min(half, lo + INTEGER_CHUNK)
            out[lo:hi] = mle.fold(self._pairs(table, lo, hi), challenge)
        return out

    def final_evaluations(self) -> np.ndarray:
        """Every table's MLE at the point bound so far, ``(k, 4)`` (all variables must be bound)."""
        if self._n != 1:
            raise ValueError(f"sumcheck: {self._n.bit_length() - 1} variables are still unbound")
        return np.stack([t[0] for t in self._tables])


class EqSumcheckProver:
    """Prover for ``sum_x eq(u, x) sum_t c_t prod_j P_j(x)`` that never builds the table of
    ``eq(u, .)``: its messages are those of :class:`SumcheckProver` with ``eq(u, .)`` as one more
    factor of every term, computed as (Gruen's factoring of eq)

        g_i(X) = eq(u_<i, r_<i) * eq(u_i, X) * h_i(X),
        h_i(X) = sum_{x'} eq(u_>i, x') sum_t c_t prod_j P_j(r_<i, X, x').

    ``h_i`` has one degree less than ``g_i``: the kernel evaluates it at ``0..deg h`` and one more
    value is extrapolated. The weights ``eq(u_>i, .)`` are one table of half the size, which each
    round halves by adding its halves (``eq(u, 0) + eq(u, 1) = 1``).

    Given the ``claim`` (the sum itself), the prover tracks each round's claim and evaluates ``h_i``
    at one point fewer: ``g_i(0) + g_i(1) = claim_i`` gives ``h_i(1)`` from ``h_i(0)``.
    """

    def __init__(self, point, tables, terms: Sequence[tuple], claim=None, *, consume: bool = False) -> None:
        self._inner = SumcheckProver(tables, terms, consume=consume)
        self._u = [int(v) for v in field.to_int(field.asarray(point, "eq point").reshape(-1, 4))]
        if len(self._u) != self._inner.num_vars:
            raise ValueError(f"sumcheck: eq point has {len(self._u)} coordinates, the tables {self._inner.num_vars} variables")
        self.num_vars = self._inner.num_vars
        self.degree = 1 + max(len(idx) for _, idx in terms)  # h has degree max(len), the eq factor one
        self._prefix = 1  # eq(u_<i, r_<i)
        self._round = 0
        self._weights = mle.eq_table(field.from_int(self._u[1:])) if self._u else None
        self._claim = None if claim is None else field.to_int(field.asarray(claim, "claim").reshape(4))
        self._g: list[int] = []

    def round_polynomial(self) -> np.ndarray:
        u = self._u[self._round]
        if self._claim is not None and u and self._prefix and self.degree >= 2:
            h = [int(v) for v in field.to_int(self._inner.evaluate(self.degree - 1, self._weights, skip=True))]
            h1 = (self._claim * pow(self._prefix, -1, R) - (1 - u) * h[0]) * pow(u, -1, R) % R
            h.insert(1, h1)
        else:
            h = [int(v) for v in field.to_int(self._inner.evaluate(self.degree, self._weights))]
        h.append(interpolate(h, len(h)))
        self._g = [self._prefix * ((1 - u) * (1 - x) + u * x) * hx % R for x, hx in enumerate(h)]
        return field.from_int(self._g)

    def bind(self, challenge) -> None:
        u, r = self._u[self._round], field.to_int(field.asarray(challenge, "challenge").reshape(4))
        if self._claim is not None:
            self._claim = interpolate(self._g, r) if self._g else None
        self._prefix = self._prefix * ((1 - u) * (1 - r) + u * r) % R
        self._inner.bind(challenge)
        half = len(self._weights) // 2
        if half:  # in place: the weights are this prover's own
            self._weights = field.add(self._weights[:half], self._weights[half:], out=self._weights[:half])
        self._round += 1

    def final_evaluations(self) -> np.ndarray:
        """Every table's MLE at the bound point (``eq`` not included)."""
        return self._inner.final_evaluations()


def prove(tables, terms: Sequence[tuple], transcript: Transcript) -> SumcheckResult:
    """Run the plain (non-zero-knowledge) sumcheck of ``sum_x sum_t c_t prod_j P_j(x)`` (see the
    module docstring); the claim is not an input: it is ``g_0(0) + g_0(1)``."""
    prover = SumcheckProver(tables, terms)
    messages = np.empty((prover.num_vars, prover.degree + 1, 4), dtype=np.uint64)
    point = np.empty((prover.num_vars, 4), dtype=np.uint64)
    for i in range(prover.num_vars):
        messages[i] = prover.round_polynomial()
        transcript.absorb_scalars("sumcheck/round", messages[i])
        point[i] = transcript.challenge_scalar("sumcheck/challenge")
        prover.bind(point[i])
    return SumcheckResult(messages, point, prover.final_evaluations())


def lagrange_basis(degree: int, x: int) -> list[int]:
    """``lambda_k(x) mod r`` for the nodes ``0..degree``: ``g(x) = sum_k lambda_k(x) g(k)`` for
    every polynomial ``g`` of degree at most ``degree``."""
    nodes = range(degree + 1)
    out = []
    for k in nodes:
        num, den = 1, 1
        for j in nodes:
            if j != k:
                num = num * (x - j) % R
                den = den * (k - j) % R
        out.append(num * pow(den, -1, R) % R)
    return out


def interpolate(evaluations: Sequence[int], x: int) -> int:
    """``g(x) mod r`` for the polynomial of degree ``< len(evaluations)`` with ``g(i) = evaluations[i]``."""
    return sum(lam * y for lam, y in zip(lagrange_basis(len(evaluations) - 1, x), evaluations)) % R
