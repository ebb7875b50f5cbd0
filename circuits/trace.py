"""Build graphs from torch models: inference (`trace`) and one SGD step (`trace_training`).

Supported: ``torch.nn.Sequential`` of ``Linear`` (with or without bias), ``ReLU`` and
``Flatten``. Activations live at scale ``S`` (``scale_bits``), parameters at ``P >= S``
(``param_scale``: master weights, so that small SGD updates do not round away). A ``Linear``
layer ``z = h @ W.T + b`` becomes

    p = einsum("bi,oi->bo", h, W)      # scale S + P
    p = add(p, b)                      # (with a bias: b shifted up to S + P, exactly)
    z = rescale(p, P)                  # scale S, rounded to nearest

and one training step appends the MSE loss gradient, the backward pass

    g_W = einsum("bo,bi->oi", g_z, h)                  # scale 3S, consumed by sgd_update
    g_h = einsum("bo,oi->bi", g_z, W)  -> rescale(P)   # gradients live at scale 2S
    g_b = einsum("bo->o", g_z)                         # scale 2S
    g_z(prev) = relu_grad(g_h, z(prev))

and an ``sgd_update`` per parameter. Parameters are named as in the model's
``state_dict`` (``"0.weight"``, ``"0.bias"``, ...); the updated parameters are the graph
outputs under the same names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .graph import Graph


class UnsupportedOp(ValueError):
    """The model contains a module (or option) that circuits cannot express."""


@dataclass(frozen=True)
class _Layer:
    kind: str  # "linear" | "relu" | "flatten"
    prefix: str  # state_dict prefix ("0", "2", ...)
    in_features: int = 0
    out_features: int = 0
    bias: bool = False


def _layers(model) -> list[_Layer]:
    import torch.nn as nn

    if not isinstance(model, nn.Sequential):
        raise UnsupportedOp(
            f"circuits traces torch.nn.Sequential models, got {type(model).__name__}")
    layers = []
    for prefix, m in model.named_children():
        if isinstance(m, nn.Linear):
            layers.append(_Layer("linear", prefix, m.in_features, m.out_features,
                                 m.bias is not None))
        elif isinstance(m, nn.ReLU):
            layers.append(_Layer("relu", prefix))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise UnsupportedOp(f"module {prefix} (Flatten): only start_dim=1, end_dim=-1")
            layers.append(_Layer("flatten", prefix))
        else:
            raise UnsupportedOp(
                f"unsupported module {prefix} ({type(m).__name__}): circuits supports "
                "Linear, ReLU and Flatten")
    if not any(l.kind == "linear" for l in layers):
        raise UnsupportedOp("the model has no Linear layer")
    return layers


def _declare_params(g: Graph, layers: list[_Layer]) -> None:
    for l in layers:
        if l.kind == "linear":
            g.input(f"{l.prefix}.weight", (l.out_features, l.in_features), role="param")
            if l.bias:
                g.input(f"{l.prefix}.bias", (l.out_features,), role="param")


def _forward(g: Graph, layers: list[_Layer], x: str) -> tuple[str, list[tuple]]:
    """Append the forward pass; returns the output and a tape for the backward pass."""
    h, tape = x, []
    for l in layers:
        if l.kind == "flatten":
            shape = g[h].shape
            if len(shape) > 2:
                h = g.reshape(h, (shape[0], math.prod(shape[1:])), name=f"{l.prefix}.flat")
        elif l.kind == "linear":
            if g[h].shape[-1] != l.in_features or len(g[h].shape) != 2:
                raise ValueError(
                    f"layer {l.prefix} (Linear) expects inputs (batch, {l.in_features}), "
                    f"got {g[h].shape}")
            w = f"{l.prefix}.weight"
            p = g.einsum("bi,oi->bo", h, w, name=f"{l.prefix}.matmul")
            if l.bias:
                p = g.add(p, f"{l.prefix}.bias", name=f"{l.prefix}.biased")
            z = g.rescale(p, g.param_scale, name=f"{l.prefix}.z")
            tape.append(("linear", l, h))
            h = z
        else:  # relu
            tape.append(("relu", l, h))
            h = g.relu(h, name=f"{l.prefix}.relu")
    return h, tape


def trace(model, example_input, scale_bits: int = 16, param_scale: int | None = None) -> Graph:
    """The inference graph of ``model`` on inputs shaped like ``example_input``.

    Inputs: ``"x"`` (data) and the parameters; output ``"out"``.
    """
    from .interpret import as_array

    shape = as_array(example_input, "example_input").shape
    if len(shape) < 2:
        raise ValueError(f"example_input must be batched (batch, features), got shape {shape}")
    layers = _layers(model)
    g = Graph(scale_bits, param_scale)
    x = g.input("x", shape, role="data")
    _declare_params(g, layers)
    out, _ = _forward(g, layers, x)
    g.outputs["out"] = out
    return g


def trace_training(model, batch_size: int, lr: float, loss: str = "mse",
                   input_shape: tuple[int, ...] | None = None, scale_bits: int = 16,
                   param_scale: int | None = None) -> Graph:
    """The graph of one SGD step of ``model`` on a batch: forward, loss gradient, backward,
    update. Inputs ``"x"`` (data), ``"y"`` (target) and the parameters; outputs: each
    parameter's updated value under its state_dict name, and ``"out"`` (the forward output).
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    layers = _layers(model)
    first = next(l for l in layers if l.kind == "linear")
    last = next(l for l in reversed(layers) if l.kind == "linear")
    g = Graph(scale_bits, param_scale)
    x = g.input("x", input_shape or (batch_size, first.in_features), role="data")
    if g[x].shape[0] != batch_size:
        raise ValueError(f"input_shape {g[x].shape} does not start with batch_size {batch_size}")
    y = g.input("y", (batch_size, last.out_features), role="target")
    _declare_params(g, layers)
    out, tape = _forward(g, layers, x)
    g.outputs["out"] = out

    grad = g.loss_grad(out, y, loss=loss, name="loss.grad")
    updates = {}
    for i, (kind, l, h) in reversed(list(enumerate(tape))):
        if kind == "relu":
            grad = g.relu_grad(grad, h, name=f"{l.prefix}.grad")
            continue
        w = f"{l.prefix}.weight"
        gw = g.einsum("bo,bi->oi", grad, h, name=f"{w}.grad")  # scale 3S: sgd rescales once
        updates[w] = g.sgd_update(w, gw, lr, name=f"{w}.next")
        if l.bias:
            b = f"{l.prefix}.bias"
            gb = g.einsum("bo->o", grad, name=f"{b}.grad")
            updates[b] = g.sgd_update(b, gb, lr, name=f"{b}.next")
        if not any(k == "linear" for k, _, _ in tape[:i]):
            break  # no parameter further back: the input gradient is not needed
        grad = g.rescale(g.einsum("bo,oi->bi", grad, w, name=f"{l.prefix}.in.grad.raw"), g.param_scale,
                         name=f"{l.prefix}.in.grad")
    for name in g.tensors:
        if g[name].role == "param":
            g.outputs[name] = updates[name]
    return g
