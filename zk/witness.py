"""The prover's witness: the SGD steps (or the inference) run in exact fixed point.

:func:`fixed_steps` runs the steps of :func:`zk.fac4dnn.step_graph` (the graph the circuit is
lowered from) on committed data from a committed model (:mod:`zk.dataset`, :mod:`zk.model`), refusing updates that round away;
:func:`training_run` and :func:`inference_run` turn the runs into every tensor of the circuit
(:mod:`zk.fac4dnn`): activations, gradients, updates, remainders and their limbs, and the
range-checked data and parameters with their limbs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import circuits
from circuits import FixedPoint, quantize_lr

from . import bits, commit, committed, fac4dnn, magnitudes
from .dataset import DatasetOpening
from .errors import StatementError
from .fac4dnn import Circuit
from .keys import TensorKey
from .model import ModelOpening
from .statement import MAX_BATCH, tensor_name

__all__ = ["Run", "FixedStep", "SGDOptions", "fixed_steps", "training_run", "inference_run", "model_keys", "model_openings"]


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
    """``circuit`` with the narrowest data range that holds the witness's data, and ``values``
    completed with the statement's range checks' limbs (:meth:`Circuit.statement_checks`); the
    parameters' range is the circuit's already (the steps' witness depends on it)."""
    keys = [key for key, _ in circuit.range_checks()]
    circuit = whole_limbs(circuit, data_bits=bits.signed_width([values[k] for k in keys if k.tensor in ("x", "y")]))
    for check in circuit.statement_checks():
        values.update(check.decompose(fac4dnn.pad(values[check.key], circuit.shapes[check.key]),
                                      tensor_name(circuit, check.key)))
    return circuit


def whole_limbs(circuit: Circuit, **widths) -> Circuit:
    """``circuit`` with the range widths ``widths`` (``param_bits``, ``data_bits``: the narrowest that
    hold the witness) rounded up to whole limbs, unless an equation could then wrap
    (:mod:`zk.magnitudes`; the widths then stay as they are). A top limb of ``b < limb_bits`` bits
    is looked up twice (the second time at scale ``2^(limb_bits - b)``), a whole one once: the same
    committed limbs, fewer lookup leaves, and a statement as sound (every bound is computed from
    the widths it declares)."""
    L = circuit.limb_bits  # of the circuit's size alone
    wide = dataclasses.replace(circuit, **{name: -(-w // L) * L for name, w in widths.items()})
    try:
        magnitudes.check(wide)
    except StatementError:
        return dataclasses.replace(circuit, **widths)
    return wide


def _check_limits(batch: int) -> None:
    """Refuse what the proof format cannot state (the parser enforces the same limit)."""
    if batch > MAX_BATCH:
        raise ValueError(f"too large to prove: batches up to {MAX_BATCH} rows (got {batch})")


@dataclass(frozen=True)
class Run:
    """What the prover computed: the circuit, every tensor of the witness, the final integer
    parameters (standard names) and the published tensors the statement reuses."""

    circuit: Circuit
    values: dict
    final: dict
    reused: dict  # statement key -> (Commitment, Opening)
    final_buffers: dict = dataclasses.field(default_factory=dict)  # momentum buffers after the last step


def model_keys(circuit: Circuit, step: int) -> list[tuple[TensorKey, str]]:
    """``(statement key, name)`` of every parameter (and momentum buffer the statement holds)
    after ``step`` steps."""
    return [(circuit.param_key(name, step), name) for name in circuit.model_tensors(step)]


def model_openings(circuit: Circuit, step: int, opening: ModelOpening, key: commit.CommitKey) -> dict:
    """``{statement key: (Commitment, Opening)}`` of ``opening``'s parameters as the model after
    ``step`` steps (checked against its published commitment)."""
    return {circuit.param_key(name, step): pair for name, pair in opening.openings(key)}


class FixedStep(NamedTuple):
    """One SGD step of :func:`fixed_steps`."""

    t: int  # the step's position in the run
    graph: object  # circuits.Graph of the step (its batch's row count)
    values: dict  # every tensor of the step's fixed-point run
    state: dict  # the parameters after the step, by standard name
    buffers: dict  # the momentum buffers after the step, by name (empty without momentum)


def fixed_steps(model: ModelOpening, data: DatasetOpening, indices: list[int], lr: float,
                refuse_underflow: bool = True, first_step: int = 0, sgd: "SGDOptions | None" = None):
    """Run SGD (``sgd``: momentum, dampening, weight decay; none by default) on ``data``'s batches
    ``indices`` in exact fixed point from ``model``, one :class:`FixedStep` at a time (only the
    current step is held), refusing updates that round away unless ``refuse_underflow`` is false;
    ``first_step`` numbers the steps in messages."""
    mc, dc = model.commitment, data.commitment
    a = mc.architecture
    if (a.features, a.outputs) != (dc.features, dc.outputs):
        raise ValueError(f"the model maps {a.features} features to {a.outputs} outputs, the dataset has "
                         f"X with {dc.features} and Y with {dc.outputs} columns")
    if mc.scale_bits != dc.scale_bits:
        raise ValueError(f"the model is committed at scale 2^{mc.scale_bits}, the data at 2^{dc.scale_bits}")
    _check_limits(dc.batch_size)
    sgd = sgd or SGDOptions()
    params, buffers = model.integers(), model.state_integers()
    if buffers and not sgd.momentum:
        raise ValueError("the model carries momentum buffers (an earlier run with momentum): train it with momentum")
    state = {**params, **buffers}  # the next step's inputs besides the batch: parameters, momentum buffers
    for t, i in enumerate(indices):
        first = not sgd.momentum or (t == 0 and not buffers)
        graph = fac4dnn.step_graph(a, dc.rows[i], lr, (sgd.momentum, sgd.dampening, sgd.weight_decay, first), sgd.loss)
        inputs = {"x": data.x[i], "y": data.y[i], **state}
        vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        if refuse_underflow:
            _check_updates(graph, vals, first_step + t)
        state = {name: np.asarray(vals[tensor]) for name, tensor in graph.outputs.items() if name != "out"}
        yield FixedStep(t, graph, vals, {n: state[n].astype(np.int64) for n in params},
                        {n: v for n, v in state.items() if n not in params})


class SGDOptions(NamedTuple):
    """The training's options besides the learning rate: torch.optim.SGD's (the run starts without
    buffers) and the loss (``"mse"`` or ``"cross_entropy"``, :data:`circuits.graph.LOSSES`)."""

    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    loss: str = "mse"

    @property
    def optimizer(self) -> dict:
        """The ``torch.optim.SGD`` keyword arguments."""
        return {"momentum": self.momentum, "dampening": self.dampening, "weight_decay": self.weight_decay}


def training_run(model: ModelOpening, data: DatasetOpening, indices: list[int], lr: float,
                 key: commit.CommitKey, progress=None, refuse_underflow: bool = True, first_step: int = 0,
                 sgd: SGDOptions | None = None) -> Run:
    """The witness of the SGD steps on ``data``'s batches ``indices`` from ``model`` (as
    :func:`fixed_steps`)."""
    mc, dc = model.commitment, data.commitment
    sgd = sgd or SGDOptions()
    lr_q, lr_bits = quantize_lr(lr)
    rows = tuple(dc.rows[i] for i in indices)
    state, buffers = model.integers(), model.state_integers()
    circuit = Circuit(mc.architecture, dc.batch_size, len(indices), lr_q, lr_bits, True, rows=rows,
                      resumed=bool(buffers) and bool(sgd.momentum), **sgd._asdict())
    # the openings first: a corrupted opening file is named before any work
    reused = model_openings(circuit, 0, model, key)
    opened = {i: data.batch(i, key) for i in sorted(set(indices))}
    # the narrowest ranges that hold the parameters at every step (the steps' witness depends on
    # them) and the data: a first fixed-point pass, then the circuit they make (lowered once)
    param_bits, data_bits = bits.signed_width(list(state.values())), 2
    for step in fixed_steps(model, data, indices, lr, refuse_underflow, first_step, sgd):
        param_bits = max(param_bits, bits.signed_width(list(step.state.values())))
        data_bits = max(data_bits, bits.signed_width([step.values["x"], step.values["y"]]))
    circuit = whole_limbs(circuit, param_bits=param_bits, data_bits=data_bits)
    initial = {**state, **buffers}
    values = {k: initial[name] for k, name in model_keys(circuit, 0)}
    for step in fixed_steps(model, data, indices, lr, refuse_underflow, first_step, sgd):
        values[circuit.data_key(step.t)], values[circuit.target_key(step.t)] = step.values["x"], step.values["y"]
        values.update(circuit.step_witness(step.t, step.values))
        state, buffers = step.state, step.buffers
        if progress:
            progress("witness", step.t + 1, len(indices))
    for t, i in enumerate(indices):
        reused[circuit.data_key(t)], reused[circuit.target_key(t)] = opened[i]
    return Run(_with_ranges(circuit, values), values, state, reused, buffers)


def inference_run(model: ModelOpening, x: np.ndarray, key: commit.CommitKey) -> Run:
    """The witness of ``model`` on the float inputs ``x`` (``(batch, features)``) in exact fixed
    point at the model's activation scale (``final``: the model's parameters)."""
    mc = model.commitment
    _check_limits(x.shape[0])
    xq = FixedPoint(mc.scale_bits).encode(x)
    committed.check_encoding(x, xq, mc.scale_bits, "X")
    state = model.integers()
    circuit = whole_limbs(Circuit(mc.architecture, x.shape[0], 1, training=False),
                          param_bits=bits.signed_width(list(state.values())))
    reused = model_openings(circuit, 0, model, key)
    inputs = {"x": xq, **state}
    vals = circuits.run(circuit.graph(x.shape[0]), inputs, mode="fixed", encoded=set(inputs))
    values = {k: state[name] for k, name in model_keys(circuit, 0)}
    values[circuit.data_key(0)] = vals["x"]
    values.update(circuit.step_witness(0, vals))
    return Run(_with_ranges(circuit, values), values, state, reused)
