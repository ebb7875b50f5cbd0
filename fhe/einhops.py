"""The EinHops recipe (baahl-nyu/einhops), planned with our ops — the baseline we compare to.

EinHops lays every einsum out in one ciphertext: joint index order = contracted labels (by
appearance) then output labels, row-major, each padded to a power of two. For each encrypted
operand: a permutation into that order whenever its slots differ (baby-step/giant-step over
the slot vector with the fixed baby step ``sqrt(slots)`` (``sqrt(2·slots)`` for odd powers),
skipping zero diagonals), then rotate-and-add replication of the missing labels. Operands are
multiplied in a balanced tree in operand order (plaintext operands laid out in the clear),
the contracted block is rotate-and-summed, and the result is always masked. Einsums whose
joint space exceeds one ciphertext are not supported (EinHops exits).

Building it from the same primitives gives op counts measured the same way as ours, and an
executable program: tests run it on ``sim`` to check that the baseline is faithful.
"""
from __future__ import annotations

import math

from .aligned import term_map
from .layout import Layout, pow2
from .program import Builder, Packed, Term
from .transform import gather, replicate, rotate_and_sum

__all__ = ["plan_einhops"]


def baby_step(slots: int) -> int:
    """EinHops' ``select_bsgs_factors``: N1 = sqrt(n), or sqrt(2n) for odd powers of two."""
    power = slots.bit_length() - 1
    return math.isqrt(2 * slots if power % 2 else slots)


def plan_einhops(b: Builder, terms: list[Term], out_labels, sizes, name: str) -> Term | None:
    slots = b.slots
    reduced = list(dict.fromkeys(c for t in terms for c in t.labels if c not in out_labels))
    order = reduced + list(out_labels)
    p = {c: pow2(sizes[c]) for c in order}
    if math.prod(p.values()) > slots:
        return None
    stride, acc = {}, 1
    for c in reversed(order):
        stride[c], acc = acc, acc * p[c]
    block = p

    b.step(f"EinHops layout for {name}")
    b.note("joint order " + "".join(order) + " (contracted, then output), row-major")
    factors = []
    for t in terms:
        own = [c for c in dict.fromkeys(t.labels)]
        if not t.encrypted:
            laid_out = term_map(t, order, {}, stride, block, sizes, slots)
            factors.append(Packed(((t.plain, laid_out),)))
            continue
        b.step(f"permute {t.name}")
        target = term_map(t, own, {}, stride, block, sizes, slots)[None, :]
        reg = gather(b, t.regs, t.layout.element_map, target, n1=baby_step(slots))[0]
        missing = [c for c in reversed(order) if c not in own and p[c] > 1]
        if missing:
            b.step(f"replicate {t.name} along " + ",".join(missing))
            for c in missing:
                reg = replicate(b, reg, stride[c], p[c])
        factors.append(reg)

    b.step("multiply (balanced tree in operand order)")
    while len(factors) > 1:
        nxt = []
        for i in range(0, len(factors), 2):
            if i + 1 == len(factors):
                nxt.append(factors[i])
                continue
            x, y = factors[i], factors[i + 1]
            if isinstance(x, Packed) and isinstance(y, Packed):
                nxt.append(Packed(x.factors + y.factors))
            elif isinstance(x, Packed) or isinstance(y, Packed):
                ct, pt = (y, x) if isinstance(x, Packed) else (x, y)
                nxt.append(b.mul_plain(ct, pt))
            else:
                nxt.append(b.mul(x, y))
        factors = nxt
    reg = factors[0]

    out_shape = tuple(sizes[c] for c in out_labels)
    out_layout = Layout(out_shape, slots, tuple(stride[c] if p[c] > 1 else 0 for c in out_labels),
                        tuple(p[c] for c in out_labels))
    count = math.prod(p[c] for c in reduced)
    if count > 1:
        b.step("reduce " + ",".join(reduced))
        reg = rotate_and_sum(b, reg, math.prod(p[c] for c in out_labels), count)
    b.step("mask")
    reg = gather(b, [reg], out_layout.element_map, out_layout.element_map, clean=False)[0]
    return Term(name, tuple(out_labels), out_shape, out_layout, (reg,))
