"""Lowering a circuits Graph to FAC4DNN relations: what each op commits and what it proves.

:func:`lower` turns the graph of one SGD step (:func:`circuits.trace_training`) or of one
inference (:func:`circuits.trace`) into a :class:`Template`: the tensors the step commits, each
named by a :class:`zk.keys.TensorKey` relative to the step (step 0: this step, 1: the next, where
the updated parameters live), the relations that bind them, the integer bound of every tensor,
and the witness rule that fills them from the step's fixed-point run (:func:`circuits.run`,
``mode="fixed"``). :class:`zk.fac4dnn.Circuit` instantiates the template at every step and stacks
the instances of one relation and padded shape. Each op is lowered by one rule:

==============  ===================================================================================
op              committed (``v``: the op's output) and proved
==============  ===================================================================================
einsum          ``v``, an einsum sumcheck; a sum over the batch axis contracts with the public
                indicator of the batch's real rows (``ONES``); a graph constant is public (``CONST``)
add             nothing when only linear relations read ``v`` (it stays the sum of its operands),
                else ``v`` and a linear relation; a parameter broadcast over the batch is
                ``BROADCAST = ONES b^T`` (an einsum)
rescale(k)      the quotient ``v``, its range check and the remainder's ``k``-bit limbs:
                ``x + 2^(k-1) = 2^k v + R``
relu            ``h``; zkReLU ``h + gamma g = (1 - s)(z + gamma g_h)`` with the ``relu_grad``
relu_grad       ``g = relu_grad(g_h, z)`` of the same ``z`` (inference: ``h = (1 - s) z``), ``s`` the sign
                plane of the range check of ``z - 1``, so ``1 - s = [z > 0]`` (torch's convention)
loss_grad(N)    ``v`` with its range check and the remainder ``RL`` in ``[0, N)``:
                ``2^(S+1) (out - y) + N/2 = N v + RL``
sgd_update      the next parameter ``w'`` with its range check (the statement's parameter width,
                as ``w``'s) and remainder limbs: ``lr_q g + 2^(k-1) = 2^k (w - w') + R``, so
                ``w - w'`` is the rounded update
==============  ===================================================================================

Every quotient is range-checked in two's complement (``scale + 16`` bits for activations and
gradients: real values below 2^15; the statement's parameter width for a parameter), every remainder in
``[0, divisor)``; the bounds this gives every tensor (:attr:`Template.bounds`) are what
:mod:`zk.magnitudes` checks each equation against. A range is proved by limbs (:class:`RangeCheck`):
``w`` bits are ``ceil(w / L)`` committed limbs, each looked up in the table ``[0, 2^L)``
(:mod:`zk.lookup`; a top limb of ``b < L`` bits also at scale ``2^(L - b)``, so it is below
``2^b``), and their recomposition is a linear relation. A ReLU's input keeps its sign as a
committed plane (``[0, 2)``), the rest by limbs.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field as dataclass_field

import numpy as np

import circuits
from circuits import FixedPoint, UnsupportedOp
from circuits.softmax import ce_grad_fixed, normalise

from .keys import TensorKey, TensorKind

__all__ = ["Template", "Committed", "Linear", "EinsumRelation", "ReluRelation", "RangeCheck", "lower", "pad",
           "padded", "limb_widths", "unsigned_limbs", "split_limbs", "ACT_HEADROOM", "PARAM_HEADROOM",
           "MAX_LIMB_BITS", "MIN_LIMB_BITS"]

#: Range of an activation or gradient quotient: ``scale + ACT_HEADROOM`` bits (|real value| < 2^15).
ACT_HEADROOM = 16
#: Default range of the parameters: ``param_scale + PARAM_HEADROOM`` bits (|real value| < 2^7).
PARAM_HEADROOM = 8
#: Ops whose relation is linear in their operands: an ``add`` read only by these is not committed.
LINEAR_READERS = frozenset({"rescale", "loss_grad", "sgd_update", "add", "weight_decay", "momentum"})
#: What to change when an equation could wrap, where nothing more specific is known.
GENERIC = "the widths, the scale and the data and parameter bits are too large"
RANGES = "the range checks (scale, data and parameter bits, learning rate) are too wide"
#: Widest limb of a range check (its lookup table has 2^MAX_LIMB_BITS entries).
MAX_LIMB_BITS = 16
#: Narrowest limb a circuit uses, however small.
MIN_LIMB_BITS = 4
#: Letters for the instance axis a stacked einsum gains.
_INSTANCE_LETTERS = "nmlkjqpt"


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def padded(shape) -> tuple[int, ...]:
    """``shape`` with every dimension padded to a power of two."""
    return tuple(_pow2(int(d)) for d in shape)


def pad(values, shape: tuple, fill: int = 0) -> np.ndarray:
    """``values`` padded to ``shape`` with ``fill`` (0, or the constant a remainder takes on the
    padding): uint8 planes stay uint8, integers become int64, or Python integers where they
    exceed int64 (e.g. remainders of a very small learning rate)."""
    a = np.asarray(values)
    if a.dtype == object and a.size and max(abs(int(a.min())), abs(int(a.max())), fill) < 1 << 62:
        a = a.astype(np.int64)
    dtype = a.dtype if a.dtype in (np.uint8, object) else np.int64
    out = np.full(shape, fill, dtype=dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


@dataclass(frozen=True)
class Committed:
    """A tensor the step commits: its key (step-relative) and padded shape."""

    key: TensorKey
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Linear:
    """``sum coeff * tensor = const`` entrywise on the padded shape; ``equation`` and ``drivers``
    name it, and what to change when it could wrap, in messages."""

    terms: tuple[tuple[int, TensorKey], ...]
    const: int
    equation: str
    drivers: str


@dataclass(frozen=True)
class EinsumRelation:
    """``c = einsum(spec, a, b)`` with ``spec`` carrying the instance axis first (stackable)."""

    spec: str
    a: TensorKey
    b: TensorKey
    c: TensorKey
    equation: str
    drivers: str


@dataclass(frozen=True)
class ReluRelation:
    """zkReLU of one pre-activation ``z``: ``h = (1 - s) z`` and, in training, ``g = (1 - s) gh``."""

    h: TensorKey
    g: TensorKey | None
    s: TensorKey
    z: TensorKey
    gh: TensorKey | None


#: A witness rule: the step's fixed-point run (graph tensor name -> integers) to committed tensors.
Fill = Callable[[dict], dict]


@dataclass
class Template:
    """One step of the circuit, keys relative to the step (:func:`shift` places it)."""

    tensors: list[Committed] = dataclass_field(default_factory=list)
    linear: list[Linear] = dataclass_field(default_factory=list)
    einsums: list[EinsumRelation] = dataclass_field(default_factory=list)
    relus: list[ReluRelation] = dataclass_field(default_factory=list)
    #: public tensors (``ONES``, ``CONST``) -> (padded shape, their integers)
    public: dict = dataclass_field(default_factory=dict)
    #: every tensor's largest integer magnitude (committed, inputs and public)
    bounds: dict = dataclass_field(default_factory=dict)
    #: every looked-up tensor (a limb or a sign plane) -> its bits: it lies in ``[0, 2^bits)``
    lookups: dict = dataclass_field(default_factory=dict)
    #: a tensor looked up in a function table -> (its values tensor, (bits, the table's values f(v)))
    pairs: dict = dataclass_field(default_factory=dict)
    fills: list[Fill] = dataclass_field(default_factory=list)

    def witness(self, run: dict) -> dict:
        """Every committed tensor of the step from its fixed-point ``run`` (step-relative keys)."""
        out: dict = {}
        for fill in self.fills:
            out.update(fill(run))
        return out


def shift(key: TensorKey, step: int) -> TensorKey:
    """``key`` of a template placed at ``step`` (public tensors belong to no step)."""
    if key.kind in (TensorKind.ONES, TensorKind.CONST):
        return key
    return key._replace(step=key.step + step)


def ones(rows: int, size: int) -> TensorKey:
    """The public indicator of a batch's ``rows`` real rows in a padded batch axis of ``size``
    (1 for ``b < rows``, 0 on padding rows), committed with blind 0 by prover and verifier alike: it
    broadcasts biases over the batch and sums gradients over it. Its key's step holds ``rows``,
    its tensor the size."""
    return TensorKind.ONES(rows, str(size))


def limb_widths(width: int, limb_bits: int) -> list[int]:
    """The limbs of a ``width``-bit range, least significant first: ``limb_bits`` each, the top one
    what is left (1 to ``limb_bits``)."""
    if width < 1:
        return []
    full, top = divmod(width - 1, limb_bits)
    return [limb_bits] * full + [top + 1]


def unsigned_limbs(kind: TensorKind, step: int, tensor: str, width: int, limb_bits: int) -> list[tuple[TensorKey, int]]:
    """``(key, bits)`` of the limbs of a ``width``-bit unsigned range of kind ``kind``."""
    return [(kind(step, tensor, j), b) for j, b in enumerate(limb_widths(width, limb_bits))]


def limb_terms(limbs, sign: int = 1) -> tuple[tuple[int, TensorKey], ...]:
    """``sign * sum_j 2^(offset_j) limb_j``: the linear terms of a recomposition."""
    out, shift_ = [], 0
    for key, b in limbs:
        out.append((sign << shift_, key))
        shift_ += b
    return tuple(out)


def split_limbs(values, widths, what: str) -> list[np.ndarray]:
    """Limbs (int64) of integers in ``[0, 2^sum(widths))``; ValueError naming ``what`` otherwise."""
    a = np.asarray(values)
    total = sum(widths)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= 1 << total:
            raise ValueError(f"{what}: values in [{lo}, {hi}] leave the proof's range [0, 2^{total})")
    if total > 62:
        a = a.astype(object)
    out, shift_ = [], 0
    for b in widths:
        out.append(((a >> shift_) & ((1 << b) - 1)).astype(np.int64))
        shift_ += b
    return out


@dataclass(frozen=True)
class RangeCheck:
    """``value - offset`` in ``[-2^(width-1), 2^(width-1))`` for the tensor ``key``, by limbs of at most
    ``limb_bits`` bits: ``value - offset + 2^(width-1) = sum_j 2^(L j) limb_j``; with ``sign`` (a ReLU's
    input) ``value - offset = -2^(width-1) s + sum_j 2^(L j) limb_j`` with the sign plane ``s`` in
    ``[0, 2)`` (``BITS(step, tensor, width - 1)``) and the limbs over ``width - 1`` bits."""

    key: TensorKey
    width: int
    offset: int
    sign: bool
    limb_bits: int

    @property
    def sign_plane(self) -> TensorKey:
        return TensorKind.BITS(self.key.step, self.key.tensor, self.width - 1)

    @property
    def limbs(self) -> list[tuple[TensorKey, int]]:
        """``(key, bits)`` of every looked-up tensor: the limbs, then the sign plane."""
        out = unsigned_limbs(TensorKind.LIMBS, self.key.step, self.key.tensor, self.width - self.sign,
                             self.limb_bits)
        return out + ([(self.sign_plane, 1)] if self.sign else [])

    @property
    def bound(self) -> int:
        return (1 << (self.width - 1)) + abs(self.offset)

    def recomposition(self, what: str) -> Linear:
        limbs = self.limbs[:-1] if self.sign else self.limbs
        terms = ((1, self.key),) + limb_terms(limbs, -1)
        top = 1 << (self.width - 1)
        if self.sign:
            return Linear(terms + ((top, self.sign_plane),), self.offset, f"range check of {what}", RANGES)
        return Linear(terms, self.offset - top, f"range check of {what}", RANGES)

    def decompose(self, values, what: str) -> dict[TensorKey, np.ndarray]:
        """The looked-up tensors of the (padded) integers ``values``; ValueError naming ``what``
        when a value leaves the range."""
        a = np.asarray(values)
        wide = a.dtype == object or self.width + 1 >= 63 or abs(self.offset) >= 1 << 60
        a = a.astype(object) if wide else a.astype(np.int64)
        top = 1 << (self.width - 1)
        shifted = a - self.offset + top
        if shifted.size and (int(shifted.min()) < 0 or int(shifted.max()) >= 2 * top):
            lo, hi = int((a - self.offset).min()), int((a - self.offset).max())
            raise ValueError(f"{what}: values in [{lo}, {hi}] leave the proof's range [{-top}, {top})")
        limbs = self.limbs
        if self.sign:
            s = shifted < top
            low = np.where(s, shifted, shifted - top)
            return {**dict(zip([k for k, _ in limbs[:-1]], split_limbs(low, [b for _, b in limbs[:-1]], what))),
                    self.sign_plane: s.astype(np.uint8)}
        return dict(zip([k for k, _ in limbs], split_limbs(shifted, [b for _, b in limbs], what)))


class _Lowering:
    """Builds the :class:`Template` of ``graph`` node by node (one method per op)."""

    def __init__(self, graph: circuits.Graph, full: circuits.Graph, rows: int, input_bounds: dict,
                 limb_bits: int, param_bits: int) -> None:
        self.g, self.full, self.rows, self.limb_bits, self.param_bits = graph, full, rows, limb_bits, param_bits
        self.t = Template()
        #: what to change when an equation over this tensor could wrap (an einsum's inputs, through adds)
        self.drivers: dict[str, str] = {}
        self.readers: dict[str, list] = {}
        for node in graph.nodes:
            for x in node.inputs:
                self.readers.setdefault(x, []).append(node)
        self.outputs = set(graph.outputs.values())
        self.inputs = {t.name for t in graph.inputs} | set(graph.constants)
        #: tensors whose leading axis is the batch (the data, the targets and what is computed from them)
        self.batched = {t.name for t in graph.inputs if t.role in ("data", "target")}
        #: graph tensor -> the input it becomes at the next step (updated parameters, momentum buffers)
        self.carried = {tensor: name for name, tensor in graph.outputs.items() if name != "out"}
        self.env: dict[str, tuple[tuple[int, TensorKey], ...]] = {}  # graph tensor -> sum of committed terms
        self.ranges: dict[TensorKey, RangeCheck] = {}
        #: quotients that are no graph tensor (an SGD update, a weight decay term) -> their witness
        self.quotients: dict[TensorKey, Callable[[dict], np.ndarray]] = {}
        for t in graph.inputs:
            key = TensorKind.VALUE(0, t.name)
            self.env[t.name] = ((1, key),)
            self.t.bounds[key] = input_bounds[t.name]
        fp = FixedPoint(graph.scale_bits)
        for name, value in graph.constants.items():
            key = TensorKind.CONST(0, name)
            ints = fp.encode(value, graph[name].scale)
            self.env[name] = ((1, key),)
            self.t.public[key] = (self.shape(name), pad(ints, self.shape(name)))
            self.t.bounds[key] = int(np.abs(ints).max()) if ints.size else 0

    # -- helpers ------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        """The padded shape of graph tensor ``name`` (from the full batch's graph)."""
        return padded(self.full[name].shape)

    def bound(self, terms) -> int:
        return sum(abs(c) * self.t.bounds[k] for c, k in terms)

    def commit(self, key: TensorKey, shape: tuple, bound: int) -> TensorKey:
        self.t.tensors.append(Committed(key, shape))
        self.t.bounds[key] = bound
        return key

    def committed(self, name: str) -> TensorKey:
        """The key of graph tensor ``name``, which an einsum or zkReLU reads: a committed tensor."""
        terms = self.env[name]
        if len(terms) != 1 or terms[0][0] != 1:  # add() commits what non-linear ops read: not reached
            raise UnsupportedOp(f"{name} is read by an einsum or a ReLU but is no committed tensor")
        return terms[0][1]

    def value(self, name: str, bound: int) -> TensorKey:
        """Commit graph tensor ``name`` itself (as the next step's input when it is carried there)."""
        step, tensor = (1, self.carried[name]) if name in self.carried else (0, name)
        key = self.commit(TensorKind.VALUE(step, tensor), self.shape(name), bound)
        self.env[name] = ((1, key),)
        self.t.fills.append(lambda run: {key: run[name]})
        return key

    def range_check(self, key: TensorKey, shape: tuple, width: int, offset: int, what: str,
                    sign: bool = False) -> None:
        """The limbs (and with ``sign``, the sign plane) of ``value - offset`` in ``width``-bit two's
        complement (``value``: the quotient ``key``, of padded ``shape``), and their recomposition."""
        check = RangeCheck(key, width, offset, sign, self.limb_bits)
        self.lookup(check.limbs, shape)
        self.ranges[key] = check
        self.t.bounds[key] = check.bound
        self.t.linear.append(check.recomposition(what))

        def fill(run, key=key):
            return check.decompose(pad(self._quotient(run, key), shape), what)
        self.t.fills.append(fill)

    def lookup(self, limbs, shape: tuple) -> list[TensorKey]:
        """Commit looked-up tensors ``(key, bits)`` of padded ``shape``, each in ``[0, 2^bits)``."""
        for key, b in limbs:
            self.commit(key, shape, (1 << b) - 1)
            self.t.lookups[key] = b
        return [key for key, _ in limbs]

    def _quotient(self, run: dict, key: TensorKey):
        """The integers of a range-checked quotient in the step's run."""
        if key in self.quotients:
            return self.quotients[key](run)
        if key.step == 1:  # the next step's input: this step's tensor carried there
            return run[next(tensor for tensor, name in self.carried.items() if name == key.tensor)]
        return run[key.tensor]

    def remainder(self, name: str, divisor: int, value_terms, equation: str, drivers: str, shape=None) -> list:
        """The remainder of ``value_terms + divisor // 2 = divisor * quotient + rem``, in
        ``[0, divisor)``: the ``log2 divisor``-bit limbs of ``rem``, or for another divisor the
        remainder with the limbs of it and of ``divisor - 1 - rem``. Returns the relation's
        remainder terms."""
        shape, half, k = shape or self.shape(name), divisor // 2, (divisor - 1).bit_length()
        limbs = unsigned_limbs(TensorKind.REMAINDER_LIMBS, 0, name, k, self.limb_bits)
        widths = [b for _, b in limbs]
        self.lookup(limbs, shape)
        what = f"remainder of {name}"
        if divisor & (divisor - 1) == 0:
            self.t.fills.append(lambda run: dict(zip([key for key, _ in limbs],
                                                     split_limbs(pad(run[name + ".rem"], shape, half), widths, what))))
            rem_terms = limb_terms(limbs, -1)
        else:
            rem = self.commit(TensorKind.REMAINDER(0, name), shape, divisor)
            high = unsigned_limbs(TensorKind.COMPLEMENT_LIMBS, 0, name, k, self.limb_bits)
            self.lookup(high, shape)

            def fill(run):
                r = pad(run[name + ".rem"], shape, half)
                return {rem: r, **dict(zip([key for key, _ in limbs], split_limbs(r, widths, what))),
                        **dict(zip([key for key, _ in high], split_limbs((divisor - 1) - r, widths, what)))}
            self.t.fills.append(fill)
            self.t.linear.append(Linear(((1, rem),) + limb_terms(limbs, -1), 0,
                                        f"range check of the remainder of {name}", drivers))
            self.t.linear.append(Linear(((-1, rem),) + limb_terms(high, -1), -(divisor - 1),
                                        f"range check of the remainder of {name}", drivers))
            rem_terms = ((-1, rem),)
        self.t.linear.append(Linear(tuple(value_terms) + rem_terms, -half, equation, drivers))
        return rem_terms

    # -- one rule per op ----------------------------------------------------------------
    def einsum(self, node) -> None:
        spec = node.attrs["spec"]
        ins, out = spec.split("->")
        letters = ins.split(",")
        operands = [self.committed(x) for x in node.inputs]
        shapes = [self.shape(x) for x in node.inputs]
        true = [self.full[x].shape for x in node.inputs]
        if len(operands) == 1:  # a sum over the batch: contract with the indicator of its real rows
            lead = letters[0][:1]
            if not lead or node.inputs[0] not in self.batched or set(letters[0]) - set(out) != {lead} or lead in out:
                raise UnsupportedOp(f"{node.output} = einsum({spec!r}): zk proofs sum a single operand over "
                                    "the batch axis only")
            operands.append(self._ones(node.inputs[0]))
            letters.append(lead)
            shapes.append(shapes[0][:1])
            true.append(true[0][:1])
        elif len(operands) != 2:
            raise UnsupportedOp(f"{node.output} = einsum({spec!r}): zk proofs take einsums of two operands")
        contracted = set(letters[0] + letters[1]) - set(out)
        if any(len(set(x)) != len(x) for x in letters):
            raise UnsupportedOp(f"{node.output} = einsum({spec!r}): zk proofs take no repeated index within an "
                                "operand (diagonals)")

        def size(shapes_):  # every label's size after broadcasting (a size-1 axis takes the other's)
            sizes: dict = {}
            for x, s in zip(letters, shapes_):
                for c, d in zip(x, s):
                    sizes[c] = max(sizes.get(c, 1), d)
            return math.prod(sizes[c] for c in contracted)
        n = next(c for c in _INSTANCE_LETTERS if c not in spec)
        bound = size(shapes) * self.t.bounds[operands[0]] * self.t.bounds[operands[1]]
        c = self.value(node.output, bound)
        if any(x in self.batched and x_letters[0] == out[:1] for x, x_letters in zip(node.inputs, letters)):
            self.batched.add(node.output)
        drivers = (f"the input width {size(true)} of {node.output} ({spec}), the scale 2^{self.g.scale_bits} "
                   "and the data and parameter bits are too large")
        self.drivers[node.output] = drivers
        self.t.einsums.append(EinsumRelation(f"{n}{letters[0]},{n}{letters[1]}->{n}{out}", operands[0],
                                             operands[1], c, f"einsum {node.output} = {spec}", drivers))

    def _ones(self, like: str) -> TensorKey:
        """The row indicator for the leading (batch) axis of graph tensor ``like``."""
        size = self.shape(like)[0]
        return self._public(ones(self.rows, size), (size,), (np.arange(size) < self.rows).astype(np.uint8))

    def add(self, node) -> None:
        a, b = node.inputs
        out_shape, top = self.g[node.output].shape, self.g[node.output].scale
        terms = []
        for x in (a, b):
            coeff = 1 << (top - self.g[x].scale)
            if self.g[x].shape == out_shape:
                terms += [(coeff * c, k) for c, k in self.env[x]]
            else:
                terms.append((coeff, self._broadcast(node, x)))
        readers = self.readers.get(node.output, [])
        self.drivers[node.output] = next((self.drivers[x] for x in (a, b) if x in self.drivers), GENERIC)
        self.env[node.output] = tuple(terms)
        if node.output not in self.outputs and all(r.op in LINEAR_READERS for r in readers):
            return
        self._commit_sum(node.output)

    def _broadcast(self, node, param: str) -> TensorKey:
        """``ONES b^T``: parameter ``b`` (a vector) broadcast over the batch's real rows."""
        out_shape = self.g[node.output].shape
        if len(out_shape) != 2 or self.g[param].shape != out_shape[1:] or param in self.batched or \
                not {a for a in node.inputs if a != param} <= self.batched:
            raise UnsupportedOp(f"{node.output} = add: zk proofs broadcast a vector over the rows of a matrix only "
                                f"(got {self.g[param].shape} over {out_shape})")
        b = self.committed(param)
        ones_key = self._ones(node.output)
        key = self.commit(TensorKind.BROADCAST(0, node.output), self.shape(node.output), self.t.bounds[b])
        rows = self.rows
        self.t.fills.append(lambda run: {key: np.broadcast_to(np.asarray(run[param]).astype(np.int64),
                                                              (rows, out_shape[1]))})
        self.t.einsums.append(EinsumRelation("nb,no->nbo", ones_key, b, key, f"broadcast of {param}", GENERIC))
        return key

    def rescale(self, node) -> None:
        (x,), k, out = node.inputs, node.attrs["bits"], node.output
        relu_input = any(r.op == "relu" for r in self.readers.get(out, []))
        width = self.g[out].scale + ACT_HEADROOM
        q = self.value(out, (1 << (width - 1)) + 1)
        self.range_check(q, self.shape(out), width, int(relu_input), f"{out} (rescaled by 2^{k})", sign=relu_input)
        self.remainder(out, 1 << k, tuple(self.env[x]) + ((-(1 << k), q),),
                       f"rescale {out} ({x} + 2^{k - 1} = 2^{k} {out} + R)", self.drivers.get(x, GENERIC))

    def relu(self, node) -> None:
        (z,) = node.inputs
        zk_ = self.committed(z)
        if z in self.inputs:
            raise UnsupportedOp(f"{node.output} = relu({z}): zk proofs take no ReLU of a model input")
        if zk_ not in self.ranges:  # e.g. a residual sum: its sign needs a range check of its own
            self.range_check(zk_, self.shape(z), self.g[z].scale + ACT_HEADROOM, 1, f"{z} (a ReLU's input)",
                             sign=True)
        check = self.ranges[zk_]
        if check.offset != 1 or not check.sign:
            raise UnsupportedOp(f"{node.output} = relu({z}): {z} is range-checked for another use")
        h = self.value(node.output, self.t.bounds[zk_])
        self.t.relus.append(ReluRelation(h, None, check.sign_plane, zk_, None))

    def relu_grad(self, node) -> None:
        gh, z = node.inputs
        zk_ = self.committed(z)
        i = next((i for i, r in enumerate(self.t.relus) if r.z == zk_ and r.g is None), None)
        if i is None:
            raise UnsupportedOp(f"{node.output} = relu_grad({gh}, {z}): zk proofs need the ReLU of {z} "
                                "in the same graph")
        ghk = self.committed(gh)
        g = self.value(node.output, self.t.bounds[ghk])
        self.t.relus[i] = ReluRelation(self.t.relus[i].h, g, self.t.relus[i].s, zk_, ghk)

    def loss_grad(self, node) -> None:
        out, y = node.inputs
        n, c = node.attrs["count"], 1 << (self.g.scale_bits + 1)
        width = self.g[node.output].scale + ACT_HEADROOM
        g = self.value(node.output, 1 << (width - 1))
        self.range_check(g, self.shape(node.output), width, 0, "the loss gradient")
        self.remainder(node.output, n, tuple((c * a, k) for a, k in self.env[out]) +
                       tuple((-c * a, k) for a, k in self.env[y]) + ((-n, g),),
                       f"loss gradient (2^(S+1) ({out} - {y}) + N/2 = N G + RL, N = {n})",
                       f"the scale 2^{self.g.scale_bits} and the {n} loss terms of a batch are too large")

    def ce_grad(self, node) -> None:
        """Softmax cross-entropy (:mod:`circuits.softmax`): every intermediate committed, on the
        padded ``(B, C')`` batch (``1_C``: the public indicator of the real classes, ``M`` of the
        real rows and classes, ``ONES`` of the real rows):

        ``CB = c 1_C^T``, ``d = CB - z``; ``sel`` in ``[0, 2)`` with ``sel 1_C = ONES`` and
        ``sum_j sel d = 0`` (``c`` is a real logit of its row and, as ``d >= 0``, the largest);
        ``d = 2^S d_hi + 2^(S-F) d_mid + d_lo`` with the pairs ``(d_hi, E_hi[d_hi])``,
        ``(d_mid, E_mid[d_mid])`` looked up in the exp tables and ``d_lo`` in ``S - F`` bits;
        ``E_hi E_mid + 2^(S-1) = 2^S e + R_e``; ``s = e 1_C``; ``p`` in ``S + 1`` bits with
        ``2 p s + R_p = 2^(S+1) e + s``, ``0 <= R_p < 2 s``; ``y 1_C = 2^S ONES`` (targets are
        probabilities); ``G`` range-checked with ``2^S (M p - y) + n/2 = n G + RG``."""
        out, y = node.inputs
        name, a = node.output, node.attrs
        S, F, H, n, C = self.g.scale_bits, a["exp_bits"], a["hi_bits"], a["count"], a["classes"]
        z, yk = self.committed(out), self.committed(y)
        shape = self.shape(name)
        B, Cp = shape
        E_hi, E_mid = circuits.exp_tables(S, F, H)
        classes = self._public(TensorKind.CONST(0, f"{name}.classes"), (Cp,), (np.arange(Cp) < C).astype(np.uint8))
        mask = self._public(TensorKind.CONST(self.rows, f"{name}.mask"), shape,
                            np.outer(np.arange(B) < self.rows, np.arange(Cp) < C).astype(np.uint8))
        row_ones, all_classes = self._ones(name), self._public(ones(Cp, Cp), (Cp,), np.ones(Cp, np.uint8))
        what = f"the cross-entropy gradient {name}"

        def key(suffix):
            return TensorKind.VALUE(0, f"{name}.{suffix}")

        def einsum(spec, x, w, c, bound, c_shape):
            self.commit(c, c_shape, bound)
            self.t.einsums.append(EinsumRelation("n" + spec.replace(",", ",n").replace("->", "->n"), x, w, c,
                                                 f"{what}: {spec}", GENERIC))
            return c
        zb = self.t.bounds[z]
        c = self.commit(key("max"), (B,), zb)
        cb = einsum("b,j->bj", c, classes, key("max.b"), zb, shape)
        d = self.commit(key("d"), shape, 1 << (S + H))
        self.t.linear.append(Linear(((1, d), (-1, cb), (1, z)), 0, f"{what}: d = c - z", GENERIC))
        sel = self.lookup([(key("sel"), 1)], shape)[0]
        zero = einsum("bj,bj->b", sel, d, key("sel.d"), Cp << (S + H), (B,))
        self.t.linear.append(Linear(((1, zero),), 0, f"{what}: the selected logit is the row's largest", GENERIC))
        picked = einsum("bj,j->b", sel, classes, key("sel.sum"), Cp, (B,))
        self.t.linear.append(Linear(((1, picked), (-1, row_ones)), 0, f"{what}: one selected class per row", GENERIC))
        d_hi = self.commit(key("d.hi"), shape, (1 << H) - 1)
        d_mid = self.commit(key("d.mid"), shape, (1 << F) - 1)
        e_hi = self.commit(key("e.hi"), shape, 1 << S)
        e_mid = self.commit(key("e.mid"), shape, 1 << S)
        self.t.pairs[d_hi] = (e_hi, (H, tuple(int(v) for v in E_hi)))
        self.t.pairs[d_mid] = (e_mid, (F, tuple(int(v) for v in E_mid)))
        low = unsigned_limbs(TensorKind.LIMBS, 0, f"{name}.d", S - F, self.limb_bits)
        self.lookup(low, shape)
        self.t.linear.append(Linear(((1, d), (-(1 << S), d_hi), (-(1 << (S - F)), d_mid)) + limb_terms(low, -1), 0,
                                    f"{what}: d = 2^S d_hi + 2^(S-F) d_mid + d_lo", GENERIC))
        prod = einsum("bj,bj->bj", e_hi, e_mid, key("e.prod"), 1 << (2 * S), shape)
        e = self.commit(key("e"), shape, (1 << S) + 1)
        self.remainder(f"{name}.e", 1 << S, ((1, prod), (-(1 << S), e)), f"{what}: E_hi E_mid + 2^(S-1) = 2^S e + R_e",
                       GENERIC, shape)
        s_bound = Cp * ((1 << S) + 1)
        s = einsum("bj,j->b", e, classes, key("sum"), s_bound, (B,))
        p = self.commit(key("p"), shape, 1 << (S + 1))
        p_limbs = unsigned_limbs(TensorKind.LIMBS, 0, f"{name}.p", S + 1, self.limb_bits)
        self.lookup(p_limbs, shape)
        self.t.linear.append(Linear(((1, p),) + limb_terms(p_limbs, -1), 0, f"range check of {name}.p", RANGES))
        ps = einsum("bj,b->bj", p, s, key("p.s"), (1 << (S + 1)) * s_bound, shape)
        sb = einsum("b,j->bj", s, all_classes, key("sum.b"), s_bound, shape)
        k = (2 * s_bound).bit_length()
        rem = self.commit(TensorKind.REMAINDER(0, f"{name}.p"), shape, 2 * s_bound)
        rem_limbs = unsigned_limbs(TensorKind.REMAINDER_LIMBS, 0, f"{name}.p", k, self.limb_bits)
        comp_limbs = unsigned_limbs(TensorKind.COMPLEMENT_LIMBS, 0, f"{name}.p", k, self.limb_bits)
        self.lookup(rem_limbs + comp_limbs, shape)
        self.t.linear += [
            Linear(((2, ps), (1, rem), (-(1 << (S + 1)), e), (-1, sb)), 0, f"{what}: 2 p s + R_p = 2^(S+1) e + s", GENERIC),
            Linear(((1, rem),) + limb_terms(rem_limbs, -1), 0, f"range check of the remainder of {name}.p", GENERIC),
            Linear(((2, sb), (-1, rem)) + limb_terms(comp_limbs, -1), 1, f"{what}: R_p < 2 s", GENERIC)]
        ysum = einsum("bj,j->b", yk, classes, key("y.sum"), Cp * self.t.bounds[yk], (B,))
        self.t.linear.append(Linear(((1, ysum), (-(1 << S), row_ones)), 0,
                                    f"{what}: every target row sums to 1 (probabilities)", GENERIC))
        pm = einsum("bj,bj->bj", p, mask, key("p.masked"), 1 << (S + 1), shape)
        width = self.g[name].scale + ACT_HEADROOM
        g = self.value(name, 1 << (width - 1))
        self.range_check(g, shape, width, 0, what)
        self.remainder(name, n, ((1 << S, pm), (-(1 << S), yk), (-n, g)),
                       f"{what} (2^S (p - y) + n/2 = n G + RG, n = {n})",
                       f"the scale 2^{S} and the {n} rows of a batch are too large")
        rows = self.rows

        def fill(run):
            zp, yp = pad(run[out], shape), pad(run[y], shape)
            sums = np.asarray(yp[:rows], dtype=object).sum(axis=1)
            if (sums != 1 << S).any():
                b = int(np.argmax(sums != 1 << S))
                raise ValueError(f"cross-entropy targets are rows of probabilities: row {b} of the batch sums to "
                                 f"{int(sums[b]) / 2**S:.6g}, not 1 (give one-hot class rows, or probabilities "
                                 f"that sum to exactly 1 at scale 2^{S})")
            v = ce_grad_fixed(zp[:, :C], yp[:, :C], S, F, H, n, name)  # padding rows: zero logits
            full = {}
            for suffix, fill_ in (("d", 0), ("d.hi", 0), ("d.mid", 0), ("d.lo", 0), ("e.hi", 1 << S),
                                  ("e.mid", 1 << S), ("e", 1 << S), ("e.rem", 1 << (S - 1))):  # padding classes: d = 0
                full[suffix] = pad(v[f"{name}.{suffix}"], shape, fill_)
            s_ = np.asarray(v[f"{name}.sum"])
            sb_ = np.broadcast_to(s_[:, None], shape)
            p_, rem_ = normalise(full["e"], s_, S)  # every column: the padding classes' too
            sel_ = np.zeros(shape, np.int64)
            sel_[np.arange(rows), np.argmax(np.asarray(v[f"{name}.d"])[:rows] == 0, axis=1)] = 1  # the first max
            out_ = {c: np.asarray(v[f"{name}.max"]).astype(np.int64), cb: np.outer(v[f"{name}.max"], classes_ints),
                    d: full["d"], sel: sel_, zero: np.zeros(B, np.int64), picked: (np.arange(B) < rows).astype(np.int64),
                    d_hi: full["d.hi"], d_mid: full["d.mid"], e_hi: full["e.hi"], e_mid: full["e.mid"],
                    prod: full["e.hi"] * full["e.mid"], e: full["e"], s: s_.astype(np.int64),
                    p: p_.astype(np.int64), ps: (p_ * sb_).astype(np.int64), sb: np.asarray(sb_).astype(np.int64),
                    rem: rem_.astype(np.int64),
                    ysum: np.asarray(yp, dtype=object).sum(axis=1).astype(np.int64),
                    pm: (p_ * mask_ints).astype(np.int64)}
            out_.update(dict(zip([k_ for k_, _ in low], split_limbs(full["d.lo"], [b for _, b in low], what))))
            out_.update(dict(zip([k_ for k_, _ in p_limbs], split_limbs(out_[p], [b for _, b in p_limbs], what))))
            out_.update(dict(zip([k_ for k_, _ in rem_limbs], split_limbs(out_[rem], [b for _, b in rem_limbs], what))))
            out_.update(dict(zip([k_ for k_, _ in comp_limbs],
                                 split_limbs(2 * out_[sb] - 1 - out_[rem], [b for _, b in comp_limbs], what))))
            return out_
        classes_ints = self.t.public[classes][1]
        mask_ints = self.t.public[mask][1]
        self.t.fills.append(fill)

    def _public(self, key: TensorKey, shape: tuple, values: np.ndarray) -> TensorKey:
        """A public tensor both sides commit with blind 0."""
        if key not in self.t.public:
            self.t.public[key] = (shape, pad(values, shape))
            self.t.bounds[key] = int(np.abs(values).max()) if values.size else 0
        return key

    def sgd_update(self, node) -> None:
        """``lr_q g + 2^(k-1) = 2^k (w - w') + R`` with the next parameter ``w'`` range-checked in the
        statement's parameter width (``w`` is: the statement checks the first, every step the next)."""
        w, grad = node.inputs
        k = node.attrs["lr_bits"] + self.g[grad].scale - self.g[w].scale
        (wk,) = [key for _, key in self.env[w]]
        nxt = self.value(node.output, 1 << (self.param_bits - 1))
        self.range_check(nxt, self.shape(node.output), self.param_bits, 0, f"the updated {w}")
        lr_q, lr = node.attrs["lr_q"], node.attrs["lr"]
        if 1 << k >= lr_q * self.bound(self.env[grad]):  # the remainder dominates: the learning rate is tiny
            drivers = f"learning rate {lr:.3g} is too small for scale 2^{self.g.scale_bits} (its SGD remainder needs {k} bits)"
        else:
            drivers = f"the learning rate {lr:.3g}, the batch size and the scale 2^{self.g.scale_bits} are too large"
        self.remainder(node.output, 1 << k, tuple((lr_q * c, key) for c, key in self.env[grad])
                       + ((-(1 << k), wk), (1 << k, nxt)), f"SGD update of {w} (lr_q g + 2^{k - 1} = 2^{k} (w - w') + R)",
                       drivers)

    def quotient(self, key: TensorKey, like: str, width: int, witness, what: str) -> TensorKey:
        """Commit a range-checked quotient that is no graph tensor (shaped like ``like``)."""
        self.commit(key, self.shape(like), 1 << (width - 1))
        self.quotients[key] = witness
        self.t.fills.append(lambda run: {key: witness(run)})
        self.range_check(key, self.shape(like), width, 0, what)
        return key

    def weight_decay(self, node) -> None:
        """``d = g + wd_q w / 2^k``: exact (a linear term) when ``k <= 0``, else ``d = g + q`` with
        ``wd_q w + 2^(k-1) = 2^k q + R``."""
        g, w = node.inputs
        wd_q, out = node.attrs["wd_q"], node.output
        k = node.attrs["wd_bits"] + self.g[w].scale - self.g[g].scale
        if k <= 0:
            self.env[out] = tuple(self.env[g]) + tuple(((wd_q << -k) * c, key) for c, key in self.env[w])
        else:
            width = self.g[out].scale + ACT_HEADROOM
            q = self.quotient(TensorKind.QUOTIENT(0, out), w, width, lambda run: _minus(run[out], run[g]),
                              f"the weight decay of {w}")
            self.remainder(out, 1 << k, tuple((wd_q * c, key) for c, key in self.env[w]) + ((-(1 << k), q),),
                           f"weight decay of {w} (wd_q w + 2^{k - 1} = 2^{k} q + R)", GENERIC)
            self.env[out] = tuple(self.env[g]) + ((1, q),)
        if out in self.carried or not all(r.op in LINEAR_READERS for r in self.readers.get(out, [])):
            self._commit_sum(out)

    def momentum(self, node) -> None:
        """``buf' = (mu_q buf + damp_q d + 2^(m-1)) / 2^m`` rounded, range-checked (``scale + 16`` bits)."""
        buf, d = node.inputs
        m, out = node.attrs["bits"], node.output
        width = self.g[out].scale + ACT_HEADROOM
        nxt = self.value(out, 1 << (width - 1))
        self.range_check(nxt, self.shape(out), width, 0, f"the momentum buffer {out}")
        terms = tuple((node.attrs["mu_q"] * c, k) for c, k in self.env[buf]) + \
            tuple((node.attrs["damp_q"] * c, k) for c, k in self.env[d]) + ((-(1 << m), nxt),)
        self.remainder(out, 1 << m, terms, f"momentum {out} (mu_q buf + damp_q d + 2^{m - 1} = 2^{m} buf' + R)",
                       GENERIC)

    def _commit_sum(self, name: str) -> TensorKey:
        """Commit graph tensor ``name``, so far a sum of committed terms, with its linear relation."""
        terms = self.env[name]
        key = self.value(name, self.bound(terms))
        self.t.linear.append(Linear(((1, key),) + tuple((-c, k) for c, k in terms), 0, f"sum {name}",
                                    self.drivers.get(name, GENERIC)))
        return key

    def carry(self) -> None:
        """Commit every tensor the next step reads (``VALUE(1, name)``) that no rule committed as
        such (a parameter no gradient reaches, a first momentum buffer that is the gradient itself),
        and range-check every carried state (a momentum buffer) where it is made, so that the next
        step reads it within the bound :attr:`zk.fac4dnn.Circuit` states for it."""
        params = {t.name for t in self.g.inputs if t.role == "param"}
        for tensor, name in self.carried.items():
            key = TensorKind.VALUE(1, name)
            if self.env[tensor] != ((1, key),):
                terms = self.env[tensor]
                self.commit(key, self.shape(tensor), self.bound(terms))
                self.t.fills.append(lambda run, key=key, tensor=tensor: {key: run[tensor]})
                self.t.linear.append(Linear(((1, key),) + tuple((-c, k) for c, k in terms), 0,
                                            f"{name} carried to the next step", GENERIC))
            if name not in params and key not in self.ranges:
                self.range_check(key, self.shape(tensor), self.g[tensor].scale + ACT_HEADROOM, 0, f"the state {name}")

    def reshape(self, node) -> None:
        raise UnsupportedOp(f"{node.output} = reshape: zk proofs do not cover reshapes yet")


def _minus(a, b) -> np.ndarray:
    return np.asarray(a) - np.asarray(b)


def lower(graph: circuits.Graph, full: circuits.Graph, rows: int, input_bounds: dict, limb_bits: int,
          param_bits: int) -> Template:
    """The :class:`Template` of one step: ``graph`` for a batch of ``rows`` real rows, ``full``
    the same graph for the full batch (whose shapes, padded, every instance takes);
    ``input_bounds``: the largest integer of every graph input; ranges by limbs of at most
    ``limb_bits`` bits, updated parameters in ``param_bits``."""
    lowering = _Lowering(graph, full, rows, input_bounds, limb_bits, param_bits)
    for node in graph.nodes:
        rule = getattr(lowering, node.op, None)
        if rule is None:
            raise UnsupportedOp(f"{node.output} = {node.op}: zk proofs do not cover this op")
        rule(node)
        if node.op != "einsum" and lowering.batched.intersection(node.inputs):
            lowering.batched.add(node.output)
    lowering.carry()
    training = any(node.op in ("loss_grad", "ce_grad") for node in graph.nodes)
    if training and any(r.g is None for r in lowering.t.relus):
        raise UnsupportedOp("zk proofs take no ReLU that no gradient flows back through (one before every parameter)")
    keys = [c.key for c in lowering.t.tensors]
    if len(set(keys)) != len(keys):
        raise UnsupportedOp("the graph would commit a tensor twice (an output that is also an input?)")
    return lowering.t
