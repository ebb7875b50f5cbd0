"""Dataset commitments: a dataset committed batch by batch and published before any proof.

The data owner splits ``(X, Y)`` into consecutive batches of ``batch_size`` rows (the last may
be smaller), encodes them in fixed point at ``2^scale_bits`` and commits to each batch's ``X``
and ``Y`` (:mod:`zk.committed`: padded to ``(2^ceil(log2 B), 2^ceil(log2 d))``). The
:class:`DatasetCommitment` is public and small (one Hyrax row commitment per 2^k entries) and has
a printable digest; the :class:`DatasetOpening` holds the integers and the blinds and is secret
(the trainer needs it, a verifier never does). A training statement records the dataset's digest
and, for every step, which batch it used; the verifier compares the statement's data commitments
with the published ones (:func:`check_statement`).

Files: ``"ZKDATA\\0\\0" || version || header || X commitments || Y commitments`` and
``"ZKDOPEN\\0" || version || commitment section || per batch: X tensor, Y tensor`` (integers and
blinds, :func:`zk.committed.write_tensor`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from circuits import FixedPoint

from . import commit, committed
from .commit import Commitment
from .errors import ProofFormatError, VerificationError
from .wire import section

__all__ = ["DatasetCommitment", "DatasetOpening", "commit_dataset"]

MAGIC, OPENING_MAGIC, VERSION = b"ZKDATA\0\0", b"ZKDOPEN\0", 1
#: Bounds a dataset commitment may declare (the parser refuses more before allocating).
MAX_BATCHES, MAX_BATCH, MAX_FEATURES = 1 << 20, 1 << 16, 1 << 16


@dataclass(frozen=True)
class DatasetCommitment(committed.PublishedFile):
    """Public: per batch, the number of real rows and the commitments to its ``X`` and ``Y``."""

    MAGIC, VERSION, WHAT = MAGIC, VERSION, "dataset commitment"

    batch_size: int
    scale_bits: int
    features: int
    outputs: int
    rows: tuple[int, ...]
    x: tuple[Commitment, ...]
    y: tuple[Commitment, ...]

    @property
    def batches(self) -> int:
        return len(self.rows)

    @property
    def x_shape(self) -> tuple[int, int]:
        return committed.padded((self.batch_size, self.features))

    @property
    def y_shape(self) -> tuple[int, int]:
        return committed.padded((self.batch_size, self.outputs))

    def to_bytes(self) -> bytes:
        head = struct.pack("<IIIBI", self.batch_size, self.features, self.outputs, self.scale_bits,
                           len(self.rows))
        head += b"".join(struct.pack("<I", n) for n in self.rows)
        return (MAGIC + bytes([VERSION]) + head + committed.write_commitments(self.x)
                + committed.write_commitments(self.y))

    @cached_property
    def digest(self) -> bytes:
        return committed.digest(self.to_bytes())

    @classmethod
    def _read_body(cls, r) -> "DatasetCommitment":
        batch, features, outputs, scale, n = struct.unpack("<IIIBI", r.take(17))
        if not (1 <= batch <= MAX_BATCH and 1 <= features <= MAX_FEATURES and 1 <= outputs <= MAX_FEATURES
                and 1 <= scale <= 40 and 1 <= n <= MAX_BATCHES):
            raise ProofFormatError(f"dataset commitment: header out of range (batch {batch}, features "
                                   f"{features}, outputs {outputs}, scale {scale}, {n} batches)")
        if r.remaining() < 4 * n + 2 * n * committed.MIN_COMMITMENT_BYTES:
            raise ProofFormatError(f"dataset commitment: {n} batches do not fit in {r.remaining()} bytes")
        rows = tuple(r.unpack("<I") for _ in range(n))
        if not all(1 <= k <= batch for k in rows):
            raise ProofFormatError(f"dataset commitment: batch row counts must be in [1, {batch}]")
        x_shape, y_shape = committed.padded((batch, features)), committed.padded((batch, outputs))
        x = committed.read_commitments(r, [x_shape] * n, "dataset commitment (X)")
        y = committed.read_commitments(r, [y_shape] * n, "dataset commitment (Y)")
        return cls(batch, scale, features, outputs, rows, x, y)

    def describe(self) -> str:
        last = f", the last one {self.rows[-1]} rows" if self.rows[-1] != self.batch_size else ""
        return "\n".join([
            "zkfhe dataset commitment (public)",
            f"  digest       : {self.digest.hex()}",
            f"  batches      : {self.batches} of {self.batch_size} rows{last} ({sum(self.rows)} rows in all)",
            f"  features     : X {self.features}, Y {self.outputs}",
            f"  fixed point  : scale 2^{self.scale_bits}"])


@dataclass(frozen=True, repr=False)
class DatasetOpening(committed.PublishedFile):
    """Secret: the published commitment, and per batch the integers of ``X``, ``Y`` (at the
    commitment's scale, unpadded) and their row blinds."""

    MAGIC, VERSION, WHAT = OPENING_MAGIC, VERSION, "dataset opening"

    commitment: DatasetCommitment
    x: tuple[np.ndarray, ...]
    y: tuple[np.ndarray, ...]
    x_blinds: tuple[np.ndarray, ...]
    y_blinds: tuple[np.ndarray, ...]

    def __repr__(self) -> str:  # never print secrets
        return f"DatasetOpening({self.commitment.batches} batches, digest {committed.short_digest(self.commitment.digest)})"

    def batch(self, i: int, key: commit.CommitKey = commit.DEFAULT_KEY):
        """``((X commitment, opening), (Y commitment, opening))`` of batch ``i``, checked against
        the published commitment (ValueError for an opening that does not match it)."""
        c = self.commitment
        return (committed.reopen(self.x[i], c.x_shape, self.x_blinds[i], c.x[i], key, f"dataset batch {i} (X)"),
                committed.reopen(self.y[i], c.y_shape, self.y_blinds[i], c.y[i], key, f"dataset batch {i} (Y)"))

    def floats(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``i`` decoded to float64 (what a torch reference trains on)."""
        fp = FixedPoint(self.commitment.scale_bits)
        return fp.decode(self.x[i]), fp.decode(self.y[i])

    def to_bytes(self) -> bytes:
        body = b"".join(committed.write_tensor(a, b) for pair in zip(self.x, self.x_blinds, self.y, self.y_blinds)
                        for a, b in (pair[:2], pair[2:]))
        return OPENING_MAGIC + bytes([VERSION]) + section(self.commitment.to_bytes()) + body

    @classmethod
    def _read_body(cls, r) -> "DatasetOpening":
        c = DatasetCommitment.from_bytes(r.section())
        x_rows = 1 << (committed.layout(c.x_shape)[0] - committed.layout(c.x_shape)[1])
        y_rows = 1 << (committed.layout(c.y_shape)[0] - committed.layout(c.y_shape)[1])
        xs, ys, xb, yb = [], [], [], []
        for i, n in enumerate(c.rows):
            x, bx = committed.read_tensor(r, (n, c.features), x_rows, f"dataset opening, batch {i} (X)")
            y, by = committed.read_tensor(r, (n, c.outputs), y_rows, f"dataset opening, batch {i} (Y)")
            xs.append(x), ys.append(y), xb.append(bx), yb.append(by)
        return cls(c, tuple(xs), tuple(ys), tuple(xb), tuple(yb))


def commit_dataset(X, Y, batch_size: int, scale_bits: int = 16, key: commit.CommitKey = commit.DEFAULT_KEY,
                   progress=None) -> tuple[DatasetCommitment, DatasetOpening]:
    """Commit to a dataset split into consecutive batches of ``batch_size`` rows (the last one may
    be smaller): ``(DatasetCommitment, DatasetOpening)``. ``X`` is ``(N, features)`` and ``Y``
    ``(N, outputs)``, arrays or tensors; values whose fixed-point encoding would underflow are
    refused (ValueError)."""
    from circuits.interpret import as_array

    x, y = as_array(X, "X").astype(np.float64), as_array(Y, "Y").astype(np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or not x.shape[0]:
        raise ValueError(f"commit_dataset takes X (N, features) and Y (N, outputs) with N >= 1 rows, "
                         f"got {x.shape} and {y.shape}")
    if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be an integer in [1, {MAX_BATCH}], got {batch_size!r}")
    starts = range(0, x.shape[0], batch_size)
    return from_batches([(x[s:s + batch_size], y[s:s + batch_size]) for s in starts], scale_bits, key,
                        progress, batch_size)


def from_batches(batches, scale_bits: int = 16, key: commit.CommitKey = commit.DEFAULT_KEY, progress=None,
                 batch_size: int | None = None) -> tuple[DatasetCommitment, DatasetOpening]:
    """Commit to a list of ``(X, Y)`` float batches as they are (a DataLoader's batches: one batch
    size, the last batch possibly smaller)."""
    fp = FixedPoint(scale_bits)
    batches = list(batches)
    if not batches or len(batches) > MAX_BATCHES:
        raise ValueError(f"a dataset has 1..{MAX_BATCHES} batches, got {len(batches)}")
    batch_size = batch_size or max(len(x) for x, _ in batches)
    features, outputs = np.shape(batches[0][0])[1], np.shape(batches[0][1])[1]
    x_shape, y_shape = committed.padded((batch_size, features)), committed.padded((batch_size, outputs))
    xs, ys, xb, yb, xc, yc = [], [], [], [], [], []
    for i, (x, y) in enumerate(batches):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != features or y.shape != (x.shape[0], outputs) \
                or not 1 <= x.shape[0] <= batch_size:
            raise ValueError(f"batch {i}: expected X (rows, {features}) and Y (rows, {outputs}) with 1..{batch_size} "
                             f"rows, got {x.shape} and {y.shape}")
        for name, a, store, blinds, coms, shape in (("X", x, xs, xb, xc, x_shape), ("Y", y, ys, yb, yc, y_shape)):
            q = fp.encode(a)
            committed.check_encoding(a, q, scale_bits, f"{name} of batch {i}")
            com, opening = committed.commit_padded(q, shape, key)
            store.append(q), blinds.append(opening.blinds), coms.append(com)
        if progress:
            progress("commit data", i + 1, len(batches))
    c = DatasetCommitment(batch_size, scale_bits, features, outputs, tuple(len(x) for x in xs), tuple(xc), tuple(yc))
    return c, DatasetOpening(c, tuple(xs), tuple(ys), tuple(xb), tuple(yb))


def check_statement(statement, dataset: DatasetCommitment) -> None:
    """VerificationError naming the first mismatch unless every step of ``statement`` (a
    :class:`zk.TrainingStatement`) used a batch of the published ``dataset`` as it is."""
    if not isinstance(dataset, DatasetCommitment):
        raise VerificationError(f"dataset= takes a DatasetCommitment, got {type(dataset).__name__}")
    if statement.dataset != dataset.digest:
        raise VerificationError(f"the proof is about dataset {committed.short_digest(statement.dataset)}, "
                                f"not the published dataset {committed.short_digest(dataset.digest)}")
    a = statement.architecture
    if (statement.batch_size, statement.scale_bits, a.features, a.outputs) != \
            (dataset.batch_size, dataset.scale_bits, dataset.features, dataset.outputs):
        raise VerificationError("the proof's batch size, scale or widths differ from the published dataset's")
    for t, i in enumerate(statement.batch_indices):
        if i >= dataset.batches:
            raise VerificationError(f"step {t} uses batch {i}; the published dataset has {dataset.batches}")
        if statement.rows[t] != dataset.rows[i]:
            raise VerificationError(f"step {t} proves {statement.rows[t]} rows; batch {i} of the published "
                                    f"dataset has {dataset.rows[i]}")
        for kind, mine, published in zip("XY", statement.batch_commitments(t), (dataset.x[i], dataset.y[i])):
            if mine.to_bytes() != published.to_bytes():
                raise VerificationError(f"step {t}: its data {kind} is not batch {i} of the published dataset "
                                        "(other data, or batches in another order)")
