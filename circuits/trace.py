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
step is :func:`circuits.autodiff.training_graph` of the inference graph (the loss gradient: MSE or
softmax cross-entropy, the backward pass, the SGD updates). Parameters are named as in the model's ``state_dict``
(``"0.weight"``, ``"0.bias"``, ...); the updated parameters are the graph outputs under the same
names.
"""
from __future__ import annotations

import math

from .autodiff import training_graph
from .fx import Layer, Net, UnsupportedOp, layers
from .graph import Graph


def _lead(rank: int) -> str:
    """einsum letters of the axes before a Linear's feature axis."""
    return "bcdefgh"[:rank - 1]


def _terms(spec: str, weights) -> int:
    """The most nonzero weights one output of ``einsum(spec, h, weights)`` sums."""
    operands, out = spec.split("->")
    summed = tuple(i for i, c in enumerate(operands.split(",")[1]) if c not in out)
    return int((weights != 0).sum(axis=summed).max())


# -- one function per layer kind: (graph, layer, *operands) -> value -----------------------------
def _linear(g: Graph, layer: Layer, h: str) -> str:
    w, *bias = layer.params
    shape, fan_in = g[h].shape, g[w].shape[1]
    if len(shape) < 2 or shape[-1] != fan_in:
        raise ValueError(f"expects inputs (batch, ..., {fan_in}), got {shape}")
    lead = _lead(len(shape))
    p = g.einsum(f"{lead}i,oi->{lead}o", h, w, name=f"{layer.prefix}.matmul")
    if bias:
        p = g.add(p, bias[0], name=f"{layer.prefix}.biased")
    return g.rescale(p, g.param_scale, name=f"{layer.prefix}.z")


def _relu(g: Graph, layer: Layer, h: str) -> str:
    return g.relu(h, name=f"{layer.prefix}.relu")


def _flatten(g: Graph, layer: Layer, h: str, *sizes) -> str:
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
    return g.reshape(h, flat, name=f"{layer.prefix}.flat")


def _add(g: Graph, layer: Layer, a: str, b: str) -> str:
    if g[a].shape != g[b].shape:
        raise UnsupportedOp(f"adds shapes {g[a].shape} and {g[b].shape}: only same-shaped activations "
                            "(no broadcasting)")
    return g.add(a, b, name=f"{layer.prefix}.add")


def _average(g: Graph, layer: Layer, h: str) -> str:
    spec, weights = layer.fn(g[h].shape)
    bits = g.scale_bits + (_terms(spec, weights) - 1).bit_length()
    a = g.constant(f"{layer.prefix}.weights", weights, bits)
    return g.rescale(g.einsum(spec, h, a, name=f"{layer.prefix}.sum"), bits, name=f"{layer.prefix}.mean")


def _shape(g: Graph, layer: Layer, value):
    return layer.fn(g[value].shape if isinstance(value, str) else value)


_FORWARD = {"linear": _linear, "relu": _relu, "flatten": _flatten, "add": _add, "average": _average,
            "shape": _shape}


def _forward(g: Graph, net: Net, x: str) -> str:
    """Append the forward pass; returns its output."""
    env = {net.input: x}
    for layer in net.layers:
        args = [env[a] if isinstance(a, str) else a for a in layer.args]
        try:
            env[layer.name] = _FORWARD[layer.kind](g, layer, *args)
        except ValueError as exc:  # shapes and options known only now
            raise type(exc)(f"{layer.what} [{layer.where}]: {exc}") from None
    return env[net.output]


def _inference(net: Net, x_shape, scale_bits: int, param_scale: int | None) -> Graph:
    """The inference graph of ``net`` on inputs ``"x"`` shaped ``x_shape``."""
    g = Graph(scale_bits, param_scale)
    g.input("x", x_shape, role="data")
    for name, shape in net.params.items():
        g.input(name, shape, role="param")
    g.outputs["out"] = _forward(g, net, "x")
    return g


def trace(model, example_input, scale_bits: int = 16, param_scale: int | None = None) -> Graph:
    """The inference graph of ``model`` on inputs shaped like ``example_input``.

    Inputs: ``"x"`` (data) and the parameters; output ``"out"``.
    """
    from .interpret import as_array

    shape = as_array(example_input, "example_input").shape
    if len(shape) < 2:
        raise ValueError(f"example_input must be batched (batch, features), got shape {shape}")
    return _inference(layers(model), shape, scale_bits, param_scale)


def trace_training(model, batch_size: int, lr: float, loss: str = "mse",
                   input_shape: tuple[int, ...] | None = None, scale_bits: int = 16,
                   param_scale: int | None = None, **sgd) -> Graph:
    """The graph of one SGD step of ``model`` on a batch: :func:`~circuits.autodiff.training_graph`
    of its inference graph (``loss``: ``"mse"`` or ``"cross_entropy"``; ``sgd``: that function's
    optimizer options, torch.optim.SGD's). Inputs ``"x"`` (data; shaped ``input_shape``, by default
    ``(batch_size, in_features of the first Linear)``), ``"y"`` (target), the parameters (and
    momentum buffers); outputs: each parameter's updated value under its state_dict name, ``"out"``
    (the forward output) and any buffers.
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    net = layers(model)
    shape = tuple(input_shape or (batch_size, net.in_features))
    if shape[0] != batch_size:
        raise ValueError(f"input_shape {shape} does not start with batch_size {batch_size}")
    return training_graph(_inference(net, shape, scale_bits, param_scale), lr, loss, **sgd)
