"""Build graphs from torch models: inference (`trace`) and one SGD step (`trace_training`).

Supported: any ``torch.nn.Module`` that torch.fx traces and whose ops :mod:`circuits.fx`
accepts (``Linear`` with or without bias, ``ReLU``, ``Flatten``, residual adds, average pooling
and means, in any order; anything else raises :class:`UnsupportedOp` before a graph is built).
Activations live at scale ``S`` (``scale_bits``), parameters at ``P >= S`` (``param_scale``:
master weights, so that small SGD updates do not round away). Tensors are named
``<prefix>.<role>``, the prefix being the module's qualified name (``encoder.2``; ``act@1``
for its second call) or the fx node's name for a function (``add_1``). A ``Linear`` layer
``z = h @ W.T + b`` becomes

    p = einsum("bi,oi->bo", h, W)      # scale S + P ("bci,oi->bco" with more leading axes)
    p = add(p, b)                      # (with a bias: b shifted up to S + P, exactly)
    z = rescale(p, P)                  # scale S, rounded to nearest

a residual ``h + r`` is ``add(h, r)`` (both at ``S``), and an average (``AvgPool1d``,
``AdaptiveAvgPool1d``, ``mean(dim)``) is an einsum with constant weights ``A`` whose outputs
each sum ``k`` inputs, ``A`` at scale ``c = S + ceil(log2 k)``:

    s = einsum("abc,cd->abd", h, A)    # scale S + c (exact integers)
    m = rescale(s, c)                  # scale S, rounded to nearest

so ``|m - mean(h)| <= (1 + max|h|) * 2^-(S+1)`` on the fixed-point ``h`` (``A`` rounds to
``2^-(c+1)``; exact but for the final rounding when ``k`` is a power of two). One training
step appends the MSE loss gradient, the backward pass

    g_W = einsum("bo,bi->oi", g_z, h)                  # scale 3S, consumed by sgd_update
    g_h = einsum("bo,oi->bi", g_z, W)  -> rescale(P)   # gradients live at scale 2S
    g_b = einsum("bo->o", g_z)                         # scale 2S
    g_z(prev) = relu_grad(g_h, z(prev))
    g_h = einsum("abd,cd->abc", g_m, A) -> rescale(c)  # an average: the transposed einsum
    g_h = g_r = g                                      # a residual: both branches

(a tensor used more than once sums its gradients with ``add`` nodes; only tensors that depend
on a parameter get one) and an ``sgd_update`` per parameter once its gradient is complete.
Parameters are named as in the model's ``state_dict`` (``"0.weight"``, ``"0.bias"``, ...); the
updated parameters are the graph outputs under the same names (one that no gradient reaches
keeps its value, as torch's SGD leaves it).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from .fx import Layer, Net, UnsupportedOp, layers
from .graph import Graph


@dataclass(frozen=True)
class _Record:
    """What the backward pass needs of one forward layer."""

    layer: Layer
    inputs: tuple[str, ...]  # the activations it read
    output: str
    spec: str = ""  # average: the forward einsum and its constant weights, at scale 2^bits
    weights: str = ""
    bits: int = 0


def _lead(rank: int) -> str:
    """einsum letters of the axes before a Linear's feature axis."""
    return "bcdefgh"[:rank - 1]


def _transposed(spec: str) -> str:
    """``"x,w->y"`` -> ``"y,w->x"``: the gradient of an einsum with constant ``w``."""
    operands, out = spec.split("->")
    x, w = operands.split(",")
    return f"{out},{w}->{x}"


def _terms(spec: str, weights) -> int:
    """The most nonzero weights one output of ``einsum(spec, h, weights)`` sums."""
    operands, out = spec.split("->")
    summed = tuple(i for i, c in enumerate(operands.split(",")[1]) if c not in out)
    return int((weights != 0).sum(axis=summed).max())


# -- forward, one function per layer kind: (graph, layer, tape, *operands) -> value ------------
def _linear(g: Graph, layer: Layer, tape: list, h: str) -> str:
    w, *bias = layer.params
    shape, fan_in = g[h].shape, g[w].shape[1]
    if len(shape) < 2 or shape[-1] != fan_in:
        raise ValueError(f"expects inputs (batch, ..., {fan_in}), got {shape}")
    lead = _lead(len(shape))
    p = g.einsum(f"{lead}i,oi->{lead}o", h, w, name=f"{layer.prefix}.matmul")
    if bias:
        p = g.add(p, bias[0], name=f"{layer.prefix}.biased")
    z = g.rescale(p, g.param_scale, name=f"{layer.prefix}.z")
    tape.append(_Record(layer, (h,), z))
    return z


def _relu(g: Graph, layer: Layer, tape: list, h: str) -> str:
    z = g.relu(h, name=f"{layer.prefix}.relu")
    tape.append(_Record(layer, (h,), z))
    return z


def _flatten(g: Graph, layer: Layer, tape: list, h: str, *sizes) -> str:
    shape = g[h].shape
    flat = (shape[0], math.prod(shape[1:]))
    if sizes:
        if not all(isinstance(s, int) for s in sizes):
            raise UnsupportedOp(f"sizes {sizes}: only integers")
        known = math.prod(s for s in sizes if s != -1) or 1
        target = tuple(math.prod(shape) // known if s == -1 else s for s in sizes)
        if target != flat:
            raise UnsupportedOp(f"reshapes {shape} to {target}: only a flatten of the non-batch axes, {flat}")
    if len(shape) <= 2:
        return h
    z = g.reshape(h, flat, name=f"{layer.prefix}.flat")
    tape.append(_Record(layer, (h,), z))
    return z


def _add(g: Graph, layer: Layer, tape: list, a: str, b: str) -> str:
    if g[a].shape != g[b].shape:
        raise UnsupportedOp(f"adds shapes {g[a].shape} and {g[b].shape}: only same-shaped activations "
                            "(no broadcasting)")
    z = g.add(a, b, name=f"{layer.prefix}.add")
    tape.append(_Record(layer, (a, b), z))
    return z


def _average(g: Graph, layer: Layer, tape: list, h: str) -> str:
    spec, weights = layer.fn(g[h].shape)
    bits = g.scale_bits + (_terms(spec, weights) - 1).bit_length()
    a = g.constant(f"{layer.prefix}.weights", weights, bits)
    z = g.rescale(g.einsum(spec, h, a, name=f"{layer.prefix}.sum"), bits, name=f"{layer.prefix}.mean")
    tape.append(_Record(layer, (h,), z, spec, a, bits))
    return z


def _shape(g: Graph, layer: Layer, tape: list, value):
    return layer.fn(g[value].shape if isinstance(value, str) else value)


_FORWARD = {"linear": _linear, "relu": _relu, "flatten": _flatten, "add": _add, "average": _average,
            "shape": _shape}


def _forward(g: Graph, net: Net, x: str) -> tuple[str, list[_Record]]:
    """Append the forward pass; returns the output and a tape for the backward pass."""
    env, tape = {net.input: x}, []
    for layer in net.layers:
        args = [env[a] if isinstance(a, str) else a for a in layer.args]
        try:
            env[layer.name] = _FORWARD[layer.kind](g, layer, tape, *args)
        except ValueError as exc:  # shapes and options known only now
            raise type(exc)(f"{layer.what} [{layer.where}]: {exc}") from None
    return env[net.output], tape


# -- backward, one function per layer kind: (graph, record, output gradient, wanted, give) -----
def _input_grad(g: Graph, spec: str, grad: str, other: str, bits: int, prefix: str) -> str:
    raw = g.einsum(spec, grad, other, name=f"{prefix}.in.grad.raw")
    return g.rescale(raw, bits, name=f"{prefix}.in.grad")


def _linear_back(g: Graph, r: _Record, grad: str, wanted: set, give) -> None:
    (h,), (w, *bias), p = r.inputs, r.layer.params, r.layer.prefix
    lead = _lead(len(g[h].shape))
    give(w, g.einsum(f"{lead}o,{lead}i->oi", grad, h, name=f"{p}.weight.grad"))  # scale 3S: sgd rescales once
    if bias:
        give(bias[0], g.einsum(f"{lead}o->o", grad, name=f"{p}.bias.grad"))
    if h in wanted:
        give(h, _input_grad(g, f"{lead}o,oi->{lead}i", grad, w, g.param_scale, p))


def _relu_back(g: Graph, r: _Record, grad: str, wanted: set, give) -> None:
    (h,) = r.inputs
    if h in wanted:
        give(h, g.relu_grad(grad, h, name=f"{r.layer.prefix}.grad"))


def _flatten_back(g: Graph, r: _Record, grad: str, wanted: set, give) -> None:
    (h,) = r.inputs
    if h in wanted:
        give(h, g.reshape(grad, g[h].shape, name=f"{r.layer.prefix}.flat.grad"))


def _add_back(g: Graph, r: _Record, grad: str, wanted: set, give) -> None:
    for h in r.inputs:
        if h in wanted:
            give(h, grad)


def _average_back(g: Graph, r: _Record, grad: str, wanted: set, give) -> None:
    (h,) = r.inputs
    if h in wanted:
        give(h, _input_grad(g, _transposed(r.spec), grad, r.weights, r.bits, r.layer.prefix))


_BACKWARD = {"linear": _linear_back, "relu": _relu_back, "flatten": _flatten_back, "add": _add_back,
             "average": _average_back}


def _total(g: Graph, name: str, parts: list[str]) -> str:
    """The sum of the gradient contributions ``parts`` to ``name``."""
    total = parts[0]
    for i, part in enumerate(parts[1:], 1):
        total = g.add(total, part, name=f"{name}.grad.sum{i}")
    return total


def _backward(g: Graph, tape: list[_Record], out: str, grad: str, lr: float) -> dict[str, str]:
    """Append the backward pass from ``grad`` (of ``out``) and the SGD updates; returns
    parameter name -> updated tensor."""
    depends = set()  # tensors that depend on a parameter
    for r in tape:
        if r.layer.kind == "linear" or depends.intersection(r.inputs):
            depends.add(r.output)
    wanted = {out}  # tensors whose gradient the backward pass computes
    for r in reversed(tape):
        if r.output in wanted:
            wanted.update(depends.intersection(r.inputs))
    pending = Counter(p for r in tape if r.output in wanted for p in r.layer.params)
    grads, updates = {out: [grad]}, {}

    def give(name: str, part: str) -> None:
        grads.setdefault(name, []).append(part)
        if name in pending:
            pending[name] -= 1
            if not pending[name]:  # the parameter's gradient is complete
                updates[name] = g.sgd_update(name, _total(g, name, grads.pop(name)), lr, name=f"{name}.next")

    for r in reversed(tape):
        if r.output in wanted:
            _BACKWARD[r.layer.kind](g, r, _total(g, r.output, grads.pop(r.output)), wanted, give)
    return updates


def _graph(net: Net, x_shape, scale_bits: int, param_scale: int | None, target=None) -> Graph:
    """A graph with its inputs declared: ``"x"``, ``"y"`` (shaped ``target``, if given), the
    parameters."""
    g = Graph(scale_bits, param_scale)
    g.input("x", x_shape, role="data")
    if target is not None:
        g.input("y", target, role="target")
    for name, shape in net.params.items():
        g.input(name, shape, role="param")
    return g


def trace(model, example_input, scale_bits: int = 16, param_scale: int | None = None) -> Graph:
    """The inference graph of ``model`` on inputs shaped like ``example_input``.

    Inputs: ``"x"`` (data) and the parameters; output ``"out"``.
    """
    from .interpret import as_array

    shape = as_array(example_input, "example_input").shape
    if len(shape) < 2:
        raise ValueError(f"example_input must be batched (batch, features), got shape {shape}")
    net = layers(model)
    g = _graph(net, shape, scale_bits, param_scale)
    g.outputs["out"] = _forward(g, net, "x")[0]
    return g


def trace_training(model, batch_size: int, lr: float, loss: str = "mse",
                   input_shape: tuple[int, ...] | None = None, scale_bits: int = 16,
                   param_scale: int | None = None) -> Graph:
    """The graph of one SGD step of ``model`` on a batch: forward, loss gradient, backward,
    update. Inputs ``"x"`` (data; shaped ``input_shape``, by default ``(batch_size, in_features
    of the first Linear)``), ``"y"`` (target) and the parameters; outputs: each parameter's
    updated value under its state_dict name, and ``"out"`` (the forward output).
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    net = layers(model)
    shape = tuple(input_shape or (batch_size, net.in_features))
    if shape[0] != batch_size:
        raise ValueError(f"input_shape {shape} does not start with batch_size {batch_size}")
    probe = _graph(net, shape, scale_bits, param_scale)  # the output's shape is the target's
    g = _graph(net, shape, scale_bits, param_scale, target=probe[_forward(probe, net, "x")[0]].shape)
    out, tape = _forward(g, net, "x")
    g.outputs["out"] = out
    updates = _backward(g, tape, out, g.loss_grad(out, "y", loss=loss, name="loss.grad"), lr)
    for name in net.params:
        g.outputs[name] = updates.get(name, name)
    return g
