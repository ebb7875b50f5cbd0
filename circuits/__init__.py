"""circuits: the tensor-op layer that both privacy backends consume.

A model, a training step or an einsum is described once as a :class:`Graph` of ops
(``einsum`` for every linear op, plus ``add``, ``rescale``, ``relu``, ``relu_grad``,
``loss_grad``, ``ce_grad`` (softmax cross-entropy, :mod:`circuits.softmax`), ``weight_decay``,
``momentum``, ``sgd_update``, ``reshape``); :func:`run` interprets it in float64 or in exact
fixed point (:class:`FixedPoint`), the latter being the prover's witness. :func:`trace` builds the inference graph of any ``torch.nn.Module`` that
torch.fx traces (:mod:`circuits.fx` lists the ops it accepts), :func:`mlp_graph` that of a
Linear/ReLU MLP without torch; :func:`training_graph` rewrites an inference graph into one
torch.optim.SGD step (:func:`trace_training`: both at once). :func:`architecture_bytes` /
:func:`read_architecture` write and read a forward graph as canonical bytes, :func:`rebatch`
re-instantiates it for another batch size.
"""
from .autodiff import training_graph
from .einsum_spec import EinsumSpec, parse_einsum
from .fixed_point import FixedPoint, param_scale_for, quantize, quantize_lr, quantize_momentum
from .graph import Graph, Node, Tensor
from .interpret import decode, exact_einsum, run
from .fx import UnsupportedOp
from .mlp import mlp_graph
from .softmax import exp_tables
from .serial import ArchitectureError, architecture_bytes, read_architecture, rebatch
from .trace import trace, trace_training
from .train import train_step, training_inputs

__all__ = [
    "ArchitectureError", "architecture_bytes", "read_architecture", "rebatch",
    "EinsumSpec", "FixedPoint", "Graph", "Node", "Tensor", "UnsupportedOp", "decode",
    "exact_einsum", "exp_tables", "mlp_graph", "param_scale_for", "parse_einsum", "quantize",
    "quantize_lr", "quantize_momentum", "run", "trace", "trace_training", "train_step", "training_graph",
    "training_inputs",
]
