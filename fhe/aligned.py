"""Aligned strategy: EinHops' recipe over a planned joint index space.

Every label of the einsum gets a place in one *joint* layout (a :class:`~fhe.layout.Layout`
over the joint labels: slot stride and in-ciphertext block per label, the rest of each label
split across ciphertexts, "tiles"). Then, per tile:

1. **place** each encrypted operand: its elements go to the slots of their joint indices (a
   gather, see :mod:`fhe.transform`). The planner tries joint layouts built around each
   encrypted operand's own layout (its *anchor*: that operand's strides are kept and the other
   labels fill the free slot positions), so that operand needs no permutation at all;
2. **replicate** it along the labels it lacks (rotate-and-add, log-depth). A label that lives
   only in the tile index costs nothing: the same ciphertext serves every tile;
3. **multiply** the operands elementwise. Plaintext operands are laid out in the clear, already
   replicated, and multiplied together in the clear: one ct-pt multiplication in total;
4. **reduce** contracted labels: add the tiles, rotate-and-sum the in-slot part;
5. **mask** when a reduction left partial sums in other slots (a gather whose diagonals are all
   at offset 0) — merged with the relayout when a particular output layout is requested.

The output keeps the joint strides of the output labels: a strided layout that the next
einsum can use as it is.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .layout import Layout, pow2
from .program import WEIGHTS, Builder, Cheapest, Packed, Term
from .transform import gather, replicate, rotate_and_sum

__all__ = ["plan_aligned", "term_map"]

#: joint layouts needing more ciphertext tiles than this are not considered
MAX_TILES = 4096
#: orders of the non-anchor labels tried per anchor
MAX_ORDERS = 24
#: when even the best joint layout needs more tiles than this, only it is built (each build
#: of a product this large takes seconds; the tile count dominates its cost)
LARGE_TILES = 512


def plan_aligned(b: Builder, terms: list[Term], out_labels, sizes, name: str,
                 out_layout: Layout | None = None) -> Term | None:
    """Write the cheapest aligned program for ``terms -> out_labels`` into ``b``; return the
    output term (None when no joint layout fits)."""
    joint = joint_labels(terms, out_labels, sizes)
    per_tile = (WEIGHTS["mul"] * (sum(t.encrypted for t in terms) - 1)
                + WEIGHTS["mul_plain"] * any(not t.encrypted for t in terms))
    best = Cheapest(b)
    for emb in sorted(embeddings(terms, joint, out_labels, sizes, b.slots), key=lambda e: e.n_cts):
        if best.score is not None and emb.n_cts > LARGE_TILES:
            break  # a large product: the first (fewest tiles) build is kept
        if emb.n_cts > MAX_TILES or (best.score is not None and emb.n_cts * per_tile >= best.score):
            continue  # more tiles than budget, or its multiplications alone cost more
        child = b.fork()
        best.offer(child, build(child, emb, joint, terms, out_labels, sizes, name, out_layout))
    return best.adopt()


def joint_labels(terms, out_labels, sizes) -> tuple[str, ...]:
    """Labels of size > 1: output labels first, then contracted ones by appearance."""
    seen = [c for c in out_labels if sizes[c] > 1]
    for t in terms:
        seen += [c for c in t.effective_labels() if c not in seen]
    return tuple(seen)


# -- joint layouts --------------------------------------------------------------------------
def _anchor(term: Term, sizes) -> dict[str, tuple[int, int]] | None:
    """(stride, block) of each effective label in the term's own layout; a repeated label
    (diagonal) sits at the sum of its axes' strides. None if a diagonal is split across
    ciphertexts."""
    lay = term.layout
    out = {}
    for c in term.effective_labels():
        axes = [a for a, (x, n) in enumerate(zip(term.labels, term.shape)) if x == c and n > 1]
        blocks = {lay.blocks[a] for a in axes}
        if len(axes) > 1 and (len(blocks) > 1 or min(blocks) < sizes[c]):
            return None
        block = lay.blocks[axes[0]]
        out[c] = (sum(lay.strides[a] for a in axes) if block > 1 else 0, block)
    return out


def _fill(anchor: dict, order, sizes, slots: int) -> dict[str, tuple[int, int]]:
    """Give each label of ``order`` the largest in-slot block (and the smallest power-of-two
    stride) that keeps every joint index in its own slot; what does not fit is tiled."""
    assign = dict(anchor)
    pos = np.zeros(1, dtype=np.int64)
    for stride, block in anchor.values():
        pos = (pos[:, None] + np.arange(block) * stride).ravel()
    occupied = np.zeros(slots, dtype=bool)
    occupied[pos] = True
    for c in order:
        assign[c] = (0, 1)
        block = pow2(sizes[c])
        while block > 1 and assign[c] == (0, 1):
            stride = 1
            while pos.max() + (block - 1) * stride < slots:
                copies = pos[None, :] + stride * np.arange(1, block)[:, None]
                if not occupied[copies].any():
                    assign[c] = (stride, block)
                    pos = np.concatenate([pos[None, :], copies]).ravel()
                    occupied[pos] = True
                    break
                stride *= 2
            block //= 2
    return assign


def embeddings(terms, joint, out_labels, sizes, slots: int):
    """Candidate joint layouts: anchored on each encrypted operand (other labels in several
    orders), plus two plain stackings (output labels innermost, or contracted innermost)."""
    shape = tuple(sizes[c] for c in joint)
    outputs = [c for c in reversed(joint) if c in out_labels]  # last output label fastest
    contracted = [c for c in joint if c not in out_labels]
    cands = []
    for t in terms:
        if t.encrypted and (anchor := _anchor(t, sizes)) is not None:
            others = [c for c in joint if c not in anchor]
            for order in itertools.islice(itertools.permutations(others), MAX_ORDERS):
                cands.append(_fill(anchor, order, sizes, slots))
    cands += [_fill({}, outputs + contracted, sizes, slots),
              _fill({}, contracted + outputs, sizes, slots)]
    seen = set()
    for assign in cands:
        key = tuple(assign[c] for c in joint)
        if key not in seen:
            seen.add(key)
            yield Layout(shape, slots, tuple(s for s, _ in key), tuple(bl for _, bl in key))


# -- slot maps ---------------------------------------------------------------------------------
def term_map(term: Term, box_labels, his: dict, stride: dict, block: dict, sizes,
             slots: int) -> np.ndarray:
    """Element id of ``term`` at every slot of the joint box over ``box_labels`` (block
    ``his`` of the tiled labels; labels the term lacks are replicated), -1 elsewhere."""
    box = tuple(block[c] for c in box_labels)
    lo = np.indices(box, dtype=np.int64).reshape(len(box), math.prod(box))
    pos = np.zeros(lo.shape[1], dtype=np.int64)
    full = {}
    valid = np.ones(lo.shape[1], dtype=bool)
    for i, c in enumerate(box_labels):
        pos += lo[i] * stride[c]
        full[c] = his.get(c, 0) * block[c] + lo[i]
        valid &= full[c] < sizes[c]
    idx = [full[c][valid] if n > 1 else np.zeros(int(valid.sum()), dtype=np.int64)
           for c, n in zip(term.labels, term.shape)]
    out = np.full(slots, -1, dtype=np.int64)
    out[pos[valid]] = np.ravel_multi_index(idx, term.shape) if term.shape else 0
    return out


def _in_place(term: Term, maps: np.ndarray):
    """``(registers, exact)`` if each wanted placement is already in one of the term's
    ciphertexts (same slots; ``exact`` False when they hold more elements), else None."""
    source = term.layout.element_map
    regs, exact = [], True
    for m in maps:
        want = m >= 0
        hits = np.flatnonzero((source[:, want] == m[want]).all(axis=1))
        if not hits.size:
            return None
        regs.append(term.regs[int(hits[0])])
        exact &= bool(np.array_equal(source[hits[0]], m))
    return regs, exact


# -- program -------------------------------------------------------------------------------------
def build(b: Builder, emb: Layout, joint, terms, out_labels, sizes, name: str,
          out_layout: Layout | None) -> Term:
    """The aligned program for one joint layout ``emb`` (see the module docstring)."""
    grid = dict(zip(joint, emb.grid))
    tiled = [c for c in joint if grid[c] > 1]
    tiles = [dict(zip(tiled, hi)) for hi in itertools.product(*(range(grid[c]) for c in tiled))]
    b.step(f"joint layout for {name}")
    b.note(f"{emb.describe(joint)}, {len(tiles)} tile(s)")
    factors, plains, clean = _operands(b, emb, joint, terms, tiles, sizes)

    b.step("multiply")
    products = [b.product(f, Packed(tuple(p)) if p else None) for f, p in zip(factors, plains)]

    stride = dict(zip(joint, emb.strides))
    block = dict(zip(joint, emb.blocks))
    out_shape = tuple(sizes[c] for c in out_labels)
    derived = Layout(out_shape, b.slots, tuple(stride.get(c, 0) for c in out_labels),
                     tuple(block.get(c, 1) for c in out_labels))
    contracted = [c for c in joint if c not in out_labels and block[c] > 1]
    if any(c not in out_labels for c in joint):
        b.step("reduce " + ",".join(c for c in joint if c not in out_labels))
    groups: dict[int, list[int]] = {}
    for tile, reg in zip(tiles, products):
        ct = 0
        for c, g in zip(out_labels, derived.grid):
            ct = ct * g + tile.get(c, 0)
        groups.setdefault(ct, []).append(reg)
    regs = []
    for ct in range(derived.n_cts):
        reg = b.sum(groups[ct])  # contracted labels split across tiles
        for c in contracted:
            reg = rotate_and_sum(b, reg, stride[c], block[c])
        regs.append(reg)

    target = out_layout or derived
    clean = clean and not contracted
    if not clean or target != derived:
        b.step("mask" if target == derived else "relayout output")
        regs = gather(b, regs, derived.element_map, target.element_map, clean=clean)
    return Term(name, tuple(out_labels), out_shape, target, tuple(regs))


def _operands(b: Builder, emb: Layout, joint, terms, tiles, sizes):
    """Per tile: the registers of the placed, replicated encrypted operands and the
    (tensor, slot map) factors of the plaintext ones; and whether every placement is clean."""
    stride = dict(zip(joint, emb.strides))
    block = dict(zip(joint, emb.blocks))
    tiled = [c for c in joint if emb.grid[joint.index(c)] > 1]
    clean = True
    factors: list[list[int]] = [[] for _ in tiles]
    plains: list[list] = [[] for _ in tiles]
    for t in terms:
        if not t.encrypted:
            for i, tile in enumerate(tiles):
                plains[i].append((t.plain, term_map(t, joint, tile, stride, block, sizes, b.slots)))
            continue
        own = t.effective_labels()
        own_tiled = [c for c in tiled if c in own]
        keys = sorted({tuple(tile[c] for c in own_tiled) for tile in tiles})
        maps = np.stack([term_map(t, own, dict(zip(own_tiled, k)), stride, block, sizes, b.slots)
                         for k in keys])
        missing = [c for c in joint if c not in own and block[c] > 1]
        b.step(f"place {t.name}")
        found = None if missing else _in_place(t, maps)
        if found is None:
            regs = gather(b, t.regs, t.layout.element_map, maps)
        else:
            regs, exact = found
            if not exact:
                b.note("in place; its other slots are cleared by the final mask")
                clean = False
        if missing:
            b.step(f"replicate {t.name} along " + ",".join(missing))
            for c in missing:
                regs = [replicate(b, reg, stride[c], block[c]) for reg in regs]
        placed = dict(zip(keys, regs))
        for i, tile in enumerate(tiles):
            factors[i].append(placed[tuple(tile[c] for c in own_tiled)])
    return factors, plains, clean
