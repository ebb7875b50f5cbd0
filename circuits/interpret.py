"""The numpy interpreter: runs a :class:`~circuits.graph.Graph` in float64 or exact fixed point.

``run(graph, inputs, mode="float")`` treats every tensor as a real number (``rescale`` is the
identity) and is the reference both backends are tested against.

``run(graph, inputs, mode="fixed")`` encodes the inputs and the graph's constants at their
scale exponents (``rint``) and runs exact integer arithmetic; it is the witness generator of
the prover:

* ``einsum``: exact integer einsum (int64 when a bound on the result proves it cannot
  overflow, Python integers in object arrays otherwise);
* ``add``: the operand at the lower scale exponent is multiplied by ``2**(difference)``;
* ``rescale(bits)``: ``q = floor((x + 2**(bits-1)) / 2**bits)`` (round to nearest, ties up),
  ``rem = x + 2**(bits-1) - q * 2**bits`` in ``[0, 2**bits)``;
* ``loss_grad``: ``g = floor((2**(S+1) * (out - target) + n // 2) / n)`` with ``rem`` in ``[0, n)``;
* ``ce_grad``: softmax cross-entropy's gradient from public exp tables, every intermediate
  (``".max"``, ``".d"``, ``".e"``, ``".sum"``, ``".p"``, ...) returned: see :mod:`circuits.softmax`;
* ``weight_decay``: ``d = g + wd_q * w / 2**k``, ``k = wd_bits + scale(w) - scale(g)``: for
  ``k > 0`` the quotient rounded to nearest as in ``rescale`` (``rem`` in ``[0, 2**k)``), else the
  exact product ``wd_q * w * 2**-k`` (no ``rem``);
* ``momentum``: ``buf' = floor((mu_q * buf + damp_q * d + 2**(bits-1)) / 2**bits)``, ``rem`` in
  ``[0, 2**bits)``;
* ``sgd_update``: ``w' = w - floor((lr_q * g + 2**(k-1)) / 2**k)``,
  ``k = lr_bits + scale(g) - scale(w)``, with ``rem`` in ``[0, 2**k)``.

Every division rounds to nearest, so the fixed-point run has no systematic drift against the
float run. Remainders are returned as ``"<tensor>.rem"`` next to the tensors.
"""
from __future__ import annotations

import math

import numpy as np

from .fixed_point import INT64_SAFE, FixedPoint
from .graph import Graph, Node
from .softmax import ce_grad_fixed, ce_grad_float

MODES = ("float", "fixed")


def as_array(x, name: str = "input") -> np.ndarray:
    """numpy array from a numpy array, torch tensor or nested list; rejects odd dtypes."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating)
                               or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers (float or int), got dtype {a.dtype}")
    return a


def _maxabs(a: np.ndarray) -> int:
    return int(np.max(np.abs(a))) if a.size else 0


def _compact(a: np.ndarray) -> np.ndarray:
    """int64 when every entry fits comfortably, else an object array of Python ints."""
    if a.dtype != object:
        return a
    return a.astype(np.int64) if _maxabs(a) < INT64_SAFE else a


def _wide(a: np.ndarray) -> np.ndarray:
    return a.astype(object)


def exact_einsum(spec: str, *arrays: np.ndarray) -> np.ndarray:
    """Integer einsum without overflow: int64 when provably safe, else Python ints."""
    from .einsum_spec import parse_einsum

    parsed = parse_einsum(spec, *(a.shape for a in arrays))
    terms = math.prod(parsed.sizes[c] for c in parsed.contracted) or 1
    bound = terms * math.prod(_maxabs(a) for a in arrays)
    if bound < INT64_SAFE:
        return np.einsum(spec, *(a.astype(np.int64) for a in arrays))
    return _compact(np.einsum(spec, *(_wide(a) for a in arrays)))


def _round_div(x: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """``(q, rem)`` with ``x + divisor // 2 = q * divisor + rem`` and ``0 <= rem < divisor``:
    ``q`` is ``x / divisor`` rounded to nearest (ties up)."""
    x = _add_const(x, divisor // 2)
    if x.dtype != object and _maxabs(x) < INT64_SAFE and divisor < INT64_SAFE:
        q, r = np.divmod(x.astype(np.int64), np.int64(divisor))
        return q, r
    wide = _wide(x)
    q = wide // divisor  # Python ints: floor division, exact
    return _compact(q), _compact(wide - q * divisor)


def _mul_const(x: np.ndarray, c: int) -> np.ndarray:
    if _maxabs(x) * abs(c) < INT64_SAFE:
        return x.astype(np.int64) * np.int64(c)
    return _compact(_wide(x) * c)


def _add_const(x: np.ndarray, c: int) -> np.ndarray:
    if x.dtype != object and _maxabs(x) + c < INT64_SAFE:
        return x.astype(np.int64) + np.int64(c)
    return _compact(_wide(x) + c)


def _add(a: np.ndarray, b: np.ndarray, sign: int = 1) -> np.ndarray:
    if _maxabs(a) + _maxabs(b) < INT64_SAFE and a.dtype != object and b.dtype != object:
        return a + sign * b
    return _compact(_wide(a) + sign * _wide(b))


def _step_float(node: Node, graph: Graph, args: list[np.ndarray]) -> dict[str, np.ndarray]:
    op, a = node.op, node.attrs
    if op == "einsum":
        return {node.output: np.einsum(a["spec"], *args)}
    if op == "add":
        return {node.output: args[0] + args[1]}
    if op == "rescale":
        return {node.output: args[0]}
    if op == "relu":
        return {node.output: np.maximum(args[0], 0.0)}
    if op == "relu_grad":
        return {node.output: args[0] * (args[1] > 0)}
    if op == "loss_grad":
        return {node.output: 2.0 * (args[0] - args[1]) / a["count"]}
    if op == "ce_grad":
        return {node.output: ce_grad_float(args[0], args[1], a["count"])}
    if op == "weight_decay":
        return {node.output: args[0] + a["weight_decay"] * args[1]}
    if op == "momentum":
        return {node.output: args[0] * a["momentum"] + (1 - a["dampening"]) * args[1]}
    if op == "sgd_update":
        return {node.output: args[0] - a["lr"] * args[1]}
    if op == "reshape":
        return {node.output: args[0].reshape(a["shape"])}
    raise ValueError(f"unknown op {op!r}")


def _step_fixed(node: Node, graph: Graph, args: list[np.ndarray]) -> dict[str, np.ndarray]:
    op, a, out = node.op, node.attrs, node.output
    if op == "einsum":
        return {out: exact_einsum(a["spec"], *args)}
    if op == "add":
        top = graph[out].scale
        return {out: _add(*(_mul_const(x, 1 << (top - graph[name].scale))
                           for x, name in zip(args, node.inputs)))}
    if op == "rescale":
        q, r = _round_div(args[0], 1 << a["bits"])
        return {out: q, out + ".rem": r}
    if op == "relu":
        x = args[0]
        return {out: np.where(x > 0, x, 0).astype(x.dtype)}
    if op == "relu_grad":
        g, z = args
        return {out: np.where(z > 0, g, 0).astype(g.dtype)}
    if op == "loss_grad":
        diff = _add(args[0], args[1], sign=-1)
        q, r = _round_div(_mul_const(diff, 1 << (graph.scale_bits + 1)), a["count"])
        return {out: q, out + ".rem": r}
    if op == "ce_grad":
        return ce_grad_fixed(args[0], args[1], graph.scale_bits, a["exp_bits"], a["hi_bits"],
                             a["count"], name=out)
    if op == "weight_decay":
        g, w = args
        shift = a["wd_bits"] + graph[node.inputs[1]].scale - graph[node.inputs[0]].scale
        decay = _mul_const(w, a["wd_q"])
        if shift <= 0:
            return {out: _add(g, _mul_const(decay, 1 << -shift))}
        q, r = _round_div(decay, 1 << shift)
        return {out: _add(g, q), out + ".rem": r}
    if op == "momentum":
        buf, d = args
        q, r = _round_div(_add(_mul_const(buf, a["mu_q"]), _mul_const(d, a["damp_q"])), 1 << a["bits"])
        return {out: q, out + ".rem": r}
    if op == "sgd_update":
        w, g = args
        shift = a["lr_bits"] + graph[node.inputs[1]].scale - graph[node.inputs[0]].scale
        q, r = _round_div(_mul_const(g, a["lr_q"]), 1 << shift)
        return {out: _add(w, q, sign=-1), out + ".rem": r}
    if op == "reshape":
        return {out: args[0].reshape(a["shape"])}
    raise ValueError(f"unknown op {op!r}")


def run(graph: Graph, inputs: dict, mode: str = "float", encoded=()) -> dict[str, np.ndarray]:
    """Run ``graph`` on real-valued ``inputs`` (name -> array or torch tensor).

    ``encoded`` (fixed mode): names of inputs given as integers already at their scale exponent
    (e.g. committed parameters carried from a previous proof), used exactly as they are. Returns every tensor by name (fixed mode: integers at each tensor's scale exponent,
    plus ``"<name>.rem"`` remainders). Raises ``ValueError``/``TypeError`` naming a missing,
    unexpected or mis-shaped input.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'float' or 'fixed', got {mode!r}")
    expected = {t.name: t for t in graph.inputs}
    missing = [n for n in expected if n not in inputs]
    if missing:
        raise ValueError(f"missing graph input(s): {', '.join(missing)}")
    unknown = [n for n in inputs if n not in expected]
    if unknown:
        raise ValueError(f"unexpected input(s) not in the graph: {', '.join(map(str, unknown))}")
    fp = FixedPoint(graph.scale_bits)
    env: dict[str, np.ndarray] = {}
    for name, t in expected.items():
        x = as_array(inputs[name], f"input {name!r}")
        if x.shape != t.shape:
            raise ValueError(f"input {name!r} has shape {x.shape}, the graph expects {t.shape}")
        if name in encoded:
            if mode != "fixed" or not np.issubdtype(x.dtype, np.integer):
                raise ValueError(f"input {name!r}: encoded inputs are integers in fixed mode")
            env[name] = x.astype(np.int64)
        else:
            env[name] = fp.encode(x, t.scale) if mode == "fixed" else x.astype(np.float64)
    for name, c in graph.constants.items():
        env[name] = fp.encode(c, graph[name].scale) if mode == "fixed" else c
    step = _step_fixed if mode == "fixed" else _step_float
    for node in graph.nodes:
        env.update(step(node, graph, [env[x] for x in node.inputs]))
    return env


def decode(graph: Graph, values: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A fixed-mode tensor of ``run`` decoded to float64 at its scale exponent."""
    return FixedPoint(graph.scale_bits).decode(values[name], graph[name].scale)
