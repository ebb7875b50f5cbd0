"""The BLS12-381 group G1: points, Pedersen generators, multi-scalar multiplication, serialisation.

Points are ``py_arkworks_bls12381.G1Point`` objects (exported here as :data:`Point`); group
arithmetic is arkworks' (``+``, ``-``, ``==``). Scalars are ``zk.field`` arrays (Montgomery limbs).

Generators
----------
Generator ``i`` of the family ``label`` is the RFC 9380 hash-to-curve of
``len(label) (8 bytes LE) || label || i (8 bytes LE)`` under the random-oracle suite
``BLS12381G1_XMD:SHA-256_SSWU_RO_`` with the domain-separation tag :data:`GENERATOR_DST`.
Nobody knows a discrete-log relation between such points, which is what makes Pedersen
commitments over them binding. Families are cached per label and grow on demand, so a generator
is derived once per process; ``generators(n, label)`` is always a prefix of
``generators(n + 1, label)``. Deriving one costs about 0.3 ms, so the first
:data:`SHIPPED_COUNT` generators of the commitment key's family ship with the package
(:data:`GENERATOR_FILE`: ``"ZKGENS\0\0" || version 1 || label length (1 byte) || label || count
(u32 LE) || count affine points, x || y little-endian, 96 bytes each``, :func:`generator_file_bytes`);
they are package data, trusted as the code is, and ``tests/test_group.py`` re-derives every one.

Multi-scalar multiplication
---------------------------
:func:`msm` converts a field array to arkworks ``Scalar`` s through one vectorised
Montgomery->canonical pass (``field.to_bytes``) and 32-byte slices, then calls arkworks' Pippenger
(``G1Point.multiexp_unchecked``), which releases the GIL and runs on one core: a large MSM is split
into a chunk per core and :func:`msm_rows` (many MSMs over the same points, e.g. the rows of a
Hyrax commitment) runs its rows on a thread pool.
:func:`msm_rows` and :func:`msm_small` take integer scalars (a Hyrax commitment to limbs or
fixed-point values): 0/1 rows are sums of precomputed subset sums, other rows go to
:func:`zk.curve.rows_msm`, a bucket method on the integers themselves in numba (windows sized to the
widest entry, rows in parallel), about 2x faster than arkworks through the binding for 16-bit limbs.
:class:`FixedBase` multiplies one point by many scalars with a precomputed table (additions only,
in numba).

Serialisation
-------------
The 48-byte compressed form (ZCash / IETF BLS encoding). :func:`point_from_bytes` accepts only
the canonical encoding of a point on the curve and in the prime-order subgroup and raises
:class:`zk.errors.ProofFormatError` on anything else.
"""
from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from itertools import compress
from operator import add
from pathlib import Path

import numpy as np
from py_arkworks_bls12381 import G1Point, Scalar

from . import curve, field
from .errors import ProofFormatError

__all__ = [
    "Point", "POINT_BYTES", "GENERATOR_DST", "GENERATOR_FILE", "SHIPPED_COUNT",
    "identity", "generators", "generator_file_bytes", "to_scalars", "msm", "msm_many", "msm_small", "msm_rows", "FixedBase",
    "point_to_bytes", "point_from_bytes", "points_to_bytes", "points_from_bytes",
]

Point = G1Point
#: Bytes of a compressed G1 point.
POINT_BYTES = 48
#: RFC 9380 domain-separation tag of the generator derivation.
GENERATOR_DST = b"ZKFHE-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"

_GENERATORS: dict[bytes, list[G1Point]] = {}
_GENERATORS_LOCK = threading.Lock()
#: The shipped generators (see the module docstring).
GENERATOR_FILE = Path(__file__).with_name("generators.bin")
#: How many generators the file holds: the widest rows a 784-256-256-10 training proof commits.
SHIPPED_COUNT = 4096
_GENERATOR_MAGIC = b"ZKGENS\0\0"
_XY_BYTES = 96


def identity() -> G1Point:
    return G1Point.identity()


def _derive(label: bytes, i: int) -> G1Point:
    """Generator ``i`` of the family ``label`` (RFC 9380 hash-to-curve)."""
    return G1Point.hash_to_curve(len(label).to_bytes(8, "little") + label + i.to_bytes(8, "little"), GENERATOR_DST)


def generators(n: int, label: bytes) -> list[G1Point]:
    """The first ``n`` generators of the family ``label`` (the shipped ones loaded, the others
    derived once, then cached)."""
    label = bytes(label.encode() if isinstance(label, str) else label)
    with _GENERATORS_LOCK:
        if label not in _GENERATORS:
            _GENERATORS[label] = _shipped(label)
        family = _GENERATORS[label]
        for i in range(len(family), n):
            family.append(_derive(label, i))
        return family[:n]


def generator_file_bytes(label: bytes, count: int) -> bytes:
    """The contents of :data:`GENERATOR_FILE` for the first ``count`` generators of ``label``,
    derived afresh (how the file is made, and how the tests check it)."""
    head = _GENERATOR_MAGIC + bytes([1, len(label)]) + label + struct.pack("<I", count)
    return head + b"".join(bytes(_derive(label, i).to_xy_bytes_le()) for i in range(count))


def _shipped(label: bytes) -> list[G1Point]:
    """The shipped generators of ``label`` (none when the file holds another family's)."""
    data = GENERATOR_FILE.read_bytes()
    head = len(_GENERATOR_MAGIC) + 2
    if data[:len(_GENERATOR_MAGIC)] != _GENERATOR_MAGIC or data[len(_GENERATOR_MAGIC)] != 1:
        raise RuntimeError(f"{GENERATOR_FILE}: not a version 1 generator file (the package is damaged)")
    end = head + data[head - 1]
    if data[head:end] != label:
        return []
    (count,) = struct.unpack_from("<I", data, end)
    body = data[end + 4:]
    if len(body) != count * _XY_BYTES:
        raise RuntimeError(f"{GENERATOR_FILE}: {count} generators need {count * _XY_BYTES} bytes, "
                           f"found {len(body)} (the package is damaged)")
    load = G1Point.from_xy_bytes_unchecked_le
    return [load(body[k:k + _XY_BYTES]) for k in range(0, len(body), _XY_BYTES)]


def to_scalars(a) -> list[Scalar]:
    """arkworks ``Scalar`` s of a field array (flattened in C order)."""
    raw = field.to_bytes(a)
    from_le = Scalar.from_le_bytes
    return [from_le(raw[k:k + 32]) for k in range(0, len(raw), 32)]


def _check_lengths(points, n: int) -> None:
    if len(points) != n:
        raise ValueError(f"msm: {len(points)} points but {n} scalars")


#: An MSM this large is split into one chunk per core.
PARALLEL_MIN = 4096
_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_POOL: ThreadPoolExecutor | None = None


def _map(fn, items) -> list:
    """``[fn(x) for x in items]`` on a thread pool (arkworks releases the GIL inside an MSM)."""
    global _POOL
    if _THREADS == 1 or len(items) < 2:
        return [fn(x) for x in items]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="zk-msm")
    return list(_POOL.map(fn, items))


def set_threads(n: int) -> None:
    """Run large MSMs on ``n`` threads from now on (default: one per core this process may use);
    a worker process that shares the machine with others takes its share."""
    global _THREADS, _POOL
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    if n == _THREADS:
        return
    if _POOL is not None:
        _POOL.shutdown(wait=True)
    _THREADS, _POOL = n, None


def _multiexp(job) -> G1Point:
    return G1Point.multiexp_unchecked(*job)


def msm(points, scalars) -> G1Point:
    """``sum_i scalars[i] * points[i]`` for a field array ``scalars`` of shape ``(n, 4)``.

    arkworks runs one MSM on one core; a large one is split into a chunk per core.
    """
    sc = to_scalars(scalars)
    _check_lengths(points, len(sc))
    points = list(points)
    step = -(-len(sc) // _THREADS) if len(sc) >= PARALLEL_MIN else max(1, len(sc))
    jobs = [(points[k:k + step], sc[k:k + step]) for k in range(0, len(sc), step)]
    return reduce(add, _map(_multiexp, jobs), G1Point.identity())


def msm_many(jobs) -> list[G1Point]:
    """Several independent MSMs ``[(points, field scalars), ...]``, run side by side on the pool."""
    prepared = []
    for points, scalars in jobs:
        sc = to_scalars(scalars)
        _check_lengths(points, len(sc))
        prepared.append((list(points), sc))
    return _map(_multiexp, prepared)


def msm_rows(points, scalars) -> list[G1Point]:
    """One MSM per row over the same ``points``: ``scalars`` is a field array ``(k, n, 4)`` or an
    integer array ``(k, n)`` (rows then go through :func:`msm_small`'s kernels). Rows run in parallel."""
    arr = np.asarray(scalars)
    points = list(points)
    if arr.dtype == np.uint64 and arr.ndim == 3:
        if arr.shape[-1] != 4:
            raise ValueError(f"msm_rows: expected a field array (k, n, 4), got {arr.shape}")
        _check_lengths(points, arr.shape[1])
        sc = to_scalars(arr)
        n = arr.shape[1]
        return _map(_multiexp, [(points, sc[k:k + n]) for k in range(0, len(sc), n)])
    if arr.ndim != 2:
        raise ValueError(f"msm_rows: expected integer rows (k, n), got {arr.shape}")
    return _integer_rows(points, arr)


def msm_small(points, values) -> G1Point:
    """``sum_i values[i] * points[i]`` for integer (or bool) ``values`` in the int64 range: a row of
    :func:`msm_rows`."""
    return _integer_rows(list(points), np.asarray(values).reshape(1, -1))[0]


def _integer_rows(points: list, arr: np.ndarray) -> list[G1Point]:
    """Rows of integers: 0/1 rows by subset sums, others by :func:`zk.curve.rows_msm` (Pippenger
    on the integers, in numba); the identity among the points goes to arkworks."""
    if arr.dtype.kind not in "iub":
        raise TypeError(f"msm_small: expected integers, got {arr.dtype}")
    _check_lengths(points, arr.shape[1])
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("msm_small: values must fit in int64")
    if arr.size == 0:
        return [G1Point.identity()] * arr.shape[0]
    if arr.min() >= 0 and arr.max() <= 1:
        return _bit_rows(points, arr)
    bases = _cached(points, "row bases", _row_bases)
    if bases is None:
        return [_arkworks_row(points, row) for row in arr.astype(np.int64)]
    return _points(*curve.rows_msm(bases, arr))


def _arkworks_row(points, v: np.ndarray) -> G1Point:
    """One integer row through arkworks: positive and negative entries as two MSMs over magnitudes."""
    pos, neg = v > 0, v < 0
    out = msm(list(compress(points, pos.tolist())), field.from_int(v[pos]))
    if neg.any():
        out = out - msm(list(compress(points, neg.tolist())), field.from_int(-v[neg].astype(object)))
    return out


#: Per point list (by the identity of its point objects, which the cache keeps alive so that no
#: other list can share the key): its subset-sum tables and its row bases.
_POINT_CACHE: dict = {}
_POINT_CACHE_SIZE = 8


def _cached(points: list, what: str, make):
    key = (what, tuple(map(id, points)))
    if key not in _POINT_CACHE:
        if len(_POINT_CACHE) >= _POINT_CACHE_SIZE:
            _POINT_CACHE.pop(next(iter(_POINT_CACHE)))
        _POINT_CACHE[key] = (list(points), make(points))
    return _POINT_CACHE[key][1]


def _row_bases(points) -> curve.RowBases | None:
    """The points as :class:`zk.curve.RowBases`, or None when one is the identity."""
    xy = b"".join(bytes(p.to_xy_bytes_le()) for p in points)
    try:
        return curve.RowBases(curve.affine_points(xy))
    except ValueError:
        return None


def _subset_sums(points) -> list[list[G1Point]]:
    """For each group of 8 consecutive points, the sums of all 256 subsets (bit ``j`` of the index
    selects point ``j``): 255 additions per group, once per point list."""
    tables = []
    for g in range(0, len(points), 8):
        group_ = points[g:g + 8]
        table = [G1Point.identity()]
        for s in range(1, 1 << len(group_)):
            low = (s & -s).bit_length() - 1
            table.append(table[s & (s - 1)] + group_[low])
        tables.append(table)
    return tables


def _bit_rows(points, bits: np.ndarray) -> list[G1Point]:
    """Rows of 0/1 values over the same points: one table lookup and at most one addition per 8
    columns (Pippenger's idea with the buckets precomputed), instead of one addition per set bit;
    a single row adds its set points."""
    if bits.shape[0] == 1 or bits.shape[1] < 8:
        return [reduce(add, compress(points, row), G1Point.identity()) for row in bits.astype(bool).tolist()]
    tables = _cached(points, "subset sums", _subset_sums)
    packed = np.packbits(bits.astype(bool), axis=1, bitorder="little").tolist()
    zero = G1Point.identity()
    return [reduce(add, (t[b] for t, b in zip(tables, row) if b), zero) for row in packed]


def combine_rows(coeffs, columns) -> list[G1Point]:
    """``[sum_j coeffs[j] * columns[j][i] for every row i]`` for integer ``coeffs`` of any size
    (reduced mod ``r``, each taken as the smaller of ``c`` and ``c - r``): a product costs about one
    doubling per bit of the coefficient's magnitude, so small coefficients are cheap."""
    out = [G1Point.identity()] * len(columns[0]) if columns else []
    for c, column in zip(coeffs, columns):
        c %= field.R
        negative = c > field.R // 2
        mag = field.R - c if negative else c
        if mag == 0:
            continue
        s = Scalar.from_le_bytes(mag.to_bytes(32, "little"))
        terms = column if mag == 1 else [p * s for p in column]
        out = [o - t for o, t in zip(out, terms)] if negative else [o + t for o, t in zip(out, terms)]
    return out


class FixedBase:
    """Multiples of one fixed point through :class:`zk.curve.FixedBaseTable` (``d * 256^w * point``,
    ``d < 256``, ``w < 32``): each product costs at most 32 mixed additions in numba instead of a
    255-bit scalar multiplication."""

    def __init__(self, point: G1Point) -> None:
        self.point = point
        self._table = None if point == G1Point.identity() else \
            curve.FixedBaseTable(curve.affine_points(bytes(point.to_xy_bytes_le())))

    def mul(self, scalars) -> list[G1Point]:
        """``[s * point for s in scalars]`` for a field array of shape ``(n, 4)``."""
        raw = np.frombuffer(field.to_bytes(scalars), dtype=np.uint8).reshape(-1, 32)
        if self._table is None:
            return [G1Point.identity()] * raw.shape[0]
        return _points(*self._table.mul(raw))


def _points(affine: np.ndarray, identity: np.ndarray) -> list[G1Point]:
    """arkworks points of :mod:`zk.curve`'s canonical affine results."""
    load, zero = G1Point.from_xy_bytes_unchecked_le, G1Point.identity()
    return [zero if z else load(xy) for xy, z in zip(curve.to_xy_bytes(affine), identity.tolist())]


def point_to_bytes(p: G1Point) -> bytes:
    """The canonical 48-byte compressed encoding."""
    return bytes(p.to_compressed_bytes())


def point_from_bytes(data) -> G1Point:
    """Parse a canonical compressed point on the curve and in the subgroup; ProofFormatError otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProofFormatError(f"point: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) != POINT_BYTES:
        raise ProofFormatError(f"point: expected {POINT_BYTES} bytes, got {len(data)}")
    try:
        p = G1Point.from_compressed_bytes(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProofFormatError(f"point: invalid encoding ({exc})") from None
    if bytes(p.to_compressed_bytes()) != data:  # arkworks tolerates stray flag/padding bits on infinity
        raise ProofFormatError("point: non-canonical encoding")
    return p


def points_to_bytes(points) -> bytes:
    return b"".join(bytes(p.to_compressed_bytes()) for p in points)


def points_from_bytes(data, count: int) -> list[G1Point]:
    """Parse exactly ``count`` concatenated compressed points (ProofFormatError otherwise)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProofFormatError(f"points: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if count < 0 or len(data) != POINT_BYTES * count:
        raise ProofFormatError(f"points: expected {POINT_BYTES} * {count} bytes, got {len(data)}")
    return [point_from_bytes(data[k:k + POINT_BYTES]) for k in range(0, len(data), POINT_BYTES)]
