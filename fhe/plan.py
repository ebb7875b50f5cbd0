"""The planner: an einsum and its operands' shapes and layouts -> a printable :class:`Plan`.

``fhe.plan(spec, *shapes, slots=...)`` needs no keys and encrypts nothing. It compiles the
einsum with every applicable strategy and keeps the cheapest (see :data:`WEIGHTS
<fhe.program.WEIGHTS>`) that fits the level budget:

* **aligned** (:mod:`fhe.aligned`) — EinHops' recipe (place, replicate, multiply, reduce,
  mask) over a joint layout chosen around the operands' existing layouts; handles every
  einsum (diagonals, broadcasting, any number of operands, several ciphertexts);
* **diagonal** (:mod:`fhe.diagonal`) — matrix-product-shaped pairs (batched, rectangular,
  blocked): a wide-row diagonal method, one rotation per shift, no masks;
* **pairwise folding** for three or more operands: every order of contracting pairs (greedy
  beyond four operands), each pair by its best strategy; pairs of plaintext operands are
  contracted in the clear.

**Large einsums** (the search is exhaustive only while it is cheap): the diagonal strategy
estimates every block shape (skews priced from the first block's real diagonals, so a
layout that makes a skew a transposition is seen), skips candidates estimated above
:data:`HOPELESS <fhe.diagonal.HOPELESS>` x the best, and beyond :data:`LARGE
<fhe.diagonal.LARGE>` estimated instructions builds only the best one; the aligned strategy
builds only its fewest-tiles joint layout beyond :data:`LARGE_TILES
<fhe.aligned.LARGE_TILES>` tiles; gathers are memoised by their slot-level structure (the
blocks of a product repeat a few skews on other ciphertexts). A 1024x1024 product on 8192
slots plans in ~6 CPU-seconds (914,656 instructions) instead of minutes.

``Plan.einhops_baseline_cost()`` plans the same einsum with the EinHops recipe
(:mod:`fhe.einhops`) for comparison.
"""
from __future__ import annotations

import itertools
import string
from dataclasses import dataclass

from circuits.einsum_spec import EinsumSpec, parse_einsum

from .aligned import plan_aligned
from .diagonal import plan_diagonal
from .einhops import plan_einhops
from .errors import FHEError, InvalidSpec, OutOfLevels, ShapeMismatch
from .layout import Layout
from .program import Builder, Mask, Op, PlainTensor, Step, Term

__all__ = ["Plan", "Cost", "plan", "parse", "STRATEGIES"]

STRATEGIES = ("auto", "aligned", "diagonal", "einhops")
#: exhaustive pairwise folding up to this many operands, greedy beyond
EXHAUSTIVE_FOLD = 4
#: steps ``print(plan)`` lists one by one; the rest are summed up in one line
MAX_STEPS = 40


@dataclass(frozen=True)
class Cost:
    """Operation counts of a plan (``levels``: multiplicative depth from fresh inputs;
    ``keys``: distinct rotation keys; ``ciphertexts``: most ciphertexts alive at once)."""

    rotations: int
    ct_ct_mults: int
    ct_pt_mults: int
    additions: int
    levels: int
    keys: int
    ciphertexts: int

    def __str__(self) -> str:
        return (f"rotations={self.rotations} ct-ct mults={self.ct_ct_mults} "
                f"ct-pt mults={self.ct_pt_mults} additions={self.additions} "
                f"levels={self.levels} keys={self.keys} ciphertexts={self.ciphertexts}")


class Plan:
    """A compiled einsum: operand layouts, the program, the output layout.

    Attributes: ``spec`` (:class:`~circuits.einsum_spec.EinsumSpec`), ``slots``,
    ``encrypted`` (per operand), ``input_layouts`` (None for plaintext operands),
    ``output_layout`` (None when every operand is plaintext: the result is computed in the
    clear), ``strategy``, ``steps``, ``ops``, ``levels`` (depth), ``rotation_keys``.
    """

    def __init__(self, spec: EinsumSpec, slots: int, encrypted, layouts, strategy: str,
                 builder: Builder | None, inputs, output: Term) -> None:
        self.spec = spec
        self.slots = slots
        self.encrypted = tuple(encrypted)
        self.input_layouts = tuple(layouts)
        self.strategy = strategy
        self.steps: list[Step] = builder.steps if builder else []
        self.ops: list[Op] = builder.ops if builder else []
        self.input_regs = tuple(inputs)
        self.output_layout = output.layout
        self.output_regs = output.regs
        self.output_plain = output.plain
        self.rotation_keys = tuple(sorted({op.step for op in self.ops if op.kind == "rotate"},
                                          key=lambda k: (abs(k), k)))
        self._fresh = self._used(dict.fromkeys(self._all_inputs(), 0))  # depths from fresh inputs
        self.levels = max((self._fresh[r] for r in self.output_regs), default=0)
        self._cost: Cost | None = None

    # -- analysis ---------------------------------------------------------------------
    def _all_inputs(self):
        return [r for regs in self.input_regs if regs for r in regs]

    def depths(self, start: dict[int, int]) -> dict[int, int]:
        """Levels consumed at each output register, given the levels already consumed at
        each input register (``start``)."""
        used = self._used(start)
        return {r: used[r] for r in self.output_regs}

    def _used(self, start: dict[int, int]) -> dict[int, int]:
        used = dict(start)
        for op in self.ops:  # one or two arguments (program.Op); a hot loop on large plans
            args = op.args
            depth = used[args[0]] if len(args) == 1 else max(used[args[0]], used[args[1]])
            used[op.out] = depth + 1 if op.kind == "mul" or op.kind == "mul_plain" else depth
        return used

    def check_levels(self, input_levels) -> int:
        """Raise :class:`OutOfLevels` unless operands at ``input_levels`` (remaining levels of
        each encrypted operand, None for plaintext ones) suffice; return the output level."""
        top = max(lv for lv in input_levels if lv is not None)
        start = {r: top - lv for regs, lv in zip(self.input_regs, input_levels) if regs
                 for r in regs}
        used = max(self.depths(start).values(), default=0)
        if used > top:
            have = ", ".join(f"operand {k} at level {lv}" for k, lv in enumerate(input_levels)
                             if lv is not None)
            if top >= self.levels:  # enough levels on fresh operands: some are worn down
                what = (f"re-encrypt the operands below level {self.levels} (or decrypt and "
                        f"re-encrypt an intermediate result)")
            else:
                what = (f"encrypt the operands on a context with at least {self.levels} levels: "
                        f"fhe.Context(levels={self.levels}), or fhe.Context.for_einsum("
                        f"'{self.spec}', ...) which sizes levels and ring for this einsum")
            raise OutOfLevels(
                f"einsum '{self.spec}' needs {used} multiplicative level(s) from its freshest "
                f"operand ({self.levels} from fresh ciphertexts), but the operands have {top} "
                f"({have}); {what}", needed=used, have=top)
        return top - used

    def cost(self) -> Cost:
        if self._cost is None:  # a plan's ops never change: count once
            counts = dict.fromkeys(("rotate", "mul", "mul_plain", "add"), 0)
            for op in self.ops:
                counts[op.kind] += 1
            self._cost = Cost(counts["rotate"], counts["mul"], counts["mul_plain"],
                              counts["add"], self.levels, len(self.rotation_keys), self._peak())
        return self._cost

    def _peak(self) -> int:
        last = {}
        for i, op in enumerate(self.ops):
            for a in op.args:
                last[a] = i
        keep = set(self.output_regs)
        live = set(self._all_inputs())
        peak = len(live)
        for i, op in enumerate(self.ops):
            live.add(op.out)
            peak = max(peak, len(live))
            live -= {a for a in op.args if last[a] == i and a not in keep}
        return peak

    def einhops_baseline_cost(self) -> Cost | None:
        """Counts of the EinHops recipe for the same einsum, operands and layouts (None
        where EinHops cannot run it: more than one ciphertext, or nothing encrypted)."""
        if self.output_layout is None:
            return None
        try:
            base = plan(self.spec, slots=self.slots, encrypted=self.encrypted,
                        layouts=self.input_layouts, strategy="einhops")
        except FHEError:
            return None
        return base.cost()

    # -- printing -------------------------------------------------------------------------
    def listing(self) -> str:
        """Every instruction, one per line (``r7 = rotate r3 by 64  (depth 1)``); inputs are
        named by operand and ciphertext (``A[0]``), depth counts the levels used so far."""
        used = self._fresh
        names = {r: f"{_name(k)}[{c}]" for k, regs in enumerate(self.input_regs) if regs
                 for c, r in enumerate(regs)}
        lines = []
        for step in self.steps:
            lines.append(f"# {step.title}")
            for op in step.ops:
                names[op.out] = f"r{len(names)}"
                args = " ".join(names[a] for a in op.args)
                what = {"rotate": f"rotate {args} by {op.step}", "add": f"add {args}",
                        "mul": f"mul {args}",
                        "mul_plain": f"mul_plain {args} by "
                                     f"{'mask' if isinstance(op.plain, Mask) else 'plaintext'}"}
                lines.append(f"{names[op.out]} = {what[op.kind]}  (depth {used[op.out]})")
        outs = " ".join(names[r] for r in self.output_regs)
        return "\n".join(lines + [f"output: {outs}"])

    def __str__(self) -> str:
        spec = self.spec
        lines = [f"einsum '{spec}' on {self.slots} slots, strategy: {self.strategy}"]
        for k, (labels, shape, enc, lay) in enumerate(
                zip(spec.operands, spec.shapes, self.encrypted, self.input_layouts)):
            what = lay.describe(labels) if enc else "plaintext (laid out in the clear)"
            lines.append(f"  {_name(k)} {''.join(labels) or '-'} {shape}: {what}")
        lines.append("steps (plan.listing() shows every instruction):")
        used = self._fresh
        shown = self.steps if len(self.steps) <= MAX_STEPS else self.steps[:MAX_STEPS - 1]
        for i, step in enumerate(shown, 1):
            lines.append(f"  {i}. {step.title}")
            lines += [f"       {n}" for n in step.notes]
            summary = _summarise(step.ops)
            if summary:
                depth = max(used[op.out] for op in step.ops)
                lines.append(f"       {summary}; depth {depth}")
        rest = self.steps[len(shown):]
        if rest:  # a large product: thousands of block steps
            ops = [op for step in rest for op in step.ops]
            lines.append(f"  ... {len(rest)} more steps (plan.steps; e.g. '{rest[-1].title}')")
            summary = _summarise(ops)
            if summary:
                lines.append(f"       {summary}; depth {max(used[op.out] for op in ops)}")
        out = "".join(spec.output) or "-"
        if self.output_layout is None:
            lines.append(f"output {out} {spec.output_shape}: computed in the clear")
        else:
            lines.append(f"output {out} {spec.output_shape}: "
                         f"{self.output_layout.describe(spec.output)}")
        lines.append(f"cost: {self.cost()}")
        keys = " ".join(map(str, self.rotation_keys))
        lines.append(f"rotation keys ({len(self.rotation_keys)}): {_clip(keys)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Plan '{self.spec}' {self.strategy}: {self.cost()}>"


def _name(k: int) -> str:
    """Operand names in printouts: A, B, ..., Z, then X26, X27, ..."""
    return string.ascii_uppercase[k] if k < 26 else f"X{k}"


def _clip(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[:width - 4].rsplit(" ", 1)[0] + " ..."


def _summarise(ops) -> str:
    if not ops:
        return ""
    counts = {}
    for op in ops:
        counts[op.kind] = counts.get(op.kind, 0) + 1
    names = {"rotate": "rotations", "mul": "ct-ct mults", "mul_plain": "ct-pt mults",
             "add": "additions"}
    parts = [f"{counts[k]} {names[k]}" for k in names if k in counts]
    steps = sorted({op.step for op in ops if op.kind == "rotate"}, key=lambda k: (abs(k), k))
    if steps:
        parts.append("by " + _clip(" ".join(map(str, steps)), 90))
    return ", ".join(parts)


# -- entry point ------------------------------------------------------------------------------
def parse(spec, shapes) -> EinsumSpec:
    """``parse_einsum`` with the fhe error classes: :class:`ShapeMismatch` when only the sizes
    disagree, :class:`InvalidSpec` when the string itself (or its number of axes) is wrong."""
    if isinstance(spec, EinsumSpec):
        if shapes and tuple(map(tuple, shapes)) != spec.shapes:
            raise ShapeMismatch(f"einsum '{spec}' was parsed for shapes {spec.shapes}, "
                                f"got {tuple(map(tuple, shapes))}")
        return spec
    try:
        return parse_einsum(spec, *shapes)
    except (ValueError, TypeError) as exc:
        try:
            parse_einsum(spec, *[(1,) * len(s) for s in shapes])
        except (ValueError, TypeError):
            raise InvalidSpec(str(exc)) from None
        raise ShapeMismatch(str(exc)) from None


def plan(spec, *shapes, slots: int = 8192, encrypted=None, layouts=None, levels=None,
         input_levels=None, out_layout: Layout | None = None, strategy: str = "auto") -> Plan:
    """Plan ``numpy.einsum(spec, *operands)`` on CKKS ciphertexts of ``slots`` slots.

    ``encrypted``: one flag per operand (default: all encrypted). ``layouts``: the encrypted
    operands' layouts (default :meth:`Layout.row_major`). ``levels``: levels of a fresh
    ciphertext — when given, plans deeper than that are refused (:class:`OutOfLevels`);
    ``input_levels``: remaining levels per operand (None for plaintext ones), so that the
    multiplication tree starts with the freshest operands. ``out_layout``: force the
    output layout (default: whatever is cheapest). ``strategy``: one of :data:`STRATEGIES`.
    """
    es = parse(spec, shapes)
    n = len(es.operands)
    encrypted = (True,) * n if encrypted is None else tuple(bool(e) for e in encrypted)
    if len(encrypted) != n:
        raise ShapeMismatch(f"einsum '{es}' has {n} operand(s), got {len(encrypted)} flags")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if any(0 in s for s in es.shapes):
        raise ShapeMismatch(f"einsum '{es}': empty operands are not supported")
    layouts = _layouts(es, encrypted, layouts, slots)
    if input_levels is None:
        input_levels = [levels if e else None for e in encrypted]
    known = [lv for lv in input_levels if lv is not None]
    top = levels if levels is not None else max(known, default=None)

    b = Builder(slots)
    terms, inputs = [], []
    for k, (labels, shape, lay) in enumerate(zip(es.operands, es.shapes, layouts)):
        if lay is None:
            terms.append(Term(_name(k), labels, shape, plain=PlainTensor(shape, operand=k)))
            inputs.append(None)
        else:
            used = top - input_levels[k] if input_levels[k] is not None else 0
            if used < 0:
                raise ValueError(f"operand {k} is at level {input_levels[k]} > levels={top}")
            regs = tuple(b.input(used) for _ in range(lay.n_cts))
            terms.append(Term(_name(k), labels, shape, lay, regs))
            inputs.append(regs)
    if not any(encrypted):
        out = _clear(terms, es.output)
        return Plan(es, slots, encrypted, layouts, "clear", None, inputs, out)
    search = _Search(es.sizes, top, strategy)
    try:
        out, name = search.run(b, terms, es.output, out_layout)
    except _TooDeep as exc:
        raise _out_of_levels(es, exc.needed, exc.have) from None
    return Plan(es, slots, encrypted, layouts, name, b, inputs, out)


def _layouts(es: EinsumSpec, encrypted, layouts, slots: int):
    layouts = [None] * len(encrypted) if layouts is None else list(layouts)
    if len(layouts) != len(encrypted):
        raise ShapeMismatch(f"einsum '{es}': {len(layouts)} layouts for {len(encrypted)} operands")
    out = []
    for k, (enc, lay, shape) in enumerate(zip(encrypted, layouts, es.shapes)):
        if not enc:
            out.append(None)
            continue
        lay = lay or Layout.row_major(shape, slots)
        if lay.shape != shape or lay.slots != slots:
            raise ShapeMismatch(f"operand {k}: layout for shape {lay.shape} on {lay.slots} slots, "
                                f"operand has shape {shape} and the plan {slots} slots")
        out.append(lay)
    return out


def _private(terms, out_labels, sizes) -> set[str]:
    """Labels (of size > 1) that only one operand has and the output lacks."""
    owners: dict[str, int] = {}
    for t in terms:
        for c in set(t.labels):
            owners[c] = owners.get(c, 0) + 1
    return {c for c, k in owners.items() if k == 1 and c not in out_labels and sizes[c] > 1}


def _clear(terms, out_labels) -> Term:
    """Contract plaintext terms in the clear (numpy's shape: an axis every term broadcasts
    stays of size 1)."""
    spec = ",".join("".join(t.labels) for t in terms) + "->" + "".join(out_labels)
    shape = tuple(max((n for t in terms for x, n in zip(t.labels, t.shape) if x == c), default=1)
                  for c in out_labels)
    tensor = PlainTensor(shape, spec=spec, children=tuple(t.plain for t in terms))
    return Term("clear", tuple(out_labels), shape, plain=tensor)


class _TooDeep(Exception):
    """Internal to the search: no plan fits the level budget (``needed``: the fewest levels
    any plan needs). :func:`plan` turns it into a public :class:`OutOfLevels`."""

    def __init__(self, needed: int, have: int) -> None:
        super().__init__(needed, have)
        self.needed = needed
        self.have = have


def _out_of_levels(es: EinsumSpec, needed: int, have: int) -> OutOfLevels:
    shapes = ", ".join(str(s) for s in es.shapes)
    return OutOfLevels(
        f"einsum '{es}' needs at least {needed} multiplicative level(s); the ciphertexts have "
        f"{have}. Use a context with enough levels before encrypting: "
        f"fhe.Context(levels={needed}), or fhe.Context.for_einsum('{es}', {shapes}) which "
        f"sizes levels and ring for this einsum", needed=needed, have=have)


class _Search:
    """Tries the strategies (and, for 3+ operands, pairwise foldings) and keeps the best."""

    def __init__(self, sizes, levels: int | None, strategy: str) -> None:
        self.sizes = sizes
        self.levels = levels
        self.strategy = strategy
        self._names = (f"T{i}" for i in itertools.count(1))

    def run(self, b: Builder, terms, out_labels, out_layout) -> tuple[Term, str]:
        best = self._best(b, self._options(terms, out_labels, out_layout))
        if best is None:
            from .aligned import MAX_TILES
            from .layout import pow2

            labels = {c for t in terms for c in t.labels} | set(out_labels)
            joint = 1
            for c in labels:
                joint *= pow2(self.sizes[c])
            tiles = -(-joint // b.slots)
            if tiles > MAX_TILES:
                why = (f"its {len(labels)} indices span {joint} joint positions, {tiles} "
                       f"ciphertext tiles of {b.slots} slots, more than the {MAX_TILES} the "
                       f"aligned strategy considers")
            else:
                why = f"the {self.strategy} strategy does not apply to it"
            hint = "; try strategy='auto'" if self.strategy not in ("auto", "aligned") else ""
            raise FHEError(f"no {self.strategy} plan fits this einsum: {why}{hint}")
        return best

    def _options(self, terms, out_labels, out_layout):
        if self.strategy == "einhops":
            return [("einhops", lambda c: plan_einhops(c, terms, out_labels, self.sizes, "C"))]
        options = self._single(terms, out_labels, out_layout, "C")
        if self.strategy == "auto" and len(terms) >= 3:
            options.append(("pairwise", lambda c: self._fold(c, terms, out_labels, out_layout)))
        if self.strategy == "auto" and len(terms) >= 2 and _private(terms, out_labels, self.sizes):
            options.append(("reduce first", lambda c: self._reduce_first(
                c, terms, out_labels, out_layout)))
        return options

    def _reduce_first(self, b: Builder, terms, out_labels, out_layout):
        """Sum each operand over the labels no other operand (nor the output) has, then
        contract the smaller operands."""
        private = _private(terms, out_labels, self.sizes)
        new = []
        for t in terms:
            if not private & set(t.labels):
                new.append(t)
                continue
            keep = tuple(dict.fromkeys(c for c in t.labels if c not in private))
            if t.encrypted:
                best = self._best(b, self._single([t], keep, None, next(self._names)))
                if best is None:
                    return None
                new.append(best[0])
            else:
                new.append(_clear([t], keep))
        best = self._best(b, self._options(new, out_labels, out_layout))
        return best and (best[0], f"reduce {','.join(sorted(private))} first; {best[1]}")

    def _single(self, terms, out_labels, out_layout, name):
        options = []
        if self.strategy in ("auto", "aligned"):
            options.append(("aligned", lambda c: plan_aligned(
                c, terms, out_labels, self.sizes, name, out_layout)))
        if self.strategy in ("auto", "diagonal") and len(terms) == 2:
            options.append(("diagonal", lambda c: plan_diagonal(
                c, terms, out_labels, self.sizes, name, out_layout)))
        return options

    def _best(self, b: Builder, options) -> tuple[Term, str] | None:
        """Build every option in a fork of ``b``; adopt the cheapest feasible one."""
        best, deepest = None, None
        for label, fn in options:
            child = b.fork()
            try:
                out = fn(child)
            except _TooDeep as exc:  # every sub-plan of this option is too deep
                deepest = exc.needed if deepest is None else min(deepest, exc.needed)
                continue
            if out is None:
                continue
            if isinstance(out, tuple):
                out, label = out
            depth = max((child.used[r] for r in out.regs), default=0)
            if self.levels is not None and depth > self.levels:
                deepest = depth if deepest is None else min(deepest, depth)
                continue
            score = child.score(out.regs)
            if best is None or score < best[0]:
                best = (score, child, out, label)
        if best is None:
            if deepest is not None:
                raise _TooDeep(deepest, self.levels)
            return None
        b.adopt(best[1])
        return best[2], best[3]

    def _fold(self, b: Builder, terms, out_labels, out_layout):
        """Contract two terms, then the rest (recursively); every pair order up to
        EXHAUSTIVE_FOLD terms, otherwise only the best first pair."""
        if len(terms) <= 2:
            return self._best(b, self._single(terms, out_labels, out_layout, "C"))
        pairs = list(itertools.combinations(range(len(terms)), 2))
        options = []
        for i, j in pairs:
            rest = [t for k, t in enumerate(terms) if k not in (i, j)]
            keep = set(out_labels) | {c for t in rest for c in t.labels}
            labels = [c for c in out_labels if c in terms[i].labels + terms[j].labels]
            labels += [c for c in dict.fromkeys(terms[i].labels + terms[j].labels)
                       if c in keep and c not in labels]
            options.append((i, j, rest, tuple(labels)))
        if len(terms) > EXHAUSTIVE_FOLD:
            options = [min(options, key=lambda o: self._pair_score(
                b, terms[o[0]], terms[o[1]], o[3]))]
        choices = []
        for i, j, rest, labels in options:
            def fold(c, i=i, j=j, rest=rest, labels=labels):
                pair = self._pair(c, terms[i], terms[j], labels)
                if pair is None:
                    return None
                res = self._fold(c, rest + [pair], out_labels, out_layout)
                first = terms[i].name + terms[j].name
                return res and (res[0], f"pairwise ({first} first): {res[1]}")
            choices.append((None, fold))
        return self._best(b, choices)

    def _pair(self, b: Builder, x: Term, y: Term, labels) -> Term | None:
        if not x.encrypted and not y.encrypted:
            return _clear([x, y], labels)
        best = self._best(b, self._single([x, y], labels, None, next(self._names)))
        return best and best[0]

    def _pair_score(self, b: Builder, x: Term, y: Term, labels) -> float:
        child = b.fork()
        out = self._pair(child, x, y, labels)
        return float("inf") if out is None else child.score(out.regs)
