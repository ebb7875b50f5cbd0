"""Bounded, validating reads for the proof file formats (never pickle; every overrun is a
:class:`zk.ProofFormatError`)."""
from __future__ import annotations

import struct

from .errors import ProofFormatError


def section(data: bytes) -> bytes:
    """A length-prefixed section: ``u32 length || data``."""
    return struct.pack("<I", len(data)) + data


class Reader:
    """Reads a byte string front to back."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProofFormatError(f"truncated proof: wanted {n} bytes at offset {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def section(self) -> bytes:
        return self.take(self.unpack("<I"))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProofFormatError(f"{len(self.data) - self.pos} trailing bytes after the proof")
