"""circuits: the tensor-op layer that both privacy backends consume.

A model, a training step or an einsum is described once as a :class:`Graph` of ops
(``einsum`` for every linear op, plus ``add``, ``rescale``, ``relu``, ``relu_grad``,
``loss_grad``, ``sgd_update``, ``reshape``); :func:`run` interprets it in float64 or in
exact fixed point (:class:`FixedPoint`), the latter being the prover's witness.
:func:`trace` and :func:`trace_training` build graphs from any ``torch.nn.Module`` that
torch.fx traces (:mod:`circuits.fx` lists the ops they accept).
"""
from .einsum_spec import EinsumSpec, parse_einsum
from .fixed_point import FixedPoint, param_scale_for, quantize_lr
from .graph import Graph, Node, Tensor
from .interpret import decode, exact_einsum, run
from .fx import UnsupportedOp
from .trace import trace, trace_training
from .train import train_step, training_inputs

__all__ = [
    "EinsumSpec", "FixedPoint", "Graph", "Node", "Tensor", "UnsupportedOp", "decode",
    "exact_einsum", "param_scale_for", "parse_einsum", "quantize_lr", "run", "trace",
    "trace_training", "train_step", "training_inputs",
]
