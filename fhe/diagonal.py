"""Diagonal strategy for matrix-product-shaped einsums of two operands.

Labels fall into four groups, each flattened (row-major, padded to powers of two) into one
index: rows ``i`` (output labels of the first operand only), columns ``k`` (output labels of
the second only), contracted ``j`` (in both, not in the output) and batch ``β`` (everywhere)::

    C[i, k, β] = Σ_j A[i, j, β] · B[j, k, β]

This is the diagonal method of Halevi–Shoup / Jiang–Kim–Lauter–Song, with *wide rows* so that
every shift is a single rotation and no mask is needed. In a block of ``mb x nb`` outputs, with
``lb`` contracted values and ``bb`` batch values (batch innermost), output ``(i, k, β)`` sits in
slot ``(i·R + k)·bb + β`` with row pitch ``R >= nb + lb - 1``. Two gathers skew the operands::

    Y[i, c]  = A[i, (i + c) mod lb]      for c < nb + lb - 1   (rows of A, rotated by i)
    X[i', k] = B[(i' + k) mod lb, k]     for k < nb, 0 beyond    (columns of B, rotated by k)

and then ``C = Σ_{t<lb} rot(Y, t·bb) ⊙ rot(X, t·R·bb)``: slot (i, k) of term ``t`` multiplies
``A[i, j]·B[j, k]`` for ``j = (i + k + t) mod lb``, every ``j`` once. X needs rows ``i + t``:
either it has ``mb + lb - 1`` rows ("extended"), or the block fills the ciphertext exactly and
the rotation wraps around ("wrap", rows a multiple of ``lb``). Products vanish outside the
``mb x nb`` block (X is zero for ``k >= nb``, Y for rows ``>= mb``), so no final mask.

Baby-step/giant-step over ``t = g·n1 + b`` shares rotations::

    C = Σ_g rot( Σ_b rot(Y, b·bb) ⊙ rot(X, (b·R + g·n1·(R-1))·bb),  g·n1·bb )

ciphertext x ciphertext: ``lb`` products, ``(lb-1) + (n1-1) + (n2-1)`` rotations; with one
operand in the clear its rotations are free (``(n1-1) + (n2-1)`` rotations, Halevi–Shoup).
Depth: one level per gather, one for the products. Larger einsums are cut into blocks over
all four groups (partial products over ``j`` blocks are added).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .layout import Layout, pow2
from .program import Builder, Cheapest, Packed, Term
from .transform import gather, replicate

__all__ = ["plan_diagonal"]

#: block layouts (by formula) whose skews are priced from their real diagonals
MEASURED = 6
#: block layouts (by that measured estimate) actually built and compared
CANDIDATES = 2
#: beyond this many estimated instructions (rotation-equivalents) a product is "large": only
#: the best-estimated (orientation, block shape) is built, with no comparison — building
#: every candidate of a 1024x1024 product took minutes, and the candidates' estimates are
#: within a few percent of each other there
LARGE = 50_000
#: candidates estimated above this multiple of the best estimate are not built
HOPELESS = 2.0


def plan_diagonal(b: Builder, terms: list[Term], out_labels, sizes, name: str,
                  out_layout: Layout | None = None) -> Term | None:
    """Write the cheapest diagonal program into ``b`` (either operand as the row operand);
    None when the einsum is not matrix-product-shaped or no block fits. A requested
    ``out_layout`` costs one more gather."""
    if len(terms) != 2:
        return None
    best = Cheapest(b)
    options = []
    for rows, cols in ((0, 1), (1, 0)):
        groups = _groups(terms[rows], terms[cols], out_labels, sizes)
        if groups is None:
            continue
        shapes = _block_shapes(groups, terms[rows], terms[cols], sizes, b.slots)[:MEASURED]
        # the layouts decide what a skew costs: look at one block
        measured = sorted((_measured(terms[rows], terms[cols], groups, shape, sizes, b.slots, est),
                           shape) for est, shape in shapes)
        options += [(est, rows, cols, groups, shape) for est, shape in measured[:CANDIDATES]]
    options.sort(key=lambda o: o[0])
    if options and options[0][0] > LARGE:
        options = options[:1]
    # estimates more than HOPELESS times the best are not built: at 256x256 the other
    # orientation (B's columns as rows) costs ~10x and took most of the planning time
    options = [o for o in options if o[0] <= HOPELESS * options[0][0]]
    for _, rows, cols, groups, shape in options:
        child = b.fork()
        out = _build(child, terms[rows], terms[cols], groups, shape, out_labels, sizes, name)
        if out_layout is not None and out_layout != out.layout:
            child.step("relayout output")
            out.regs = tuple(gather(child, out.regs, out.layout.element_map,
                                    out_layout.element_map))
            out.layout = out_layout
        best.offer(child, out)
    return best.adopt()


def _groups(row: Term, col: Term, out_labels, sizes):
    """Label groups (rows, cols, contracted, batch) or None if the einsum does not fit."""
    if len(set(row.labels)) < len(row.labels) or len(set(col.labels)) < len(col.labels):
        return None  # diagonals: left to the aligned strategy
    a, bb = set(row.effective_labels()), set(col.effective_labels())
    out = [c for c in out_labels if sizes[c] > 1]
    groups = {
        "i": [c for c in out if c in a and c not in bb],
        "k": [c for c in out if c in bb and c not in a],
        "b": [c for c in out if c in a and c in bb],
        "j": [c for c in row.effective_labels() if c in bb and c not in out],
    }
    if (a | bb) - set(out) - set(groups["j"]) or not groups["j"]:
        return None  # a label summed inside one operand only, or nothing contracted
    if not groups["i"] or not groups["k"]:
        return None  # a matrix-vector product or a dot product: aligned is cheaper
    return groups


def _size(groups, g, sizes) -> int:
    return math.prod(pow2(sizes[c]) for c in groups[g])


def _block_shapes(groups, row: Term, col: Term, sizes, slots: int):
    """Feasible block shapes ``(mb, nb, lb, bb, R, rows_x)``, cheapest estimate first."""
    m, n, l, bt = (_size(groups, g, sizes) for g in "ikjb")
    shapes = []
    for mb, nb, lb, bb in itertools.product(*(_powers(x) for x in (m, n, l, bt))):
        if lb < 2:
            continue
        fits = _fits(mb, nb, lb, bb, slots)
        if not fits:
            continue
        outputs = (m // mb) * (n // nb) * (bt // bb)
        products = outputs * (l // lb)
        n1 = _baby(lb)
        rot = (n1 - 1) + (-(-lb // n1) - 1) + ((lb - 1) if row.encrypted and col.encrypted else 0)
        mult = 1.4 if row.encrypted and col.encrypted else 0.6
        # a skew moves every row of A (column of B) by its own offset: at least as many
        # diagonals as rows (columns) and contracted values
        reps = (l // lb) * (bt // bb)
        est = (products * (rot + mult * lb)
               + row.encrypted * (m // mb) * reps * _gather_cost(max(lb, mb))
               + col.encrypted * (n // nb) * reps * _gather_cost(max(lb, nb)))
        shapes += [(est, (mb, nb, lb, bb) + fit) for fit in fits]
    shapes.sort(key=lambda x: x[0])
    return shapes


def _fits(mb: int, nb: int, lb: int, bb: int, slots: int) -> list[tuple[int, int]]:
    """Ways ``(row pitch R, rows of X)`` to lay out one block: extended rows at the tightest
    pitch ``nb + lb - 1`` and at the power-of-two pitch (a skew of a power-of-two layout
    then moves rows by whole strides: far fewer diagonals), and wrap-around rows filling
    the ciphertext at the power-of-two pitch. The formula cannot tell them apart; the
    first block's real diagonals do (:func:`_measured`)."""
    width, rows_ext = nb + lb - 1, mb + lb - 1
    fits = []
    for r in dict.fromkeys((width, pow2(width))):
        if rows_ext * r * bb <= slots:
            fits.append((r, rows_ext))                      # extended rows
    r = pow2(width)
    rows = slots // (r * bb)  # a power of two: fills the ciphertext, a multiple of lb
    if r * bb <= slots and rows >= max(mb, lb):
        fits.append((r, rows))                              # wrap-around rows
    return fits


def _gather_cost(diagonals: int) -> float:
    """Estimated cost of a gather with this many diagonals (BSGS rotations + ct-pt mults)."""
    return 2 * math.isqrt(3 * diagonals) + 1.8 * diagonals


def _measured(row: Term, col: Term, groups, shape, sizes, slots: int, est: float) -> float:
    """``est`` with the skews' cost taken from the first block's real diagonals (the
    formula cannot see the layouts: a skew of the rows of a column-major operand moves
    every element by its own offset)."""
    from .transform import _diagonals

    mb, nb, lb, bb, r, rows_x = shape
    m, n, l, bt = (_size(groups, g, sizes) for g in "ikjb")
    origin = (0, 0, 0, 0)
    reps = (l // lb) * (bt // bb)
    copies = pow2(-(-(nb + lb - 1) // lb))
    width = lb if copies > 1 and copies * lb <= r else nb + lb - 1  # as _skewed_rows does
    for term, count, guess, target in (
            (row, m // mb, max(lb, mb), lambda: _y_map(row, groups, shape, origin, sizes, slots,
                                                       width)),
            (col, n // nb, max(lb, nb), lambda: _x_map(col, groups, shape, origin, sizes, slots))):
        if not term.encrypted:
            continue
        try:
            real = sum(len(d) for d in _diagonals(term.layout.element_map, target()[None, :]))
        except ValueError:
            continue
        est += count * reps * (_gather_cost(real) - _gather_cost(guess))
    return est


def _powers(top: int) -> list[int]:
    """1, 2, 4, ..., top (a power of two)."""
    return [1 << e for e in range(top.bit_length())]


def _padding(labels, first: int, sizes) -> bool:
    """Whether the block of a label group starting at flat index ``first`` is all padding."""
    return any(int(v) >= sizes[c] for c, v in _digits(np.array(first), labels, sizes).items())


def _baby(lb: int) -> int:
    """Baby-step size: the power of two near sqrt(lb)."""
    return 1 << ((lb.bit_length() - 1 + 1) // 2)


def _digits(flat: np.ndarray, labels, sizes) -> dict:
    """Per-label indices of a flattened (row-major, padded) group index."""
    out = {}
    for c in reversed(labels):
        p = pow2(sizes[c])
        flat, out[c] = np.divmod(flat, p)
    return out


def _element_ids(term: Term, idx: dict) -> np.ndarray:
    """Flat element ids of ``term`` at per-label index arrays ``idx`` (-1 past its sizes)."""
    valid = np.ones(next(iter(idx.values())).shape, dtype=bool)
    for c, n in zip(term.labels, term.shape):
        if n > 1:
            valid &= idx[c] < n
    cols = [idx[c][valid] if n > 1 else np.zeros(int(valid.sum()), dtype=np.int64)
            for c, n in zip(term.labels, term.shape)]
    ids = np.full(valid.shape, -1, dtype=np.int64)
    ids[valid] = np.ravel_multi_index(cols, term.shape) if term.shape else 0
    return ids


def _fill(term: Term, groups, sizes, slots, r, bb, b0, rows, cols, flats) -> np.ndarray:
    """Slot map of ``term`` at slots ``(rows[x]·r + cols[y])·bb + β``; ``flats`` gives the
    flattened group indices (group -> array over (x, y)) the term reads there."""
    beta = np.arange(bb)
    slot = ((rows[:, None] * r + cols[None, :]) * bb)[..., None] + beta
    idx = _digits(np.broadcast_to(b0 + beta, slot.shape), groups["b"], sizes)
    for g, flat in flats.items():
        idx.update(_digits(np.broadcast_to(flat[..., None], slot.shape), groups[g], sizes))
    idx = {c: v for c, v in idx.items() if c in term.effective_labels()}
    out = np.full(slots, -1, dtype=np.int64)
    out[slot.ravel()] = np.broadcast_to(_element_ids(term, idx), slot.shape).ravel()
    return out


def _y_map(row: Term, groups, shape, origin, sizes, slots, width: int) -> np.ndarray:
    """Y[i, c] = A[i0 + i, j0 + (i + c) mod lb] for c < width."""
    mb, nb, lb, bb, r, rows_x = shape
    i0, k0, j0, b0 = origin
    i, c = np.arange(mb), np.arange(width)
    return _fill(row, groups, sizes, slots, r, bb, b0, i, c, {
        "j": j0 + (i[:, None] + c[None, :]) % lb,
        "i": np.broadcast_to(i0 + i[:, None], (mb, width))})


def _x_map(col: Term, groups, shape, origin, sizes, slots) -> np.ndarray:
    """X[i', k] = B[j0 + (i' + k) mod lb, k0 + k] for k < nb (zero beyond)."""
    mb, nb, lb, bb, r, rows_x = shape
    i0, k0, j0, b0 = origin
    ip, k = np.arange(rows_x), np.arange(nb)
    return _fill(col, groups, sizes, slots, r, bb, b0, ip, k, {
        "j": j0 + (ip[:, None] + k[None, :]) % lb,
        "k": np.broadcast_to(k0 + k[None, :], (rows_x, nb))})


def _build(b: Builder, row: Term, col: Term, groups, shape, out_labels, sizes, name) -> Term:
    """The diagonal program for one block shape (module docstring)."""
    slots = b.slots
    mb, nb, lb, bb, r, rows_x = shape
    m, n, l, bt = (_size(groups, g, sizes) for g in "ikjb")
    n1 = _baby(lb)
    n2 = -(-lb // n1)
    b.step(f"diagonal product for {name}")
    b.note(f"rows {','.join(groups['i']) or '-'} ({m}) of {row.name}, columns "
           f"{','.join(groups['k']) or '-'} ({n}) of {col.name}, contracted "
           f"{','.join(groups['j'])} ({l}), batch {','.join(groups['b']) or '-'} ({bt})")
    b.note(f"blocks {mb}x{nb}, {lb} contracted, {bb} batch; row pitch {r}; "
           f"{'wrap-around' if rows_x * r * bb == slots else 'extended'} rows; "
           f"baby step {n1}, giant step {n1 * bb}")

    layout = _output_layout(groups, shape, out_labels, sizes, slots)
    regs = [None] * layout.n_cts
    ys, xs = {}, {}
    for ib, kb, bk in itertools.product(range(m // mb), range(n // nb), range(bt // bb)):
        first = {"i": ib * mb, "k": kb * nb, "b": bk * bb}
        if any(_padding(groups[g], first[g], sizes) for g in first):
            continue
        partial = []
        for jb in range(l // lb):
            if _padding(groups["j"], jb * lb, sizes):
                continue
            origin = (ib * mb, kb * nb, jb * lb, bk * bb)
            # maps only where needed: a skew not yet built, or a plaintext operand's values
            ymap = (_y_map(row, groups, shape, origin, sizes, slots, nb + lb - 1)
                    if not row.encrypted or (ib, jb, bk) not in ys else None)
            xmap = (_x_map(col, groups, shape, origin, sizes, slots)
                    if not col.encrypted or (jb, kb, bk) not in xs else None)
            y = _skewed_rows(b, row, ys, (ib, jb, bk), groups, shape, origin, sizes, ymap)
            x = _operand(b, col, xs, (jb, kb, bk), xmap, "skew columns of")
            b.step(f"diagonal sum over {','.join(groups['j'])} (block {ib},{kb},{jb},{bk})")
            partial.append(_diagonal_sum(b, row, col, y, x, ymap, xmap, lb, r, bb, n1, n2))
        start = {}
        for g in first:
            start.update(_digits(np.array(first[g]), groups[g], sizes))
        ct = 0
        for c, blk, gsz in zip(out_labels, layout.blocks, layout.grid):
            ct = ct * gsz + int(start.get(c, 0)) // blk
        regs[ct] = b.sum(partial)
    return Term(name, tuple(out_labels), tuple(sizes[c] for c in out_labels), layout, tuple(regs))


def _skewed_rows(b: Builder, row: Term, cache: dict, key, groups, shape, origin, sizes, ymap):
    """Y for one block. Its rows are periodic (period ``lb``): when one period and its copies
    fit in the row pitch, gather one period and copy it by rotate-and-add — fewer diagonals."""
    mb, nb, lb, bb, r, rows_x = shape
    copies = pow2(-(-(nb + lb - 1) // lb))
    if not row.encrypted or copies == 1 or copies * lb > r:
        return _operand(b, row, cache, key, ymap, "skew rows of")
    if key not in cache:
        period = _y_map(row, groups, shape, origin, sizes, b.slots, lb)
        b.step(f"skew rows of {row.name} (one period of {lb}, then {copies} copies)")
        reg = gather(b, row.regs, row.layout.element_map, period[None, :])[0]
        cache[key] = replicate(b, reg, lb * bb, copies)
    return cache[key]


def _operand(b: Builder, term: Term, cache: dict, key, target: np.ndarray, what: str):
    """The skewed operand for one block: a gathered register, or the clear map."""
    if not term.encrypted:
        return None
    if key not in cache:
        b.step(f"{what} {term.name}")
        cache[key] = gather(b, term.regs, term.layout.element_map, target[None, :])[0]
    return cache[key]


def _diagonal_sum(b: Builder, row, col, y, x, ymap, xmap, lb, r, bb, n1, n2) -> int:
    """Σ_t rot(Y, t·bb) ⊙ rot(X, t·r·bb) with baby-step/giant-step (module docstring)."""
    parts = []
    for g in range(n2):
        inner = []
        for bs in range(min(n1, lb - g * n1)):
            t = g * n1 + bs
            if row.encrypted and col.encrypted:
                yy = b.rotate(y, bs * bb)
                xx = b.rotate(x, (bs * r + g * n1 * (r - 1)) * bb)
                inner.append(b.mul(yy, xx))
            elif col.encrypted:  # Y in the clear, giant steps along the rows
                plain = np.roll(ymap, -(t - g * n1 * r) * bb)
                inner.append(b.mul_plain(b.rotate(x, bs * r * bb), Packed(((row.plain, plain),))))
            else:                # X in the clear
                plain = np.roll(xmap, -(t * r - g * n1) * bb)
                inner.append(b.mul_plain(b.rotate(y, bs * bb), Packed(((col.plain, plain),))))
        giant = g * n1 * (r if not row.encrypted else 1) * bb
        parts.append(b.rotate(b.sum(inner), giant))
    return b.sum(parts)


def _output_layout(groups, shape, out_labels, sizes, slots) -> Layout:
    """Output strides: batch innermost, then columns, then rows at pitch ``r``."""
    mb, nb, lb, bb, r, rows_x = shape
    stride, block = {}, {}
    for g, gblock, unit in (("b", bb, 1), ("k", nb, bb), ("i", mb, r * bb)):
        w = 1
        for c in reversed(groups[g]):
            p = pow2(sizes[c])
            blk = max(1, min(p, gblock // w))
            stride[c], block[c] = (unit * w if blk > 1 else 0), blk
            w *= p
    return Layout(tuple(sizes[c] for c in out_labels), slots,
                  tuple(stride.get(c, 0) for c in out_labels),
                  tuple(block.get(c, 1) for c in out_labels))
