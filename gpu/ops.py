"""Array operations built from the kernels, for either backend (see :mod:`gpu.runtime`).

Every function takes and returns arrays of one backend: cupy arrays run on the GPU, numpy arrays on
the host build of the same kernels. Layouts are those of the CPU path:

* Fr elements: ``uint64`` arrays of shape ``(..., 4)``, little-endian limbs of the Montgomery form
  ``x * 2^256 mod r`` (the :mod:`zk.field` layout, bit for bit).
* G1 points: ``uint64`` arrays of shape ``(..., 12)``, affine ``x`` then ``y``, each six limbs of
  the Fp Montgomery form ``x * 2^384 mod p``; ``(0, 0)`` is the point at infinity. Convert from and
  to the 48-byte compressed encoding of :mod:`zk.group` with :func:`g1_from_compressed` and
  :func:`g1_to_compressed`.
"""
from __future__ import annotations

import operator

import numpy as np

from . import runtime

__all__ = [
    "backend_of", "fr_from_int64", "fr_add", "fr_sub", "fr_mul", "fr_inv", "fold", "eq_table", "round_poly", "vecmat",
    "fp_op", "g1_add", "g1_from_compressed", "g1_to_compressed", "msm", "commit_rows",
    "signed_digits", "window_size",
]

R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
P = 0x1A0111EA397FE69A4B1BA7B6434BACD764774B84F38512BF6730D2A0F6B0F6241EABFFFEB153FFFFB9FEFFFFFFFFAAAB
_ONE = np.array([((1 << 256) % R >> (64 * k)) & ((1 << 64) - 1) for k in range(4)], dtype=np.uint64)

_FR_ADD, _FR_SUB, _FR_MUL = 0, 1, 2
_FP_OPS = {"add": 0, "sub": 1, "mul": 2, "inv": 3, "to_mont": 4, "from_mont": 5}
_G1_ERRORS = {1: "not a compressed encoding", 2: "malformed infinity", 3: "x is not below p",
              4: "x is not on the curve"}
_ROUND_MAX_TABLES, _ROUND_MAX_DEGREE = 3, 8
_SUM_FAN = 32  # rows summed per thread in a reduction pass
_VECMAT_SPAN = 64  # matrix rows per thread in a vector-matrix product
_TASK = 32  # entries per thread in the MSM segmented sums (L)
_GROUP = 64  # buckets per thread in the MSM bucket reduction (G)
_MAX_WINDOW = 20
_JAC = 18  # limbs of a Jacobian point


def backend_of(*arrays):
    """The backend owning the arrays: CUDA if any is a cupy array, else the host build."""
    if any(type(a).__module__.split(".")[0] == "cupy" for a in arrays):
        return runtime.cuda_backend()
    return runtime.host_backend()


def _limbs(be, a, width: int, name: str):
    """``a`` on backend ``be`` as a C-contiguous ``uint64`` array whose last axis has ``width`` limbs."""
    a = be.xp.asarray(a)
    if a.dtype != np.uint64 or a.ndim == 0 or a.shape[-1] != width:
        raise TypeError(f"{name}: expected a uint64 array of shape (..., {width}), got {a.dtype} {a.shape}")
    return be.xp.ascontiguousarray(a)


# ------------------------------------------------------------------------------------------------
# Fr arrays
# ------------------------------------------------------------------------------------------------
def _fr_binary(op: int, a, b):
    be = backend_of(a, b)
    a, b = _limbs(be, a, 4, "a"), _limbs(be, b, 4, "b")
    if a.shape == b.shape or b.shape == (4,):
        shape = a.shape
    elif a.shape == (4,):
        shape = b.shape
    else:
        raise ValueError(f"shapes {a.shape} and {b.shape}: expected equal shapes or one single element")
    out = be.xp.empty(shape, dtype=np.uint64)
    n = out.size // 4
    be.launch("fr_binary", n, op, int(a.size > 4 or n == 1), int(b.size > 4 or n == 1), a, b, out)
    return out


def fr_from_int64(values):
    """Signed integers (``int64``, any shape) as Fr elements ``(..., 4)`` (``v mod r``, Montgomery form)."""
    be = backend_of(values)
    v = be.xp.asarray(values)
    if v.dtype != np.int64:
        raise TypeError(f"fr_from_int64: expected an int64 array, got {v.dtype}")
    v = be.xp.ascontiguousarray(v)
    out = be.xp.empty(v.shape + (4,), dtype=np.uint64)
    be.launch("fr_from_i64", v.size, v, out)
    return out


def fr_add(a, b):
    """``a + b`` elementwise (equal shapes, or one operand a single element)."""
    return _fr_binary(_FR_ADD, a, b)


def fr_sub(a, b):
    """``a - b`` elementwise (equal shapes, or one operand a single element)."""
    return _fr_binary(_FR_SUB, a, b)


def fr_mul(a, b):
    """``a * b`` elementwise (equal shapes, or one operand a single element)."""
    return _fr_binary(_FR_MUL, a, b)


def fr_inv(a):
    """Elementwise inverse (batch inversion); ZeroDivisionError names the first zero element."""
    be = backend_of(a)
    a = _limbs(be, a, 4, "a")
    zero = ~a.reshape(-1, 4).any(axis=1)
    if bool(zero.any()):
        raise ZeroDivisionError(f"fr_inv: element {int(zero.argmax())} (flat index) is zero")
    out = be.xp.empty_like(a)
    n = a.size // 4
    be.launch("fr_batch_inv", max(1, n // 64), n, a, out)
    return out


def fold(table, c):
    """Bind the first MLE variable to ``c``: ``out[i] = t[i] + c (t[i + half] - t[i])``."""
    be = backend_of(table)
    table = _limbs(be, table, 4, "table").reshape(-1, 4)
    c = _limbs(be, c, 4, "c").reshape(-1, 4)
    n = table.shape[0]
    if n < 2 or n & (n - 1) or c.shape[0] != 1:
        raise ValueError(f"fold: expected a table of 2^k >= 2 rows and one challenge, got {n} rows, {c.shape[0]} challenges")
    out = be.xp.empty((n // 2, 4), dtype=np.uint64)
    be.launch("fr_fold", n // 2, table, c, out)
    return out


def eq_table(point):
    """``eq(x, point)`` for all ``x`` in ``{0,1}^k`` (first coordinate = most significant bit): ``(2^k, 4)``."""
    be = backend_of(point)
    point = _limbs(be, point, 4, "point").reshape(-1, 4)
    table = be.xp.asarray(_ONE.reshape(1, 4))
    for j in range(point.shape[0]):
        out = be.xp.empty((2 * table.shape[0], 4), dtype=np.uint64)
        be.launch("fr_eq_step", out.shape[0], table, point[j:j + 1], out)
        table = out
    return table


def _sum_rows(be, a):
    """Sum an ``(n, width, 4)`` array over its first axis by passes of ``_SUM_FAN``-row groups."""
    while a.shape[0] > 1:
        rows = -(-a.shape[0] // _SUM_FAN)
        out = be.xp.empty((rows,) + a.shape[1:], dtype=np.uint64)
        be.launch("fr_sum_rows", rows * a.shape[1], a.shape[0], a.shape[1], _SUM_FAN, a, out)
        a = out
    return a[0]


def round_poly(tables, degree: int):
    """Sumcheck round message: ``g(x) = sum_{i < half} prod_j (f_j[i] + x (f_j[i + half] - f_j[i]))``
    at ``x = 0 .. degree``, for 1 to 3 tables ``f_j`` of equal size ``2 half``: shape ``(degree + 1, 4)``."""
    tables = list(tables)
    be = backend_of(*tables)
    degree = operator.index(degree)
    if not 1 <= len(tables) <= _ROUND_MAX_TABLES:
        raise ValueError(f"round_poly: expected 1 to {_ROUND_MAX_TABLES} tables, got {len(tables)}")
    if not len(tables) <= degree <= _ROUND_MAX_DEGREE:
        raise ValueError(f"round_poly: degree {degree} outside [{len(tables)}, {_ROUND_MAX_DEGREE}]")
    tables = [_limbs(be, t, 4, "table").reshape(-1, 4) for t in tables]
    n = tables[0].shape[0]
    if n < 2 or n & (n - 1) or any(t.shape[0] != n for t in tables):
        raise ValueError(f"round_poly: tables must share one size 2^k >= 2, got {[t.shape[0] for t in tables]}")
    half = n // 2
    threads = be.parallelism(half)
    partial = be.xp.empty((threads, degree + 1, 4), dtype=np.uint64)
    padded = tables + [tables[0]] * (_ROUND_MAX_TABLES - len(tables))
    be.launch("fr_round_partial", threads, half, len(tables), degree, *padded, partial)
    return _sum_rows(be, partial)


def vecmat(v, m):
    """``v^T M``: ``out[j] = sum_i v[i] M[i, j]`` for ``v (rows, 4)`` and ``M (rows, cols, 4)``: ``(cols, 4)``."""
    be = backend_of(v, m)
    v = _limbs(be, v, 4, "v").reshape(-1, 4)
    m = _limbs(be, m, 4, "m")
    if m.ndim != 3 or m.shape[0] != v.shape[0] or m.shape[0] == 0:
        raise ValueError(f"vecmat: expected v (r, 4) and M (r, c, 4) with r >= 1, got {v.shape} and {m.shape}")
    rows, cols = m.shape[0], m.shape[1]
    chunks = -(-rows // _VECMAT_SPAN)
    partial = be.xp.empty((chunks, cols, 4), dtype=np.uint64)
    be.launch("fr_vecmat_partial", chunks * cols, rows, cols, _VECMAT_SPAN, v, m, partial)
    return _sum_rows(be, partial)


# ------------------------------------------------------------------------------------------------
# Fp and G1 arrays
# ------------------------------------------------------------------------------------------------
def fp_op(op: str, a, b=None):
    """Elementwise Fp arithmetic on ``(..., 6)`` limb arrays: ``add``, ``sub``, ``mul`` (Montgomery),
    ``inv`` (0 -> 0), ``to_mont``, ``from_mont`` (the curve kernels' base field, exposed for tests)."""
    if op not in _FP_OPS:
        raise ValueError(f"fp_op: unknown op {op!r} (expected one of {sorted(_FP_OPS)})")
    be = backend_of(a, b)
    a = _limbs(be, a, 6, "a")
    b = a if b is None else _limbs(be, b, 6, "b")
    if a.shape != b.shape:
        raise ValueError(f"fp_op: shapes {a.shape} and {b.shape} differ")
    out = be.xp.empty_like(a)
    be.launch("fp_op", a.size // 6, _FP_OPS[op], a, b, out)
    return out


def g1_add(a, b):
    """Elementwise sum of two affine point arrays of equal shape ``(..., 12)``."""
    be = backend_of(a, b)
    a, b = _limbs(be, a, 12, "a"), _limbs(be, b, 12, "b")
    if a.shape != b.shape:
        raise ValueError(f"g1_add: shapes {a.shape} and {b.shape} differ")
    out = be.xp.empty_like(a)
    be.launch("g1_add", a.size // 12, a, b, out)
    return out


def g1_from_compressed(data, device: str = "host"):
    """Points ``(n, 12)`` from ``n`` concatenated 48-byte compressed encodings, on ``device``
    (``"host"`` or ``"cuda"``). ValueError names the first invalid encoding. Points are not
    subgroup-checked: pass points that :mod:`zk.group` produced or validated."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"g1_from_compressed: expected bytes, got {type(data).__name__}")
    if len(data) % 48:
        raise ValueError(f"g1_from_compressed: {len(data)} bytes is not a multiple of 48")
    be = runtime.cuda_backend() if device == "cuda" else runtime.host_backend()
    n = len(data) // 48
    raw = be.xp.asarray(np.frombuffer(bytes(data), dtype=np.uint8))
    out = be.xp.empty((n, 12), dtype=np.uint64)
    err = be.xp.zeros(n, dtype=np.uint8)
    be.launch("g1_from_compressed", n, raw, out, err)
    if n and bool(err.any()):
        k = int(err.argmax())
        raise ValueError(f"g1_from_compressed: point {k}: {_G1_ERRORS[int(err[k])]}")
    return out


def g1_to_compressed(points) -> bytes:
    """The 48-byte compressed encodings of ``points`` (C order), concatenated."""
    be = backend_of(points)
    points = _limbs(be, points, 12, "points")
    n = points.size // 12
    out = be.xp.empty(48 * n, dtype=np.uint8)
    be.launch("g1_to_compressed", n, points, out)
    return bytes(be.xp.asnumpy(out) if be.name == "cuda" else out)


# ------------------------------------------------------------------------------------------------
# Multi-scalar multiplication
# ------------------------------------------------------------------------------------------------
def window_size(bits: int, m: int) -> int:
    """Window ``c`` for scalars of at most ``bits`` (centered) bits and ``m`` points per MSM:
    minimises ``W (m + 2^c)`` (bucket additions plus bucket reduction), ``W = ceil((bits + 1) / c)``."""
    return min(range(1, min(bits + 1, _MAX_WINDOW) + 1), key=lambda c: (-(-(bits + 1) // c)) * (m + (1 << c)))


def signed_digits(scalars, c: int, W: int):
    """The digit entries of the MSM schedule (step 2 in ``kernels/msm.cu``) for ``(R, m, 4)`` scalars:
    ``(keys, vals)`` of shape ``(R * m * W,)`` as the kernels produce them (exposed for tests)."""
    be = backend_of(scalars)
    scalars = _limbs(be, scalars, 4, "scalars")
    R, m = scalars.shape[0], scalars.shape[1]
    keys = be.xp.empty(R * m * W, dtype=np.uint32)
    vals = be.xp.empty(R * m * W, dtype=np.uint32)
    be.launch("msm_digits", R * m, m, c, W, scalars, keys, vals)
    return keys, vals


def _offsets(xp, counts):
    off = xp.zeros(counts.shape[0] + 1, dtype=np.int64)
    xp.cumsum(counts, out=off[1:])
    return off


def _segment_sums(be, seg_off, max_count: int, kernel: str, inputs: tuple):
    """Sum each segment ``[seg_off[s], seg_off[s + 1])`` of entries in levels of ``_TASK``-entry tasks
    (step 4 in ``kernels/msm.cu``); returns ``(task_off, sums)`` with at most one task per segment."""
    xp = be.xp
    nseg = seg_off.shape[0] - 1
    n_entries = int(inputs[-1].shape[0])
    levels = 1
    while _TASK ** levels < max_count:
        levels += 1
    for _ in range(levels):
        tasks = (seg_off[1:] - seg_off[:-1] + (_TASK - 1)) // _TASK
        task_off = _offsets(xp, tasks)
        bound = n_entries // _TASK + min(nseg, n_entries)  # >= sum of ceil(count / L); no sync
        sums = xp.empty((bound, _JAC), dtype=np.uint64)
        be.launch(kernel, bound, nseg, _TASK, task_off, seg_off, *inputs, sums)
        kernel, inputs, seg_off, n_entries = "msm_task_sum_jac", (sums,), task_off, bound
    return seg_off, sums


def _msm_chunk(be, points, scalars, c: int, W: int):
    """Affine results ``(R, 12)`` of the ``R`` row MSMs of ``scalars (R, m, 4)`` with ``points (m, 12)``."""
    xp = be.xp
    R, m = scalars.shape[0], scalars.shape[1]
    B = 1 << (c - 1)
    nb = R * W * B
    keys, vals = signed_digits(scalars, c, W)
    order = xp.argsort(keys)
    keys, vals = keys[order], vals[order]
    seg_off = xp.searchsorted(keys, xp.arange(nb + 1, dtype=np.uint32)).astype(np.int64)
    task_off, sums = _segment_sums(be, seg_off, m, "msm_task_sum_affine", (points, vals))
    groups = -(-B // _GROUP)
    partial = xp.empty((R * W * groups, _JAC), dtype=np.uint64)
    be.launch("msm_bucket_reduce", R * W * groups, B, _GROUP, groups, task_off, sums, partial)
    win_off = xp.arange(R * W + 1, dtype=np.int64) * groups
    task_off, sums = _segment_sums(be, win_off, groups, "msm_task_sum_jac", (partial,))
    out = xp.empty((R, 12), dtype=np.uint64)
    be.launch("msm_combine", R, W, c, task_off, sums, out)
    return out


def commit_rows(points, scalars, window: int | None = None):
    """Row MSMs ``out[i] = sum_j scalars[i, j] points[j]`` for ``scalars (R, m, 4)`` and ``points
    (m, 12)``: the Hyrax row commitments of a matrix. Returns affine points ``(R, 12)``.

    The window is chosen from the largest centered scalar, so bit and small signed scalars take the
    single-window fast path; ``window`` overrides the choice (tests use it to cover the schedule)."""
    be = backend_of(points, scalars)
    points = _limbs(be, points, 12, "points").reshape(-1, 12)
    scalars = _limbs(be, scalars, 4, "scalars")
    if scalars.ndim != 3 or scalars.shape[1] != points.shape[0]:
        raise ValueError(f"commit_rows: scalars {scalars.shape} do not match {points.shape[0]} points (expected (R, m, 4))")
    R, m = scalars.shape[0], scalars.shape[1]
    if m >= 1 << 31:
        raise ValueError(f"commit_rows: {m} points per row is too many (at most 2^31 - 1)")
    xp = be.xp
    if R == 0 or m == 0:
        return xp.zeros((R, 12), dtype=np.uint64)
    bits = xp.empty(R * m, dtype=np.uint32)
    be.launch("msm_signed_bits", R * m, scalars, bits)
    bits = int(bits.max())
    if bits == 0:
        return xp.zeros((R, 12), dtype=np.uint64)
    c = window_size(bits, m) if window is None else operator.index(window)
    if not 1 <= c <= 31:
        raise ValueError(f"commit_rows: window {c} outside [1, 31]")
    W = -(-(bits + 1) // c)
    if W << (c - 1) >= 1 << 31:
        raise ValueError(f"commit_rows: window {c} needs too many buckets")
    rows = max(1, min(R, be.max_entries // (m * W), ((1 << 31) - 1) // (W << (c - 1))))
    return xp.concatenate([_msm_chunk(be, points, scalars[i:i + rows], c, W) for i in range(0, R, rows)])


def msm(points, scalars, window: int | None = None):
    """``sum_j scalars[j] points[j]`` for ``points (m, 12)`` and ``scalars (m, 4)``: one affine point ``(12,)``."""
    be = backend_of(points, scalars)
    scalars = _limbs(be, scalars, 4, "scalars").reshape(1, -1, 4)
    return commit_rows(points, scalars, window)[0]
