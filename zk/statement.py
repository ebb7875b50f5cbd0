"""What a training or inference proof is about: :class:`TrainingStatement`.

The statement is public: the architecture (the model's forward graph, :mod:`zk.architecture`), the hyperparameters, the number of steps, the proved
ranges, commitments to the initial weights, to every step's data batch and to the final weights
(inference: to the data, the model and the output), and which batch of which published dataset
each step used. It derives the aggregated circuit (:class:`zk.fac4dnn.Circuit`) the proof is
about, describes itself for people, absorbs itself into the transcript and has its section of
the proof file (:mod:`zk.proof_format`), parsed bounded and validating.
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

import numpy as np

from circuits import quantize_lr
from circuits.graph import LOSSES

from . import committed, fac4dnn
from .commit import Commitment
from .errors import ProofFormatError, StatementError
from .architecture import Architecture, Scaled
from .fac4dnn import Circuit
from .keys import TensorKey
from .model import ModelCommitment
from .transcript import Transcript
from .wire import Reader, section

__all__ = ["TrainingStatement", "MAX_BATCH", "MAX_STEPS", "tensor_name",
           "read_commitments"]

#: Bounds a statement may declare (parsing refuses more before allocating anything).
MAX_BATCH, MAX_STEPS = 1 << 16, 1 << 12


@dataclass(frozen=True)
class TrainingStatement(Scaled):
    """What a proof is about. ``architecture``: the model's forward graph with its fixed-point
    scales. ``commitments`` maps the circuit's statement keys (:class:`zk.keys.TensorKey`: the data
    ``VALUE(t, "x")`` and targets ``VALUE(t, "y")`` of every step, every parameter ``VALUE(0 or T,
    name)``; inference: the output) to Hyrax commitments. ``data_bits`` and ``param_bits``: the
    proved ranges (two's complement widths, scale included) of the data and targets, and of the
    parameters (the initial ones, and those every step makes). Per step: ``rows`` (the batch's real rows) and ``batch_indices`` (which batch of the
    dataset whose digest is ``dataset`` it used; :data:`zk.committed.NO_DIGEST` when the data was
    not published before the proof). ``momentum``, ``dampening``, ``weight_decay``: torch.optim.SGD's
    options; ``resumed``: the run starts from an earlier proof's momentum buffers (in the initial
    model), else without any."""

    architecture: Architecture
    batch_size: int
    steps: int
    lr: float
    training: bool
    commitments: dict
    data_bits: int = 0
    param_bits: int = 0
    rows: tuple[int, ...] = ()
    batch_indices: tuple[int, ...] = ()
    dataset: bytes = committed.NO_DIGEST
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    resumed: bool = False
    loss: str = "mse"
    #: the aggregated circuit the statement is about, derived from the fields above
    circuit: Circuit = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check that the statement is well formed (sizes within the format's limits, a usable
        learning rate, 0 for inference, one row count and batch index per step) and derive its
        circuit; StatementError naming the problem. Whether its equations stay below the magnitude
        bound is :meth:`Circuit.check_sound`, asked by the provers, the verifier and the parser."""
        batch, steps = self.batch_size, self.steps
        if not isinstance(self.architecture, Architecture):
            raise StatementError(f"the architecture is a {type(self.architecture).__name__}, not an Architecture")
        if not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise StatementError(f"batch size {batch!r} out of range [1, {MAX_BATCH}]")
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS or (not self.training and steps != 1):
            raise StatementError(f"{steps!r} steps out of range")
        if self.training and not (isinstance(self.lr, float) and np.isfinite(self.lr) and 0 < self.lr < 2**15):
            raise StatementError(f"learning rate {self.lr!r} out of range")
        if not self.training and self.lr != 0.0:
            raise StatementError(f"an inference statement has learning rate 0, not {self.lr!r}")
        if not all(isinstance(b, int) and 2 <= b <= fac4dnn.MAX_RANGE_BITS
                   for b in (self.data_bits, self.param_bits)):
            raise StatementError(f"range widths {self.data_bits!r}, {self.param_bits!r} out of range "
                                 f"[2, {fac4dnn.MAX_RANGE_BITS}]")
        if not (isinstance(self.rows, tuple) and len(self.rows) == steps
                and all(isinstance(n, int) and 1 <= n <= batch for n in self.rows)):
            raise StatementError(f"the statement needs one row count in [1, {batch}] per step")
        if not (isinstance(self.batch_indices, tuple) and len(self.batch_indices) == steps
                and all(isinstance(i, int) and 0 <= i < 1 << 32 for i in self.batch_indices)):
            raise StatementError("the statement needs one batch index per step")
        if not isinstance(self.dataset, bytes) or len(self.dataset) != committed.DIGEST_BYTES:
            raise StatementError("the statement's dataset digest is not 32 bytes")
        if not self.training and (self.dataset != committed.NO_DIGEST or self.batch_indices != (0,)):
            raise StatementError("an inference statement names no dataset")
        options = (self.momentum, self.dampening, self.weight_decay)
        if not all(isinstance(v, float) and 0 <= v <= 1 for v in options) or (not self.training and any(options)):
            raise StatementError(f"SGD options (momentum, dampening, weight decay) {options!r}: floats in [0, 1], "
                                 "0 for inference")
        if not isinstance(self.resumed, bool):
            raise StatementError(f"resumed must be a bool, got {self.resumed!r}")
        if self.loss not in LOSSES or (not self.training and self.loss != "mse"):
            raise StatementError(f"loss {self.loss!r}: one of {', '.join(LOSSES)} ('mse' for inference)")
        try:
            lr_q, lr_bits = quantize_lr(self.lr) if self.training else (0, 0)
            circuit = Circuit(self.architecture, batch, steps, lr_q, lr_bits, self.training, self.data_bits,
                              self.param_bits, self.rows, *options, self.resumed, self.loss)
        except ValueError as exc:
            raise StatementError(str(exc)) from None
        object.__setattr__(self, "circuit", circuit)

    @property
    def widths(self) -> tuple[int, ...] | None:
        """An MLP's widths (input, hidden layers, output); None for another architecture."""
        return self.architecture.widths

    def batch_commitments(self, t: int) -> tuple[Commitment, Commitment]:
        """The commitments to step ``t``'s data and targets."""
        return self.commitments[self.circuit.data_key(t)], self.commitments[self.circuit.target_key(t)]

    def _model(self, step: int) -> ModelCommitment:
        c = self.circuit
        coms = [self.commitments[c.param_key(name, step)] for name in c.model_tensors(step)]
        n = len(c.params)
        state = tuple((name, c.true_shape(c.param_key(name, step))) for name in c.model_tensors(step)[n:])
        return ModelCommitment(self.architecture, tuple(coms[:n]), state, tuple(coms[n:]))

    @property
    def initial_model(self) -> ModelCommitment:
        """The commitment to the parameters the proof starts from (for inference: the model)."""
        return self._model(0)

    @property
    def final_model(self) -> ModelCommitment:
        """The commitment to the trained parameters (training statements only)."""
        if not self.training:
            raise ValueError("an inference statement has no final model")
        return self._model(self.steps)

    @property
    def data(self) -> list[Commitment]:
        """Commitments to the data batches ``X_t`` (and, for training, the targets ``Y_t``)."""
        c = self.circuit
        keys = [c.data_key(t) for t in range(self.steps)] + \
            ([c.target_key(t) for t in range(self.steps)] if self.training else [])
        return [self.commitments[k] for k in keys]

    def describe(self) -> str:
        kind = "training" if self.training else "inference"
        lines = [f"zkfhe {kind} proof statement",
                 f"  architecture : {self.architecture.describe()}",
                 f"  batch size   : {self.batch_size}",
                 f"  fixed point  : activations 2^{self.scale_bits}, parameters 2^{self.param_scale}",
                 f"  ranges       : data {self.data_bits} bits, parameters {self.param_bits} bits (every step) "
                 "(two's complement, proved)"]
        if self.training:
            options = [f"{name} {v}" for name, v in (("momentum", self.momentum), ("dampening", self.dampening),
                                                        ("weight decay", self.weight_decay)) if v]
            lines += [f"  steps        : {self.steps}", f"  learning rate: {self.lr}",
                      f"  optimizer    : torch.optim.SGD{' (' + ', '.join(options) + ')' if options else ''}",
                      f"  loss         : {_LOSS_NAMES[self.loss]} (mean over each batch's real rows)",
                      f"  dataset      : {self.dataset.hex() if self.dataset != committed.NO_DIGEST else 'not published'}",
                      f"  batches used : {_ranges(self.batch_indices)}",
                      f"  initial model: {self.initial_model.digest.hex()}",
                      f"  final model  : {self.final_model.digest.hex()}"]
        else:
            lines.append(f"  model        : {self.initial_model.digest.hex()}")
        for key, c in self.commitments.items():
            lines.append(f"  commitment   : {tensor_name(self.circuit, key):36s} {c.to_bytes()[3:11].hex()}…")
        return "\n".join(lines)

    def absorb(self, t: Transcript) -> None:
        t.absorb("statement/architecture", self.architecture.data)
        t.absorb_ints("statement/params", [self.batch_size, self.steps, int(self.training), self.data_bits,
                                           self.param_bits])
        t.absorb("statement/lr", struct.pack("<d", self.lr))
        t.absorb("statement/sgd", struct.pack("<dddBB", self.momentum, self.dampening, self.weight_decay,
                                              self.resumed, LOSSES.index(self.loss)))
        t.absorb_ints("statement/rows", self.rows)
        t.absorb_ints("statement/batch-indices", self.batch_indices)
        t.absorb("statement/dataset", self.dataset)
        for key, c in self.commitments.items():
            t.absorb(f"statement/{key}", c.to_bytes())

    def to_bytes(self) -> bytes:
        """``architecture section || batch, steps (u32) || data bits, parameter bits (1 byte
        each) || lr, momentum, dampening, weight decay (f64 each) || resumed, loss (1 byte each: 0 MSE,
        1 cross-entropy) || dataset digest (32 bytes) ||
        per step: batch index, rows (u32 each)`` then one section per statement commitment."""
        head = section(self.architecture.data)
        head += struct.pack("<IIBBddddBB", self.batch_size, self.steps, self.data_bits, self.param_bits, self.lr,
                            self.momentum, self.dampening, self.weight_decay, self.resumed,
                            LOSSES.index(self.loss)) + self.dataset
        head += b"".join(struct.pack("<II", i, n) for i, n in zip(self.batch_indices, self.rows))
        return head + b"".join(section(c.to_bytes()) for c in self.commitments.values())

    @classmethod
    def read(cls, data: bytes, training: bool, following: int) -> "TrainingStatement":
        """Parse a statement section; ``following``: how many proof bytes come after it, checked
        against what the statement implies before anything proportional to it is allocated."""
        r = Reader(data)
        architecture = Architecture.read(r.section())
        batch, steps = r.unpack("<I"), r.unpack("<I")
        data_bits, param_bits = r.unpack("<B"), r.unpack("<B")
        lr = r.unpack("<d")
        options = tuple(r.unpack("<d") for _ in range(3))
        resumed, loss = r.unpack("<B"), r.unpack("<B")
        if resumed > 1:
            raise ProofFormatError("statement: the resumed flag must be 0 or 1")
        if loss >= len(LOSSES):
            raise ProofFormatError(f"statement: unknown loss {loss}")
        digest = r.take(committed.DIGEST_BYTES)
        if not 1 <= steps <= MAX_STEPS or r.remaining() < 8 * steps:
            raise ProofFormatError(f"statement: {steps} steps (at most {MAX_STEPS}, 8 bytes each)")
        per_step = [struct.unpack("<II", r.take(8)) for _ in range(steps)]
        try:
            stmt = cls(architecture, batch, steps, lr, training, {}, data_bits, param_bits,
                       tuple(n for _, n in per_step), tuple(i for i, _ in per_step), digest, *options, bool(resumed),
                       LOSSES[loss])
            stmt.circuit.check_sound()
        except StatementError as exc:
            raise ProofFormatError(f"statement: {exc}") from None
        circuit = stmt.circuit
        need = len(circuit.statement_keys) * committed.MIN_COMMITMENT_BYTES
        if r.remaining() < need:
            raise ProofFormatError(f"statement: declares {len(circuit.statement_keys)} commitments "
                                   f"(at least {need} bytes), the section has {r.remaining()}")
        need = circuit.proof_key_count() * committed.MIN_COMMITMENT_BYTES
        if following < need:
            raise ProofFormatError(f"the statement implies {circuit.proof_key_count()} committed tensors "
                                   f"(at least {need} bytes), the proof has {following} bytes")
        stmt.commitments.update(read_commitments(r, circuit.statement_keys))
        r.end()
        return stmt


_LOSS_NAMES = {"mse": "MSE", "cross_entropy": "softmax cross-entropy"}


def _ranges(indices) -> str:
    """``0-9, 0-4`` for batch indices 0..9 then 0..4 (runs of consecutive indices)."""
    runs, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            runs.append(f"{start}-{i}" if i != start else f"{i}")
            start = None
    return ", ".join(runs[:8]) + (f", ... ({len(runs)} runs)" if len(runs) > 8 else "")


def tensor_name(circuit: Circuit, key: TensorKey) -> str:
    """A statement tensor of ``circuit``'s for people (``describe``, error messages)."""
    if key.tensor in circuit.params:
        return f"parameter {key.tensor} after {key.step} step(s)"
    if key.tensor in circuit.states:
        return f"momentum buffer {key.tensor} after {key.step} step(s)"
    return {"x": f"data batch X[{key.step}]", "y": f"targets Y[{key.step}]"}.get(key.tensor, f"output {key.tensor}")


def read_commitments(r: Reader, keys) -> dict:
    """One commitment section per ``(key, shape)`` of ``keys``, each checked to have the layout
    of its shape: ``{key: Commitment}``."""
    out = {}
    for key, shape in keys:
        c = Commitment.from_bytes(r.section())
        if (c.num_vars, c.col_vars) != committed.layout(shape):
            raise ProofFormatError(f"commitment {key}: layout does not match shape {shape}")
        out[key] = c
    return out
