"""Where the prover's heavy loops run: zk's own CPU kernels or the CUDA kernels of :mod:`gpu`.

Four loops dominate a proof: Hyrax row commitments and the inner-product argument's multi-scalar
multiplications over the commitment key's generators, sumcheck rounds (round polynomials and
folding, eq-weighted sums included), and the vector-matrix product that starts every opening. The
prover runs them on the *current device*:

* ``cpu``: zk's numba kernels and arkworks (the reference path);
* ``cuda``: :mod:`gpu`'s kernels on the current CUDA device (needs cupy and a GPU);
* ``host``: the very same CUDA sources compiled for the CPU (gpu's host build). It is slow; it exists
  so that a machine without a GPU can check that the kernel path yields the same proof, bit for bit.

Everything else (transcript, small field arithmetic, MSMs over a few points, proof objects) stays
on the host. A proof's bytes do not depend on the device: every kernel returns canonical field
elements and affine points, and the blinding randomness is drawn on the host, in the same order,
whatever the device.

On a kernel device the committed tables live on the device from the moment they are committed:
an :class:`zk.commit.Opening`'s table is a device array, and stacking, linear combinations,
binding variables, sumchecks and openings all run there (the *table operations* below: ``xp``,
``asarray``, ``table_from_ints``, ``field_table``, ``add``, ``sub``, ``mul``, ``lincomb``). Only
round messages (``d + 1`` field elements), final evaluations and the one-row vectors of the
inner-product argument come back. The public prover functions take ``device="auto" | "cpu" |
"cuda"`` (:func:`resolve`; ``auto`` picks ``cuda`` when cupy imports and sees a GPU, else ``cpu``)
and pass the :class:`Device` down, as an argument, to every function that computes on tables.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from . import field, group, mle
from .sumcheck import EqSumcheckProver, SumcheckProver, check_terms

__all__ = ["DEVICES", "Device", "CpuDevice", "KernelDevice", "CPU", "resolve", "flat"]

#: Names accepted by :func:`resolve` (``host`` is the kernels' CPU build, for checking).
DEVICES = ("auto", "cpu", "cuda", "host")
#: Integer tables kept as they are until a relation computes on them: bit planes, 16-bit limbs and
#: int64 values (1, 2 and 8 bytes an entry instead of a field element's 32).
SMALL_TABLES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int64))


def flat(table):
    """A table as one MLE table: small integers ``(2^m,)``, field elements ``(2^m, 4)``."""
    return table.reshape(-1) if table.dtype in SMALL_TABLES else table.reshape(-1, 4)


class Device(ABC):
    """Where the prover computes on tables: the table operations and the four loops.

    A *table* is a field array ``(..., 4)`` (or small integers: :data:`SMALL_TABLES`) in this device's
    memory; the table operations also take host arrays, which they upload. What comes back to the
    host (points, round messages, row vectors) is canonical, so a proof's bytes do not depend on
    the device.
    """

    #: the name :func:`resolve` knows the device by
    name: str
    #: the array module of this device's tables (numpy, or cupy)
    xp: object

    # -- table operations -------------------------------------------------------------------
    @abstractmethod
    def asarray(self, a):
        """``a`` as an array on this device."""

    @abstractmethod
    def download(self, a) -> np.ndarray:
        """An array of this device on the host."""

    @abstractmethod
    def table_from_ints(self, ints: np.ndarray):
        """Field elements of integer entries (small integers or int64 values)."""

    @abstractmethod
    def field_table(self, table):
        """A table as field elements: small-integer tables expanded, field tables as they are."""

    @abstractmethod
    def add(self, a, b):
        """``a + b``, entrywise."""

    @abstractmethod
    def sub(self, a, b):
        """``a - b``, entrywise."""

    @abstractmethod
    def mul(self, a, b):
        """``a * b``, entrywise (either may be one field element)."""

    @abstractmethod
    def lincomb(self, coeffs: np.ndarray, tables):
        """``sum_k coeffs[k] tables[k]`` (host coefficients ``(k, 4)``, tables of one shape)."""

    def fraction_layer(self, p, q):
        """The layer above fractions ``p / q`` (``p = None``: numerators 1) summed pairwise, the
        child bit most significant: ``(p(0,.) q(1,.) + p(1,.) q(0,.), q(0,.) q(1,.))``."""
        h = len(q) // 2
        c, d = q[:h], q[h:]
        p = self.add(c, d) if p is None else self.add(self.mul(p[:h], d), self.mul(p[h:], c))
        return p, self.mul(c, d)

    def scale_add_into(self, out, table, scale, offset) -> None:
        """``out = offset + scale * T`` entrywise for a table ``T`` (flattened; ``scale`` and
        ``offset`` host field elements), written into the field array ``out`` (e.g. a slice)."""
        out[...] = self.add(self.mul(self.field_table(table).reshape(-1, 4), scale), offset)

    def partial_eval(self, table, positions, values):
        """Bind the variables ``positions`` (increasing) of a table's MLE to ``values`` (host field
        array ``(k, 4)``): the field table over the other variables, in their order."""
        t = self.field_table(table).reshape(-1, 4)
        m = len(t).bit_length() - 1
        t = t.reshape((2,) * m + (4,))
        for pos, v in zip(reversed(positions), reversed(values)):  # the later axes first: the earlier stay put
            lo, hi = self.xp.take(t, 0, axis=pos), self.xp.take(t, 1, axis=pos)
            t = self.add(lo, self.mul(self.sub(hi, lo), v))
        return t.reshape(-1, 4)

    # -- the loops --------------------------------------------------------------------------
    @abstractmethod
    def commit_rows(self, key, table, ints: np.ndarray | None, blinds: np.ndarray, h: group.FixedBase) -> list:
        """Blinded row commitments ``C_i = sum_j T[i, j] G_j + blinds[i] H`` of a table
        (``(rows, cols, 4)`` field elements or ``(rows, cols)`` bits) with the generators ``G_j``
        of ``key`` (a :class:`zk.commit.CommitKey`) and ``h`` the fixed-base table of ``H``
        (``ints``: the integer entries, when the tensor is integer)."""

    @abstractmethod
    def generator_msms(self, key, jobs) -> list:
        """``sum_k scalars[k] G_{indices[k]}`` for each job ``(indices, scalars)`` over the
        generators ``G`` of ``key``."""

    @abstractmethod
    def sumcheck(self, tables, terms: Sequence[tuple], consume: bool = False):
        """A prover for ``sum_x sum_t c_t prod_j P_j(x)`` over ``tables`` (field tables, or small
        integers ``(2^m,)``), with
        :class:`zk.sumcheck.SumcheckProver`'s interface and messages (``consume``: the caller no
        longer needs the tables, which the prover may then overwrite)."""

    @abstractmethod
    def eq_sumcheck(self, point, tables, terms: Sequence[tuple], claim=None, consume: bool = False):
        """A prover for ``sum_x eq(point, x) sum_t c_t prod_j P_j(x)`` (the eq factor left out
        of ``terms``), with :class:`zk.sumcheck.SumcheckProver`'s interface and messages (``claim``:
        the sum, when the caller knows it; it may save work, never changes a message; ``consume``:
        the caller no longer needs the tables, which the prover may then overwrite)."""

    @abstractmethod
    def vecmat(self, v: np.ndarray, m) -> np.ndarray:
        """``v^T M`` for ``v (rows, 4)`` on the host and a table ``M`` (``(rows, cols, 4)``, or small
        integers ``(rows, cols)``), on the host."""


class CpuDevice(Device):
    """The reference path: :mod:`zk.field` / :mod:`zk.mle` numba kernels and arkworks MSMs."""

    name = "cpu"
    xp = np

    # -- table operations -------------------------------------------------------------------
    asarray = staticmethod(np.asarray)
    download = staticmethod(np.asarray)
    add = staticmethod(field.add)
    sub = staticmethod(field.sub)
    mul = staticmethod(field.mul)
    fraction_layer = staticmethod(mle.fraction_layer)

    @staticmethod
    def scale_add_into(out, table, scale, offset) -> None:
        field.scale_add(flat(table), scale, offset, out)

    @staticmethod
    def partial_eval(table, positions, values) -> np.ndarray:
        return mle.partial_eval(flat(table), positions, values)

    @staticmethod
    def table_from_ints(ints: np.ndarray) -> np.ndarray:
        return field.from_int(ints)

    @classmethod
    def field_table(cls, table):
        return cls.table_from_ints(table) if table.dtype in SMALL_TABLES else table

    @staticmethod
    def lincomb(coeffs: np.ndarray, tables) -> np.ndarray:
        stacked = np.stack(tables)
        return field.sum(field.mul(coeffs.reshape((len(tables),) + (1,) * (stacked.ndim - 2) + (4,)), stacked), axis=0)

    # -- the loops --------------------------------------------------------------------------
    @staticmethod
    def commit_rows(key, table: np.ndarray, ints: np.ndarray | None, blinds: np.ndarray,
                    h: group.FixedBase) -> list:
        rows = group.msm_rows(key.g(table.shape[1]), ints if ints is not None else table)
        return [p + mask for p, mask in zip(rows, h.mul(blinds))]

    @staticmethod
    def generator_msms(key, jobs) -> list:
        gens = key.g(_generators_used(jobs))
        return group.msm_many([([gens[i] for i in idx.tolist()], sc) for idx, sc in jobs])

    @staticmethod
    def sumcheck(tables, terms: Sequence[tuple], consume: bool = False) -> SumcheckProver:
        return SumcheckProver(tables, terms, consume=consume)

    @staticmethod
    def eq_sumcheck(point, tables, terms: Sequence[tuple], claim=None, consume: bool = False) -> EqSumcheckProver:
        return EqSumcheckProver(point, tables, terms, claim, consume=consume)

    @staticmethod
    def vecmat(v: np.ndarray, m: np.ndarray) -> np.ndarray:
        return field.vecmat(v, m)


def _generators_used(jobs) -> int:
    """How many of a key's generators the jobs ``(indices, scalars)`` reach."""
    return 1 + max((int(idx.max()) for idx, _ in jobs if len(idx)), default=-1)


class KernelDevice(Device):
    """:mod:`gpu`'s kernels on the GPU (``backend="cuda"``) or on the host build (``"host"``)."""

    def __init__(self, backend: str) -> None:
        import gpu
        from gpu import runtime

        self.name = backend
        self._gpu = gpu
        self.xp = runtime.cuda_backend().xp if backend == "cuda" else np
        self._generators: dict = {}  # key label -> the key's first generators, (n, 12) on the device
        self._fixed: dict = {}  # compressed point -> the point, (1, 12) on the device

    # -- transfers --------------------------------------------------------------------------
    def upload(self, a):
        """A host array on this device (device arrays pass through)."""
        return self.xp.ascontiguousarray(self.xp.asarray(a))

    # -- table operations -------------------------------------------------------------------
    def asarray(self, a):
        return self.upload(a)

    def table_from_ints(self, ints: np.ndarray):
        # uploads 1 byte per bit and 8 per value, not the 32 of a field element
        return self._gpu.fr_from_int64(self.upload(ints).astype(np.int64))

    def field_table(self, table):
        return self.table_from_ints(table) if table.dtype in SMALL_TABLES else self.upload(table)

    def add(self, a, b):
        return self._gpu.fr_add(self.upload(a), self.upload(b))

    def sub(self, a, b):
        return self._gpu.fr_sub(self.upload(a), self.upload(b))

    def mul(self, a, b):
        return self._gpu.fr_mul(self.upload(a), self.upload(b))

    def lincomb(self, coeffs: np.ndarray, tables):
        out = None
        for c, t in zip(coeffs, tables):
            term = self.mul(t, c)
            out = term if out is None else self.add(out, term)
        return out

    def download(self, a) -> np.ndarray:
        """A device array on the host."""
        return self._gpu.to_host(a)

    def _points(self, points):
        """Affine device points ``(n, 12)`` (Fp Montgomery limbs) of arkworks points."""
        raw = b"".join(bytes(p.to_xy_bytes_le()) for p in points)
        xy = np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(-1, 6)
        return self._gpu.fp_op("to_mont", self.upload(xy)).reshape(-1, 12)

    def _key_generators(self, key, n: int):
        """The first ``n`` generators of ``key`` on the device (a prefix of one cached array)."""
        have = self._generators.get(key.label)
        if have is None or have.shape[0] < n:
            have = self._generators[key.label] = self._points(key.g(n))
        return have[:n]

    def _fixed_point(self, point):
        data = group.point_to_bytes(point)
        if data not in self._fixed:
            self._fixed[data] = self._points([point])
        return self._fixed[data]

    def _to_points(self, points) -> list:
        """arkworks points from affine device points ``(n, 12)`` (the kernels' outputs: on the
        curve and in the subgroup by construction, so decoded without checks)."""
        xy = self.download(self._gpu.fp_op("from_mont", points.reshape(-1, 6)))
        raw = np.ascontiguousarray(xy, dtype="<u8").tobytes()
        decode = group.Point.from_xy_bytes_unchecked_le
        return [decode(raw[k:k + 96]) for k in range(0, len(raw), 96)]

    # -- the loops --------------------------------------------------------------------------
    def commit_rows(self, key, table: np.ndarray, ints: np.ndarray | None, blinds: np.ndarray,
                    h: group.FixedBase) -> list:
        gpu = self._gpu
        rows = gpu.commit_rows(self._key_generators(key, table.shape[1]), self.field_table(table))
        masks = gpu.commit_rows(self._fixed_point(h.point), self.upload(blinds).reshape(-1, 1, 4))
        return self._to_points(gpu.g1_add(rows, masks))

    def generator_msms(self, key, jobs) -> list:
        if not jobs:
            return []
        gens = self._key_generators(key, _generators_used(jobs))
        sums = [self._gpu.msm(gens[self.upload(idx.astype(np.int64))], self.upload(sc)) for idx, sc in jobs]
        return self._to_points(self.xp.stack(sums))

    def sumcheck(self, tables, terms: Sequence[tuple], consume: bool = False) -> "KernelSumcheckProver":
        return KernelSumcheckProver(self, [self.field_table(t) for t in tables], terms)

    def eq_table(self, point):
        """The table of ``eq(point, .)`` on the device."""
        return self._gpu.eq_table(self.upload(field.asarray(point, "point").reshape(-1, 4)))

    def eq_sumcheck(self, point, tables, terms: Sequence[tuple], claim=None, consume: bool = False) -> "KernelSumcheckProver":
        # the eq table materialised as one more factor of every term: the same polynomials
        tables = list(tables)
        return self.sumcheck(tables + [self.eq_table(point)], [(c, tuple(idx) + (len(tables),)) for c, idx in terms])

    def vecmat(self, v: np.ndarray, m: np.ndarray) -> np.ndarray:
        return self.download(self._gpu.vecmat(self.upload(v), self.field_table(m)))


class KernelSumcheckProver:
    """:class:`zk.sumcheck.SumcheckProver` on a :class:`KernelDevice`: the tables live on the device;
    a round polynomial is the combination ``sum_t c_t g_t`` of one kernel reduction per term."""

    def __init__(self, device: KernelDevice, tables, terms: Sequence[tuple]) -> None:
        self._device = device
        self._tables = [device.upload(t).reshape(-1, 4) for t in tables]
        sizes = {t.shape[0] for t in self._tables}
        n = self._tables[0].shape[0] if self._tables else 0
        if len(sizes) != 1 or n & (n - 1) or not n:
            raise ValueError(f"sumcheck: expected tables of one shape (2^m, 4), got sizes {sorted(sizes)}")
        self.degree, coeffs = check_terms(terms, len(self._tables))
        self._terms = [(c, tuple(idx)) for c, (_, idx) in zip(coeffs, terms)]
        if any(not idx for _, idx in self._terms):
            raise ValueError("sumcheck: a term without tables is not supported on a kernel device")
        self.num_vars = n.bit_length() - 1

    def round_polynomial(self) -> np.ndarray:
        if self._tables[0].shape[0] < 2:
            raise ValueError("sumcheck: every variable is already bound")
        gpu, out = self._device._gpu, field.zeros(self.degree + 1)
        for coeff, idx in self._terms:
            g = self._device.download(gpu.round_poly([self._tables[j] for j in idx], self.degree))
            out = field.add(out, field.mul(coeff, g))
        return out

    def bind(self, challenge) -> None:
        c = self._device.upload(field.asarray(challenge, "challenge").reshape(1, 4))
        self._tables = [self._device._gpu.fold(t, c) for t in self._tables]

    def final_evaluations(self) -> np.ndarray:
        if self._tables[0].shape[0] != 1:
            raise ValueError(f"sumcheck: {self._tables[0].shape[0].bit_length() - 1} variables are still unbound")
        return np.stack([self._device.download(t[0]) for t in self._tables])


#: The reference device: the default of the functions that commit and prove on tables.
CPU = CpuDevice()


@functools.cache
def _named(name: str) -> Device:
    if name == "cpu":
        return CPU
    if name == "cuda":
        from gpu import runtime

        if not runtime.cuda_available():
            raise RuntimeError("device 'cuda': cupy is not installed or sees no CUDA device "
                               "(pip install 'zkfhe[gpu]' on a machine with an NVIDIA GPU, or use device='cpu')")
    return KernelDevice(name)


def resolve(device="auto") -> Device:
    """The device for a name in :data:`DEVICES` (or a :class:`Device`, returned as is)."""
    if isinstance(device, Device):
        return device
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    if device == "auto":
        from gpu import runtime

        device = "cuda" if runtime.cuda_available() else "cpu"
    return _named(device)
