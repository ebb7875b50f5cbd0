"""Parse, validate and normalise einsum strings with numpy.einsum's semantics.

Both backends consume an :class:`EinsumSpec` rather than a raw string:

* ``...`` is expanded into fresh single-letter labels (one per broadcast axis),
* an implicit output (no ``->``) is made explicit exactly as numpy does it
  (ellipsis axes first, then every label that appears once, in ASCII order),
* every label gets one size; a size-1 axis broadcasts against a larger one as in numpy,
* repeated labels inside one operand (``ii->i``) are kept: they mean "take the diagonal".

``EinsumSpec.reference(*arrays)`` is numpy.einsum on the normalised spec: the oracle every
backend is tested against.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["EinsumSpec", "parse_einsum", "LABELS"]

#: The labels numpy.einsum accepts, in the order numpy sorts implicit outputs (ASCII).
LABELS = string.ascii_uppercase + string.ascii_lowercase


@dataclass(frozen=True)
class EinsumSpec:
    """A validated einsum: per-operand labels, output labels and one size per label.

    ``operands[k]`` has one label per axis of operand ``k`` (labels may repeat: a diagonal).
    ``shapes[k]`` is that operand's shape as given (size-1 axes may broadcast).
    ``sizes[label]`` is the size of the label after broadcasting.
    """

    operands: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]
    sizes: dict[str, int]
    shapes: tuple[tuple[int, ...], ...]

    # -- derived views -------------------------------------------------------------
    @cached_property
    def labels(self) -> tuple[str, ...]:
        """All labels: output labels first, then contracted labels in order of appearance."""
        seen = list(self.output)
        for ops in self.operands:
            for c in ops:
                if c not in seen:
                    seen.append(c)
        return tuple(seen)

    @property
    def contracted(self) -> tuple[str, ...]:
        """Labels summed over (absent from the output)."""
        return tuple(c for c in self.labels if c not in self.output)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.sizes[c] for c in self.output)

    def __str__(self) -> str:
        return ",".join("".join(o) for o in self.operands) + "->" + "".join(self.output)

    # -- concrete operands -----------------------------------------------------------
    def reference(self, *arrays):
        """numpy.einsum on the normalised spec (the oracle every backend is tested against)."""
        self._check_arrays(arrays)
        return np.einsum(str(self), *arrays)

    def _check_arrays(self, arrays):
        if len(arrays) != len(self.operands):
            raise ValueError(
                f"einsum '{self}' takes {len(self.operands)} operand(s), got {len(arrays)}")
        for k, (a, shape) in enumerate(zip(arrays, self.shapes)):
            if tuple(np.shape(a)) != shape:
                raise ValueError(
                    f"einsum '{self}': operand {k} has shape {tuple(np.shape(a))}, "
                    f"the spec was parsed for {shape}")


def _split_operand(term: str, k: int) -> tuple[list[str], bool]:
    """Labels of one operand term, with the position of '...' marked by the token '...'."""
    if term.count("...") > 1:
        raise ValueError(f"operand {k} ('{term}') has more than one ellipsis '...'")
    parts = term.split("...")
    tokens: list[str] = []
    for p_i, part in enumerate(parts):
        if p_i:
            tokens.append("...")
        for c in part:
            if c == ".":
                raise ValueError(f"operand {k} ('{term}') has a stray '.' (an ellipsis is '...')")
            if c not in LABELS:
                raise ValueError(
                    f"invalid character {c!r} in operand {k} ('{term}'): "
                    "einsum labels are the letters a-z and A-Z")
            tokens.append(c)
    return tokens, len(parts) == 2


def parse_einsum(spec: str, *shapes) -> EinsumSpec:
    """Parse ``spec`` for operands of the given shapes, following numpy.einsum's rules.

    Raises ``ValueError`` naming the problem: unknown characters, wrong operand count,
    an axis count that does not match the shape, sizes that disagree, output labels
    that are repeated or come from nowhere.
    """
    if not isinstance(spec, str):
        raise TypeError(f"einsum spec must be a string, got {type(spec).__name__}")
    if not shapes:
        raise ValueError("einsum needs at least one operand")
    shapes = tuple(tuple(int(n) for n in s) for s in shapes)
    for k, s in enumerate(shapes):
        if any(n < 0 for n in s):
            raise ValueError(f"operand {k} has a negative dimension in shape {s}")
    text = spec.replace(" ", "")
    if text.count("->") > 1:
        raise ValueError(f"einsum spec '{spec}' has more than one '->'")
    lhs, arrow, rhs = text.partition("->")
    if any(c in part for c in "->" for part in (lhs, rhs)):
        raise ValueError(f"einsum spec '{spec}' has a malformed '->'")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(
            f"einsum spec '{spec}' names {len(terms)} operand(s) but {len(shapes)} were given")

    parsed = [_split_operand(t, k) for k, t in enumerate(terms)]
    used = {c for toks, _ in parsed for c in toks if c != "..."}
    if arrow:
        out_tokens, out_ell = _split_operand(rhs, -1) if rhs else ([], False)
        used |= {c for c in out_tokens if c != "..."}

    # expand the ellipsis into fresh labels, aligned from the right (broadcasting)
    n_ell = 0
    for k, ((toks, has_ell), shape) in enumerate(zip(parsed, shapes)):
        named = len(toks) - has_ell
        if has_ell:
            if named > len(shape):
                raise ValueError(
                    f"operand {k} ('{terms[k]}') names {named} axes but has shape {shape}")
            n_ell = max(n_ell, len(shape) - named)
        elif named != len(shape):
            raise ValueError(
                f"operand {k} ('{terms[k]}') has {named} label(s) but shape {shape} "
                f"has {len(shape)} axes")
    fresh = [c for c in LABELS if c not in used]
    if n_ell > len(fresh):
        raise ValueError(f"einsum spec '{spec}': too many axes for the 52 available labels")
    ell_labels = fresh[:n_ell]

    operands: list[tuple[str, ...]] = []
    for (toks, has_ell), shape in zip(parsed, shapes):
        if has_ell:
            m = len(shape) - (len(toks) - 1)
            i = toks.index("...")
            toks = toks[:i] + ell_labels[n_ell - m:] + toks[i + 1:]
        operands.append(tuple(toks))

    for k, (ops, shape) in enumerate(zip(operands, shapes)):
        for i, c in enumerate(ops):  # a repeated label inside one operand must agree exactly
            j = ops.index(c)
            if j != i and shape[i] != shape[j]:
                raise ValueError(
                    f"operand {k} repeats index '{c}' on axes of different sizes "
                    f"{shape[j]} and {shape[i]}")
    # sizes, with numpy's size-1 broadcasting
    sizes: dict[str, int] = {}
    for k, (ops, shape) in enumerate(zip(operands, shapes)):
        for c, n in zip(ops, shape):
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = n
            elif n != 1 and n != prev:
                raise ValueError(
                    f"size mismatch for index '{c}' in '{spec}': operand {k} has {n}, "
                    f"an earlier operand has {prev}")

    if arrow:
        if "..." in out_tokens:
            i = out_tokens.index("...")
            output = out_tokens[:i] + ell_labels + out_tokens[i + 1:]
        elif n_ell:
            raise ValueError(
                f"einsum spec '{spec}': the operands' '...' covers {n_ell} axes but the "
                "output has no '...' to receive them")
        else:
            output = list(out_tokens)
        for c in output:
            if output.count(c) > 1:
                raise ValueError(f"output index '{c}' appears more than once in '{spec}'")
            if c not in sizes:
                raise ValueError(
                    f"output index '{c}' in '{spec}' does not appear in any operand")
    else:
        counts: dict[str, int] = {}
        for ops in operands:
            for c in ops:
                counts[c] = counts.get(c, 0) + 1
        once = sorted((c for c, n in counts.items() if n == 1 and c not in ell_labels),
                      key=LABELS.index)
        output = ell_labels + once
    return EinsumSpec(tuple(operands), tuple(output), sizes, shapes)
