"""The straight-line program a plan compiles to, and the builder that writes it.

A program is a list of :class:`Op` over numbered ciphertext registers (single assignment):
``rotate``, ``add``, ``mul`` (ciphertext x ciphertext) and ``mul_plain`` (ciphertext x
plaintext). Nothing else runs, so counting the ops *is* the cost model, and the executor
can check levels and keys before it starts.

A ``mul_plain`` operand is either a :class:`Mask` (a 0/1 vector fixed at planning time: masks
and the diagonals of permutations) or a :class:`Packed` plaintext (clear tensors — the
plaintext operands — gathered into slots at run time).

While planning, a :class:`Term` stands for one einsum operand: its index labels, shape, and
either its ciphertext registers with their :class:`~fhe.layout.Layout`, or a
:class:`PlainTensor` (a plaintext operand, or a clear einsum of plaintext operands).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .layout import Layout

__all__ = ["Op", "Mask", "Packed", "PlainTensor", "Term", "Step", "Builder", "signed"]


#: Cost of each op relative to a rotation (key switch) for choosing between plans: SEAL,
#: N = 2^14, 4 primes — rotation 3.1 ms, mul+relin+rescale 4.3 ms, encode+mul_plain+rescale
#: 1.9 ms, add 0.06 ms. A level is charged as well: fewer levels allow smaller parameters.
WEIGHTS = {"mul": 1.4, "mul_plain": 0.6, "add": 0.02, "level": 3.0}


def signed(step: int, slots: int) -> int:
    """A rotation amount normalised to ``(-slots/2, slots/2]`` (the same rotation)."""
    step %= slots
    return step - slots if step > slots // 2 else step


@dataclass(frozen=True, eq=False)
class Mask:
    """A 0/1 slot vector: ones at ``index``."""

    index: np.ndarray

    def values(self, slots: int) -> np.ndarray:
        v = np.zeros(slots)
        v[self.index] = 1.0
        return v


@dataclass(frozen=True, eq=False)
class PlainTensor:
    """A tensor known in the clear at run time: plaintext operand ``operand`` of the einsum,
    or ``numpy.einsum(spec, *children)`` of such tensors."""

    shape: tuple[int, ...]
    operand: int | None = None
    spec: str = ""
    children: tuple["PlainTensor", ...] = ()

    def evaluate(self, operands, memo: dict) -> np.ndarray:
        if self not in memo:
            if self.operand is not None:
                memo[self] = np.asarray(operands[self.operand], dtype=np.float64)
            else:
                args = [c.evaluate(operands, memo) for c in self.children]
                memo[self] = np.einsum(self.spec, *args)
        return memo[self]


@dataclass(frozen=True, eq=False)
class Packed:
    """Product over ``factors`` of ``tensor.flat[index]`` (index -1: zero) — clear tensors
    laid out in slots, several plaintext operands multiplied together in the clear."""

    factors: tuple[tuple[PlainTensor, np.ndarray], ...]

    def values(self, operands, memo: dict) -> np.ndarray:
        out = None
        for tensor, index in self.factors:
            flat = np.concatenate([tensor.evaluate(operands, memo).ravel(), [0.0]])
            v = flat[index]
            out = v if out is None else out * v
        return out


class Op(NamedTuple):
    """One instruction: ``out = kind(*args)`` (``step`` for rotate, ``plain`` for mul_plain);
    a named tuple, as large plans hold a million of them."""

    kind: str
    out: int
    args: tuple[int, ...]
    step: int = 0
    plain: Mask | Packed | None = None


@dataclass
class Term:
    """An einsum operand while planning (encrypted: ``layout`` + ``regs``; else ``plain``)."""

    name: str
    labels: tuple[str, ...]
    shape: tuple[int, ...]
    layout: Layout | None = None
    regs: tuple[int, ...] = ()
    plain: PlainTensor | None = None

    @property
    def encrypted(self) -> bool:
        return self.layout is not None

    def effective_labels(self) -> tuple[str, ...]:
        """Distinct labels of the axes that are not broadcast (size 1)."""
        return tuple(dict.fromkeys(c for c, n in zip(self.labels, self.shape) if n > 1))


@dataclass
class Step:
    """A named stage of a plan (what ``print(plan)`` lists), with the ops it emitted."""

    title: str
    notes: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)


class Builder:
    """Writes a program. Tracks, per register, how many levels lie between it and a fresh
    ciphertext (``used``), and reuses identical rotations of the same register."""

    def __init__(self, slots: int, counter=None) -> None:
        self.slots = slots
        self.ops: list[Op] = []
        self.steps: list[Step] = []
        self.used: dict[int, int] = {}
        self._rotations: dict[tuple[int, int], int] = {}
        self._counter = counter if counter is not None else itertools.count()
        self._step: Step | None = None

    # -- structure ---------------------------------------------------------------
    def fork(self) -> "Builder":
        """A scratch builder continuing from this one (same register numbering)."""
        child = Builder(self.slots, self._counter)
        child.used = dict(self.used)
        child._rotations = dict(self._rotations)
        return child

    def adopt(self, child: "Builder") -> None:
        """Append what ``child`` (a fork of this builder) wrote."""
        self.ops += child.ops
        self.steps += child.steps
        self.used.update(child.used)
        self._rotations.update(child._rotations)
        self._step = None

    def step(self, title: str) -> Step:
        """Start a new stage; following ops belong to it."""
        self._step = Step(title)
        self.steps.append(self._step)
        return self._step

    def note(self, line: str) -> None:
        if self._step is None:
            self.step("setup")
        self._step.notes.append(line)

    def input(self, used: int = 0) -> int:
        reg = next(self._counter)
        self.used[reg] = used
        return reg

    def _emit(self, kind: str, args: tuple[int, ...], used: int, step: int = 0, plain=None) -> int:
        out = next(self._counter)
        op = Op(kind, out, args, step, plain)
        self.ops.append(op)
        if self._step is None:
            self.step("setup")
        self._step.ops.append(op)
        self.used[out] = used
        return out

    # -- instructions ---------------------------------------------------------------
    def rotate(self, reg: int, step: int) -> int:
        step = signed(step, self.slots)
        if step == 0:
            return reg
        key = (reg, step)
        if key not in self._rotations:
            self._rotations[key] = self._emit("rotate", (reg,), self.used[reg], step)
        return self._rotations[key]

    def add(self, a: int, b: int) -> int:
        return self._emit("add", (a, b), max(self.used[a], self.used[b]))

    def mul(self, a: int, b: int) -> int:
        return self._emit("mul", (a, b), max(self.used[a], self.used[b]) + 1)

    def mul_plain(self, a: int, plain: Mask | Packed) -> int:
        return self._emit("mul_plain", (a,), self.used[a] + 1, plain=plain)

    def sum(self, regs) -> int:
        """Balanced addition tree (keeps the noise growth logarithmic)."""
        regs = list(regs)
        if not regs:
            raise ValueError("sum of no registers")
        while len(regs) > 1:
            regs = [self.add(regs[i], regs[i + 1]) if i + 1 < len(regs) else regs[i]
                    for i in range(0, len(regs), 2)]
        return regs[0]

    def product(self, regs, plain: Packed | None = None) -> int:
        """Multiply ciphertexts (and one plaintext) with the least depth: the plaintext goes
        on the shallowest ciphertext, then the two shallowest are multiplied, repeatedly."""
        regs = sorted(regs, key=lambda r: self.used[r])
        if plain is not None:
            regs[0] = self.mul_plain(regs[0], plain)
        while len(regs) > 1:
            regs.sort(key=lambda r: self.used[r])
            regs = [self.mul(regs[0], regs[1])] + regs[2:]
        return regs[0]

    # -- accounting ------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("rotate", "add", "mul", "mul_plain"), 0)
        for op in self.ops:
            out[op.kind] += 1
        return out

    def score(self, outputs) -> float:
        """Estimated cost of what this builder wrote (relative to one rotation, measured on
        SEAL at N = 2^14), plus a charge per level the outputs consumed."""
        c = self.counts()
        depth = max((self.used[r] for r in outputs), default=0)
        return (c["rotate"] + WEIGHTS["mul"] * c["mul"] + WEIGHTS["mul_plain"] * c["mul_plain"]
                + WEIGHTS["add"] * c["add"] + WEIGHTS["level"] * depth)


class Cheapest:
    """The cheapest of several candidate programs, each written into a fork of ``builder``."""

    def __init__(self, builder: Builder) -> None:
        self._builder = builder
        self.score: float | None = None
        self._best = None

    def offer(self, child: Builder, out) -> None:
        """A candidate: the fork ``child`` it was written into and its output term."""
        score = child.score(out.regs)
        if self.score is None or score < self.score:
            self.score, self._best = score, (child, out)

    def adopt(self):
        """Append the cheapest candidate to the builder and return its output (None if none)."""
        if self._best is None:
            return None
        self._builder.adopt(self._best[0])
        return self._best[1]
