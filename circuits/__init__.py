"""circuits: the tensor-op layer that both privacy backends consume.

A model, a training step or an einsum is described once as a :class:`Graph` of ops
(``einsum`` for every linear op, plus ``add``, ``rescale``, ``relu``, ``relu_grad``,
``loss_grad``, ``sgd_update``); :func:`run` interprets it in float64 or exact fixed point.
"""
from .einsum_spec import EinsumSpec, parse_einsum

__all__ = ["EinsumSpec", "parse_einsum"]
