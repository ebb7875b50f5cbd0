"""Where a tensor's elements live: which ciphertext, which slot.

A :class:`Layout` packs a tensor of shape ``(n_0, ..., n_{r-1})`` into ciphertexts of
``slots`` slots. Every axis ``a`` is cut into a low and a high part::

    index_a = hi_a * blocks[a] + lo_a            (0 <= lo_a < blocks[a], a power of two)
    slot    = sum_a lo_a * strides[a]            (inside one ciphertext)
    ct      = row-major number of (hi_0, ..., hi_{r-1}) over grid[a] = ceil(n_a / blocks[a])

Slots that hold no element are zero. Strides need not be dense: an einsum output keeps the
strides its output indices had in the joint index space (gaps where contracted indices were
summed away), and a later einsum can use it as it is. ``Layout.row_major`` is what
:meth:`fhe.Context.encrypt` uses by default: every axis padded to a power of two, the last axis
fastest, outer axes split across ciphertexts when the tensor exceeds one ciphertext.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import ShapeMismatch

__all__ = ["Layout", "pow2"]


def pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


@dataclass(frozen=True)
class Layout:
    """Placement of a tensor in ciphertext slots (see the module docstring)."""

    shape: tuple[int, ...]
    slots: int
    strides: tuple[int, ...]
    blocks: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (len(self.shape) == len(self.strides) == len(self.blocks)):
            raise ValueError("Layout: shape, strides and blocks need one entry per axis")
        if self.slots < 1 or self.slots & (self.slots - 1):
            raise ValueError(f"Layout: slots must be a power of two, got {self.slots}")
        for n, s, b in zip(self.shape, self.strides, self.blocks):
            if n < 1:
                raise ShapeMismatch(f"Layout: empty axes are not supported (shape {self.shape})")
            if b < 1 or b & (b - 1) or s < 0:
                raise ValueError(f"Layout: bad block {b} or stride {s}")
        top = sum((b - 1) * s for b, s in zip(self.blocks, self.strides))
        if top >= self.slots:
            raise ValueError(f"Layout {self}: slot {top} is past the {self.slots} slots")
        used = self.block_positions()
        if len(np.unique(used)) != used.size:
            raise ValueError(f"Layout {self}: two elements share a slot")

    # -- construction -------------------------------------------------------------
    @classmethod
    def row_major(cls, shape, slots: int) -> "Layout":
        """Power-of-two padded row-major packing; outer axes spill over into more ciphertexts."""
        shape = tuple(int(n) for n in shape)
        strides, blocks = [0] * len(shape), [1] * len(shape)
        extent = 1
        for a in reversed(range(len(shape))):
            p = pow2(shape[a])
            block = min(p, slots // extent)
            if block > 1:
                strides[a], blocks[a] = extent, block
                extent *= block
        return cls(shape, slots, tuple(strides), tuple(blocks))

    # -- geometry --------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, ...]:
        """Number of ciphertext blocks along each axis."""
        return tuple(-(-n // b) for n, b in zip(self.shape, self.blocks))

    @property
    def n_cts(self) -> int:
        return math.prod(self.grid)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def block_positions(self) -> np.ndarray:
        """Slot of every low-part tuple (row-major over the blocks), as a flat int array."""
        pos = np.zeros(1, dtype=np.int64)
        for s, b in zip(self.strides, self.blocks):
            pos = (pos[:, None] + np.arange(b, dtype=np.int64)[None, :] * s).ravel()
        return pos

    @cached_property
    def element_map(self) -> np.ndarray:
        """``(n_cts, slots)`` int array: the flat (C-order) element in each slot, -1 if none."""
        idx = np.indices(self.shape, dtype=np.int64).reshape(len(self.shape), self.size)
        ct = np.zeros(idx.shape[1], dtype=np.int64)
        slot = np.zeros(idx.shape[1], dtype=np.int64)
        for a, (s, b, g) in enumerate(zip(self.strides, self.blocks, self.grid)):
            ct = ct * g + idx[a] // b
            slot += (idx[a] % b) * s
        out = np.full((self.n_cts, self.slots), -1, dtype=np.int64)
        out[ct, slot] = np.arange(idx.shape[1], dtype=np.int64)
        out.flags.writeable = False
        return out

    # -- packing -------------------------------------------------------------------------
    def pack(self, array) -> np.ndarray:
        """The slot vectors ``(n_cts, slots)`` holding ``array`` (zeros elsewhere)."""
        a = np.asarray(array, dtype=np.float64)
        if a.shape != self.shape:
            raise ShapeMismatch(f"cannot pack shape {a.shape} into a layout for {self.shape}")
        flat = np.concatenate([a.ravel(), [0.0]])
        return flat[self.element_map]  # -1 picks the appended zero

    def unpack(self, vectors) -> np.ndarray:
        """Inverse of :meth:`pack`: read the tensor back from ``(n_cts, slots)`` vectors."""
        v = np.asarray(vectors, dtype=np.float64).reshape(self.n_cts, self.slots)
        out = np.empty(self.size, dtype=np.float64)
        m = self.element_map
        mask = m >= 0
        out[m[mask]] = v[mask]
        return out.reshape(self.shape)

    # -- printing ------------------------------------------------------------------------
    def describe(self, labels=None) -> str:
        """E.g. ``i:128=2x64@128 j:128@1 (2 cts)``: size, ciphertext split, slot stride per axis."""
        labels = labels or [f"ax{a}" for a in range(len(self.shape))]
        parts = []
        for c, n, s, b, g in zip(labels, self.shape, self.strides, self.blocks, self.grid):
            where = f"@{s}" if b > 1 else ""
            split = f"={g}x{b}" if g > 1 else ""
            parts.append(f"{c}:{n}{split}{where}")
        cts = f"{self.n_cts} ct" + ("s" if self.n_cts > 1 else "")
        return (" ".join(parts) + f" ({cts})") if parts else f"scalar@0 ({cts})"

    def __str__(self) -> str:
        return self.describe()
