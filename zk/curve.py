"""BLS12-381 G1 arithmetic in numba kernels, for commitments to integer rows.

``zk.group`` does its group arithmetic through arkworks. One kind of MSM dominates the prover,
though: a Hyrax commitment to an integer tensor (limbs of range checks, fixed-point values) is one
MSM per row over the same generators, with scalars far narrower than ``r``. Through the binding
such an MSM costs about 3 µs per entry whatever the entry's width (the points and scalars cross
into Rust one object at a time, and its windows span 255 bits). :func:`rows_msm` computes these
MSMs here instead, on the integers themselves: Pippenger's bucket method per row, with windows
sized to the widest entry and to the row width, all rows in parallel.

The base field Fp
-----------------
``p = 0x1a0111ea...ffffaaab`` (381 bits). An element is a 6-tuple of little-endian 64-bit limbs of
its Montgomery form ``x * 2^384 mod p``, fully reduced. Multiplication is CIOS with the "no-carry"
shortcut (the top limb of ``p`` is below ``2^63 - 1``), on ``zk.field``'s 128-bit intrinsics.

Points
------
Affine points travel as ``(n, 12)`` uint64 arrays (``x`` limbs, then ``y`` limbs, Montgomery form);
no input point may be the identity (:func:`affine_points` refuses it). Accumulators are XYZZ
coordinates ``(X, Y, ZZ, ZZZ)`` with ``x = X / ZZ``, ``y = Y / ZZZ``, ``ZZ^3 = ZZZ^2``; ``ZZ = 0`` is
the identity. The formulas are the Explicit-Formulas Database's for ``y^2 = x^3 + b``
("shortw-xyzz": madd-2008-s, add-2008-s, dbl-2008-s-1, mdbl-2008-s-1), with the exceptional cases
(an operand the identity, equal or opposite points) branched on, so every sum is exact.

Row MSMs
--------
For rows of ``W`` integers of at most ``b`` bits, windows of ``c`` bits (:func:`window_bits` picks
``c`` from ``b`` and ``W`` by the operation counts: a mixed addition is 10 multiplications, a bucket
costs 2 full additions of 14) and the shifted points ``2^(c w) G_j`` (:class:`RowBases`, made once
per point list and width), each nonzero digit ``d`` of ``|v_j|`` in window ``w`` adds
``sign(v_j) 2^(c w) G_j`` into bucket ``d`` (zero digits cost nothing), and the row is
``sum_d d B_d``: two running sums over the buckets used. One bucket reduction per row, no
doublings. Results leave as canonical affine coordinates (one batch inversion) and become arkworks
points through ``from_xy_bytes_unchecked_le``: they are sums of subgroup points.
"""
from __future__ import annotations

import builtins

import numpy as np
from numba import njit, prange

from .field import _adc, _mac, _sbb

__all__ = ["P", "affine_points", "RowBases", "rows_msm", "window_bits", "FixedBaseTable", "to_xy_bytes"]

#: The base field's order.
P = 0x1A0111EA397FE69A4B1BA7B6434BACD764774B84F38512BF6730D2A0F6B0F6241EABFFFEB153FFFFB9FEFFFFFFFFAAAB
_LIMBS = 6
_MASK64 = (1 << 64) - 1


def _limbs(x: int) -> tuple:
    return tuple(np.uint64((x >> (64 * k)) & _MASK64) for k in range(_LIMBS))


_P0, _P1, _P2, _P3, _P4, _P5 = _limbs(P)
_NP = np.uint64(-builtins.pow(P, -1, 1 << 64) % (1 << 64))  # -p^-1 mod 2^64
_Z = np.uint64(0)
_ZERO = (_Z,) * _LIMBS
_ONE = _limbs((1 << 384) % P)  # Montgomery form of 1
_RAW_ONE = (np.uint64(1),) + (_Z,) * (_LIMBS - 1)  # mont_mul(x, 1) leaves Montgomery form
_R2 = _limbs((1 << 768) % P)  # mont_mul(x, R^2) enters it
_INV_EXP = np.array(_limbs(P - 2), dtype=np.uint64)  # Fermat: x^(p-2) = 1/x
_IDENTITY = (_ONE, _ONE, _ZERO, _ZERO)


# --------------------------------------------------------------------------------------------
# Fp on 6-tuples of limbs
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _cios_step(t0, t1, t2, t3, t4, t5, a, bi):
    """One outer CIOS iteration: ``(t + a*bi + m*p) / 2^64`` with ``m`` making it exact."""
    t0, A = _mac(a[0], bi, t0, _Z)
    m = t0 * _NP
    _, C = _mac(m, _P0, t0, _Z)
    t1, A = _mac(a[1], bi, t1, A)
    t0, C = _mac(m, _P1, t1, C)
    t2, A = _mac(a[2], bi, t2, A)
    t1, C = _mac(m, _P2, t2, C)
    t3, A = _mac(a[3], bi, t3, A)
    t2, C = _mac(m, _P3, t3, C)
    t4, A = _mac(a[4], bi, t4, A)
    t3, C = _mac(m, _P4, t4, C)
    t5, A = _mac(a[5], bi, t5, A)
    t4, C = _mac(m, _P5, t5, C)
    return t0, t1, t2, t3, t4, C + A


@njit(cache=True)
def _reduce_once(t0, t1, t2, t3, t4, t5):
    """``t - p`` if ``t >= p`` else ``t`` (for ``t < 2p``)."""
    s0, b = _sbb(t0, _P0, _Z)
    s1, b = _sbb(t1, _P1, b)
    s2, b = _sbb(t2, _P2, b)
    s3, b = _sbb(t3, _P3, b)
    s4, b = _sbb(t4, _P4, b)
    s5, b = _sbb(t5, _P5, b)
    if b:
        return t0, t1, t2, t3, t4, t5
    return s0, s1, s2, s3, s4, s5


@njit(cache=True)
def fp_mul(a, b):
    """Montgomery product ``a * b / 2^384 mod p`` of reduced 6-tuples."""
    t = _cios_step(_Z, _Z, _Z, _Z, _Z, _Z, a, b[0])
    t = _cios_step(t[0], t[1], t[2], t[3], t[4], t[5], a, b[1])
    t = _cios_step(t[0], t[1], t[2], t[3], t[4], t[5], a, b[2])
    t = _cios_step(t[0], t[1], t[2], t[3], t[4], t[5], a, b[3])
    t = _cios_step(t[0], t[1], t[2], t[3], t[4], t[5], a, b[4])
    t = _cios_step(t[0], t[1], t[2], t[3], t[4], t[5], a, b[5])
    return _reduce_once(t[0], t[1], t[2], t[3], t[4], t[5])


@njit(cache=True)
def fp_add(a, b):
    """``a + b mod p`` (no carry out of 384 bits: ``a + b < 2p < 2^382``)."""
    s0, c = _adc(a[0], b[0], _Z)
    s1, c = _adc(a[1], b[1], c)
    s2, c = _adc(a[2], b[2], c)
    s3, c = _adc(a[3], b[3], c)
    s4, c = _adc(a[4], b[4], c)
    s5, c = _adc(a[5], b[5], c)
    return _reduce_once(s0, s1, s2, s3, s4, s5)


@njit(cache=True)
def fp_sub(a, b):
    """``a - b mod p``."""
    d0, w = _sbb(a[0], b[0], _Z)
    d1, w = _sbb(a[1], b[1], w)
    d2, w = _sbb(a[2], b[2], w)
    d3, w = _sbb(a[3], b[3], w)
    d4, w = _sbb(a[4], b[4], w)
    d5, w = _sbb(a[5], b[5], w)
    if w:
        d0, c = _adc(d0, _P0, _Z)
        d1, c = _adc(d1, _P1, c)
        d2, c = _adc(d2, _P2, c)
        d3, c = _adc(d3, _P3, c)
        d4, c = _adc(d4, _P4, c)
        d5, c = _adc(d5, _P5, c)
    return d0, d1, d2, d3, d4, d5


@njit(cache=True)
def _is_zero(a):
    return (a[0] | a[1] | a[2] | a[3] | a[4] | a[5]) == _Z


@njit(cache=True)
def _fp_inv(a):
    """``1 / a`` by Fermat (``a`` nonzero)."""
    acc = _ONE
    for k in range(_LIMBS - 1, -1, -1):
        for bit in range(63, -1, -1):
            acc = fp_mul(acc, acc)
            if (_INV_EXP[k] >> np.uint64(bit)) & np.uint64(1):
                acc = fp_mul(acc, a)
    return acc


@njit(cache=True)
def _load(arr, i, offset):
    return (arr[i, offset], arr[i, offset + 1], arr[i, offset + 2],
            arr[i, offset + 3], arr[i, offset + 4], arr[i, offset + 5])


@njit(cache=True)
def _store(arr, i, offset, x):
    for k in range(_LIMBS):
        arr[i, offset + k] = x[k]


# --------------------------------------------------------------------------------------------
# XYZZ points (a = 0)
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _double_affine(x, y):
    """``2 (x, y)`` (mdbl-2008-s-1)."""
    u = fp_add(y, y)
    v = fp_mul(u, u)
    w = fp_mul(u, v)
    s = fp_mul(x, v)
    xx = fp_mul(x, x)
    m = fp_add(fp_add(xx, xx), xx)
    x3 = fp_sub(fp_sub(fp_mul(m, m), s), s)
    y3 = fp_sub(fp_mul(m, fp_sub(s, x3)), fp_mul(w, y))
    return x3, y3, v, w


@njit(cache=True)
def _double(p):
    """``2 p`` (dbl-2008-s-1; the identity doubles to itself)."""
    X, Y, ZZ, ZZZ = p
    if _is_zero(ZZ):
        return p
    u = fp_add(Y, Y)
    v = fp_mul(u, u)
    w = fp_mul(u, v)
    s = fp_mul(X, v)
    xx = fp_mul(X, X)
    m = fp_add(fp_add(xx, xx), xx)
    x3 = fp_sub(fp_sub(fp_mul(m, m), s), s)
    y3 = fp_sub(fp_mul(m, fp_sub(s, x3)), fp_mul(w, Y))
    return x3, y3, fp_mul(v, ZZ), fp_mul(w, ZZZ)


@njit(cache=True)
def _add_affine(p, x2, y2):
    """``p + (x2, y2)`` for an affine point that is not the identity (madd-2008-s)."""
    X1, Y1, ZZ1, ZZZ1 = p
    if _is_zero(ZZ1):
        return x2, y2, _ONE, _ONE
    pp_ = fp_sub(fp_mul(x2, ZZ1), X1)
    r = fp_sub(fp_mul(y2, ZZZ1), Y1)
    if _is_zero(pp_):
        return _double_affine(x2, y2) if _is_zero(r) else _IDENTITY
    pp = fp_mul(pp_, pp_)
    ppp = fp_mul(pp_, pp)
    q = fp_mul(X1, pp)
    x3 = fp_sub(fp_sub(fp_sub(fp_mul(r, r), ppp), q), q)
    y3 = fp_sub(fp_mul(r, fp_sub(q, x3)), fp_mul(Y1, ppp))
    return x3, y3, fp_mul(ZZ1, pp), fp_mul(ZZZ1, ppp)


@njit(cache=True)
def _add(p, q):
    """``p + q`` (add-2008-s)."""
    X1, Y1, ZZ1, ZZZ1 = p
    X2, Y2, ZZ2, ZZZ2 = q
    if _is_zero(ZZ1):
        return q
    if _is_zero(ZZ2):
        return p
    u1 = fp_mul(X1, ZZ2)
    s1 = fp_mul(Y1, ZZZ2)
    pp_ = fp_sub(fp_mul(X2, ZZ1), u1)
    r = fp_sub(fp_mul(Y2, ZZZ1), s1)
    if _is_zero(pp_):
        return _double(p) if _is_zero(r) else _IDENTITY
    pp = fp_mul(pp_, pp_)
    ppp = fp_mul(pp_, pp)
    q_ = fp_mul(u1, pp)
    x3 = fp_sub(fp_sub(fp_sub(fp_mul(r, r), ppp), q_), q_)
    y3 = fp_sub(fp_mul(r, fp_sub(q_, x3)), fp_mul(s1, ppp))
    return x3, y3, fp_mul(fp_mul(ZZ1, ZZ2), pp), fp_mul(fp_mul(ZZZ1, ZZZ2), ppp)


@njit(cache=True)
def _load_point(arr, i):
    return _load(arr, i, 0), _load(arr, i, 6), _load(arr, i, 12), _load(arr, i, 18)


@njit(cache=True)
def _store_point(arr, i, p):
    _store(arr, i, 0, p[0])
    _store(arr, i, 6, p[1])
    _store(arr, i, 12, p[2])
    _store(arr, i, 18, p[3])


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _to_montgomery_kernel(raw, out):
    """Canonical coordinates ``(n, 12)`` -> Montgomery form."""
    for i in range(raw.shape[0]):
        _store(out, i, 0, fp_mul(_load(raw, i, 0), _R2))
        _store(out, i, 6, fp_mul(_load(raw, i, 6), _R2))


@njit(cache=True)
def _magnitude(v):
    """``|v|`` of an int64 as uint64 (exact at ``-2^63``)."""
    return np.uint64(v) if v >= 0 else np.uint64(-(v + 1)) + np.uint64(1)


@njit(cache=True)
def _row_msm(shifted, values, i, c, windows, buckets):
    """``sum_j values[i, j] * G_j`` as an XYZZ point from ``shifted[w, j] = 2^(c w) G_j``: every
    nonzero digit is one mixed addition into its bucket, then one bucket reduction."""
    mask = np.uint64((1 << c) - 1)
    top = 0
    for w in range(windows):
        points = shifted[w]
        shift = np.uint64(c * w)
        for j in range(values.shape[1]):
            v = values[i, j]
            if v == 0:
                continue
            d = np.int64((_magnitude(v) >> shift) & mask)
            if d == 0:
                continue
            if d > top:
                for e in range(top, d):  # buckets above the highest used so far start empty
                    for k in range(12, 24):
                        buckets[e, k] = _Z
                top = d
            y = _load(points, j, 6)
            if v < 0:
                y = fp_sub(_ZERO, y)
            _store_point(buckets, d - 1, _add_affine(_load_point(buckets, d - 1), _load(points, j, 0), y))
    running, total = _IDENTITY, _IDENTITY
    for e in range(top - 1, -1, -1):
        running = _add(running, _load_point(buckets, e))
        total = _add(total, running)
    return total


@njit(cache=True, parallel=True)
def _rows_kernel(shifted, values, c, windows, out):
    """``out[i]`` = row ``i``'s MSM (XYZZ) for every row, rows in parallel."""
    for i in prange(values.shape[0]):
        buckets = np.empty(((1 << c) - 1, 24), dtype=np.uint64)
        _store_point(out, i, _row_msm(shifted, values, i, c, windows, buckets))


@njit(cache=True, parallel=True)
def _shift_kernel(affine, c, out):
    """``out[j] = 2^c affine[j]`` (XYZZ)."""
    for j in prange(affine.shape[0]):
        p = _double_affine(_load(affine, j, 0), _load(affine, j, 6))
        for _ in range(c - 1):
            p = _double(p)
        _store_point(out, j, p)


@njit(cache=True)
def _to_affine_kernel(xyzz, canonical, out, identity):
    """XYZZ ``(k, 24)`` -> affine ``(k, 12)`` (canonical or Montgomery limbs) by one batch inversion
    of ``ZZ * ZZZ``; ``identity[i]`` marks the identity (its coordinates are left zero)."""
    k = xyzz.shape[0]
    prefix = np.empty((k, _LIMBS), dtype=np.uint64)
    acc = _ONE
    for i in range(k):
        zz, zzz = _load(xyzz, i, 12), _load(xyzz, i, 18)
        identity[i] = _is_zero(zz)
        if not identity[i]:
            acc = fp_mul(acc, fp_mul(zz, zzz))
        _store(prefix, i, 0, acc)
    inv = _fp_inv(acc)
    scale = _RAW_ONE if canonical else _ONE
    for i in range(k - 1, -1, -1):
        if identity[i]:
            for t in range(12):
                out[i, t] = _Z
            continue
        zz, zzz = _load(xyzz, i, 12), _load(xyzz, i, 18)
        before = _load(prefix, i - 1, 0) if i > 0 else _ONE
        d = fp_mul(inv, before)  # 1 / (zz * zzz)
        inv = fp_mul(inv, fp_mul(zz, zzz))
        x = fp_mul(_load(xyzz, i, 0), fp_mul(d, zzz))  # X / ZZ
        y = fp_mul(_load(xyzz, i, 6), fp_mul(d, zz))  # Y / ZZZ
        _store(out, i, 0, fp_mul(x, scale))
        _store(out, i, 6, fp_mul(y, scale))


@njit(cache=True)
def _fixed_table_kernel(x, y, out):
    """``out[255 w + d - 1] = d 256^w (x, y)`` (XYZZ) for ``w < 32``, ``1 <= d <= 255``."""
    for w in range(FIXED_WINDOWS):
        acc = _IDENTITY
        for d in range(255):
            acc = _add_affine(acc, x, y)
            _store_point(out, 255 * w + d, acc)
        X, Y, ZZ, ZZZ = _add_affine(acc, x, y)  # 256^(w+1) (x, y), then back to affine
        inv = _fp_inv(fp_mul(ZZ, ZZZ))
        x, y = fp_mul(X, fp_mul(inv, ZZZ)), fp_mul(Y, fp_mul(inv, ZZ))


@njit(cache=True, parallel=True)
def _fixed_mul_kernel(table, digits, out):
    """``out[i] = sum_w digits[i, w] 256^w P`` (XYZZ) from :func:`_fixed_table_kernel`'s table."""
    for i in prange(digits.shape[0]):
        acc = _IDENTITY
        for w in range(digits.shape[1]):
            d = np.int64(digits[i, w])
            if d:
                j = 255 * w + d - 1
                acc = _add_affine(acc, _load(table, j, 0), _load(table, j, 6))
        _store_point(out, i, acc)


def _to_affine(xyzz: np.ndarray, canonical: bool) -> tuple[np.ndarray, np.ndarray]:
    affine = np.empty((xyzz.shape[0], 12), dtype=np.uint64)
    identity = np.empty(xyzz.shape[0], dtype=np.bool_)
    _to_affine_kernel(xyzz, canonical, affine, identity)
    return affine, identity


# --------------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------------
def affine_points(xy: bytes) -> np.ndarray:
    """``(n, 12)`` Montgomery coordinates of points given as arkworks' ``to_xy_bytes_le`` (96 bytes
    each, ``x || y`` little-endian). Refuses the identity (all zero) and non-canonical coordinates."""
    if len(xy) % 96:
        raise ValueError(f"affine_points: {len(xy)} bytes is not a whole number of 96-byte points")
    raw = np.frombuffer(xy, dtype="<u8").reshape(-1, 12).astype(np.uint64)
    if raw.shape[0] and not raw.any(axis=1).all():
        raise ValueError("affine_points: the identity has no affine coordinates")
    for half in (raw[:, :6], raw[:, 6:]):
        top = [int.from_bytes(half[i].tobytes(), "little") for i in range(half.shape[0])]
        if any(t >= P for t in top):
            raise ValueError("affine_points: a coordinate is not reduced mod p")
    out = np.empty_like(raw)
    _to_montgomery_kernel(raw, out)
    return out


class RowBases:
    """The points ``G_j`` of row MSMs and, per window width ``c``, their shifts ``2^(c w) G_j`` (made
    on demand, ``c`` doublings per point and window, then kept): with them every window of a row
    goes into one set of buckets, so a row pays one bucket reduction and no doublings."""

    def __init__(self, affine: np.ndarray) -> None:
        self.affine = affine
        self._shifted: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.affine.shape[0]

    def shifted(self, c: int, windows: int) -> np.ndarray:
        """``(windows, W, 12)``: ``[w, j]`` is ``2^(c w) G_j`` in Montgomery affine form."""
        have = self._shifted.get(c, self.affine[None])
        if have.shape[0] < windows:
            more = [have]
            for _ in range(windows - have.shape[0]):
                xyzz = np.empty((len(self), 24), dtype=np.uint64)
                _shift_kernel(more[-1][-1], c, xyzz)
                affine, identity = _to_affine(xyzz, canonical=False)
                if identity.any():  # 2^k G is never the identity for G of prime order r
                    raise ValueError("RowBases: a point is not in the prime-order subgroup")
                more.append(affine[None])
            have = np.concatenate(more)
            self._shifted[c] = have
        return have[:windows]


#: Byte windows of a fixed-base scalar (255-bit scalars, canonical little-endian bytes).
FIXED_WINDOWS = 32


class FixedBaseTable:
    """Multiples ``d 256^w P`` (``1 <= d <= 255``, ``w < 32``) of one point, affine: a product by a
    scalar is then at most 32 mixed additions, one per nonzero byte (the table: 8160 additions)."""

    def __init__(self, affine: np.ndarray) -> None:
        if affine.shape != (1, 12):
            raise ValueError(f"FixedBaseTable: expected one point (1, 12), got {affine.shape}")
        xyzz = np.empty((255 * FIXED_WINDOWS, 24), dtype=np.uint64)
        _fixed_table_kernel(_load_tuple(affine[0, :6]), _load_tuple(affine[0, 6:]), xyzz)
        self.table, identity = _to_affine(xyzz, canonical=False)
        if identity.any():
            raise ValueError("FixedBaseTable: the point is not in the prime-order subgroup")

    def mul(self, scalar_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The products by scalars given as canonical little-endian bytes ``(n, 32)`` uint8:
        canonical affine coordinates ``(n, 12)`` and an identity mask, as :func:`rows_msm`."""
        digits = np.ascontiguousarray(scalar_bytes, dtype=np.uint8)
        if digits.ndim != 2 or digits.shape[1] != FIXED_WINDOWS:
            raise ValueError(f"FixedBaseTable.mul: expected (n, {FIXED_WINDOWS}) bytes, got {digits.shape}")
        xyzz = np.empty((digits.shape[0], 24), dtype=np.uint64)
        _fixed_mul_kernel(self.table, digits, xyzz)
        return _to_affine(xyzz, canonical=True)


def _load_tuple(limbs: np.ndarray) -> tuple:
    return tuple(np.uint64(v) for v in limbs)


def window_bits(bits: int, width: int) -> int:
    """The window ``c`` minimising a row MSM's multiplications for entries of ``bits`` bits, ``width``
    per row: ``ceil(bits / c) * width`` mixed additions (10 each) into ``2^c - 1`` buckets (reduced
    by two full additions of 14 each)."""
    def cost(c):
        return -(-bits // c) * width * 10 + 28 * ((1 << min(c, bits)) - 1)
    return min(range(1, MAX_WINDOW_BITS + 1), key=cost)


#: Widest window (``2^13`` buckets of 192 bytes per row in flight).
MAX_WINDOW_BITS = 13


def rows_msm(bases: RowBases, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_j values[i, j] * G_j`` for every row ``i`` of an int64 array ``(k, W)`` over the ``W``
    points of ``bases``: canonical affine coordinates ``(k, 12)`` (little-endian limbs, arkworks'
    ``xy`` layout) and a boolean identity mask ``(k,)``."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    if values.ndim != 2 or len(bases) != values.shape[1]:
        raise ValueError(f"rows_msm: {len(bases)} points for rows of shape {values.shape}")
    xyzz = np.zeros((values.shape[0], 24), dtype=np.uint64)
    if values.size:
        bits = max(abs(int(values.min())), abs(int(values.max()))).bit_length()
        if bits:
            c = window_bits(bits, values.shape[1])
            windows = -(-bits // c)
            _rows_kernel(bases.shifted(c, windows), values, c, windows, xyzz)
    return _to_affine(xyzz, canonical=True)


def to_xy_bytes(affine: np.ndarray) -> list[bytes]:
    """Each row of canonical affine coordinates as arkworks' 96-byte ``xy`` form."""
    raw = np.ascontiguousarray(affine, dtype="<u8").tobytes()
    return [raw[k:k + 96] for k in range(0, len(raw), 96)]
