"""The torch.fx front end: a torch module as a list of :class:`Layer` records.

:func:`layers` traces ``model`` with torch.fx symbolic tracing and checks every node before
any graph is built, raising :class:`UnsupportedOp` that names the module (its qualified
name, e.g. ``encoder.2``) or function, its fx node and, where known, its source line; fx's
own failures (data-dependent control flow, ``len`` of a traced tensor) become UnsupportedOp
too. What depends on shapes (a reshape's sizes, an add's operands, a mean's axes) is checked
as the graph is built, still inside ``trace``. Supported, in any order the graph allows (a
module may be called more than once):

* ``nn.Linear`` / ``F.linear`` (with or without bias; weight and bias parameters of the model);
* ``nn.ReLU`` / ``torch.relu`` / ``F.relu`` / ``Tensor.relu`` (in place only on a tensor used
  nowhere else);
* ``nn.Flatten()`` / ``torch.flatten(x, 1)`` / ``x.flatten(1)``, and ``reshape`` / ``view`` to
  ``(batch, -1)``: a flatten of the non-batch axes;
* ``a + b`` / ``torch.add`` / ``Tensor.add`` of two same-shaped activations (residuals);
* averages: ``nn.AvgPool1d``, ``nn.AdaptiveAvgPool1d`` (and ``F.avg_pool1d``,
  ``F.adaptive_avg_pool1d``) over the last axis, found as a matrix by pooling the identity, and
  ``mean(dim)`` / ``torch.mean`` over non-batch axes: an einsum with constant weights;
* shape queries feeding a reshape (``x.shape``, ``x.size(0)``, indexing them).
"""
from __future__ import annotations

import functools
import math
import operator
import os
import re
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np


class UnsupportedOp(ValueError):
    """The model contains a module, function or option that circuits cannot express."""


SUPPORTED = ("circuits supports Linear, ReLU, Flatten, residual adds of two activations, AvgPool1d, "
             "AdaptiveAvgPool1d and means over non-batch axes")

#: einsum letters of an average's axes (the input's, then the new ones)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Layer:
    """One supported node of the traced model."""

    kind: str  # "linear" | "relu" | "flatten" | "add" | "average" | "shape"
    name: str  # the fx node's name: later layers' ``args`` refer to its value by it
    prefix: str  # of the graph tensors it emits: the module's qualified name ("@k" on its k-th
    #              reuse) or the fx node's name for a function or method
    what: str  # e.g. "module encoder.2 (Linear)", "function torch.mean" (for messages)
    where: str  # e.g. "fx node 'mean' at model.py:12: return h.mean(1)"
    args: tuple = ()  # operands: fx node names (str); literal ints (reshape sizes)
    params: tuple[str, ...] = ()  # linear: the weight's and (with a bias) the bias's names
    fn: Callable | None = None  # average: input shape -> (einsum spec, weights);
    #                             shape: the operand's shape (or shape value) -> value


@dataclass(frozen=True)
class Net:
    """A traced model: its input's fx name, layers, output's fx name and parameters."""

    input: str
    layers: tuple[Layer, ...]
    output: str
    params: dict[str, tuple[int, ...]]  # every parameter, state_dict name -> shape, in order

    @property
    def in_features(self) -> int:
        """Input features of the first Linear."""
        first = next(l for l in self.layers if l.kind == "linear")
        return self.params[first.params[0]][1]


def layers(model) -> Net:
    """``model`` (a ``torch.nn.Module``) as a :class:`Net`, or :class:`UnsupportedOp`."""
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise UnsupportedOp(f"circuits traces torch.nn.Module models, got {type(model).__name__}")
    return _Frontend(model).net(_symbolic_trace(model))


def _symbolic_trace(model):
    """The fx graph of ``model.forward``; fx's failures (data-dependent control flow, ``len``
    of a traced tensor, ...) as UnsupportedOp pointing at the line."""
    from torch import fx

    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    try:
        return tracer.trace(model)
    except Exception as exc:
        frames = [(f.filename, f.lineno, f.line) for f in traceback.extract_tb(exc.__traceback__)]
        at = _at(frames) or "no source line"
        raise UnsupportedOp(
            f"torch.fx cannot trace {type(model).__name__}.forward [{at}]: {exc}. circuits needs a "
            "forward without data-dependent control flow (if/for on tensor values) or Python ops on "
            "traced tensors") from exc


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in [^\n]*\n\s*([^\n]*)')


def _at(frames) -> str:
    """``"file:line: source"`` of the innermost frame outside torch and circuits ("" if none)."""
    import torch

    ours = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)))
    user = [f for f in frames if not os.path.abspath(f[0]).startswith(ours)]
    if not user:
        return ""
    file, line, source = user[-1]
    return f"{file}:{line}: {(source or '').strip()}"


def _where(node) -> str:
    """``"fx node 'name' at file:line: source"`` (the source where fx recorded it)."""
    at = _at(_FRAME.findall(node.stack_trace or ""))
    return f"fx node {node.name!r}" + (f" at {at}" if at else "")


def _qualname(fn) -> str:
    module = getattr(fn, "__module__", None) or "torch"
    module = {"_operator": "operator", "torch._C._nn": "torch.nn.functional"}.get(module, module)
    return f"{module}.{getattr(fn, '__name__', repr(fn))}"


def _pool_weights(op, shape) -> tuple[str, np.ndarray]:
    """A 1-d pooling ``op`` of the last axis as ``(spec, weights)``: ``weights[l, m]`` is input
    ``l``'s weight in output ``m`` (``op`` applied to the identity)."""
    import torch

    if len(shape) not in (2, 3):
        raise ValueError(f"expects inputs (batch, L) or (batch, C, L), got {shape}")
    n = shape[-1]
    with torch.no_grad():
        w = op(torch.eye(n, dtype=torch.float64).reshape(n, 1, n)).reshape(n, -1).numpy()
    axes, new = _LETTERS[:len(shape)], _LETTERS[len(shape)]
    return f"{axes},{axes[-1]}{new}->{axes[:-1]}{new}", w


def _with_options(fn, args: tuple, kwargs: dict, x):
    """``fn(x, *args, **kwargs)``: a functional pooling with its options bound."""
    return fn(x, *args, **kwargs)


def _mean_weights(dims: tuple[int, ...], keepdim: bool, shape) -> tuple[str, np.ndarray]:
    """``mean(dims, keepdim)`` as ``(spec, weights)``: ``1/n`` over the averaged axes (and a size-1
    output axis for each with ``keepdim``)."""
    r = len(shape)
    if any(not -r <= d < r for d in dims):
        raise ValueError(f"dim {dims} out of range for shape {shape}")
    axes = sorted(d % r for d in dims)
    if len(set(axes)) != len(axes):
        raise ValueError(f"dim {dims} repeats an axis")
    if 0 in axes:
        raise UnsupportedOp(f"averages over the batch axis (dim {dims} of shape {shape}): only "
                            "non-batch axes")
    letters = _LETTERS[:r]
    kept = dict(zip(axes, _LETTERS[r:])) if keepdim else {}
    out = "".join(kept.get(i, "") if i in axes else c for i, c in enumerate(letters))
    w = np.full(tuple(shape[a] for a in axes) + (1,) * len(kept), 1.0 / math.prod(shape[a] for a in axes))
    return f"{letters},{''.join(letters[a] for a in axes)}{''.join(kept.values())}->{out}", w


class _Frontend:
    """Classifies the fx nodes of one model (see :func:`layers`)."""

    def __init__(self, model) -> None:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        self.model = model
        self.modules = dict(model.named_modules())
        self.params = dict(model.named_parameters())
        self.kinds: dict[str, str] = {}  # fx node name -> "tensor" | "shape" | "param"
        self.param_of: dict[str, str] = {}  # get_attr node name -> parameter name
        self.calls: Counter = Counter()  # module -> calls so far
        self.module_handlers = ((nn.Linear, self._linear_module), (nn.ReLU, self._relu_module),
                                (nn.Flatten, self._flatten_module),
                                ((nn.AvgPool1d, nn.AdaptiveAvgPool1d), self._pool_module))
        self.functions = {F.linear: self._linear, torch.relu: self._relu, F.relu: self._relu,
                          torch.flatten: self._flatten, torch.reshape: self._reshape,
                          operator.add: self._add, torch.add: self._add, torch.mean: self._mean,
                          F.avg_pool1d: self._pool, F.adaptive_avg_pool1d: self._pool,
                          getattr: self._getattr, operator.getitem: self._getitem}
        self.methods = {"relu": self._relu, "flatten": self._flatten, "reshape": self._reshape,
                        "view": self._reshape, "add": self._add, "mean": self._mean, "size": self._size}

    def net(self, graph) -> Net:
        inputs = [n for n in graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise UnsupportedOp(f"forward takes {len(inputs)} inputs: circuits traces models of one "
                                "input tensor")
        extra = [k for k in self.model.state_dict() if k not in self.params]
        if extra:
            raise UnsupportedOp(f"buffers (or tied parameters) are not supported: {', '.join(extra)}")
        found, output = [], None
        for node in graph.nodes:
            if node.op == "placeholder":
                self.kinds[node.name] = "tensor"
            elif node.op == "get_attr":
                self._get_attr(node)
            elif node.op == "output":
                output = self._output(node)
            else:
                found.append(self._layer(node))
        if not any(l.kind == "linear" for l in found):
            raise UnsupportedOp("the model has no Linear layer")
        return Net(inputs[0].name, tuple(found), output,
                   {k: tuple(p.shape) for k, p in self.params.items()})

    # -- nodes other than calls -------------------------------------------------------
    def _get_attr(self, node) -> None:
        if node.target not in self.params:
            raise UnsupportedOp(f"attribute {node.target} [{_where(node)}] is not a parameter of the "
                                "model: constant tensors are not supported")
        self.kinds[node.name] = "param"
        self.param_of[node.name] = node.target

    def _output(self, node) -> str:
        (out,) = node.args
        if self._kind(out) != "tensor":
            raise UnsupportedOp(f"forward returns {out!r} [{_where(node)}]: circuits traces models "
                                "that return one activation tensor")
        return out.name

    def _kind(self, arg) -> str | None:
        """What fx node ``arg`` holds ("tensor", "shape", "param"); None for a literal."""
        from torch.fx import Node

        return self.kinds.get(arg.name) if isinstance(arg, Node) else None

    # -- calls --------------------------------------------------------------------------
    def _layer(self, node) -> Layer:
        if node.op == "call_module":
            module = self.modules[node.target]
            handler = next((h for cls, h in self.module_handlers if isinstance(module, cls)), None)
        elif node.op == "call_function":
            handler = self.functions.get(node.target)
        else:
            handler = self.methods.get(node.target)
        if handler is None:
            raise UnsupportedOp(f"unsupported {self._what(node)} [{_where(node)}]: {SUPPORTED}")
        layer = handler(node)
        self.kinds[node.name] = "shape" if layer.kind == "shape" else "tensor"
        return layer

    def _new(self, node, kind: str, args, **fields) -> Layer:
        prefix = node.name
        if node.op == "call_module":
            k = self.calls[node.target]
            self.calls[node.target] += 1
            prefix = node.target if k == 0 else f"{node.target}@{k}"
        return Layer(kind, node.name, prefix, self._what(node), _where(node), tuple(args), **fields)

    def _what(self, node) -> str:
        """``"module encoder.2 (Linear)"``, ``"function torch.mean"`` or ``"method Tensor.view"``."""
        if node.op == "call_module":
            return f"module {node.target} ({type(self.modules[node.target]).__name__})"
        if node.op == "call_function":
            return f"function {_qualname(node.target)}"
        return f"method Tensor.{node.target}"

    def _fail(self, node, reason: str) -> UnsupportedOp:
        return UnsupportedOp(f"{self._what(node)} [{_where(node)}]: {reason}")

    def _bind(self, node, names: tuple[str, ...], **defaults) -> dict:
        """``node``'s arguments by name (torch's signature ``names``), defaults filled in."""
        if len(node.args) > len(names) or set(node.kwargs) - set(names):
            raise self._fail(node, f"unexpected arguments {node.args}, {dict(node.kwargs)}")
        bound = {**defaults, **dict(zip(names, node.args)), **node.kwargs}
        missing = [n for n in names if n not in bound]
        if missing:
            raise self._fail(node, f"missing argument(s) {', '.join(missing)}")
        return bound

    def _tensor(self, node, arg) -> str:
        """The fx name of activation operand ``arg``."""
        if self._kind(arg) != "tensor":
            raise self._fail(node, f"operand {arg!r} is not an activation (constants and "
                             "parameters are supported only as Linear weights and biases)")
        return arg.name

    def _param(self, node, arg) -> str:
        if self._kind(arg) != "param":
            raise self._fail(node, f"{arg!r} is not a parameter of the model")
        return self.param_of[arg.name]

    def _module_input(self, node) -> str:
        if len(node.args) != 1 or node.kwargs:
            raise self._fail(node, "expects one input tensor")
        return self._tensor(node, node.args[0])

    def _linear_module(self, node):
        x, q, m = self._module_input(node), node.target, self.modules[node.target]
        return self._new(node, "linear", (x,),
                         params=(f"{q}.weight",) + ((f"{q}.bias",) if m.bias is not None else ()))

    def _linear(self, node):
        a = self._bind(node, ("input", "weight", "bias"), bias=None)
        params = (self._param(node, a["weight"]),)
        if a["bias"] is not None:
            params += (self._param(node, a["bias"]),)
        return self._new(node, "linear", (self._tensor(node, a["input"]),), params=params)

    def _relu_module(self, node):
        x = self._module_input(node)
        return self._relu_of(node, node.args[0], self.modules[node.target].inplace, x)

    def _relu(self, node):
        a = self._bind(node, ("input", "inplace"), inplace=False)
        return self._relu_of(node, a["input"], a["inplace"], self._tensor(node, a["input"]))

    def _relu_of(self, node, arg, inplace: bool, x: str) -> Layer:
        if inplace and len(arg.users) > 1:
            raise self._fail(node, "an in-place ReLU of a tensor that is also used elsewhere")
        return self._new(node, "relu", (x,))

    def _flatten_module(self, node):
        m = self.modules[node.target]
        return self._flatten_of(node, m.start_dim, m.end_dim, self._module_input(node))

    def _flatten(self, node):
        a = self._bind(node, ("input", "start_dim", "end_dim"), start_dim=0, end_dim=-1)
        return self._flatten_of(node, a["start_dim"], a["end_dim"], self._tensor(node, a["input"]))

    def _flatten_of(self, node, start_dim, end_dim, x: str) -> Layer:
        if (start_dim, end_dim) != (1, -1):
            raise self._fail(node, "only start_dim=1, end_dim=-1 (flattening the non-batch axes)")
        return self._new(node, "flatten", (x,))

    def _reshape(self, node):
        if node.kwargs or len(node.args) < 2:
            raise self._fail(node, "expects reshape(batch, -1)")
        sizes = node.args[1:]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        for s in sizes:
            if not isinstance(s, int) and self._kind(s) != "shape":
                raise self._fail(node, f"size {s!r} is neither an integer nor a shape of an activation")
        args = [s if isinstance(s, int) else s.name for s in sizes]
        return self._new(node, "flatten", [self._tensor(node, node.args[0])] + args)

    def _add(self, node):
        a = self._bind(node, ("input", "other", "alpha"), alpha=1)
        if a["alpha"] != 1:
            raise self._fail(node, "only alpha=1")
        operands = (self._tensor(node, a["input"]), self._tensor(node, a["other"]))
        return self._new(node, "add", operands)

    def _mean(self, node):
        a = self._bind(node, ("input", "dim", "keepdim", "dtype"), dim=None, keepdim=False,
                       dtype=None)
        if a["dim"] is None or a["dtype"] is not None:
            raise self._fail(node, "only mean(dim, keepdim) over non-batch axes, without dtype")
        dims = (a["dim"],) if isinstance(a["dim"], int) else tuple(a["dim"])
        return self._new(node, "average", (self._tensor(node, a["input"]),),
                         fn=functools.partial(_mean_weights, dims, bool(a["keepdim"])))

    def _pool_module(self, node):
        x = self._module_input(node)
        op = self.modules[node.target]
        return self._new(node, "average", (x,), fn=functools.partial(_pool_weights, op))

    def _pool(self, node):
        rest, kwargs = node.args[1:], dict(node.kwargs)
        if any(self._kind(v) for v in (*rest, *kwargs.values())):
            raise self._fail(node, "pooling options must be constants")
        op = functools.partial(_with_options, node.target, rest, kwargs)
        return self._new(node, "average", (self._tensor(node, node.args[0]),),
                         fn=functools.partial(_pool_weights, op))

    def _getattr(self, node):
        if node.args[1] != "shape":
            raise self._fail(node, f"attribute {node.args[1]!r}: only .shape")
        return self._new(node, "shape", (self._tensor(node, node.args[0]),), fn=tuple)

    def _size(self, node):
        a = self._bind(node, ("input", "dim"), dim=None)
        fn = tuple if a["dim"] is None else operator.itemgetter(a["dim"])
        return self._new(node, "shape", (self._tensor(node, a["input"]),), fn=fn)

    def _getitem(self, node):
        source, index = node.args
        if self._kind(source) != "shape" or self._kind(index):
            raise self._fail(node, "only indexing a shape (x.shape[0]), not an activation")
        return self._new(node, "shape", (source.name,), fn=operator.itemgetter(index))
