"""torch.optim.SGD's step as graph nodes: weight decay, momentum, the update.

For a parameter ``w`` with gradient ``g`` torch computes (``_single_tensor_sgd``, ``maximize=False``,
``nesterov=False``)::

    d = g + weight_decay * w                  # if weight_decay
    buf = d        at the first step          # if momentum: there is no buffer yet
    buf = momentum * buf + (1 - dampening) * d   at the others
    d = buf
    w = w - lr * d

and so does :meth:`SGD.update`, with the ops ``weight_decay``, ``momentum`` and ``sgd_update``
(their fixed-point rules: :mod:`circuits.interpret`). The buffer lives at the gradient's scale; the
previous step's buffer is a graph input of role ``state`` named ``"<param>.momentum_buffer"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .fixed_point import quantize_lr
from .graph import Graph


@dataclass(frozen=True)
class SGD:
    """torch.optim.SGD's hyperparameters for one step (``first_step``: no momentum buffer yet)."""

    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    first_step: bool = True

    def __post_init__(self) -> None:
        quantize_lr(self.lr)  # a positive finite learning rate, or ValueError naming it
        for what in ("momentum", "dampening", "weight_decay"):
            value = getattr(self, what)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
        if self.dampening > 1:
            raise ValueError(f"dampening must be in [0, 1], got {self.dampening!r}")

    def update(self, g: Graph, w: str, grad: str) -> tuple[str, str | None]:
        """Append the step of parameter ``w`` whose gradient is ``grad``; returns the updated
        parameter (``"<w>.next"``) and the new momentum buffer (``None`` without momentum)."""
        d = grad
        if self.weight_decay:
            d = g.weight_decay(d, w, self.weight_decay, name=f"{w}.grad.decayed")
        buf = None
        if self.momentum:
            buf = d
            if not self.first_step:
                prev = g.input(f"{w}.momentum_buffer", g[d].shape, role="state", scale=g[d].scale)
                buf = g.momentum(prev, d, self.momentum, self.dampening, name=f"{w}.momentum_buffer.next")
            d = buf
        return g.sgd_update(w, d, self.lr, name=f"{w}.next"), buf
