"""Tensors committed once and published: the layout every proof reuses, and the file pieces.

A published commitment (a dataset's batches, a model's parameters) is a Hyrax commitment to an
integer tensor zero-padded to the padded shape the circuits use, with the row width of one
stacked instance (:func:`zk.stack.instance_col_vars`). A proof that refers to it reuses the
commitment as it is, so the verifier compares bytes; the prover needs the secret side, the
integers and the row blinds (an *opening file*, never part of a proof).

The files built from these pieces (:mod:`zk.dataset`, :mod:`zk.model`) are versioned, and their
readers are bounded (:class:`zk.wire.Reader`) before they allocate.
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np

from . import commit, field, group, mle
from .commit import Commitment, Opening
from .errors import ProofFormatError
from .stack import instance_col_vars
from .wire import Reader, section

#: Bytes of a digest; :func:`short_digest` prints the first 8 of them.
DIGEST_BYTES = 32
#: A statement's digest field when the proof's data was not published beforehand.
NO_DIGEST = bytes(DIGEST_BYTES)
#: Most entries of one tensor an opening file may declare (2^30 int64: 8 GiB).
MAX_ENTRIES = 1 << 30
#: Fewest bytes a commitment section can take: length, header and one row.
MIN_COMMITMENT_BYTES = 4 + 3 + group.POINT_BYTES


def padded(shape) -> tuple[int, ...]:
    """The power-of-two padded shape of a tensor."""
    return tuple(1 << (int(d) - 1).bit_length() for d in shape)


def layout(shape) -> tuple[int, int]:
    """``(num_vars, col_vars)`` of the commitment of a tensor of padded ``shape``."""
    m = sum(mle.dim_bits(shape))
    return m, instance_col_vars(m)


def _padded_values(values: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape, dtype=np.int64)
    out[tuple(slice(0, n) for n in values.shape)] = values
    return out.reshape(1, -1)


def commit_padded(values: np.ndarray, shape, key: commit.CommitKey, blinds=None) -> tuple[Commitment, Opening]:
    """Commit to integer ``values`` zero-padded to ``shape`` (fresh blinds unless given)."""
    return commit.commit(_padded_values(values, shape), key, blinds=blinds, col_vars=layout(shape)[1])


def reopen(values: np.ndarray, shape, blinds: np.ndarray, expected: Commitment, key: commit.CommitKey,
           what: str) -> tuple[Commitment, Opening]:
    """The commitment and opening of a published tensor from its secret side, checked against
    the published commitment (:func:`zk.commit.opens`; ValueError naming ``what`` when they
    differ: a wrong or corrupted opening file, or another commitment key)."""
    m, c = layout(shape)
    opening = commit.opening_of(_padded_values(values, shape), blinds, c)
    if (expected.num_vars, expected.col_vars) != (m, c) or not commit.opens(expected, opening, key):
        raise ValueError(f"{what}: the opening does not match its published commitment (a wrong or "
                         "corrupted opening file, or another commitment key)")
    return expected, opening


def digest(data: bytes) -> bytes:
    """SHA-256 of a published file's bytes: what statements record and people compare."""
    return hashlib.sha256(data).digest()


def short_digest(d: bytes) -> str:
    """The first 8 bytes of a digest in hex, for people."""
    return d[:8].hex()


def check_encoding(x: np.ndarray, encoded: np.ndarray, scale: int, what: str) -> None:
    """Refuse (ValueError) a tensor whose fixed-point encoding at ``2^scale`` loses more than 1%
    of its norm: entries that underflow to zero would be proved as zeros, a silent divergence
    from what the user computes."""
    norm = float(np.linalg.norm(x))
    if norm == 0.0:
        return
    lost = float(np.linalg.norm(encoded / 2.0**scale - x)) / norm
    if lost > 0.01:
        raise ValueError(f"{what} underflows in fixed point at scale 2^{scale}: its encoding loses "
                         f"{100 * lost:.0f}% of its norm (entries below 2^-{scale + 1} round to zero); "
                         "rescale the data or raise scale_bits")


# ----------------------------------------------------------------------------------------
# file pieces
# ----------------------------------------------------------------------------------------
def write_commitments(commitments) -> bytes:
    return struct.pack("<I", len(commitments)) + b"".join(section(c.to_bytes()) for c in commitments)


def read_commitments(r: Reader, shapes: list, what: str) -> tuple[Commitment, ...]:
    """One commitment per padded shape in ``shapes``, each with that shape's layout."""
    n = r.unpack("<I")
    if n != len(shapes):
        raise ProofFormatError(f"{what}: {n} commitments, the header implies {len(shapes)}")
    if r.remaining() < n * MIN_COMMITMENT_BYTES:
        raise ProofFormatError(f"{what}: {n} commitments do not fit in {r.remaining()} bytes")
    out = []
    for i, shape in enumerate(shapes):
        c = Commitment.from_bytes(r.section())
        if (c.num_vars, c.col_vars) != layout(shape):
            raise ProofFormatError(f"{what}: commitment {i} does not have the layout of shape {shape}")
        out.append(c)
    return tuple(out)


def write_tensor(values: np.ndarray, blinds: np.ndarray) -> bytes:
    """``ndim (u8) || dims (u32 each) || int64 entries || row count (u32) || blinds (32 bytes each)``."""
    a = np.ascontiguousarray(values, dtype="<i8")
    head = struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
    return head + a.tobytes() + struct.pack("<I", len(blinds)) + field.to_bytes(blinds)


def read_tensor(r: Reader, shape: tuple, rows: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """An integer tensor of exactly ``shape`` and its ``rows`` blinds, bounded before allocating."""
    ndim = r.unpack("<B")
    dims = tuple(r.unpack("<I") for _ in range(ndim))
    if dims != tuple(shape):
        raise ProofFormatError(f"{what}: shape {dims}, expected {tuple(shape)}")
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if n > MAX_ENTRIES or r.remaining() < 8 * n:
        raise ProofFormatError(f"{what}: {n} entries do not fit in {r.remaining()} bytes")
    values = np.frombuffer(r.take(8 * n), dtype="<i8").astype(np.int64).reshape(dims)
    count = r.unpack("<I")
    if count != rows:
        raise ProofFormatError(f"{what}: {count} blinds, the commitment has {rows} rows")
    try:
        blinds = field.from_bytes(r.take(field.BYTES * rows), rows)
    except ValueError as exc:
        raise ProofFormatError(f"{what}: {exc}") from None
    return values, blinds


def read_file(data, magic: bytes, version: int, what: str) -> Reader:
    """A reader past a file's magic and version, or ProofFormatError naming the file kind."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProofFormatError(f"{what}: expected bytes, got {type(data).__name__}")
    r = Reader(bytes(data))
    got = r.take(len(magic)) if len(data) >= len(magic) else bytes(data)
    if got != magic:
        raise ProofFormatError(f"not a {what} file (bad magic {got[:8]!r})")
    v = r.unpack("<B")
    if v != version:
        raise ProofFormatError(f"{what}: unsupported version {v} (this zkfhe reads version {version})")
    return r


class PublishedFile:
    """``from_bytes`` of a published file kind: ``MAGIC || VERSION || body``, the body read by the
    class's ``_read_body(reader)``; malformed input raises :class:`zk.ProofFormatError` only."""

    MAGIC: bytes
    VERSION: int
    WHAT: str

    @classmethod
    def from_bytes(cls, data):
        return parsed(cls._parse_file, data, cls.WHAT)

    @classmethod
    def _parse_file(cls, data):
        r = read_file(data, cls.MAGIC, cls.VERSION, cls.WHAT)
        out = cls._read_body(r)
        r.end()
        return out


def parsed(parse, data, what: str):
    """``parse(data)`` with every malformed-input error as ProofFormatError."""
    try:
        return parse(data)
    except ProofFormatError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, struct.error) as exc:
        raise ProofFormatError(f"{what}: {exc}") from None
