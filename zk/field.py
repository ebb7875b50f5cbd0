"""The BLS12-381 scalar field Fr, vectorised over numpy arrays, with numba kernels.

``r = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001`` (255 bits).

Representation
--------------
An array of field elements is a numpy ``uint64`` array of shape ``(..., 4)``: the last axis holds
the four little-endian 64-bit limbs of the element's Montgomery form ``x * 2^256 mod r``, always
fully reduced into ``[0, r)``, so equal elements have equal limbs. A single element has shape
``(4,)``. Data stays in this form between operations; only :func:`from_int`, :func:`to_int`,
:func:`to_signed`, :func:`to_bytes` and :func:`from_bytes` convert (``to_bytes`` writes the
canonical, non-Montgomery value).

Binary operations broadcast like numpy over the leading axes (the limb axis never broadcasts).

Arithmetic
----------
Multiplication is Montgomery's CIOS algorithm with the "no-carry" shortcut, valid because the top
limb of ``r`` is below ``2^63 - 1``. numba has no 128-bit integers, so three small LLVM intrinsics
provide the 64x64->128 multiply-accumulate and the add/subtract-with-carry steps; LLVM lowers them
to native ``mul``/``adc``/``sbb`` instructions. The element-level primitives :func:`mont_mul`,
:func:`add_mod`, :func:`sub_mod`, :func:`load` and :func:`store` work on 4-tuples of limbs inside
other ``@njit`` kernels (``zk.mle``, ``zk.sumcheck`` use them); the array functions below wrap
parallel kernels built from them.
"""
from __future__ import annotations

import builtins
import operator
import mmap
import secrets
import types as types_

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = [
    "R", "BYTES", "ZERO", "ONE",
    "from_int", "to_int", "to_signed", "to_bytes", "from_bytes",
    "add", "sub", "neg", "mul", "square", "pow", "inv", "sum", "scatter_add", "inner", "vecmat", "powers", "equal",
    "zeros", "ones", "empty", "random", "random_seeded",
    "scale_add", "is_integers", "int_scale", "asarray", "parallel_chunks", "mont_mul", "add_mod", "sub_mod", "times_int", "load", "store",
]

#: The field order.
R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
#: Bytes per element in :func:`to_bytes` / :func:`from_bytes`.
BYTES = 32

_MASK64 = (1 << 64) - 1


def _limbs(x: int) -> tuple:
    return tuple(np.uint64((x >> (64 * k)) & _MASK64) for k in range(4))


# Constants, frozen into the kernels by numba (global tuples/scalars are compile-time constants).
_Q0, _Q1, _Q2, _Q3 = _limbs(R)
_NP = np.uint64(-builtins.pow(R, -1, 1 << 64) % (1 << 64))  # -r^-1 mod 2^64
_Z64 = np.uint64(0)
_ZERO_T = (_Z64, _Z64, _Z64, _Z64)
_ONE_T = _limbs((1 << 256) % R)  # Montgomery form of 1
_RAW_ONE_T = (np.uint64(1), _Z64, _Z64, _Z64)  # mont_mul(x, 1) leaves Montgomery form
_R2_T = _limbs((1 << 512) % R)  # mont_mul(x, R^2) enters Montgomery form
_R3_T = _limbs((1 << 768) % R)
_INV_EXP = np.array(_limbs(R - 2), dtype=np.uint64)  # Fermat: x^(r-2) = 1/x
_INT64_MAX = np.uint64(2**63 - 1)

ZERO = np.zeros(4, dtype=np.uint64)
ONE = np.array(_ONE_T, dtype=np.uint64)
ZERO.flags.writeable = False
ONE.flags.writeable = False
_RAW_ONE = np.array([_RAW_ONE_T], dtype=np.uint64)
_R2 = np.array(_R2_T, dtype=np.uint64)

# --------------------------------------------------------------------------------------------
# 128-bit steps as LLVM intrinsics
# --------------------------------------------------------------------------------------------
_U64 = types.uint64
_PAIR = types.UniTuple(_U64, 2)
_I64 = ir.IntType(64)
_I128 = ir.IntType(128)


def _widen(builder, args):
    return [builder.zext(v, _I128) for v in args]


def _pair(context, builder, signature, lo, hi):
    return context.make_tuple(builder, signature.return_type, (builder.trunc(lo, _I64), builder.trunc(hi, _I64)))


@intrinsic
def _mac(typingctx, a, b, c, d):
    """``(low, high)`` words of ``a*b + c + d`` (at most ``2^128 - 1``: never overflows)."""
    sig = _PAIR(_U64, _U64, _U64, _U64)

    def codegen(context, builder, signature, args):
        x, y, z, w = _widen(builder, args)
        s = builder.add(builder.add(builder.mul(x, y), z), w)
        return _pair(context, builder, signature, s, builder.lshr(s, ir.Constant(_I128, 64)))

    return sig, codegen


@intrinsic
def _adc(typingctx, a, b, carry):
    """``(a + b + carry mod 2^64, carry out)``."""
    sig = _PAIR(_U64, _U64, _U64)

    def codegen(context, builder, signature, args):
        x, y, c = _widen(builder, args)
        s = builder.add(builder.add(x, y), c)
        return _pair(context, builder, signature, s, builder.lshr(s, ir.Constant(_I128, 64)))

    return sig, codegen


@intrinsic
def _sbb(typingctx, a, b, borrow):
    """``(a - b - borrow mod 2^64, borrow out in {0, 1})``."""
    sig = _PAIR(_U64, _U64, _U64)

    def codegen(context, builder, signature, args):
        x, y, c = _widen(builder, args)
        d = builder.sub(builder.sub(x, y), c)
        return _pair(context, builder, signature, d, builder.lshr(d, ir.Constant(_I128, 127)))

    return sig, codegen


# --------------------------------------------------------------------------------------------
# Element-level primitives on 4-tuples of limbs (for use inside @njit kernels)
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _reduce_once(t0, t1, t2, t3):
    """``t - r`` if ``t >= r`` else ``t`` (for ``t < 2^256``)."""
    s0, b = _sbb(t0, _Q0, _Z64)
    s1, b = _sbb(t1, _Q1, b)
    s2, b = _sbb(t2, _Q2, b)
    s3, b = _sbb(t3, _Q3, b)
    if b:
        return t0, t1, t2, t3
    return s0, s1, s2, s3


@njit(cache=True)
def _is_reduced(t):
    """Whether the 256-bit integer ``t`` is below ``r``."""
    _, b = _sbb(t[0], _Q0, _Z64)
    _, b = _sbb(t[1], _Q1, b)
    _, b = _sbb(t[2], _Q2, b)
    _, b = _sbb(t[3], _Q3, b)
    return b != _Z64


@njit(cache=True)
def _cios_step(t0, t1, t2, t3, a, bi):
    """One outer iteration of CIOS: ``(t + a*bi + m*r) / 2^64`` with ``m`` making it exact."""
    t0, A = _mac(a[0], bi, t0, _Z64)
    m = t0 * _NP
    _, C = _mac(m, _Q0, t0, _Z64)
    t1, A = _mac(a[1], bi, t1, A)
    t0, C = _mac(m, _Q1, t1, C)
    t2, A = _mac(a[2], bi, t2, A)
    t1, C = _mac(m, _Q2, t2, C)
    t3, A = _mac(a[3], bi, t3, A)
    t2, C = _mac(m, _Q3, t3, C)
    return t0, t1, t2, C + A


@njit(cache=True, inline="always")  # numba-level inlining: ~25% faster here
def mont_mul(a, b):
    """Montgomery product ``a * b / 2^256 mod r`` of two reduced 4-limb tuples."""
    t0, t1, t2, t3 = _cios_step(_Z64, _Z64, _Z64, _Z64, a, b[0])
    t0, t1, t2, t3 = _cios_step(t0, t1, t2, t3, a, b[1])
    t0, t1, t2, t3 = _cios_step(t0, t1, t2, t3, a, b[2])
    t0, t1, t2, t3 = _cios_step(t0, t1, t2, t3, a, b[3])
    return _reduce_once(t0, t1, t2, t3)


@njit(cache=True)
def add_mod(a, b):
    """``a + b mod r`` for reduced 4-limb tuples."""
    s0, c = _adc(a[0], b[0], _Z64)
    s1, c = _adc(a[1], b[1], c)
    s2, c = _adc(a[2], b[2], c)
    s3, c = _adc(a[3], b[3], c)  # no carry out: a + b < 2r < 2^256
    return _reduce_once(s0, s1, s2, s3)


@njit(cache=True)
def sub_mod(a, b):
    """``a - b mod r`` for reduced 4-limb tuples."""
    d0, b_ = _sbb(a[0], b[0], _Z64)
    d1, b_ = _sbb(a[1], b[1], b_)
    d2, b_ = _sbb(a[2], b[2], b_)
    d3, b_ = _sbb(a[3], b[3], b_)
    if b_:
        d0, c = _adc(d0, _Q0, _Z64)
        d1, c = _adc(d1, _Q1, c)
        d2, c = _adc(d2, _Q2, c)
        d3, c = _adc(d3, _Q3, c)
    return d0, d1, d2, d3


@njit(cache=True)
def times_int(scaled, v):
    """``w * v`` (Montgomery form) from ``scaled = w R^2`` (:func:`int_scale`) and an integer ``v`` of
    at most 64 bits: one Montgomery product by the raw magnitude, negated for ``v < 0``."""
    mag = np.uint64(v)  # two's complement bits
    if v < 0:
        mag = _Z64 - mag
    p = mont_mul(scaled, (mag, _Z64, _Z64, _Z64))
    if v < 0:
        p = sub_mod(_ZERO_T, p)
    return p


@njit(cache=True)
def load(arr, i):
    """Row ``i`` of an ``(n, 4)`` array as a 4-tuple."""
    return arr[i, 0], arr[i, 1], arr[i, 2], arr[i, 3]


@njit(cache=True)
def store(arr, i, x):
    """Write the 4-tuple ``x`` into row ``i`` of an ``(n, 4)`` array."""
    arr[i, 0] = x[0]
    arr[i, 1] = x[1]
    arr[i, 2] = x[2]
    arr[i, 3] = x[3]


@njit(cache=True)
def _pow_limbs(x, e):
    """``x^e`` for an exponent given as little-endian uint64 limbs (square and multiply)."""
    acc = _ONE_T
    for k in range(e.shape[0] - 1, -1, -1):
        for bit in range(63, -1, -1):
            acc = mont_mul(acc, acc)
            if (e[k] >> np.uint64(bit)) & np.uint64(1):
                acc = mont_mul(acc, x)
    return acc


#: Below this many elements an array kernel runs serially: a parallel launch costs more than the
#: work, and far more when the cores are busy (each launch waits for every worker thread).
SERIAL_BELOW = 1 << 13


class kernel:
    """An array kernel compiled twice, parallel and serial; ``k[n](*args)`` picks by size ``n``
    (the launch syntax of numba's CUDA kernels)."""

    def __init__(self, py_func) -> None:
        self.parallel = njit(parallel=True, cache=True)(py_func)
        # a renamed copy: numba's on-disk cache is keyed by the function's (code) name, not by
        # the ``parallel`` flag, so the two variants must not share one
        name = py_func.__name__ + "_serial"
        code = py_func.__code__.replace(co_name=name, co_qualname=name)
        serial = types_.FunctionType(code, py_func.__globals__, name)
        self.serial = njit(cache=True)(serial)
        self.__doc__ = py_func.__doc__

    def __getitem__(self, n: int):
        return self.serial if n < SERIAL_BELOW else self.parallel


# --------------------------------------------------------------------------------------------
# Array kernels (all arrays are C-contiguous (n, 4) uint64)
# --------------------------------------------------------------------------------------------
_ADD, _SUB, _MUL = 0, 1, 2


@kernel
def _binary_kernel(op, a, b, out):
    """``out[i] = a[i] (+, -, *) b[i]``; an operand with one row is broadcast."""
    sa = 1 if a.shape[0] > 1 else 0
    sb = 1 if b.shape[0] > 1 else 0
    for i in prange(out.shape[0]):
        x = load(a, i * sa)
        y = load(b, i * sb)
        if op == _MUL:
            z = mont_mul(x, y)
        elif op == _ADD:
            z = add_mod(x, y)
        else:
            z = sub_mod(x, y)
        store(out, i, z)


@kernel
def _sum_kernel(a, n, m, chunks, out):
    """``out[j] = sum_i a[i*m + j]`` over ``i < n``: parallel over (block of ``i``, ``j``) pairs."""
    part = np.empty((chunks * m, 4), dtype=np.uint64)
    step = (n + chunks - 1) // chunks
    for cj in prange(chunks * m):
        c, j = cj // m, cj % m
        acc = _ZERO_T
        for i in range(c * step, min(n, (c + 1) * step)):
            acc = add_mod(acc, load(a, i * m + j))
        store(part, cj, acc)
    for j in prange(m):
        acc = _ZERO_T
        for c in range(chunks):
            acc = add_mod(acc, load(part, c * m + j))
        store(out, j, acc)


@kernel
def _inner_kernel(a, b, n, chunks, out):
    """``out[0] = sum_i a[i] * b[i]`` over ``i < n`` (one-row operands broadcast)."""
    sa = 1 if a.shape[0] > 1 else 0
    sb = 1 if b.shape[0] > 1 else 0
    part = np.zeros((chunks, 4), dtype=np.uint64)
    step = (n + chunks - 1) // chunks
    for c in prange(chunks):
        acc = _ZERO_T
        for i in range(c * step, min(n, (c + 1) * step)):
            acc = add_mod(acc, mont_mul(load(a, i * sa), load(b, i * sb)))
        store(part, c, acc)
    acc = _ZERO_T
    for c in range(chunks):
        acc = add_mod(acc, load(part, c))
    store(out, 0, acc)


@kernel
def _vecmat_kernel(v, m, rows, cols, out):
    """``out[j] = sum_i v[i] * m[i * cols + j]``: parallel over columns, no temporaries."""
    for j in prange(cols):
        acc = _ZERO_T
        for i in range(rows):
            acc = add_mod(acc, mont_mul(load(v, i), load(m, i * cols + j)))
        store(out, j, acc)


@kernel
def _vecmat_ints_kernel(scaled, m, rows, cols, out):
    """``out[j] = sum_i v[i] * m[i * cols + j]`` for integers ``m``, from ``scaled = v R^2`` (:func:`times_int`)."""
    for j in prange(cols):
        acc = _ZERO_T
        for i in range(rows):
            x = m[i * cols + j]
            if x != 0:
                acc = add_mod(acc, times_int(load(scaled, i), x))
        store(out, j, acc)


@kernel
def _inv_kernel(a, chunks, out):
    """Batch inversion by Montgomery's trick, in ``chunks`` independent parallel chunks.

    Within a chunk: prefix products, one inversion by Fermat, then a backward pass.
    ``a`` must not contain zero.
    """
    n = a.shape[0]
    step = (n + chunks - 1) // chunks
    for c in prange(chunks):
        lo = c * step
        hi = min(n, lo + step)
        if lo < hi:
            acc = _ONE_T
            for i in range(lo, hi):
                store(out, i, acc)  # product of a[lo:i]
                acc = mont_mul(acc, load(a, i))
            acc = _pow_limbs(acc, _INV_EXP)  # 1 / product of a[lo:hi]
            for i in range(hi - 1, lo - 1, -1):
                x = load(a, i)
                store(out, i, mont_mul(load(out, i), acc))
                acc = mont_mul(acc, x)


@kernel
def _pow_kernel(a, e, out):
    for i in prange(a.shape[0]):
        store(out, i, _pow_limbs(load(a, i), e))


@njit(cache=True)
def _powers_kernel(x, out):
    acc = _ONE_T
    y = load(x, 0)
    for i in range(out.shape[0]):
        store(out, i, acc)
        acc = mont_mul(acc, y)


@kernel
def _wide_reduce_kernel(raw, out):
    """``out[i]`` = the 512-bit integer ``raw[i, :]`` (8 little-endian limbs) mod ``r``."""
    for i in prange(raw.shape[0]):
        lo = _reduce_once(raw[i, 0], raw[i, 1], raw[i, 2], raw[i, 3])  # 2^256 < 3r: two steps
        lo = _reduce_once(lo[0], lo[1], lo[2], lo[3])
        hi = _reduce_once(raw[i, 4], raw[i, 5], raw[i, 6], raw[i, 7])
        hi = _reduce_once(hi[0], hi[1], hi[2], hi[3])
        store(out, i, add_mod(mont_mul(lo, _R2_T), mont_mul(hi, _R3_T)))


@kernel
def _from_canonical_kernel(raw, out, bad):
    """Montgomery form of canonical integers; ``bad[i]`` flags ``raw[i] >= r``."""
    for i in prange(raw.shape[0]):
        x = load(raw, i)
        if _is_reduced(x):
            store(out, i, mont_mul(x, _R2_T))
        else:
            bad[i] = True


@kernel
def _from_i64_kernel(v, out):
    for i in prange(v.shape[0]):
        store(out, i, times_int(_R2_T, v[i]))  # 1 * v: R^2 is int_scale(ONE)


@kernel
def _to_signed_kernel(a, out, bad):
    """Centered representatives as int64; ``bad[i]`` flags those outside ``[-2^63, 2^63)``."""
    for i in prange(a.shape[0]):
        x = mont_mul(load(a, i), _RAW_ONE_T)
        y = sub_mod(_ZERO_T, x)  # r - x
        if x[1] == _Z64 and x[2] == _Z64 and x[3] == _Z64 and x[0] <= _INT64_MAX:
            out[i] = np.int64(x[0])
        elif y[1] == _Z64 and y[2] == _Z64 and y[3] == _Z64 and y[0] <= _INT64_MAX + np.uint64(1):
            out[i] = np.int64(_Z64 - y[0])  # -y, wrapping correctly at -2^63
        else:
            bad[i] = True


# --------------------------------------------------------------------------------------------
# Array API
# --------------------------------------------------------------------------------------------
def asarray(a, name: str = "a") -> np.ndarray:
    """``a`` as a field array (uint64, trailing limb axis of 4); TypeError naming ``name`` otherwise.

    Limbs are trusted to be a reduced Montgomery form (arrays from untrusted bytes go through
    :func:`from_bytes`, which checks).
    """
    a = np.asarray(a)
    if a.dtype != np.uint64 or a.ndim == 0 or a.shape[-1] != 4:
        raise TypeError(f"{name}: expected a field array (uint64, shape (..., 4)), got {a.dtype} {a.shape}")
    return a


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous, writeable array (what the kernels are compiled for)."""
    if not a.flags.c_contiguous or not a.flags.writeable:
        return np.array(a, order="C")
    return a


def empty(shape, dtype=np.uint64) -> np.ndarray:
    """``np.empty``, with the pages of a large array mapped up front: parallel kernels writing into
    fresh pages fault them in one by one, from several threads, which costs more than the kernel
    on small VMs (measured 1 GB/s). Large arrays are anonymous mappings made with
    ``MAP_POPULATE`` where the OS has it (Linux: about 3.4 GB/s here), else pre-faulted by one
    write per 4 KiB page."""
    shape = _shape(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if nbytes < 1 << 22:
        return np.empty(shape, dtype=dtype)
    if _POPULATE:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)
        return np.frombuffer(buf, dtype=dtype).reshape(shape)  # the array keeps the mapping alive
    out = np.empty(shape, dtype=dtype)
    out.reshape(-1).view(np.uint8)[:: 4096] = 0
    return out


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _rows(a: np.ndarray, shape: tuple) -> np.ndarray:
    """``a`` as ``(prod(shape), 4)`` rows, or ``(1, 4)`` if ``a`` is one element (the kernels broadcast it)."""
    if a.shape[:-1] == shape or a.size == 4:
        return _contiguous(a).reshape(-1, 4)
    return np.ascontiguousarray(np.broadcast_to(a, shape + (4,))).reshape(-1, 4)


def parallel_chunks(n: int, grain: int) -> int:
    """How many parallel chunks to split ``n`` items into (a few per thread, at least ``grain`` items each)."""
    return max(1, min(4 * numba.get_num_threads(), n // grain))


def _binary(op: int, a, b, out=None) -> np.ndarray:
    a, b = asarray(a, "a"), asarray(b, "b")
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    if out is None:
        out = empty(shape + (4,))
    elif out.shape != shape + (4,) or out.dtype != np.uint64 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out: expected a writeable C-contiguous field array {shape + (4,)}, got {out.dtype} {out.shape}")
    _binary_kernel[out.size // 4](op, _rows(a, shape), _rows(b, shape), out.reshape(-1, 4))
    return out


def _shape(shape) -> tuple:
    return (operator.index(shape),) if np.ndim(shape) == 0 else tuple(operator.index(s) for s in shape)


def _canonical(a: np.ndarray) -> np.ndarray:
    """Canonical (non-Montgomery) limbs of a field array, as ``(n, 4)`` rows."""
    return _binary(_MUL, a, _RAW_ONE).reshape(-1, 4)


def _from_canonical(raw: np.ndarray, what: str) -> np.ndarray:
    """Montgomery form of canonical ``(n, 4)`` limbs; ValueError naming the first one ``>= r``."""
    raw = _contiguous(raw.astype(np.uint64, copy=False))
    out = empty(raw.shape)
    bad = np.zeros(raw.shape[0], dtype=np.bool_)
    _from_canonical_kernel[raw.shape[0]](raw, out, bad)
    if bad.any():
        raise ValueError(f"{what}: element {int(np.argmax(bad))} is not canonical (>= r)")
    return out


def from_int(values) -> np.ndarray:
    """Field elements from integers: a Python int, a (nested) sequence of ints, or an integer array.

    Negative ``x`` maps to ``r - |x|`` and every value is reduced mod ``r``; the result has shape
    ``input shape + (4,)``. Integer numpy arrays (and torch tensors) take a vectorised path.
    """
    if isinstance(values, int):
        values = np.array(values, dtype=object)
    arr = np.asarray(values)
    if arr.dtype.kind in "iub" and not (arr.dtype == np.uint64 and arr.size and arr.max() > _INT64_MAX):
        # bytes (bit planes) go to the kernel as they are: no 8x wider int64 copy
        small = arr.dtype in (np.uint8, np.bool_)
        v = np.ascontiguousarray(arr).view(np.uint8) if small else np.ascontiguousarray(arr, dtype=np.int64)
        v = v.reshape(-1)
        out = empty((v.shape[0], 4))
        _from_i64_kernel[v.shape[0]](v, out)
        return out.reshape(arr.shape + (4,))
    if isinstance(values, np.ndarray) and arr.dtype.kind not in "uO":
        raise TypeError(f"from_int: expected integers, got an array of {arr.dtype}")
    obj = np.array(values, dtype=object)  # Python ints of any size (mixed-sign lists land here too)
    try:
        buf = b"".join((operator.index(v) % R).to_bytes(BYTES, "little") for v in obj.reshape(-1))
    except TypeError as exc:
        raise TypeError(f"from_int: expected integers ({exc})") from None
    raw = np.frombuffer(buf, dtype="<u8").reshape(-1, 4)
    return _from_canonical(raw, "from_int").reshape(obj.shape + (4,))


def to_int(a):
    """Canonical value(s) in ``[0, r)``: an int for one element, else an object array of ints."""
    a = asarray(a)
    buf = _canonical(a).astype("<u8", copy=False).tobytes()
    ints = [int.from_bytes(buf[k:k + BYTES], "little") for k in range(0, len(buf), BYTES)]
    if a.ndim == 1:
        return ints[0]
    out = np.empty(len(ints), dtype=object)
    out[:] = ints
    return out.reshape(a.shape[:-1])


def to_signed(a) -> np.ndarray:
    """Centered representatives (in ``(-r/2, r/2)``) as an int64 array of shape ``a.shape[:-1]``.

    Raises ValueError naming the first element whose centered value is outside the int64 range.
    """
    a = asarray(a)
    rows = _contiguous(a).reshape(-1, 4)
    out = np.empty(rows.shape[0], dtype=np.int64)
    bad = np.zeros(rows.shape[0], dtype=np.bool_)
    _to_signed_kernel[rows.shape[0]](rows, out, bad)
    if bad.any():
        k = int(np.argmax(bad))
        value = to_int(rows[k])
        centered = value - R if value > R // 2 else value
        where = np.unravel_index(k, a.shape[:-1]) if a.ndim > 1 else ()
        raise ValueError(f"to_signed: element at index {tuple(map(int, where))} is {centered}, outside int64 range")
    return out.reshape(a.shape[:-1])


def to_bytes(a) -> bytes:
    """Canonical 32-byte little-endian encoding of every element, concatenated in C order."""
    return _canonical(asarray(a)).astype("<u8", copy=False).tobytes()


def from_bytes(data, count: int) -> np.ndarray:
    """Parse ``count`` canonical 32-byte elements into a ``(count, 4)`` field array.

    Raises ValueError if ``data`` is not exactly ``32 * count`` bytes or an element is ``>= r``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"from_bytes: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    count = operator.index(count)
    if count < 0 or len(data) != BYTES * count:
        raise ValueError(f"from_bytes: expected {BYTES} * {count} bytes, got {len(data)}")
    return _from_canonical(np.frombuffer(data, dtype="<u8").reshape(count, 4), "from_bytes")


def add(a, b, *, out=None) -> np.ndarray:
    """``a + b`` (into ``out``, which may be ``a`` or ``b``: entries are computed in place)."""
    return _binary(_ADD, a, b, out)


def sub(a, b) -> np.ndarray:
    return _binary(_SUB, a, b)


def neg(a) -> np.ndarray:
    return _binary(_SUB, ZERO, a)


def mul(a, b) -> np.ndarray:
    return _binary(_MUL, a, b)


def square(a) -> np.ndarray:
    return _binary(_MUL, a, a)


def pow(a, e: int) -> np.ndarray:
    """``a^e`` elementwise for one integer exponent (negative exponents invert first)."""
    a = asarray(a)
    e = operator.index(e)
    if e < 0:
        a, e = inv(a), -e
    exp = np.array([(e >> (64 * k)) & _MASK64 for k in range(max(1, -(-e.bit_length() // 64)))], dtype=np.uint64)
    out = empty(a.shape)
    _pow_kernel[out.size // 4 * 64](_contiguous(a).reshape(-1, 4), exp, out.reshape(-1, 4))
    return out


def inv(a) -> np.ndarray:
    """Elementwise inverse by batch inversion; ZeroDivisionError names the first zero element."""
    a = asarray(a)
    zero = ~a.any(axis=-1)
    if zero.any():
        where = np.unravel_index(int(np.argmax(zero)), zero.shape)
        raise ZeroDivisionError(f"inv: element at index {tuple(map(int, where))} is zero")
    rows = _contiguous(a).reshape(-1, 4)
    out = empty(a.shape)
    _inv_kernel[rows.shape[0]](rows, parallel_chunks(rows.shape[0], 4096), out.reshape(-1, 4))
    return out


@njit(cache=True)
def _scatter_add_kernel(index, values, out):
    for i in range(index.shape[0]):  # serial: several i may share one slot
        store(out, index[i], add_mod(load(out, index[i]), load(values, i)))


def scatter_add(index, values, size: int) -> np.ndarray:
    """``out[j] = sum of values[i] over the i with index[i] == j``: ``(size, 4)`` from ``values``
    ``(n, 4)`` and an integer ``index`` ``(n,)`` in ``[0, size)``."""
    values = _contiguous(asarray(values, "values")).reshape(-1, 4)
    index = np.ascontiguousarray(index, dtype=np.int64).reshape(-1)
    if index.shape[0] != values.shape[0]:
        raise ValueError(f"scatter_add: {index.shape[0]} indices for {values.shape[0]} values")
    if index.size and not (0 <= index.min() and index.max() < size):
        raise ValueError(f"scatter_add: indices must lie in [0, {size})")
    out = np.zeros((size, 4), dtype=np.uint64)
    _scatter_add_kernel(index, values, out)
    return out


def sum(a, axis: int = 0) -> np.ndarray:
    """Sum along a leading axis (the limb axis excluded): shape ``a.shape`` without ``axis``."""
    a = asarray(a)
    lead = a.ndim - 1
    if not -lead <= axis < lead:
        raise ValueError(f"sum: axis {axis} out of range for {lead} leading axes")
    a = np.moveaxis(a, axis % lead, 0)
    n, rest = a.shape[0], a.shape[1:-1]
    m = int(np.prod(rest, dtype=np.int64))
    out = np.zeros(rest + (4,), dtype=np.uint64)
    if n and m:
        _sum_kernel[n * m](_contiguous(a).reshape(-1, 4), n, m, parallel_chunks(n, 4096), out.reshape(-1, 4))
    return out


def inner(a, b) -> np.ndarray:
    """``sum(a * b)`` over all elements (broadcasting as in :func:`mul`): one element."""
    a, b = asarray(a, "a"), asarray(b, "b")
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(4, dtype=np.uint64)
    _inner_kernel[n](_rows(a, shape), _rows(b, shape), n, parallel_chunks(n, 4096), out.reshape(1, 4))
    return out


def vecmat(v, m) -> np.ndarray:
    """``v^T M`` for a vector ``v`` ``(r, 4)`` and a matrix ``M``: field elements ``(r, c, 4)``, or
    integers ``(r, c)`` (int64 or narrower), which are never expanded: ``(c, 4)``."""
    v = asarray(v, "v")
    m = np.asarray(m)
    integer = is_integers(m)
    if not integer:
        m = asarray(m, "m")
    if m.ndim != (2 if integer else 3) or v.shape != (m.shape[0], 4):
        raise ValueError(f"vecmat: expected v (r, 4) and M (r, c, 4) or integers (r, c), got {v.shape} and {m.shape}")
    rows, cols = m.shape[:2]
    out = empty((cols, 4))
    if integer:
        _vecmat_ints_kernel[rows * cols](int_scale(v), np.ascontiguousarray(m).reshape(-1), rows, cols, out)
    else:
        _vecmat_kernel[rows * cols](_contiguous(v), _contiguous(m).reshape(-1, 4), rows, cols, out)
    return out


def is_integers(a) -> bool:
    """Whether an array holds integers rather than field elements (whose limbs are uint64)."""
    return a.dtype.kind in "iub" and a.dtype != np.uint64


def int_scale(a) -> np.ndarray:
    """``a R^2``: the factors :func:`times_int` multiplies integers by."""
    return mul(a, _R2)


@kernel
def _scale_add_kernel(a, integer, scale, offset, out):
    """``out[i] = offset + scale * a[i]`` (``integer``: ``a[i, 0]`` an integer, ``scale`` pre-scaled)."""
    s, o = load(scale, 0), load(offset, 0)
    for i in prange(out.shape[0]):
        p = times_int(s, a[i, 0]) if integer else mont_mul(s, load(a, i))
        store(out, i, add_mod(o, p))


def scale_add(a, scale, offset, out=None) -> np.ndarray:
    """``offset + scale * a`` entrywise for a field array ``(n, 4)`` or integers ``(n,)`` (int64 or
    narrower, read as they are), ``scale`` and ``offset`` one element each; into ``out`` if given."""
    a = np.asarray(a)
    integer = is_integers(a)
    a = np.ascontiguousarray(a.reshape(-1, 1)) if integer else _contiguous(asarray(a, "a")).reshape(-1, 4)
    scale = asarray(scale, "scale").reshape(1, 4)
    out = empty((a.shape[0], 4)) if out is None else out
    if out.shape != (a.shape[0], 4) or out.dtype != np.uint64 or not out.flags.c_contiguous:
        raise ValueError(f"scale_add: out must be a C-contiguous field array ({a.shape[0]}, 4), got {out.shape}")
    _scale_add_kernel[a.shape[0]](a, integer, int_scale(scale) if integer else scale, asarray(offset, "offset").reshape(1, 4), out)
    return out


def powers(x, n: int) -> np.ndarray:
    """``[1, x, x^2, ..., x^(n-1)]`` as an ``(n, 4)`` array (``x`` one element or a Python int)."""
    x = from_int(x) if isinstance(x, int) else asarray(x, "x")
    if x.shape != (4,):
        raise ValueError(f"powers: x must be one element, got shape {x.shape}")
    out = empty((operator.index(n), 4))
    _powers_kernel(_contiguous(x).reshape(1, 4), out)
    return out


def equal(a, b) -> np.ndarray:
    """Elementwise equality (a bool array of the broadcast leading shape)."""
    return np.all(asarray(a, "a") == asarray(b, "b"), axis=-1)


def zeros(shape=()) -> np.ndarray:
    return np.zeros(_shape(shape) + (4,), dtype=np.uint64)


def ones(shape=()) -> np.ndarray:
    return np.array(np.broadcast_to(ONE, _shape(shape) + (4,)))


def _from_wide(raw: bytes, shape: tuple) -> np.ndarray:
    """Reduce 64 random bytes per element mod ``r`` (statistical distance from uniform < 2^-256)."""
    wide = np.frombuffer(raw, dtype="<u8").reshape(-1, 8).astype(np.uint64)
    out = empty((wide.shape[0], 4))
    _wide_reduce_kernel[wide.shape[0]](wide, out)
    return out.reshape(shape + (4,))


def random(shape=()) -> np.ndarray:
    """Uniformly random elements from the OS CSPRNG (``secrets``)."""
    shape = _shape(shape)
    return _from_wide(secrets.token_bytes(64 * int(np.prod(shape, dtype=np.int64))), shape)


def random_seeded(shape, rng: np.random.Generator) -> np.ndarray:
    """Reproducible pseudo-random elements for tests and benchmarks (never for secrets)."""
    shape = _shape(shape)
    return _from_wide(rng.bytes(64 * int(np.prod(shape, dtype=np.int64))), shape)
