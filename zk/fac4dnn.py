"""FAC4DNN: one aggregated circuit for T SGD steps (or one inference) of a model, lowered from its graph.

Every intermediate tensor of the fixed-point witness (:mod:`circuits`) is committed, so no
relation depends on the order of the computation. :class:`Circuit` lowers the circuits graph of
one step (:mod:`zk.lower`: one rule per op) and places the result at every step; instances of one
relation type that share a padded shape, across all layers and steps, are stacked (:mod:`zk.stack`)
and proved by ONE sumcheck, and everything linear is checked on the commitments directly.
docs/fac4dnn.md has the figure. Tensors are named by :class:`zk.keys.TensorKey` after the graph
tensors: ``VALUE(t, "x")`` is step ``t``'s data batch, ``VALUE(t, "0.weight")`` the weight after
``t`` steps, ``LIMBS(t, "0.z", j)`` a limb of the range check of the rescaled ``0.z``.

====================  ==========================================================================
relation              what (:mod:`zk.lower` has the rule of every op)
====================  ==========================================================================
einsum (sumcheck)     every einsum node (forward products, weight and input gradients, the bias
                      broadcast ``ONES b^T`` and the bias gradient ``G^T ONES``)
linear                every rescale, loss gradient and SGD division with its remainder (an update:
                      ``lr_q g + 2^(k-1) = 2^k (w - w') + R``), every range check's recomposition
ranges (linear)       statement tensors: the data and targets in ``data_bits``, the initial
                      parameters in ``param_bits`` (two's complement; every step checks the
                      parameters it makes in ``param_bits`` too)
zero padding          every statement tensor is zero outside its true shape (:mod:`zk.padding`)
zkReLU (sumcheck)     ``h + gamma g = (1 - s) (z + gamma g_h)`` per ReLU, ``s`` the sign plane of ``z - 1``
lookups (logUp-GKR)   every limb and sign plane in ``[0, 2^L)`` (a top limb of ``b`` bits also at
                      scale ``2^(L - b)``; :mod:`zk.lookup`), at most ``2^MAX_LOOKUP_VARS`` leaves each
====================  ==========================================================================

Range checks bound every quotient, so each fixed-point equation holds over the integers, not just
modulo ``r``: :mod:`zk.magnitudes` checks every equation's largest magnitude from the statement
and refuses statements that could wrap. All linear relations are checked at once: for a challenge ``rho`` the verifier
forms ``sum_i rho^i (relation on row i)`` from the commitments and the prover reveals its blind.
"""
from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

import circuits
from circuits import parse_einsum

from . import commit, einsum, field, group, hadamard, lookup, lower, magnitudes, mle, padding
from .commit import Commitment, Opening
from .device import CPU, Device
from .einsum import EinsumRelationProof
from .errors import VerificationError
from .hadamard import Affine, HadamardProof
from .architecture import Architecture, Scaled
from .keys import TensorKey, TensorKind
from .lookup import LookupProof
from .openings import Claims, Openings, OpeningsProof
from .lower import Linear, RangeCheck, Template, pad, padded, shift
from .padding import PaddingProof
from .stack import Stack, instance_col_vars, stack
from .transcript import Transcript

#: Largest lookup tree, in variables: 2^23 leaves, 0.5 GiB per layer side as field elements while proved.
MAX_LOOKUP_VARS = 23
#: Widest range check a statement may declare for its data or initial parameters.
MAX_RANGE_BITS = 128


@dataclass(frozen=True)
class Circuit(Scaled):
    """Public parameters of the aggregated circuit (all from the statement): the model's
    ``architecture`` (its forward graph, scales included), ``steps`` SGD steps (or one inference)
    on batches of ``batch`` rows (``rows``: each step's real rows), the learning rate
    ``lr_q / 2^lr_bits``, the proved ranges of the data (``data_bits``) and of the parameters at
    every step (``param_bits``); ``momentum``, ``dampening`` and ``weight_decay`` as in
    ``torch.optim.SGD``; ``resumed``: the run starts from the momentum buffers of an earlier
    proof (statement tensors, like the initial parameters), else the first step has none."""

    architecture: Architecture
    batch: int
    steps: int
    lr_q: int = 0
    lr_bits: int = 0
    training: bool = True
    data_bits: int = 0  # range of X (and Y): two's complement of this width (0: scale_bits + 16)
    param_bits: int = 0  # range of the parameters at every step (0: param_scale + 8)
    rows: tuple[int, ...] = ()  # real rows of each step's batch (empty: ``batch`` every step)
    momentum: float = 0.0  # torch.optim.SGD's options (the run starts without momentum buffers)
    dampening: float = 0.0
    weight_decay: float = 0.0
    resumed: bool = False
    loss: str = "mse"  # the training's loss: "mse" or "cross_entropy" (circuits.graph.LOSSES)

    def __post_init__(self) -> None:
        if self.resumed and not (self.training and self.momentum):
            raise ValueError("only a training run with momentum resumes from momentum buffers")
        if not self.rows:
            object.__setattr__(self, "rows", (self.batch,) * self.steps)
        if len(self.rows) != self.steps or not all(1 <= n <= self.batch for n in self.rows):
            raise ValueError(f"rows per step {self.rows[:8]}...: one count in [1, {self.batch}] per step")
        p, S = self.param_scale, self.scale_bits
        if not S <= p <= 2 * S + 24:
            raise ValueError(f"param_scale {p} must be in [scale_bits, 2 scale_bits + 24] = [{S}, {2 * S + 24}]")
        if self.training and self.lr_bits + 2 * S - p < 1:
            raise ValueError(f"param_scale {p} leaves no SGD remainder at learning rate {self.lr_repr} "
                             f"(it must stay below lr_bits + 2 scale_bits = {self.lr_bits + 2 * S})")
        if not self.data_bits:
            object.__setattr__(self, "data_bits", self.scale_bits + 16)
        if not self.param_bits:
            object.__setattr__(self, "param_bits", p + lower.PARAM_HEADROOM)
        for name in ("data_bits", "param_bits"):
            if not 2 <= getattr(self, name) <= MAX_RANGE_BITS:
                raise ValueError(f"{name} must be in [2, {MAX_RANGE_BITS}], got {getattr(self, name)}")
        self.templates  # lower the graph now: an op zk cannot prove is refused here

    def check_sound(self) -> None:
        """Refuse (:class:`zk.StatementError`, naming the parameter) a statement whose equations
        could wrap modulo ``r`` (:mod:`zk.magnitudes`)."""
        magnitudes.check(self)

    @property
    def lr_repr(self) -> str:
        """The quantised learning rate, for messages."""
        return f"{self.lr_q / (1 << self.lr_bits):.3g}" if self.training else "-"

    # -- the graph and its lowering ---------------------------------------------------------
    def graph(self, rows: int, first: bool = True) -> circuits.Graph:
        """The circuits graph of one step on a batch of ``rows`` real rows (inference: the model);
        ``first``: the run's first step (no momentum buffer yet)."""
        lr = self.lr_q / (1 << self.lr_bits) if self.training else None
        sgd = (self.momentum, self.dampening, self.weight_decay, first or not self.momentum)
        return step_graph(self.architecture, rows, lr, sgd, self.loss)

    @cached_property
    def params(self) -> list[str]:
        """The parameters' names (state_dict order)."""
        return [t.name for t in self.graph(self.batch).inputs if t.role == "param"]

    @cached_property
    def output(self) -> str:
        """The graph tensor of the model's output."""
        return self.graph(self.batch).outputs["out"]

    def _input_bounds(self) -> dict[str, int]:
        """The largest integer of every graph input: the range checks (a parameter's at every step:
        the statement checks the initial one, each step the one it makes)."""
        out = {name: 1 << (self.param_bits - 1) for name in self.params}
        state = {t.name: 1 << (t.scale + lower.ACT_HEADROOM - 1) for t in self.graph(self.batch, False).inputs
                 if t.role == "state"}  # momentum buffers: range-checked where they are made
        return {**out, **state, "x": 1 << (self.data_bits - 1), "y": 1 << (self.data_bits - 1)}

    @property
    def templates(self) -> dict[tuple[int, bool], Template]:
        """The lowered step (:mod:`zk.lower`) per row count and first step or not (shared by equal circuits: the proofs of
        a run's segments hold one copy)."""
        return _templates(self)

    def _lower(self) -> dict[tuple[int, bool], Template]:
        bounds = self._input_bounds()
        kinds = {(n, self._first(t)) for t, n in enumerate(self.rows)}
        return {(n, first): lower.lower(self.graph(n, first), self.graph(self.batch, first), n, bounds,
                                        self.limb_bits, self.param_bits) for n, first in sorted(kinds)}

    @cached_property
    def limb_bits(self) -> int:
        """The limb width ``L`` of every range check (its lookup table: ``[0, 2^L)``): about an eighth
        of the entries a step's tensors hold over all steps, within
        [:data:`zk.lower.MIN_LIMB_BITS`, :data:`zk.lower.MAX_LIMB_BITS`], so a small circuit does
        not pay for a large table."""
        g = self.graph(self.batch)
        entries = self.steps * sum(int(np.prod(padded(t.shape), dtype=np.int64)) for t in g.tensors.values())
        return min(lower.MAX_LIMB_BITS, max(lower.MIN_LIMB_BITS, entries.bit_length() - 3))

    def template(self, t: int) -> Template:
        """The lowered step ``t``."""
        return self.templates[self.rows[t], self._first(t)]

    def _first(self, t: int) -> bool:
        """Whether step ``t`` runs without momentum buffers (the graph of a first step)."""
        return not self.momentum or (t == 0 and not self.resumed)

    @cached_property
    def states(self) -> list[str]:
        """The optimizer state carried from step to step (momentum buffers), sorted by name."""
        return sorted(t.name for t in self.graph(self.batch, False).inputs if t.role == "state")

    def model_tensors(self, step: int) -> list[str]:
        """The parameters and, where the statement holds them at ``step``, the momentum buffers."""
        held = (step == 0 and self.resumed) or (step == self.steps and self.training and self.momentum)
        return self.params + (self.states if held else [])

    def _shape(self, name: str) -> tuple[int, ...]:
        return padded(self.graph(self.batch, name not in self.states)[name].shape)

    # -- the committed tensors -----------------------------------------------------------
    def data_key(self, t: int) -> TensorKey:
        """Step ``t``'s data batch."""
        return TensorKind.VALUE(t, "x")

    def target_key(self, t: int) -> TensorKey:
        """Step ``t``'s targets."""
        return TensorKind.VALUE(t, "y")

    def param_key(self, name: str, step: int) -> TensorKey:
        """Parameter ``name`` after ``step`` steps."""
        return TensorKind.VALUE(step, name)

    @cached_property
    def statement_keys(self) -> list[tuple[TensorKey, tuple]]:
        T = self.steps
        keys = [(self.data_key(t), self._shape("x")) for t in range(T)]
        keys += [(self.param_key(name, 0), self._shape(name)) for name in self.model_tensors(0)]
        if self.training:
            keys += [(self.target_key(t), self._shape("y")) for t in range(T)]
            keys += [(self.param_key(name, T), self._shape(name)) for name in self.model_tensors(T)]
        else:
            keys.append((TensorKind.VALUE(0, self.output), self._shape(self.output)))
        return keys

    def true_shape(self, key: TensorKey) -> tuple:
        """The unpadded shape of a statement tensor."""
        if key.tensor in self.states:
            return self.graph(self.batch, False)[key.tensor].shape
        rows = self.rows[key.step] if key.tensor not in self.params else self.batch
        return self.graph(rows)[key.tensor].shape

    def range_checks(self) -> list[tuple[TensorKey, int]]:
        """``(statement key, width)`` of every statement tensor the circuit range-checks in two's
        complement: the initial parameters (and momentum buffers), the data and targets (their
        limbs: ``LIMBS``)."""
        out = self._initial_ranges()
        for t in range(self.steps):
            out.append((self.data_key(t), self.data_bits))
            if self.training:
                out.append((self.target_key(t), self.data_bits))
        return out

    def statement_checks(self) -> list[RangeCheck]:
        """The :class:`zk.lower.RangeCheck` of every :meth:`range_checks` entry."""
        return [RangeCheck(key, width, 0, False, self.limb_bits) for key, width in self.range_checks()]

    def _initial_ranges(self) -> list[tuple[TensorKey, int]]:
        """The initial parameters in ``param_bits``; resumed momentum buffers in the width the
        steps assume of them (:meth:`_input_bounds`)."""
        full = self.graph(self.batch, False)
        return [(self.param_key(name, 0), self.param_bits if name in self.params else
                 full[name].scale + lower.ACT_HEADROOM) for name in self.model_tensors(0)]

    def padding_groups(self) -> list[tuple[tuple, list[TensorKey]]]:
        """Statement tensors with padding entries, by padded shape (one zero-padding proof each)."""
        by_shape: dict = {}
        for key, shape in self.statement_keys:
            if padding.needs_proof(self.true_shape(key), shape):
                by_shape.setdefault(shape, []).append(key)
        return sorted(by_shape.items())

    def _step_keys(self, t: int) -> list[tuple[TensorKey, tuple]]:
        """The committed tensors of step ``t`` (the statement's own excepted)."""
        data = [self.data_key(t)] + ([self.target_key(t)] if self.training else [])
        keys = [(p, self._shape(k.tensor)) for k in data
                for p, _ in RangeCheck(k, self.data_bits, 0, False, self.limb_bits).limbs]
        statement = {k for k, _ in self.statement_keys} if t == self.steps - 1 else ()
        keys += [(k, c.shape) for c in self.template(t).tensors if (k := shift(c.key, t)) not in statement]
        return keys

    @cached_property
    def proof_keys(self) -> list[tuple[TensorKey, tuple]]:
        keys = [(p, self._shape(k.tensor)) for k, w in self._initial_ranges()
                for p, _ in RangeCheck(k, w, 0, False, self.limb_bits).limbs]
        for t in range(self.steps):
            keys += self._step_keys(t)
        return keys

    def proof_key_count(self) -> int:
        """``len(proof_keys)`` without building the list: what a parser checks against the bytes it
        was given before allocating."""
        limbs = len(lower.limb_widths(self.data_bits, self.limb_bits)) * (2 if self.training else 1)
        count = sum(len(lower.limb_widths(w, self.limb_bits)) for _, w in self._initial_ranges()) + self.steps * limbs
        count += sum(len(self.template(t).tensors) for t in range(self.steps))
        return count - (len(self.model_tensors(self.steps)) if self.training else 1)

    @cached_property
    def public_keys(self) -> list[tuple[TensorKey, tuple]]:
        """Tensors both sides commit to themselves (blind 0): the row indicators of the batches and
        the graph's constants (:func:`public_value`)."""
        keys = {k: shape for tpl in self.templates.values() for k, (shape, _) in tpl.public.items()}
        return sorted(keys.items())

    def public_value(self, key: TensorKey) -> np.ndarray:
        """The integers of a public tensor."""
        return next(tpl.public[key][1] for tpl in self.templates.values() if key in tpl.public)

    @cached_property
    def shapes(self) -> dict[TensorKey, tuple]:
        return dict(self.statement_keys + self.proof_keys + self.public_keys)

    # -- relations ------------------------------------------------------------------------
    def statement_ranges(self) -> list[Linear]:
        """The recomposition of every statement tensor's range check."""
        return [check.recomposition(f"{check.key.tensor} ({check.width} bits)") for check in self.statement_checks()]

    @cached_property
    def linear_relations(self) -> list[Linear]:
        """``sum coeff * tensor = const`` entrywise (padding included: the constants are what
        round to nearest adds before each division)."""
        rels = self.statement_ranges()
        for t in range(self.steps):
            rels += [Linear(tuple((c, shift(k, t)) for c, k in rel.terms), rel.const, rel.equation, rel.drivers)
                     for rel in self.template(t).linear]
        return rels

    @cached_property
    def derived(self) -> dict[TensorKey, Linear]:
        """Proof tensors whose commitment the prover derives from a linear relation instead of
        committing (:func:`zk.commit.derive`): in each relation, of the proof tensors that no other
        relation reads, the top limb of a range check or remainder (where its offset or rounding
        constant lands: the one limb that padding entries leave nonzero, and an MSM skips zeros),
        else a value (zero on padding too), else a sign plane (the cheapest to commit). The
        verifier does not know which: every relation is checked on the commitments alike."""
        statement = {k for k, _ in self.statement_keys}
        reads = collections.Counter(k for rel in self.linear_relations for _, k in rel.terms)
        proof = {k for k, _ in self.proof_keys} - statement

        def cost(key):  # lower: derive first
            b = self.lookup_bits.get(key)
            return (1, 0) if b is None else (2, 0) if b == 1 else (0, -key.plane)
        out = {}
        for rel in self.linear_relations:
            candidates = [k for c, k in rel.terms if k in proof and reads[k] == 1 and c % field.R]
            if candidates:
                out[min(candidates, key=cost)] = rel
        return out

    def einsum_groups(self) -> list[tuple[str, list[tuple[TensorKey, TensorKey, TensorKey]]]]:
        """``(spec, [(A, B, C) per instance])`` grouped by spec and padded shapes (one sumcheck each)."""
        by_shape: dict = {}
        for t in range(self.steps):
            for rel in self.template(t).einsums:
                a, b, c = (shift(k, t) for k in (rel.a, rel.b, rel.c))
                by_shape.setdefault((rel.spec, self.shapes[a], self.shapes[b]), []).append((a, b, c))
        return [(spec, inst) for (spec, _, _), inst in sorted(by_shape.items())]

    def relu_groups(self) -> list[list[tuple[TensorKey, ...]]]:
        """Per padded shape (and whether a gradient flows back): ``(h, g, sign, z, g_h)``."""
        by_shape: dict = {}
        for t in range(self.steps):
            for rel in self.template(t).relus:
                keys = tuple(None if k is None else shift(k, t) for k in (rel.h, rel.g, rel.s, rel.z, rel.gh))
                by_shape.setdefault((self.shapes[keys[0]], rel.g is None), []).append(keys)
        return [inst for _, inst in sorted(by_shape.items())]

    @cached_property
    def lookup_bits(self) -> dict[TensorKey, int]:
        """Every looked-up tensor (limbs and sign planes, :mod:`zk.lower`) -> its bits."""
        out = {key: b for check in self.statement_checks() for key, b in check.limbs}
        for t in range(self.steps):
            out.update({shift(k, t): b for k, b in self.template(t).lookups.items()})
        return out

    @cached_property
    def pairs(self) -> dict[TensorKey, tuple[TensorKey, tuple[int, tuple[int, ...]]]]:
        """Every tensor looked up in a function table (cross-entropy's exp tables) -> its values
        tensor and the table ``(bits, f(0), ..., f(2^bits - 1))``."""
        out = {}
        for t in range(self.steps):
            out.update({shift(k, t): (shift(v, t), table) for k, (v, table) in self.template(t).pairs.items()})
        return out

    def function_groups(self) -> list[tuple[int, tuple[int, ...], list[tuple[tuple[TensorKey, ...], ...]]]]:
        """The lookups into function tables, one proof per table: ``(bits, values, columns)``, a
        column the ``(keys, their values' keys)`` of one padded shape, cut into power-of-two counts."""
        by_table: dict = {}
        for key, shape in self.proof_keys:
            if key in self.pairs:
                values, table = self.pairs[key]
                by_table.setdefault(table, {}).setdefault(shape, []).append((key, values))
        groups = []
        for (bits, values), shapes in sorted(by_table.items()):
            columns = [(tuple(k for k, _ in chunk), tuple(v for _, v in chunk))
                       for _, pairs in sorted(shapes.items()) for chunk in _pow2_chunks(pairs)]
            groups.append((bits, values, columns))
        return groups

    def lookup_groups(self) -> list[list[tuple[tuple[TensorKey, ...], int]]]:
        """The lookup proofs: each a list of columns ``(keys of one padded shape, scale)`` against
        ``[0, 2^limb_bits)``. Every looked-up tensor is a column entry at scale 1, one of ``b < L``
        bits also at scale ``2^(L - b)``; columns are cut into power-of-two counts (no padding
        instance is looked up) and packed, largest first, into proofs whose lookup trees have at most
        ``2^MAX_LOOKUP_VARS`` leaves."""
        L = self.limb_bits
        by_column: dict = {}
        for key, shape in self.proof_keys:
            b = self.lookup_bits.get(key)
            if b is None:
                continue
            by_column.setdefault((shape, 1), []).append(key)
            if b < L:
                by_column.setdefault((shape, 1 << (L - b)), []).append(key)
        columns = []
        for (shape, scale), keys in sorted(by_column.items()):
            m = sum(mle.dim_bits(shape))
            columns += [((tuple(chunk), scale), m + (len(chunk) - 1).bit_length())
                        for chunk in _pow2_chunks(keys, 1 << max(0, MAX_LOOKUP_VARS - 1 - m))]
        columns.sort(key=lambda c: -c[1])
        groups, sizes = [], []
        budget = 1 << MAX_LOOKUP_VARS
        for column, m in columns:
            i = next((i for i, used in enumerate(sizes) if used + (1 << m) <= budget), None)
            if i is None:
                groups.append([])
                sizes.append(0)
                i = len(groups) - 1
            groups[i].append(column)
            sizes[i] += 1 << m
        return groups

    # -- the witness ------------------------------------------------------------------------
    def step_witness(self, t: int, run: dict) -> dict:
        """The committed tensors of step ``t`` from its fixed-point ``run`` (:func:`circuits.run`)."""
        return {shift(k, t): v for k, v in self.template(t).witness(run).items()}


def _pow2_chunks(items: list, cap: int | None = None) -> list[list]:
    """``items`` cut into consecutive chunks of power-of-two lengths (at most ``cap``), largest first:
    stacked, no chunk has padding instances."""
    chunks = []
    while items:
        n = 1 << (len(items).bit_length() - 1)
        n = min(n, cap) if cap else n
        chunks.append(items[:n])
        items = items[n:]
    return chunks


@functools.lru_cache(maxsize=32)
def step_graph(architecture: Architecture, rows: int, lr: float | None,
               sgd: tuple[float, float, float, bool] = (0.0, 0.0, 0.0, True), loss: str = "mse") -> circuits.Graph:
    """The circuits graph of one SGD step at learning rate ``lr`` (``None``: the inference) of the
    model of ``architecture`` on a batch of ``rows`` rows, ``sgd`` = ``(momentum, dampening,
    weight_decay, first step)``, with ``loss``: what the prover runs and the circuit is lowered from."""
    forward = architecture.forward(rows)
    if lr is None:
        return forward
    momentum, dampening, weight_decay, first = sgd
    return circuits.training_graph(forward, lr, loss, momentum=momentum, dampening=dampening,
                                   weight_decay=weight_decay, first_step=first)


_templates = functools.lru_cache(maxsize=16)(Circuit._lower)


# ----------------------------------------------------------------------------------------
# committing
# ----------------------------------------------------------------------------------------
def commit_tensors(circuit: Circuit, values: dict, keys, key: commit.CommitKey, device: Device, progress=None):
    """Commit every tensor named in ``keys`` (padded to its shape) on ``device``:
    ``{key: (Commitment, Opening)}``.

    Tensors of one shape are committed a power-of-two batch per call (their rows side by side, so no
    padding instance is committed) and split back into per-instance commitments, which is what
    stacking later concatenates again. Sign planes and limbs are batched apart from other tensors,
    so that their tables stay small integers (0/1 bytes, 16-bit limbs: :data:`zk.device.SMALL_TABLES`)
    and the planes take the bit-commitment path.
    """
    looked_up = circuit.lookup_bits
    by_shape: dict = {}
    for k, shape in keys:
        by_shape.setdefault((shape, k.kind is TensorKind.BITS, k in looked_up), []).append(k)
    out = {}
    done, total = 0, len(list(keys))
    for (shape, _, _), names in by_shape.items():
        m = sum(mle.dim_bits(shape))
        c = instance_col_vars(m)
        rows = 1 << (m - c)
        start = 0
        while start < len(names):  # power-of-two chunks of at most 256: no padding instances
            size = min(256, 1 << ((len(names) - start).bit_length() - 1))
            chunk = names[start:start + size]
            start += size
            tensors = np.stack([pad(values[k], shape) for k in chunk])
            com, opening = commit.commit(tensors.reshape(len(chunk), -1), key, col_vars=c, device=device)
            for i, k in enumerate(chunk):
                sl = slice(i * rows, (i + 1) * rows)
                out[k] = (Commitment(m, com.rows[sl], c), Opening(opening.table[sl], opening.blinds[sl]))
            done += len(chunk)
            if progress:
                progress("commit", done, total)
    return {k: out[k] for k, _ in keys}


def derive_tensors(circuit: Circuit, values: dict, tensors: dict, key: commit.CommitKey, device: Device) -> dict:
    """``{key: (Commitment, Opening)}`` of every :attr:`Circuit.derived` tensor, from its relation
    and ``tensors`` (every other tensor it reads, committed)."""
    public = {k for k, _ in circuit.public_keys}
    if any(t in public for rel in circuit.derived.values() for _, t in rel.terms):
        tensors = {**tensors, **public_tensors(circuit, key, device)}
    out, ones = {}, {}
    for k, rel in circuit.derived.items():
        shape = circuit.shapes[k]
        if shape not in ones:
            ones[shape] = _ones_row(shape, key)
        coeff = next(c for c, t in rel.terms if t == k)
        terms = [(c, *tensors[t]) for c, t in rel.terms if t != k]
        out[k] = commit.derive(pad(values[k], shape), coeff, terms, rel.const, ones[shape],
                               instance_col_vars(sum(mle.dim_bits(shape))), device)
    return out


def _ones_row(circuit_shape: tuple, key: commit.CommitKey) -> group.Point:
    """The row commitment of an all-ones instance (blind 0)."""
    m = sum(mle.dim_bits(circuit_shape))
    cols = 1 << instance_col_vars(m)
    return group.msm_small(key.g(cols), np.ones(cols, dtype=np.int64))


def public_tensors(circuit: Circuit, key: commit.CommitKey, device: Device = CPU) -> dict:
    """The circuit's public tensors (:attr:`Circuit.public_keys`) committed with blind 0 (on
    ``device``), as both sides compute them: ``{key: (Commitment, Opening)}``."""
    out = {}
    for k, shape in circuit.public_keys:
        m = sum(mle.dim_bits(shape))
        c = instance_col_vars(m)
        out[k] = commit.commit(circuit.public_value(k), key, blinds=field.zeros(1 << (m - c)), col_vars=c,
                               device=device)
    return out


# ----------------------------------------------------------------------------------------
# proof object
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AggregatedProof:
    """Everything after the commitments: the zero-padding proofs, the linear-relations blind and
    the sumcheck relations."""

    padding: tuple  # PaddingProof per padding group
    linear_blind: np.ndarray
    einsums: tuple  # EinsumRelationProof per einsum group
    relus: tuple  # HadamardProof per relu group
    lookups: tuple  # LookupProof per lookup group
    openings: OpeningsProof  # every evaluation claim of the relations above

    def check_shape(self, circuit: "Circuit") -> None:
        """VerificationError unless the proof holds exactly one relation proof of the right kind
        for every relation group the statement implies (objects as well as parsed bytes)."""
        expected = (("zero-padding", self.padding, circuit.padding_groups(), PaddingProof),
                    ("einsum", self.einsums, circuit.einsum_groups(), EinsumRelationProof),
                    ("zkReLU", self.relus, circuit.relu_groups(), HadamardProof),
                    ("lookup", self.lookups, circuit.lookup_groups() + circuit.function_groups(), LookupProof))
        for name, got, groups, cls in expected:
            if not isinstance(got, tuple) or len(got) != len(groups):
                count = len(got) if isinstance(got, (tuple, list)) else type(got).__name__
                raise VerificationError(f"the proof has {count} {name} relations, the statement "
                                        f"implies {len(groups)}")
            if not all(isinstance(rel, cls) for rel in got):
                raise VerificationError(f"the proof's {name} relations are not {cls.__name__} objects")
        blind = self.linear_blind
        if not (isinstance(blind, np.ndarray) and blind.dtype == np.uint64 and blind.shape == (4,)):
            raise VerificationError("the proof's linear-relations blind is not one field element")
        if not isinstance(self.openings, OpeningsProof):
            raise VerificationError("the proof's openings are not an OpeningsProof")


def _linear_combination(circuit: Circuit, rho: np.ndarray, rows_of):
    """Each linear relation with its row weights: consecutive powers of ``rho`` over all rows of
    all relations (one random combination, Schwartz–Zippel)."""
    rels = circuit.linear_relations
    counts = [len(rows_of(rel.terms[0][1])) for rel in rels]
    powers = field.powers(rho, sum(counts))
    out, offset = [], 0
    for rel, rows in zip(rels, counts):
        out.append((rel.terms, rel.const, circuit.shapes[rel.terms[0][1]], powers[offset:offset + rows]))
        offset += rows
    return out


def prove(circuit: Circuit, tensors: dict, t: Transcript, key: commit.CommitKey, device: Device,
          progress=None) -> AggregatedProof:
    """Prove every relation of ``circuit`` for the committed ``tensors`` ``{key: (com, opening)}``
    (their commitments already absorbed into ``t``) on ``device``."""
    tensors = {**tensors, **public_tensors(circuit, key, device)}
    total = (2 + len(circuit.padding_groups()) + len(circuit.einsum_groups()) + len(circuit.relu_groups())
             + len(circuit.lookup_groups()) + len(circuit.function_groups()))  # the linear relations, the openings
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress("prove", done, total)

    def stacked(keys) -> Stack:
        return stack([tensors[k][0] for k in keys], [tensors[k][1] for k in keys], device)

    evals = Openings(key, device)
    pads = []
    for shape, keys in circuit.padding_groups():
        pads.append(padding.prove(stacked(keys), [circuit.true_shape(k) for k in keys], shape, t, evals, key, device))
        tick()
    # linear relations, batched: the prover reveals sum_i rho^i (blind combination of row i)
    rho = t.challenge_scalar("fac4dnn/linear")
    blind = field.zeros()
    for terms, _, _, weights in _linear_combination(circuit, rho, lambda k: tensors[k][1].blinds):
        for coeff, k in terms:
            blind = field.add(blind, field.mul(field.from_int(coeff),
                                               field.inner(weights, tensors[k][1].blinds)))
    t.absorb_scalars("fac4dnn/linear-blind", blind)
    tick()

    einsums = []
    for spec, instances in circuit.einsum_groups():
        a, b, c = (stacked(col) for col in zip(*instances))
        parsed = _parse(spec, a, b, circuit, instances[0])
        einsums.append(einsum.prove_relation(
            parsed, (a.opening, b.opening, c.opening),
            (a.commitment, b.commitment, c.commitment), t, evals, key, device))
        tick()
    relus = []
    for instances in circuit.relu_groups():
        out, f, g, u = _relu_forms(circuit, instances, stacked, t)
        relus.append(hadamard.prove(out, f, g, u, t, evals, key, device))
        tick()
    lookups = []
    for columns in circuit.lookup_groups():
        lookups.append(lookup.prove([lookup.Column(stacked(keys), scale) for keys, scale in columns],
                                    circuit.limb_bits, t, evals, key, device))
        tick()
    for bits, values, columns in circuit.function_groups():
        lookups.append(lookup.prove([lookup.Column(stacked(keys), 1, stacked(vals)) for keys, vals in columns],
                                    bits, t, evals, key, device, function=values))
        tick()
    opened = evals.prove(t)
    tick()
    return AggregatedProof(tuple(pads), blind, tuple(einsums), tuple(relus), tuple(lookups), opened)


def verify(circuit: Circuit, commitments: dict, proof: AggregatedProof, t: Transcript,
           key: commit.CommitKey, checks: commit.DeferredChecks | None = None) -> None:
    """Check an :class:`AggregatedProof` against ``commitments`` ``{key: Commitment}``. The
    openings' multi-scalar equations are batch-verified at the end, or added to ``checks``
    (batched with other proofs' by the caller, :func:`zk.verify_chain`)."""
    proof.check_shape(circuit)
    commitments = {**commitments, **{k: c for k, (c, _) in public_tensors(circuit, key).items()}}
    own = checks is None
    checks = commit.DeferredChecks() if own else checks
    evals = Claims(key)

    def stacked(keys) -> Stack:
        return stack([commitments[k] for k in keys])

    for (shape, keys), rel in zip(circuit.padding_groups(), proof.padding):
        padding.verify(stacked(keys), [circuit.true_shape(k) for k in keys], shape, rel, t, evals, key,
                       f"zero padding of the statement tensors {'/'.join(sorted({k.kind.value for k in keys}))} "
                       f"(padded shape {shape})", checks)
    rho = t.challenge_scalar("fac4dnn/linear")
    points, scalars = [], []
    ones = {}
    for terms, const, shape, weights in _linear_combination(circuit, rho, lambda k: commitments[k].rows):
        for coeff, k in terms:
            points += commitments[k].rows
            scalars.append(field.mul(field.from_int(coeff), weights))
        if const:
            if shape not in ones:
                ones[shape] = _ones_row(shape, key)
            points.append(ones[shape])
            scalars.append(field.mul(field.from_int(-const), field.sum(weights))[None])
    points.append(key.H)
    scalars.append(field.neg(proof.linear_blind)[None])
    checks.add("linear relations (rescale, loss, SGD update, limb recomposition) do not hold on the commitments",
               points, np.concatenate(scalars))
    t.absorb_scalars("fac4dnn/linear-blind", proof.linear_blind)

    for (spec, instances), rel in zip(circuit.einsum_groups(), proof.einsums):
        a, b, c = (stacked(col) for col in zip(*instances))
        einsum.verify_relation(_parse(spec, a, b, circuit, instances[0]),
                               (a.commitment, b.commitment, c.commitment), rel, t, evals, key, checks)
    for instances, rel in zip(circuit.relu_groups(), proof.relus):
        out, f, g, u = _relu_forms(circuit, instances, stacked, t)
        hadamard.verify(out, f, g, u, rel, t, evals, key, what="zkReLU", checks=checks)
    ranges = circuit.lookup_groups()
    for i, (columns, rel) in enumerate(zip(ranges, proof.lookups)):
        lookup.verify([lookup.Column(stacked(keys), scale) for keys, scale in columns], circuit.limb_bits, rel, t,
                      evals, key, checks, what=f"range lookups {i}")
    for (bits, values, columns), rel in zip(circuit.function_groups(), proof.lookups[len(ranges):]):
        lookup.verify([lookup.Column(stacked(keys), 1, stacked(vals)) for keys, vals in columns], bits, rel, t,
                      evals, key, checks, what=f"function lookups (a table of 2^{bits} rows)", function=values)
    evals.verify(proof.openings, t, checks)
    if own:
        checks.run()


def _parse(spec: str, a: Stack, b: Stack, circuit: Circuit, first: tuple):
    n = 1 << a.index_vars
    shape_a = (n, *circuit.shapes[first[0]])
    shape_b = (n, *circuit.shapes[first[1]])
    return parse_einsum(spec, shape_a, shape_b)


def _relu_forms(circuit: Circuit, instances, stacked, t: Transcript):
    """zkReLU as a Hadamard relation: ``H + gamma G = (1 - s) (Z + gamma GH)``."""
    h, g, s, z, gh = (stacked(col) if col[0] is not None else None for col in zip(*instances))
    u = t.challenge_scalars("fac4dnn/relu", h.commitment.num_vars)
    if not circuit.training:
        return Affine(0, [(1, h)]), Affine(1, [(-1, s)]), Affine(0, [(1, z)]), u
    gamma = t.challenge_scalar("fac4dnn/relu-gamma")
    return (Affine(0, [(1, h), (gamma, g)]), Affine(1, [(-1, s)]),
            Affine(0, [(1, z), (gamma, gh)]), u)


__all__ = ["Circuit", "AggregatedProof", "commit_tensors", "derive_tensors", "public_tensors", "prove", "verify", "pad"]
