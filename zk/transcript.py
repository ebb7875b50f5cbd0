"""Fiat–Shamir transcript.

The prover and the verifier run the same transcript: every public value (statement first:
shapes, specs, hyperparameters, commitments; then every prover message) is absorbed with a
label, and every verifier challenge is squeezed from the hash of everything absorbed so far.

Construction: a running SHA-512 state. ``absorb(label, data)`` feeds
``len(label) || label || len(data) || data`` (lengths as 8-byte little-endian), so distinct
message sequences never collide by concatenation. ``challenge(label)`` absorbs the label,
takes the 512-bit digest of the state, reduces it modulo the BLS12-381 scalar-field order
``r`` (statistical distance from uniform < 2^-256), and absorbs the digest back so the next
challenge depends on this one.

Typed helpers absorb group points (48-byte compressed, :mod:`zk.group`) and field elements
(32-byte canonical, :mod:`zk.field`) under one label per call, and squeeze challenges as field
elements; they are exactly ``absorb(label, <canonical bytes>)`` and ``from_int(challenge(...))``.
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np

from . import field, group

#: BLS12-381 scalar-field order.
R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


class Transcript:
    """A Fiat–Shamir transcript bound to a protocol ``domain`` (e.g. ``b"zkfhe/einsum/v1"``)."""

    def __init__(self, domain: bytes | str) -> None:
        if isinstance(domain, str):
            domain = domain.encode()
        self._state = hashlib.sha512()
        self.absorb("domain-separator", domain)

    def absorb(self, label: str, data: bytes) -> None:
        """Absorb a labelled byte string."""
        lab = label.encode()
        self._state.update(struct.pack("<Q", len(lab)) + lab)
        self._state.update(struct.pack("<Q", len(data)))
        self._state.update(bytes(data))

    def absorb_int(self, label: str, value: int) -> None:
        """Absorb a (signed, arbitrary-size) integer, e.g. a shape entry or a hyperparameter."""
        self.absorb(label, value.to_bytes((value.bit_length() + 8) // 8 + 1, "little", signed=True))

    def absorb_ints(self, label: str, values) -> None:
        """Absorb a sequence of integers (its length is bound too)."""
        values = [int(v) for v in values]
        self.absorb_int(label + "/len", len(values))
        for v in values:
            self.absorb_int(label, v)

    def absorb_str(self, label: str, text: str) -> None:
        self.absorb(label, text.encode())

    def absorb_point(self, label: str, point: group.Point) -> None:
        """Absorb one group point (its compressed encoding)."""
        self.absorb(label, group.point_to_bytes(point))

    def absorb_points(self, label: str, points) -> None:
        """Absorb a sequence of group points, concatenated, as one message."""
        self.absorb(label, group.points_to_bytes(points))

    def absorb_scalars(self, label: str, values) -> None:
        """Absorb field elements (one ``(4,)`` element or an array of them, C order) as one message."""
        self.absorb(label, field.to_bytes(values))

    def challenge(self, label: str) -> int:
        """A challenge uniform in [0, r) (as a Python int)."""
        self.absorb("challenge", label.encode())
        digest = self._state.copy().digest()
        self._state.update(digest)
        return int.from_bytes(digest, "little") % R

    def challenges(self, label: str, n: int) -> list[int]:
        """``n`` independent challenges."""
        return [self.challenge(f"{label}/{i}") for i in range(n)]

    def challenge_scalar(self, label: str) -> np.ndarray:
        """:meth:`challenge` as one field element ``(4,)``."""
        return field.from_int(self.challenge(label))

    def challenge_scalars(self, label: str, n: int) -> np.ndarray:
        """:meth:`challenges` as field elements ``(n, 4)`` (e.g. a random point)."""
        return field.from_int(self.challenges(label, n))
