"""One SGD training step through circuits: trace + run in one call."""
from __future__ import annotations

import numpy as np

from .fixed_point import param_scale_for
from .interpret import as_array, decode, run
from .trace import trace_training


def training_inputs(model, X, Y) -> dict[str, np.ndarray]:
    """The graph inputs of one step: ``x``, ``y`` and the model's parameters (float64)."""
    inputs = {"x": as_array(X, "X"), "y": as_array(Y, "Y")}
    for name, p in model.state_dict().items():
        inputs[name] = as_array(p, f"parameter {name!r}").astype(np.float64)
    return inputs


def train_step(model, X, Y, lr: float, mode: str = "float", scale_bits: int = 16,
               loss: str = "mse", param_scale: int | None = None, *, momentum: float = 0.0,
               dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
               maximize: bool = False, momentum_buffers: dict | None = None) -> dict[str, np.ndarray]:
    """The model's parameters after one torch.optim.SGD step on ``(X, Y)`` with the MSE loss
    (``loss="mse"``) or softmax cross-entropy (``loss="cross_entropy"``: ``Y`` rows of class
    probabilities, one-hot rows for class indices; both with mean reduction) (``momentum``, ``dampening``, ``weight_decay`` as torch's; ``nesterov`` and ``maximize`` are
    refused with :class:`~circuits.UnsupportedOp`).

    Returns a state_dict-like mapping (torch parameter names -> float64 numpy arrays) and, with
    momentum, each updated parameter's new buffer under ``"<param>.momentum_buffer"``; pass those
    entries back as ``momentum_buffers`` for the next step (``None``: the first step, whose buffer
    is the gradient itself). In ``"fixed"`` mode the step runs in exact fixed-point arithmetic at
    scale ``2**scale_bits`` with parameters at ``param_scale`` (default
    :func:`~circuits.fixed_point.param_scale_for`) and the results are decoded; the model itself
    is not modified.
    """
    inputs = training_inputs(model, X, Y)
    x, y = inputs["x"], inputs["y"]
    if x.ndim < 2:
        raise ValueError(f"X must be batched (batch, features), got shape {x.shape}")
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"Y must have shape (batch, outputs) with batch {x.shape[0]}, "
                         f"got {y.shape}")
    graph = trace_training(model, x.shape[0], lr, loss=loss, input_shape=x.shape,
                           scale_bits=scale_bits,
                           param_scale=param_scale_for(lr, scale_bits) if param_scale is None else param_scale,
                           momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                           nesterov=nesterov, maximize=maximize, first_step=momentum_buffers is None)
    for name, buf in (momentum_buffers or {}).items():
        inputs[name] = as_array(buf, f"momentum buffer {name!r}")
    values = run(graph, inputs, mode=mode)
    if mode == "fixed":
        return {name: decode(graph, values, t) for name, t in graph.outputs.items()
                if name != "out"}
    return {name: values[t] for name, t in graph.outputs.items() if name != "out"}
