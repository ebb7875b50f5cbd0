"""One SGD training step as a rewrite of a forward :class:`Graph`: loss gradient, backward pass, update.

:func:`training_graph` copies the forward graph, declares the target ``"y"`` (shaped like the output
``"out"``) and appends the loss gradient (``loss_grad`` for ``loss="mse"``, ``ce_grad`` for
``loss="cross_entropy"``: :meth:`Graph.loss_grad <circuits.graph.Graph.loss_grad>`), then walks the forward nodes backwards. Each op's rule reads only
ops, roles and the graph's structure:

=====================  =================================================================================
forward node            gradient contributions (``g``: the gradient of the node's output)
=====================  =================================================================================
``einsum(x, y)``        to each operand the transposed einsum of ``g`` with the other operand,
                        ``"out,y->x"``; a parameter's stays unrescaled (``sgd_update`` rounds once; a
                        ``Linear``'s weight gradient lives at ``3S``), an activation's is rescaled by
                        the other operand's scale (``P`` for a weight, ``c`` for an average's constant)
``add(a, b)``           ``g`` to a same-shaped operand; ``einsum("bo->o", g)`` (sum over the leading
                        axes) to a broadcast one, e.g. a bias
``rescale``             ``g`` (the identity on real values)
``relu(z)``             ``relu_grad(g, z)``
``reshape``             ``g`` reshaped back
=====================  =================================================================================

Only tensors that depend on a parameter get gradients. A tensor used more than once sums its
contributions with ``add`` nodes; once a parameter's gradient is complete, :meth:`SGD.update
<circuits.sgd.SGD.update>` appends its step (weight decay, momentum, ``sgd_update``).

Names (they never steer the rewrite): the loss gradient is ``"loss.grad"``, a parameter ``p``'s
gradient ``"p.grad"``, the sums ``"t.grad.sum1"``, ... for a tensor ``t``, the updated parameter
``"p.next"``; the gradients a forward node passes to activations are named after its output cut at
its last dot, ``stem`` (the layer's prefix under :func:`~circuits.trace`'s naming):
``"stem.in.grad"`` (an einsum's or a broadcast add's; ``".raw"`` before the rescale),
``"stem.grad"`` (a relu's) and ``"stem.flat.grad"`` (a reshape's). A name already taken gets
``"@1"``, ``"@2"``, ... So a Sequential MLP's step has the names it always had (``"2.in.grad"``,
``"1.grad"``, ``"0.weight.grad"``, ...).
"""
from __future__ import annotations

from collections import Counter

from .fx import UnsupportedOp
from .graph import LOSSES, Graph, Node
from .sgd import SGD


def _name(g: Graph, base: str, *suffixes: str) -> str:
    """``base``, or ``base@k`` with the least ``k`` for which every ``name + suffix`` is new."""
    name, k = base, 0
    while any(name + s in g.tensors for s in ("", *suffixes)):
        k += 1
        name = f"{base}@{k}"
    return name


def _stem(name: str) -> str:
    return name.rpartition(".")[0] or name


# -- one rule per forward op: (graph, node, output gradient, wanted, give) ----------------------
def _einsum_back(g: Graph, n: Node, grad: str, wanted: set, give) -> None:
    spec = n.attrs["parsed"]
    if len(n.inputs) != 2:
        raise UnsupportedOp(f"no gradient for the {len(n.inputs)}-operand einsum {n}: only two operands")
    for k, x in enumerate(n.inputs):
        if x not in wanted:
            continue
        other, labels = n.inputs[1 - k], spec.operands[k]
        if len(set(labels)) < len(labels) or not set(labels) <= set(spec.output) | set(spec.operands[1 - k]):
            raise UnsupportedOp(f"no gradient for operand {x!r} of {n}: a diagonal or a summed axis")
        transposed = f"{''.join(spec.output)},{''.join(spec.operands[1 - k])}->{''.join(labels)}"
        if g[x].role == "param":
            part = g.einsum(transposed, grad, other, name=_name(g, f"{x}.grad"))
        else:
            base = _name(g, f"{_stem(n.output)}.in.grad", ".raw")
            part = g.rescale(g.einsum(transposed, grad, other, name=f"{base}.raw"), g[other].scale, name=base)
        if g[part].shape != g[x].shape:
            raise UnsupportedOp(f"no gradient for operand {x!r} of {n}: it broadcasts")
        give(x, part)


def _add_back(g: Graph, n: Node, grad: str, wanted: set, give) -> None:
    shape = g[n.output].shape
    for x in n.inputs:
        if x not in wanted:
            continue
        mine = g[x].shape
        if mine == shape:
            give(x, grad)
            continue
        lead = len(shape) - len(mine)
        if shape[lead:] != mine:
            raise UnsupportedOp(f"no gradient for operand {x!r} of {n}: only broadcasts over leading axes")
        kept = "opqrstuvwxyz"[:len(mine)]
        name = f"{x}.grad" if g[x].role == "param" else f"{_stem(n.output)}.in.grad"
        give(x, g.einsum(f"{'bcdefgh'[:lead]}{kept}->{kept}", grad, name=_name(g, name)))


def _rescale_back(g: Graph, n: Node, grad: str, wanted: set, give) -> None:
    if n.inputs[0] in wanted:
        give(n.inputs[0], grad)


def _relu_back(g: Graph, n: Node, grad: str, wanted: set, give) -> None:
    (z,) = n.inputs
    if z in wanted:
        give(z, g.relu_grad(grad, z, name=_name(g, f"{_stem(n.output)}.grad")))


def _reshape_back(g: Graph, n: Node, grad: str, wanted: set, give) -> None:
    (x,) = n.inputs
    if x in wanted:
        give(x, g.reshape(grad, g[x].shape, name=_name(g, f"{_stem(n.output)}.flat.grad")))


_BACKWARD = {"einsum": _einsum_back, "add": _add_back, "rescale": _rescale_back, "relu": _relu_back,
             "reshape": _reshape_back}


def _total(g: Graph, name: str, parts: list[str]) -> str:
    """The sum of the gradient contributions ``parts`` to ``name``."""
    total = parts[0]
    for i, part in enumerate(parts[1:], 1):
        total = g.add(total, part, name=f"{name}.grad.sum{i}")
    return total


def _backward(g: Graph, out: str, grad: str, step: SGD) -> tuple[dict[str, str], dict[str, str]]:
    """Append the backward pass from ``grad`` (of ``out``) through the nodes of ``g`` and each
    parameter's step; returns parameter -> updated tensor and parameter -> new momentum buffer."""
    forward = list(g.nodes)
    depends = {t.name for t in g.inputs if t.role == "param"}  # tensors that depend on a parameter
    for n in forward:
        if depends.intersection(n.inputs):
            depends.add(n.output)
    wanted = {out}  # tensors whose gradient the backward pass computes
    for n in reversed(forward):
        if n.output in wanted:
            wanted.update(depends.intersection(n.inputs))
    pending = Counter(x for n in forward if n.output in wanted for x in n.inputs
                      if x in wanted and g[x].role == "param")
    grads, updates, buffers = {out: [grad]}, {}, {}

    def give(name: str, part: str) -> None:
        grads.setdefault(name, []).append(part)
        if name in pending:
            pending[name] -= 1
            if not pending[name]:  # the parameter's gradient is complete
                updates[name], buf = step.update(g, name, _total(g, name, grads.pop(name)))
                if buf is not None:
                    buffers[name] = buf

    for n in reversed(forward):
        if n.output in wanted:
            if n.op not in _BACKWARD:
                raise UnsupportedOp(f"no gradient rule for op {n.op!r} (node {n})")
            _BACKWARD[n.op](g, n, _total(g, n.output, grads.pop(n.output)), wanted, give)
    return updates, buffers


def _with_target(forward: Graph) -> Graph:
    """A copy of ``forward`` with the target ``"y"`` declared after the data inputs."""
    if "out" not in forward.outputs:
        raise ValueError("the forward graph has no output 'out'")
    if "y" in forward.tensors:
        raise ValueError("the forward graph already has a tensor 'y', the name of the training target")
    g = Graph(forward.scale_bits, forward.param_scale)
    tensors = list(forward.tensors.values())
    for t in tensors:
        if t.role == "data":
            g._register(t)
    out = forward[forward.outputs["out"]]
    g.input("y", out.shape, role="target", scale=out.scale)
    for t in tensors:
        if t.role != "data":
            g._register(t)
    g.constants.update(forward.constants)
    g.nodes.extend(forward.nodes)
    return g


def training_graph(forward: Graph, lr: float, loss: str = "mse", *, momentum: float = 0.0,
                   dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                   maximize: bool = False, first_step: bool = True) -> Graph:
    """The graph of one ``torch.optim.SGD`` step on the model of ``forward`` (a graph with output
    ``"out"``, e.g. from :func:`~circuits.trace` or :func:`~circuits.mlp_graph`).

    Inputs: those of ``forward``, the target ``"y"`` and, with momentum after the first step
    (``first_step=False``), each updated parameter's buffer ``"<param>.momentum_buffer"`` (role
    ``state``). Outputs: ``"out"``, each parameter's updated value under its name (one no gradient
    reaches keeps its value, as torch leaves it) and, with momentum, each new buffer under
    ``"<param>.momentum_buffer"``. ``nesterov`` and ``maximize`` raise :class:`UnsupportedOp`.
    ``loss``: ``"mse"`` (``mse_loss``) or ``"cross_entropy"`` (``cross_entropy`` with ``"y"`` rows of
    class probabilities, one-hot for class indices; ``"out"`` 2-D ``(batch, classes)``), both with
    mean reduction; another raises ``ValueError``.
    """
    if loss not in LOSSES:
        raise ValueError(f"unsupported loss {loss!r}: the supported losses are {', '.join(map(repr, LOSSES))}")
    for what, value in (("nesterov", nesterov), ("maximize", maximize)):
        if value:
            raise UnsupportedOp(f"{what}=True: only torch.optim.SGD's plain step "
                                "(nesterov=False, maximize=False)")
    step = SGD(lr, momentum, dampening, weight_decay, first_step)
    g = _with_target(forward)
    out = g.outputs["out"] = forward.outputs["out"]
    updates, buffers = _backward(g, out, g.loss_grad(out, "y", loss=loss, name="loss.grad"), step)
    params = [t.name for t in forward.inputs if t.role == "param"]
    g.outputs.update((p, updates.get(p, p)) for p in params)
    g.outputs.update((f"{p}.momentum_buffer", buffers[p]) for p in params if p in buffers)
    return g
