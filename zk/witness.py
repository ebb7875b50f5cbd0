"""The prover's witness: the SGD steps (or the inference) run in exact fixed point.

:func:`fixed_steps` runs the steps of :func:`circuits.trace_training`'s graph on committed data
from a committed model (:mod:`zk.dataset`, :mod:`zk.model`), refusing updates that round away;
:func:`training_run` and :func:`inference_run` turn the runs into every tensor of the circuit
(:mod:`zk.fac4dnn`): activations, gradients, updates, remainders and their bit planes, and the
range-checked data and parameters with their bit planes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import circuits
from circuits import FixedPoint, quantize_lr

from . import bits, commit, committed, fac4dnn
from .dataset import DatasetOpening
from .fac4dnn import Circuit
from .keys import TensorKey, TensorKind
from .model import ModelOpening
from .statement import MAX_BATCH, MAX_LAYERS, MAX_WIDTH, tensor_name

__all__ = ["Run", "FixedStep", "fixed_steps", "training_run", "inference_run", "model_keys", "model_openings"]


def _witness_step(circuit: Circuit, graph, vals: dict, t: int, out: dict) -> None:
    """Fill ``out`` with the tensors of step ``t`` from a fixed-point run of ``graph`` (a graph
    of :func:`circuits.trace_training` or :func:`circuits.trace` of the standard MLP)."""
    shapes = circuit.shapes
    nodes = {n.output: n for n in graph.nodes}
    L, p = circuit.layers, circuit.param_scale
    half = lambda k: (1 << k) >> 1  # noqa: E731  the remainder's value on padding entries

    def planes(kind, l, arr, fn, width, what, fill=0):
        if not width:  # e.g. the loss remainder when batch x outputs = 1: no planes, it must be 0
            fn(arr, width, what)
            return
        for k, plane in enumerate(fn(fac4dnn.pad(arr, shapes[kind(t, l, 0)], fill), width, what)):
            out[kind(t, l, k)] = plane

    for l in range(1, L + 1):
        pre = str(2 * (l - 1))
        h = nodes[f"{pre}.matmul"].inputs[0]
        out[circuit.h(t, l)] = vals[h]
        out[TensorKind.P(t, l)] = vals[f"{pre}.matmul"]
        z = vals[f"{pre}.z"]
        out[TensorKind.Z(t, l)] = z
        planes(TensorKind.R, l, vals[f"{pre}.z.rem"], bits.unsigned, p, f"rescale remainder (layer {l})", half(p))
        if circuit.has_bias(l):
            bias = np.asarray(vals[f"{pre}.bias"]).astype(np.int64)
            out[TensorKind.BB(t, l)] = np.broadcast_to(bias, (circuit.rows[t], bias.shape[0]))
        for k, plane in enumerate(bits.signed(fac4dnn.pad(z, circuit.act(l)) - 1, circuit.q_act,
                                              f"pre-activation of layer {l} at step {t}")):
            out[TensorKind.Zb(t, l, k)] = plane
        if not circuit.training:
            continue

        def sgd(param, kinds, k, what):
            """Gradient, update, next value, remainder planes and update planes of ``param``."""
            grad, update, nxt, rem, update_bits = kinds
            out[grad(t, l)] = vals[f"{param}.grad"]
            out[update(t, l)] = vals[param] - vals[f"{param}.next"]
            out[nxt(t + 1, l)] = vals[f"{param}.next"]
            planes(rem, l, vals[f"{param}.next.rem"], bits.unsigned, k, f"SGD remainder of {what} (layer {l})",
                   half(k))
            planes(update_bits, l, out[update(t, l)], bits.signed, circuit.q_update,
                   f"update of {what} of layer {l} at step {t}")

        out[TensorKind.G(t, l)] = vals[nodes[f"{pre}.weight.grad"].inputs[0]]
        sgd(f"{pre}.weight", (TensorKind.GW, TensorKind.U, TensorKind.W, TensorKind.RU, TensorKind.Ub),
            circuit.k_update, "the weights")
        if circuit.has_bias(l):
            sgd(f"{pre}.bias", (TensorKind.GB, TensorKind.UB, TensorKind.B, TensorKind.RUB, TensorKind.UBb),
                circuit.k_bias_update, "the bias")
        if l >= 2:
            out[TensorKind.GX(t, l)] = vals[f"{pre}.in.grad.raw"]
            out[TensorKind.GH(t, l)] = vals[f"{pre}.in.grad"]
            planes(TensorKind.RH, l, vals[f"{pre}.in.grad.rem"], bits.unsigned, p, f"rescale remainder (layer {l})",
                   half(p))
            planes(TensorKind.GHb, l, vals[f"{pre}.in.grad"], bits.signed, circuit.q_grad,
                   f"input gradient of layer {l} at step {t}")
        if l == L:
            n = circuit.loss_count(t)
            rl = fac4dnn.pad(vals["loss.grad.rem"], circuit.act(L), n // 2)
            out[TensorKind.RL(t, l)] = rl
            out[TensorKind.Y(t, l)] = vals["y"]
            planes(TensorKind.RLb, l, rl, bits.unsigned, circuit.k_loss, "loss remainder")
            planes(TensorKind.RL2b, l, (n - 1) - rl, bits.unsigned, circuit.k_loss, "loss remainder")
            planes(TensorKind.Gb, l, vals["loss.grad"], bits.signed, circuit.q_grad, "loss gradient")


def _check_updates(graph, vals: dict, t: int) -> None:
    """Refuse (ValueError) a step whose SGD updates round away: the proof would be about
    parameters that do not move while the user's float training moves them."""
    for node in graph.nodes:
        if node.op != "sgd_update":
            continue
        param, grad = node.inputs
        k = node.attrs["lr_bits"] + graph[grad].scale - graph[param].scale
        exact = np.asarray(vals[grad], dtype=np.float64) * (node.attrs["lr_q"] / 2.0**k)
        rms = float(np.sqrt(np.mean(exact ** 2)))
        if 0 < rms < 1:
            raise ValueError(f"the SGD updates of {param} at step {t} underflow: on average {rms:.2g} units of "
                             f"the parameters' last place 2^-{graph[param].scale}, so most round to zero; "
                             "commit the model with a larger param_scale or raise the learning rate")


def _with_ranges(circuit: Circuit, values: dict) -> Circuit:
    """``circuit`` with the narrowest range widths that hold the witness's data and initial
    parameters, and ``values`` completed with their bit planes (:meth:`Circuit.range_checks`)."""
    checked = [(key, key.kind in (TensorKind.X, TensorKind.Y)) for key, _, _ in circuit.range_checks()]
    circuit = dataclasses.replace(
        circuit, data_bits=bits.signed_width([values[k] for k, is_data in checked if is_data]),
        param_bits=bits.signed_width([values[k] for k, is_data in checked if not is_data]))
    for key, kind, width in circuit.range_checks():
        planes = bits.signed(fac4dnn.pad(values[key], circuit.shapes[key]), width, tensor_name(key))
        for j, plane in enumerate(planes):
            values[kind(key.step, key.layer, j)] = plane
    return circuit


def _check_limits(widths, batch: int) -> None:
    """Refuse what the proof format cannot state (the parser enforces the same limits)."""
    if len(widths) - 1 > MAX_LAYERS or max(widths) > MAX_WIDTH or batch > MAX_BATCH:
        raise ValueError(f"too large to prove: at most {MAX_LAYERS} layers, widths up to "
                         f"{MAX_WIDTH} and batches up to {MAX_BATCH} (got {len(widths) - 1} layers, "
                         f"widths {widths}, batch {batch})")


@dataclass(frozen=True)
class Run:
    """What the prover computed: the circuit, every tensor of the witness, the final integer
    parameters (standard names) and the published tensors the statement reuses."""

    circuit: Circuit
    values: dict
    final: dict
    reused: dict  # statement key -> (Commitment, Opening)


def model_keys(circuit: Circuit, step: int) -> list[tuple[TensorKey, str]]:
    """``(TensorKind.W or B (step, l), standard name)`` of every parameter, weights then biases."""
    L = circuit.layers
    out = [(TensorKind.W(step, l), f"{2 * (l - 1)}.weight") for l in range(1, L + 1)]
    return out + [(TensorKind.B(step, l), f"{2 * (l - 1)}.bias") for l in range(1, L + 1) if circuit.has_bias(l)]


def model_openings(circuit: Circuit, step: int, opening: ModelOpening, key: commit.CommitKey) -> dict:
    """``{statement key: (Commitment, Opening)}`` of ``opening``'s parameters as the model after
    ``step`` steps (checked against its published commitment)."""
    return {k: pair for (k, _), pair in zip(model_keys(circuit, step), opening.openings(key))}


class FixedStep(NamedTuple):
    """One SGD step of :func:`fixed_steps`."""

    t: int  # the step's position in the run
    graph: object  # circuits.Graph of the step (its batch's row count)
    values: dict  # every tensor of the step's fixed-point run
    state: dict  # the parameters after the step, by standard name


def fixed_steps(model: ModelOpening, data: DatasetOpening, indices: list[int], lr: float,
                 refuse_underflow: bool = True, first_step: int = 0):
    """Run SGD on ``data``'s batches ``indices`` in exact fixed point from ``model``, one
    :class:`FixedStep` at a time (only the current step is held), refusing updates that round
    away unless ``refuse_underflow`` is false; ``first_step`` numbers the steps in messages."""
    mc, dc = model.commitment, data.commitment
    if (mc.widths[0], mc.widths[-1]) != (dc.features, dc.outputs):
        raise ValueError(f"the model maps {mc.widths[0]} features to {mc.widths[-1]} outputs, the dataset has "
                         f"X with {dc.features} and Y with {dc.outputs} columns")
    _check_limits(mc.widths, dc.batch_size)
    architecture = model.to_torch()
    graphs = {n: circuits.trace_training(architecture, n, lr, scale_bits=dc.scale_bits, param_scale=mc.param_scale)
              for n in sorted({dc.rows[i] for i in indices})}
    state = model.integers()
    for t, i in enumerate(indices):
        graph = graphs[dc.rows[i]]
        inputs = {"x": data.x[i], "y": data.y[i], **state}
        vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        if refuse_underflow:
            _check_updates(graph, vals, first_step + t)
        state = {n: np.asarray(vals[f"{n}.next"]).astype(np.int64) for n in state}
        yield FixedStep(t, graph, vals, state)


def training_run(model: ModelOpening, data: DatasetOpening, indices: list[int], lr: float,
                  key: commit.CommitKey, progress=None, refuse_underflow: bool = True, first_step: int = 0) -> Run:
    """The witness of the SGD steps on ``data``'s batches ``indices`` from ``model`` (as
    :func:`fixed_steps`)."""
    mc, dc = model.commitment, data.commitment
    lr_q, lr_bits = quantize_lr(lr)
    rows = tuple(dc.rows[i] for i in indices)
    circuit = Circuit(mc.widths, dc.batch_size, len(indices), dc.scale_bits, lr_q, lr_bits, True,
                      mc.biases if any(mc.biases) else (), param_scale=mc.param_scale, rows=rows)
    # the openings first: a corrupted opening file is named before any work
    reused = model_openings(circuit, 0, model, key)
    opened = {i: data.batch(i, key) for i in sorted(set(indices))}
    state = model.integers()
    values = {k: state[name] for k, name in model_keys(circuit, 0)}
    for step in fixed_steps(model, data, indices, lr, refuse_underflow, first_step):
        _witness_step(circuit, step.graph, step.values, step.t, values)
        state = step.state
        if progress:
            progress("witness", step.t + 1, len(indices))
    for t, i in enumerate(indices):
        reused[TensorKind.X(t, 1)], reused[TensorKind.Y(t, circuit.layers)] = opened[i]
    return Run(_with_ranges(circuit, values), values, state, reused)


def inference_run(model: ModelOpening, x: np.ndarray, key: commit.CommitKey) -> Run:
    """The witness of ``model`` on the float inputs ``x`` (``(batch, features)``) in exact fixed
    point at the model's activation scale (``final``: the model's parameters)."""
    mc = model.commitment
    _check_limits(mc.widths, x.shape[0])
    xq = FixedPoint(mc.scale_bits).encode(x)
    committed.check_encoding(x, xq, mc.scale_bits, "X")
    circuit = Circuit(mc.widths, x.shape[0], 1, mc.scale_bits, training=False,
                      biases=mc.biases if any(mc.biases) else (), param_scale=mc.param_scale)
    reused = model_openings(circuit, 0, model, key)
    graph = circuits.trace(model.to_torch(), x, mc.scale_bits, mc.param_scale)
    state = model.integers()
    inputs = {"x": xq, **state}
    vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
    values = {k: state[name] for k, name in model_keys(circuit, 0)}
    _witness_step(circuit, graph, vals, 0, values)
    return Run(_with_ranges(circuit, values), values, state, reused)
