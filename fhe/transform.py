"""Slot movements: permutations as sparse-diagonal linear transforms, replication by
rotate-and-add, reduction by rotate-and-sum.

**Gather (permutation / relayout).** Target slot ``s`` of target ciphertext ``t`` must receive
the element that source ciphertext ``u`` holds in slot ``s + off (mod slots)``. Grouping the
target slots by ``(u, off)`` gives the nonzero *diagonals* of the transform::

    T_t = sum_{(u, off)} rot(U_u, off) * D_{t,u,off}        (D: 0/1 mask, one ct-pt mult each)

Only diagonals that carry an element exist — never a dense ``slots x slots`` matrix. With
baby-step/giant-step (each ``off = giant + baby``) the rotations are shared::

    T_t = sum_giant rot( sum_{(u, baby)} rot(U_u, baby) * rot(D_{t,u,off}, -giant),  giant )

baby rotations ``rot(U_u, baby)`` once per source (shared by every target), one giant rotation
per (target, giant). The split (:class:`Split`) is searched for the actual diagonal set: baby
steps ``0, q, 2q, ..., (n1-1)q`` for ``n1`` a power of two and ``q`` 1 or an odd stride the
offsets step by (a skew moves row ``i`` by ``i*(pitch-1)`` slots: ``q = pitch - 1`` needs
about half the rotations of ``q = 1``). A gather consumes one level (the masks); a gather
whose target equals its source is free.

**Replicate** a block along a label whose slots are still zero: ``v += rot(v, -stride * 2^t)``
for ``t < log2(count)`` (log-depth doubling, no level). **Rotate-and-sum** a label:
``v += rot(v, stride * 2^t)``; the sum lands where the label's index is 0, the other slots hold
partial sums (garbage) until a mask clears them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .program import Builder, Mask, signed

__all__ = ["Split", "gather", "replicate", "rotate_and_sum"]


def _log2(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


def replicate(b: Builder, reg: int, stride: int, count: int) -> int:
    """Copy the label-0 block to label positions ``1..count-1`` (slots there must be zero)."""
    for t in range(_log2(count)):
        reg = b.add(reg, b.rotate(reg, -stride * (1 << t)))
    return reg


def rotate_and_sum(b: Builder, reg: int, stride: int, count: int) -> int:
    """Sum over a label of ``count`` values at ``stride``: the total lands at label index 0."""
    for t in range(_log2(count)):
        reg = b.add(reg, b.rotate(reg, stride * (1 << t)))
    return reg


def _diagonals(source_map: np.ndarray, targets: np.ndarray):
    """Per target: {(u, off): target slots}. ``source_map[u, slot]`` and ``targets[t, slot]``
    hold element ids (-1 none); every wanted element must occur exactly once in the source."""
    n_src, slots = source_map.shape
    flat = source_map.ravel()
    held = flat >= 0
    where = np.full(int(max(flat.max(initial=-1), targets.max(initial=-1))) + 1, -1, dtype=np.int64)
    where[flat[held]] = np.flatnonzero(held)
    diagonals = []
    for row in targets:
        s = np.flatnonzero(row >= 0)
        src = where[row[s]]
        if (src < 0).any():
            raise ValueError("gather: an element the target needs is not in the source")
        u, sigma = np.divmod(src, slots)
        off = (sigma - s) % slots
        key = u * slots + off
        order = np.argsort(key, kind="stable")
        key, s = key[order], s[order]
        cuts = np.flatnonzero(np.diff(key)) + 1
        groups = {}
        for ks, ss in zip(np.split(key, cuts), np.split(s, cuts)):
            if ks.size:
                groups[divmod(int(ks[0]), slots)] = ss
        diagonals.append(groups)
    return diagonals


@dataclass(frozen=True)
class Split:
    """Baby/giant decomposition of rotation offsets. An offset ``off`` (a multiple of
    ``2^k``) is written ``off = giant + baby`` with ``baby = ((t mod n1) * q) << k`` where
    ``t = (off >> k) * q^-1 mod (slots >> k)``: baby steps are multiples of ``q << k``. With
    ``q = 1, k = 0`` this is the textbook split ``off = g*n1 + b``; an odd ``q`` fits offsets
    that step by ``q`` (e.g. rows moving by ``pitch - 1`` slots each)."""

    slots: int
    k: int
    q: int
    n1: int

    def __call__(self, off):
        """(baby, giant) of an offset (or of an int array of offsets)."""
        m = self.slots >> self.k
        t = ((off >> self.k) * pow(self.q, -1, m)) % m
        baby = (((t % self.n1) * self.q) % m) << self.k
        return baby, (off - baby) % self.slots


def _split_cost(entries, split: Split) -> int:
    """Rotations of a split: distinct nonzero (source, baby) + per target distinct giants."""
    target, u, off = entries
    baby, giant = split(off)
    babies = np.unique(u[baby != 0] * split.slots + baby[baby != 0]).size
    giants = np.unique(target[giant != 0] * split.slots + giant[giant != 0]).size
    return babies + giants


def _steps(diagonals, slots: int) -> set[int]:
    """Candidate odd baby strides: odd parts of the offset differences that occur most often
    between target slots a power of two apart."""
    found = set()
    for d in diagonals[:4]:
        off = np.full(slots, -1, dtype=np.int64)
        for (_, o), s in d.items():
            off[s] = o
        counts: dict[int, int] = {}
        for e in range(slots.bit_length() - 1):
            a, b = off[: slots - (1 << e)], off[1 << e:]
            ok = (a >= 0) & (b >= 0)
            diff = (b[ok] - a[ok]) % slots
            vals, cnt = np.unique(diff[diff != 0], return_counts=True)
            top = np.argsort(-cnt)[:2]
            for v, c in zip(vals[top], cnt[top]):
                counts[int(v)] = counts.get(int(v), 0) + int(c)
        for v, _ in sorted(counts.items(), key=lambda x: -x[1])[:4]:
            found.add(v >> ((v & -v).bit_length() - 1))
    return found


def choose_split(diagonals, slots: int) -> Split:
    """The decomposition (baby stride, baby-step count) that needs the fewest rotations."""
    entries = tuple(np.array(x, dtype=np.int64) for x in zip(
        *[(t, u, off) for t, d in enumerate(diagonals) for (u, off) in d]))
    nonzero = entries[2][entries[2] != 0]
    k = int((nonzero & -nonzero).min()).bit_length() - 1 if nonzero.size else 0
    m = slots >> k
    best = None
    for q in sorted({1} | {q % m for q in _steps(diagonals, slots)}):
        if q % 2 == 0:
            continue
        for e in range(m.bit_length()):
            split = Split(slots, k, q, 1 << e)
            cost = _split_cost(entries, split)
            if best is None or cost < best[0]:
                best = (cost, split)
    return best[1]


def gather(b: Builder, sources, source_map: np.ndarray, targets: np.ndarray,
           n1: int | None = None, clean: bool = True) -> list[int]:
    """Build target ciphertexts from source registers (see the module docstring).

    ``sources[u]`` is the register holding source ciphertext ``u`` whose slots hold the
    elements ``source_map[u]``; returns one register per row of ``targets``. When the sources
    are ``clean`` (zero outside ``source_map``) a target equal to a source ciphertext reuses
    it; otherwise every target is masked. ``n1`` forces the baby-step size (the EinHops
    baseline uses a fixed one).
    """
    slots = b.slots
    out: list[int | None] = [None] * len(targets)
    todo = []
    for t, row in enumerate(targets):
        same = np.flatnonzero((source_map == row).all(axis=1)) if clean else ()
        if len(same):
            out[t] = sources[int(same[0])]
        else:
            todo.append(t)
    if not todo:
        return out
    u0, key = _structure(source_map, targets[todo], slots, n1)
    cached = _GATHERS.get(key) if key is not None else None
    if cached is None:
        diagonals = _diagonals(source_map, targets[todo])
        if any(not d for d in diagonals):
            raise ValueError("gather: an empty target ciphertext (nothing to place)")
        split = Split(slots, 0, 1, n1) if n1 else choose_split(diagonals, slots)
        count = sum(len(d) for d in diagonals)
        offsets = {off for d in diagonals for (_, off) in d}
        note = ("mask" if offsets == {0} else
                f"permutation: {count} diagonals into {len(todo)} ct(s), baby steps "
                f"{split.n1} x {signed(split.q << split.k, slots)}")
        program = []
        for groups in diagonals:
            by_giant: dict[int, list] = defaultdict(list)
            for (u, off), sl in sorted(groups.items()):
                baby, giant = split(off)
                by_giant[giant].append((u - u0, baby, sl))
            program.append([(giant, [(u, baby, Mask((sl + giant) % slots)) for u, baby, sl in items])
                            for giant, items in sorted(by_giant.items())])
        cached = (note, program)
        if key is not None:
            if len(_GATHERS) >= GATHER_MEMO:
                _GATHERS.pop(next(iter(_GATHERS)))
            _GATHERS[key] = cached
    note, program = cached
    b.note(note)
    for t, giants in zip(todo, program):
        parts = []
        for giant, items in giants:
            inner = [b.mul_plain(b.rotate(sources[u0 + u], baby), mask) for u, baby, mask in items]
            parts.append(b.rotate(b.sum(inner), giant))
        out[t] = b.sum(parts)
    return out


#: gathers remembered by their slot-level structure (which source slot, relative source
#: ciphertext, feeds which target slot): the blocks of a large product repeat the same few
#: skews on different ciphertexts, and finding diagonals and a split is the costly part
GATHER_MEMO = 256
_GATHERS: dict = {}
_WHERE: dict = {}


def _structure(source_map: np.ndarray, targets: np.ndarray, slots: int, n1):
    """(first source ciphertext used, a hashable key of the gather's slot-level structure
    relative to it); key None when an element is missing (``_diagonals`` reports that)."""
    entry = _WHERE.get(id(source_map))
    if entry is None or entry[0] is not source_map:
        flat = source_map.ravel()
        held = flat >= 0
        where = np.full(int(flat.max(initial=-1)) + 1, -1, dtype=np.int64)
        where[flat[held]] = np.flatnonzero(held)
        if len(_WHERE) >= 8:
            _WHERE.pop(next(iter(_WHERE)))
        entry = _WHERE[id(source_map)] = (source_map, where)
    where = entry[1]
    if targets.max(initial=-1) >= where.size:
        return 0, None
    src = where[np.maximum(targets, 0)]
    if ((targets >= 0) & (src < 0)).any():
        return 0, None
    src = np.where(targets >= 0, src, -1)
    used = src[src >= 0]
    if not used.size:
        return 0, None
    u0 = int(used.min()) // slots
    rel = np.where(src >= 0, src - u0 * slots, -1)
    return u0, (slots, n1, targets.shape, rel.tobytes())
