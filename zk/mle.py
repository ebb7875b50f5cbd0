"""Multilinear extensions (MLEs) of tensors over Fr.

Convention
----------
A tensor with dims ``(d_1, ..., d_k)`` is zero-padded to ``(2^b_1, ..., 2^b_k)`` with
``b_i = ceil(log2 d_i)`` (:func:`dim_bits`) and flattened in C order into a *table* of ``2^m``
field elements, ``m = b_1 + ... + b_k``; tables are field arrays of shape ``(2^m, 4)``.
The MLE is the multilinear polynomial ``P(x_0, ..., x_{m-1})`` with ``P(bits(j)) = table[j]``,
where **variable 0 is the most significant bit** of the flattened index:
``j = sum_v x_v 2^(m-1-v)``. Hence the first ``b_1`` variables are the bits of the first index
(most significant first), the next ``b_2`` those of the second index, and so on: a point for a
tensor is the concatenation of one point per dimension, in dimension order. Explicitly

    P(x) = sum_j table[j] * eq(x, bits(j)),   eq(x, y) = prod_v (x_v y_v + (1 - x_v)(1 - y_v)).

Binding variable 0 to ``c`` (:func:`fold`) maps a table ``T`` of size ``n`` to
``T'[j] = T[j] + c (T[j + n/2] - T[j])`` for ``j < n/2``: the low half of the table is ``x_0 = 0``,
the high half ``x_0 = 1``. :func:`evaluate` folds once per coordinate of the point, in order.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from . import field
from .field import add_mod, kernel, load, mont_mul, store, sub_mod, times_int

__all__ = ["dim_bits", "pad_pow2", "table", "eq_table", "eq", "fold", "partial_eval", "evaluate"]


def dim_bits(shape) -> tuple[int, ...]:
    """Number of MLE variables of each dimension: ``ceil(log2 d)`` (0 for a dimension of size 1)."""
    shape = tuple(int(d) for d in shape)
    if any(d < 1 for d in shape):
        raise ValueError(f"dim_bits: every dimension must be >= 1, got shape {shape}")
    return tuple((d - 1).bit_length() for d in shape)


def _pad(arr: np.ndarray, dims: int) -> np.ndarray:
    """Zero-pad the first ``dims`` axes of ``arr`` to powers of two."""
    widths = [(0, (1 << b) - d) for b, d in zip(dim_bits(arr.shape[:dims]), arr.shape[:dims])]
    if not any(w for _, w in widths):
        return arr
    return np.pad(arr, widths + [(0, 0)] * (arr.ndim - dims))


def pad_pow2(tensor) -> np.ndarray:
    """An integer tensor zero-padded to a power of two along every dimension."""
    arr = np.asarray(tensor)
    return _pad(arr, arr.ndim)


def table(tensor) -> np.ndarray:
    """The MLE table ``(2^m, 4)`` of a tensor.

    ``tensor`` is either an integer tensor (numpy array of a signed or small unsigned integer dtype,
    object array of Python ints, torch integer tensor) or a field array (dtype ``uint64``, trailing
    limb axis of 4: the leading axes are the tensor's dimensions). ``uint64`` is reserved for field
    arrays.
    """
    arr = np.asarray(tensor)
    if arr.dtype == np.uint64:
        if arr.ndim == 0 or arr.shape[-1] != 4:
            raise TypeError(f"table: a uint64 array is a field array and needs a trailing axis of 4, got {arr.shape}")
        padded = _pad(arr, arr.ndim - 1)
    else:
        padded = field.from_int(pad_pow2(arr))
    return np.ascontiguousarray(padded).reshape(-1, 4)


def _num_vars(tab: np.ndarray, what: str) -> int:
    n = tab.shape[0]
    if tab.ndim != 2 or n < 1 or n & (n - 1):
        raise ValueError(f"{what}: a table has shape (2^m, 4), got {tab.shape}")
    return n.bit_length() - 1


@kernel
def _eq_kernel(point, out):
    """``out[j] = eq(point, bits(j))``; ``out[0]`` must hold 1 on entry.

    Coordinates are added last-to-first, each becoming the new most significant bit:
    ``new[j] = old[j] (1 - r)``, ``new[j + size] = old[j] r``.
    """
    size = 1
    for v in range(point.shape[0] - 1, -1, -1):
        r = load(point, v)
        for j in prange(size):
            x = load(out, j)
            high = mont_mul(x, r)
            store(out, j + size, high)
            store(out, j, sub_mod(x, high))
        size *= 2


def eq_table(point) -> np.ndarray:
    """Table of ``x -> eq(point, x)`` over ``{0,1}^m`` (``point``: field array ``(m, 4)``)."""
    point = np.ascontiguousarray(field.asarray(point, "point")).reshape(-1, 4)
    out = field.empty((1 << point.shape[0], 4))
    out[0] = field.ONE
    _eq_kernel[out.shape[0]](point, out)
    return out


@kernel
def _fold_kernel(tab, half, c, out):
    """``out[j] = tab[j] + c (tab[j + half] - tab[j])`` for ``j < half`` (``out`` may be ``tab``)."""
    r = load(c, 0)
    for j in prange(half):
        low = load(tab, j)
        store(out, j, add_mod(low, mont_mul(r, sub_mod(load(tab, j + half), low))))


def fold(tab, challenge, *, in_place: bool = True) -> np.ndarray:
    """Bind variable 0 of the MLE to ``challenge`` (one field element): the table of half the size.

    In place (the default) the result is a view on the first half of ``tab``, which is
    overwritten (a read-only or non-contiguous ``tab`` is copied first); otherwise it is a new
    array and ``tab`` is left as it was.
    """
    tab = field.asarray(tab, "table")
    m = _num_vars(tab, "fold")
    if m == 0:
        raise ValueError("fold: the table has no variable left to bind")
    if not (tab.flags.c_contiguous and (tab.flags.writeable or not in_place)):
        tab = np.array(tab)
    c = np.ascontiguousarray(field.asarray(challenge, "challenge")).reshape(1, 4)
    half = tab.shape[0] // 2
    out = tab if in_place else field.empty((half, 4))
    _fold_kernel[half](tab, half, c, out)
    return out[:half]


_BLOCK = 64


@kernel
def _partial_eval_kernel(tab, integer, weights, off_fixed, off_free, out):
    """``out[y] = sum_x weights[x] tab[off_fixed[x] + off_free[y]]``, in blocks of :data:`_BLOCK`
    outputs; an ``integer`` table's entries are integers and ``weights`` pre-scaled
    (:func:`zk.field.times_int`)."""
    n = off_free.shape[0]
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        acc = np.zeros((_BLOCK, 4), dtype=np.uint64)
        for x in range(off_fixed.shape[0]):
            w = load(weights, x)
            base = off_fixed[x]
            for y in range(lo, hi):
                if integer:
                    v = tab[base + off_free[y], 0]
                    if v == 0:
                        continue
                    p = times_int(w, v)
                else:
                    p = mont_mul(w, load(tab, base + off_free[y]))
                store(acc, y - lo, add_mod(load(acc, y - lo), p))
        for y in range(lo, hi):
            store(out, y, load(acc, y - lo))


def _offsets(num_vars: int, positions) -> np.ndarray:
    """Flat index offsets of every assignment of the variables ``positions``, the others 0, in the
    order of an index whose most significant bit is the first position's."""
    off = np.zeros(1, dtype=np.int64)
    for p in reversed(positions):
        off = np.concatenate([off, off + (1 << (num_vars - 1 - p))])
    return off


def partial_eval(tab, positions, values) -> np.ndarray:
    """Bind the variables ``positions`` of the MLE of ``tab`` to ``values`` (field array ``(k, 4)``):
    the table over the other variables, in their order. ``tab`` is a field table ``(2^m, 4)`` or
    integers ``(2^m,)`` (small integers or int64), read without expanding them."""
    tab = np.asarray(tab)
    integer = field.is_integers(tab)
    tab = np.ascontiguousarray(tab.reshape(-1, 1) if integer else field.asarray(tab, "table"))
    m = _num_vars(tab, "partial_eval")
    positions = [int(p) for p in positions]
    if sorted(set(positions)) != positions or any(not 0 <= p < m for p in positions):
        raise ValueError(f"partial_eval: positions must be increasing variables of {m}, got {positions}")
    values = field.asarray(values, "values").reshape(-1, 4)
    if len(values) != len(positions):
        raise ValueError(f"partial_eval: {len(positions)} positions but {len(values)} values")
    weights = eq_table(values)
    if integer:
        weights = field.int_scale(weights)
    free = [p for p in range(m) if p not in positions]
    out = field.empty((1 << len(free), 4))
    _partial_eval_kernel[tab.shape[0]](tab, integer, weights, _offsets(m, positions), _offsets(m, free), out)
    return out


@kernel
def _fraction_kernel(p, q, h, unit, out_p, out_q):
    """``out_q[j] = q[j] q[j + h]``, ``out_p[j] = p[j] q[j + h] + p[j + h] q[j]`` (``p = 1`` if ``unit``)."""
    for j in prange(h):
        c = load(q, j)
        d = load(q, j + h)
        if unit:
            store(out_p, j, add_mod(c, d))
        else:
            store(out_p, j, add_mod(mont_mul(load(p, j), d), mont_mul(load(p, j + h), c)))
        store(out_q, j, mont_mul(c, d))


def fraction_layer(p, q) -> tuple[np.ndarray, np.ndarray]:
    """The layer above fractions ``p / q`` (``p = None``: numerators 1) added pairwise, the child
    bit most significant: ``(p', q')`` with ``p'/q' = p(0, .)/q(0, .) + p(1, .)/q(1, .)``."""
    q = np.ascontiguousarray(field.asarray(q, "denominators"))
    h = q.shape[0] // 2
    unit = p is None
    p = q if unit else np.ascontiguousarray(field.asarray(p, "numerators"))
    if p.shape != q.shape or q.shape[0] != 2 * h or not h:
        raise ValueError(f"fraction_layer: expected numerators and denominators (2h, 4), got {p.shape}, {q.shape}")
    out_p, out_q = field.empty((h, 4)), field.empty((h, 4))
    _fraction_kernel[h](p, q, h, unit, out_p, out_q)
    return out_p, out_q


def evaluate(tab, point) -> np.ndarray:
    """The MLE of ``tab`` at ``point`` (field array ``(m, 4)``, ``2^m = len(tab)``): one element."""
    tab = field.asarray(tab, "table")
    point = field.asarray(point, "point").reshape(-1, 4)
    if _num_vars(tab, "evaluate") != point.shape[0]:
        raise ValueError(f"evaluate: table of size {tab.shape[0]} needs a point of {tab.shape[0].bit_length() - 1} coordinates, got {point.shape[0]}")
    work = np.array(tab)
    for r in point:
        work = fold(work, r)
    return work[0].copy()


def eq(u, r) -> np.ndarray:
    """``eq(u, r) = prod_v (u_v r_v + (1 - u_v)(1 - r_v))`` for two points of equal length."""
    u = field.asarray(u, "eq point u").reshape(-1, 4)
    r = field.asarray(r, "eq point r").reshape(-1, 4)
    if len(u) != len(r):
        raise ValueError(f"eq: points of lengths {len(u)} and {len(r)}")
    one = field.ONE
    terms = field.add(field.mul(u, r), field.mul(field.sub(one, u), field.sub(one, r)))
    out = field.ONE.copy()
    for term in terms:
        out = field.mul(out, term)
    return out
