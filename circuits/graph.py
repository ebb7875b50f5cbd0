"""The graph IR: tensors, nodes, and a builder that checks shapes as the graph grows.

Every linear operation is an ``einsum`` node (spec string + operands). The other ops:

======================  ============================================================
op                      meaning on real values (fixed point: see ``interpret``)
======================  ============================================================
``einsum(spec)``        ``numpy.einsum(spec, *operands)``
``add``                 ``a + b`` (numpy broadcasting, e.g. a bias over a batch); in fixed
                        point the operand at the lower scale is shifted up, exactly
``rescale(bits)``       identity on real values; in fixed point ``x / 2**bits`` rounded to
                        nearest with remainder, lowering the scale exponent by ``bits``
``relu``                ``max(z, 0)``
``relu_grad``           ``g * (z > 0)`` (torch's convention at ``z == 0``)
``loss_grad(n)``        MSE gradient ``2 * (out - target) / n`` (``n`` = element count)
``ce_grad(count)``      softmax cross-entropy's gradient ``(softmax(out) - target) / count``
                        (``count`` = rows; softmax over the classes; :mod:`circuits.softmax`)
``weight_decay(wd)``    ``g + wd * w`` (torch's ``d = g + weight_decay * w``), at ``g``'s scale
``momentum(mu, damp)``  ``mu * buf + (1 - damp) * d``: torch's momentum buffer, at ``d``'s scale
``sgd_update(lr)``      ``w - lr * g``
``reshape(shape)``      C-order reshape (``nn.Flatten``)
======================  ============================================================

A *constant* (role ``const``, e.g. the averaging weights of a pooling layer) is stored with
the graph (:attr:`Graph.constants`, real values) and encoded at its scale exponent like an
input; it is not one of :attr:`Graph.inputs`. A *state* input (role ``state``, e.g. a momentum
buffer) is optimizer state the caller supplies beside the parameters.

Each tensor carries the fixed-point *scale exponent* it is represented at (see
:mod:`circuits.fixed_point`); builders compute it, so a graph is one description for the
float run, the exact integer run, the prover and the FHE planner alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .einsum_spec import EinsumSpec, parse_einsum
from .fixed_point import quantize, quantize_lr, quantize_momentum
from .softmax import HI_BITS, exp_bits_for

#: the losses :meth:`Graph.loss_grad` (and so the training step) supports
LOSSES = ("mse", "cross_entropy")

#: roles of the tensors the caller supplies
INPUT_ROLES = ("data", "target", "param", "state")
ROLES = INPUT_ROLES + ("const", "intermediate")


@dataclass(frozen=True)
class Tensor:
    """A named tensor of the graph: shape, fixed-point scale exponent and role."""

    name: str
    shape: tuple[int, ...]
    scale: int
    role: str = "intermediate"


@dataclass(frozen=True)
class Node:
    """One op: ``output = op(*inputs; attrs)``."""

    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __str__(self) -> str:
        shown = {k: v for k, v in self.attrs.items() if k != "parsed"}
        args = ", ".join(self.inputs)
        extra = "".join(f", {k}={v!r}" for k, v in shown.items())
        return f"{self.output} = {self.op}({args}{extra})"


class Graph:
    """A directed acyclic graph of tensor ops, built in topological order."""

    def __init__(self, scale_bits: int = 16, param_scale: int | None = None) -> None:
        self.scale_bits = scale_bits
        #: scale exponent of the parameters (master weights: at least ``scale_bits``)
        self.param_scale = scale_bits if param_scale is None else param_scale
        if self.param_scale < scale_bits:
            raise ValueError(f"param_scale {param_scale} is below scale_bits {scale_bits}")
        self.tensors: dict[str, Tensor] = {}
        #: constant name -> its real values (read-only)
        self.constants: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        #: public name -> tensor name (e.g. ``"out"`` or a parameter's updated value)
        self.outputs: dict[str, str] = {}

    # -- bookkeeping --------------------------------------------------------------------
    def __getitem__(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"graph has no tensor named {name!r}") from None

    @property
    def inputs(self) -> list[Tensor]:
        """The tensors the caller supplies (data, target, parameters, optimizer state), in
        insertion order."""
        return [t for t in self.tensors.values() if t.role in INPUT_ROLES]

    def _fresh(self, prefix: str) -> str:
        i = len(self.tensors)
        while f"{prefix}{i}" in self.tensors:
            i += 1
        return f"{prefix}{i}"

    def _register(self, t: Tensor) -> str:
        """Add ``t`` to the graph under its name, which must be new."""
        if t.name in self.tensors:
            raise ValueError(f"tensor name {t.name!r} is already used in the graph")
        self.tensors[t.name] = t
        return t.name

    def _add_node(self, op: str, inputs, out_shape, scale: int, name: str | None,
                  **attrs) -> str:
        for x in inputs:
            self[x]  # raises on unknown tensors
        name = self._register(Tensor(name or self._fresh(f"%{op}"), tuple(int(n) for n in out_shape), scale))
        self.nodes.append(Node(op, tuple(inputs), name, MappingProxyType(attrs)))
        return name

    def __str__(self) -> str:
        params = f", parameters 2^{self.param_scale}" if self.param_scale != self.scale_bits else ""
        lines = [f"graph (scale 2^{self.scale_bits}{params}):"]
        for t in self.inputs:
            lines.append(f"  input {t.name}: {t.role} {t.shape} @2^{t.scale}")
        for name in self.constants:
            lines.append(f"  const {name}: {self[name].shape} @2^{self[name].scale}")
        for n in self.nodes:
            t = self.tensors[n.output]
            lines.append(f"  {n}  -> {t.shape} @2^{t.scale}")
        for k, v in self.outputs.items():
            lines.append(f"  output {k} = {v}")
        return "\n".join(lines)

    # -- builders -----------------------------------------------------------------------
    def input(self, name: str, shape, role: str = "data", scale: int | None = None) -> str:
        """Declare an input tensor (data batch, training target, parameter or optimizer state);
        parameters default to :attr:`param_scale`, the others to :attr:`scale_bits`."""
        if role not in INPUT_ROLES:
            raise ValueError(f"input role must be one of {'/'.join(INPUT_ROLES)}, got {role!r}")
        shape = tuple(int(n) for n in shape)
        if any(n <= 0 for n in shape):
            raise ValueError(f"input {name!r} needs positive dimensions, got {shape}")
        if scale is None:
            scale = self.param_scale if role == "param" else self.scale_bits
        return self._register(Tensor(name, shape, scale, role))

    def constant(self, name: str, value, scale: int) -> str:
        """A constant tensor of real ``value``s, encoded at scale exponent ``scale``."""
        value = np.array(value, dtype=np.float64)
        value.flags.writeable = False
        self._register(Tensor(name, value.shape, int(scale), "const"))
        self.constants[name] = value
        return name

    def einsum(self, spec: str, *operands: str, name: str | None = None) -> str:
        """A linear op: ``numpy.einsum(spec, *operands)``; scale exponents add."""
        parsed: EinsumSpec = parse_einsum(spec, *(self[x].shape for x in operands))
        scale = sum(self[x].scale for x in operands)
        return self._add_node("einsum", operands, parsed.output_shape, scale, name,
                              spec=str(parsed), parsed=parsed)

    def add(self, a: str, b: str, name: str | None = None) -> str:
        """``a + b`` with numpy broadcasting, at the larger of the two scales (the other operand
        is shifted up exactly, e.g. a bias at the parameter scale added to a product)."""
        ta, tb = self[a], self[b]
        try:
            shape = np.broadcast_shapes(ta.shape, tb.shape)
        except ValueError:
            raise ValueError(f"add: shapes {ta.shape} and {tb.shape} do not broadcast") from None
        return self._add_node("add", (a, b), shape, max(ta.scale, tb.scale), name)

    def rescale(self, x: str, bits: int, name: str | None = None) -> str:
        """Fixed-point division by ``2**bits``, rounded to nearest (identity on real values)."""
        t = self[x]
        if not 0 < bits <= t.scale:
            raise ValueError(f"rescale: cannot drop {bits} bits from {x!r} at scale 2^{t.scale}")
        return self._add_node("rescale", (x,), t.shape, t.scale - bits, name, bits=int(bits))

    def relu(self, z: str, name: str | None = None) -> str:
        t = self[z]
        return self._add_node("relu", (z,), t.shape, t.scale, name)

    def relu_grad(self, g: str, z: str, name: str | None = None) -> str:
        """Backpropagate ``g`` through ``relu(z)``: ``g * (z > 0)``."""
        if self[g].shape != self[z].shape:
            raise ValueError(f"relu_grad: gradient {self[g].shape} and pre-activation "
                             f"{self[z].shape} differ in shape")
        return self._add_node("relu_grad", (g, z), self[g].shape, self[g].scale, name)

    def loss_grad(self, out: str, target: str, loss: str = "mse", name: str | None = None) -> str:
        """Gradient of the loss (mean reduction) w.r.t. ``out``, at scale ``out.scale + scale_bits``
        (gradients carry ``S`` extra bits).

        ``loss="mse"``: ``mse_loss(out, target)``, op ``loss_grad`` (``count`` = element count).
        ``loss="cross_entropy"``: ``cross_entropy(out, target)`` with ``target`` rows of class
        probabilities (one-hot rows for class indices), op ``ce_grad``: ``out`` and ``target`` of one
        2-D shape ``(rows, C)``, both at scale ``scale_bits``; attrs ``count`` (rows), ``classes``
        (``C``), ``exp_bits`` (``min(scale_bits, 10)``) and ``hi_bits`` (6); see
        :mod:`circuits.softmax` for its fixed-point rule.
        """
        if loss not in LOSSES:
            raise ValueError(f"unsupported loss {loss!r}: the supported losses are "
                             f"{', '.join(map(repr, LOSSES))}")
        to, tt = self[out], self[target]
        op = "loss_grad" if loss == "mse" else "ce_grad"
        if to.shape != tt.shape:
            raise ValueError(f"{op}: output shape {to.shape} != target shape {tt.shape}")
        if to.scale != tt.scale:
            raise ValueError(f"{op}: output and target must be at the same scale")
        if loss == "mse":
            return self._add_node("loss_grad", (out, target), to.shape, to.scale + self.scale_bits,
                                  name, loss=loss, count=math.prod(to.shape))
        if len(to.shape) != 2:
            raise ValueError(f"ce_grad: output and target must be 2-D (rows, classes), got shape {to.shape}")
        if to.scale != self.scale_bits:
            raise ValueError(f"ce_grad: output and target must be at scale 2^{self.scale_bits} "
                             f"(scale_bits), got 2^{to.scale}")
        rows, classes = to.shape
        return self._add_node("ce_grad", (out, target), to.shape, to.scale + self.scale_bits, name,
                              count=rows, classes=classes, exp_bits=exp_bits_for(self.scale_bits),
                              hi_bits=HI_BITS)

    def _same_shape(self, op: str, a: str, b: str) -> None:
        if self[a].shape != self[b].shape:
            raise ValueError(f"{op}: {a!r} {self[a].shape} and {b!r} {self[b].shape} differ in shape")

    def weight_decay(self, g: str, w: str, weight_decay: float, name: str | None = None) -> str:
        """``g + weight_decay * w`` at ``g``'s scale; ``weight_decay`` is quantised as
        ``wd_q / 2**wd_bits`` in fixed point."""
        self._same_shape("weight_decay", g, w)
        wd_q, wd_bits = quantize(weight_decay, "weight_decay")
        return self._add_node("weight_decay", (g, w), self[g].shape, self[g].scale, name,
                              weight_decay=float(weight_decay), wd_q=wd_q, wd_bits=wd_bits)

    def momentum(self, buf: str, d: str, momentum: float, dampening: float, name: str | None = None) -> str:
        """``momentum * buf + (1 - dampening) * d`` at ``d``'s scale (``buf`` must be at it too);
        in fixed point ``(mu_q * buf + damp_q * d) / 2**bits``, one division rounded to nearest."""
        self._same_shape("momentum", buf, d)
        if self[buf].scale != self[d].scale:
            raise ValueError(f"momentum: buffer {buf!r} at scale 2^{self[buf].scale}, gradient {d!r} "
                             f"at 2^{self[d].scale}")
        mu_q, damp_q, bits = quantize_momentum(momentum, dampening)
        return self._add_node("momentum", (buf, d), self[d].shape, self[d].scale, name,
                              momentum=float(momentum), dampening=float(dampening), mu_q=mu_q,
                              damp_q=damp_q, bits=bits)

    def sgd_update(self, w: str, g: str, lr: float, name: str | None = None) -> str:
        """``w - lr * g``; ``lr`` is quantised as ``lr_q / 2**lr_bits`` in fixed point."""
        tw, tg = self[w], self[g]
        if tw.shape != tg.shape:
            raise ValueError(f"sgd_update: parameter {w!r} {tw.shape} and gradient {tg.shape} "
                             "differ in shape")
        lr_q, lr_bits = quantize_lr(lr)
        if lr_bits + tg.scale - tw.scale < 1:
            raise ValueError(f"sgd_update: parameter {w!r} at scale 2^{tw.scale} is finer than the update "
                             f"lr * gradient resolves (2^-{lr_bits} times 2^-{tg.scale})")
        return self._add_node("sgd_update", (w, g), tw.shape, tw.scale, name,
                              lr=float(lr), lr_q=lr_q, lr_bits=lr_bits)

    def reshape(self, x: str, shape, name: str | None = None) -> str:
        t = self[x]
        new = tuple(int(n) for n in shape)
        if math.prod(new) != math.prod(t.shape):
            raise ValueError(f"reshape: cannot reshape {t.shape} into {new}")
        return self._add_node("reshape", (x,), new, t.scale, name, shape=new)
