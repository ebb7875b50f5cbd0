"""zkDL training and inference proofs: the public API and the proof file format.

``prove_training(model, data, lr)`` runs the SGD steps in exact fixed point through
:mod:`circuits` (the witness), commits to every tensor, and proves the aggregated FAC4DNN
circuit (:mod:`zk.fac4dnn`). The statement — architecture, hyperparameters, number of steps,
commitments to the initial weights, to every step's data batch and to the final weights, and
which batch of which published dataset each step used — is all the verifier needs besides the
proof. Published commitments (:mod:`zk.dataset`, :mod:`zk.model`) are reused as they are, so a
verifier ties a proof to a dataset and to the models before and after it by comparing bytes,
and proofs chain (:mod:`zk.chain`).

File format (all integers little-endian; every section is ``u32 length || bytes``)::

    magic "ZKTRAIN\\0" or "ZKINFER\\0" || version u8 || statement section
    || one section per committed tensor, in the circuit's canonical order
    || zero-padding relations || linear-relations blind || einsum relations || zkReLU relations
    || booleanity relations

Parsing is bounded and validating: malformed bytes raise :class:`zk.ProofFormatError` only.
"""
from __future__ import annotations

import copy
import dataclasses
import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import circuits
from circuits import FixedPoint, UnsupportedOp, quantize_lr

from . import bits, commit, committed, dataset as _dataset, fac4dnn, field, model as _model
from . import device as _device
from .bits import BooleanityProof
from .commit import Commitment
from .dataset import DatasetCommitment, DatasetOpening
from .einsum import EinsumLayout, EinsumRelationProof
from .errors import ProofFormatError, StatementError, VerificationError, malformed_as_verification_error
from .fac4dnn import AggregatedProof, Circuit
from .hadamard import HadamardProof
from .model import ModelCommitment, ModelOpening
from .padding import PaddingProof
from .transcript import Transcript
from .wire import Reader, section

__all__ = ["TrainingStatement", "TrainingProof", "InferenceProof", "prove_training",
           "verify_training", "prove_inference", "verify_inference", "synthetic_mlp",
           "synthetic_batches", "TrainingResult"]

#: 2: per-layer bias flags; 3: range widths, zero-padding proofs, magnitude bounds; 4: parameter
#: scale, rounding to nearest, rows, batch indices and dataset digest per step
VERSION = 4
MAGIC = {True: b"ZKTRAIN\0", False: b"ZKINFER\0"}
#: Bounds a statement may declare (parsing refuses more before allocating anything).
MAX_LAYERS, MAX_WIDTH, MAX_BATCH, MAX_STEPS = 64, 1 << 16, 1 << 16, 1 << 12


# ----------------------------------------------------------------------------------------
# statement
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingStatement:
    """What a proof is about. ``commitments`` maps the circuit's statement keys
    (``("X", t, 1, -1)``, ``("Y", t, L, -1)``, ``("W", 0 or T, l, -1)``, ``("B", 0 or T, l, -1)``
    for the biased layers; inference: ``("Z", 0, L, -1)`` for the output) to Hyrax commitments.
    ``biases``: per Linear layer, whether it has a bias (empty: none has). ``data_bits`` and
    ``param_bits``: the proved ranges (two's complement widths, scale included) of the data and
    targets, and of the initial weights and biases. ``param_scale``: the parameters' scale
    exponent. Per step: ``rows`` (the batch's real rows) and ``batch_indices`` (which batch of the
    dataset whose digest is ``dataset`` it used; :data:`zk.committed.NO_DIGEST` when the data was
    not published before the proof)."""

    widths: tuple[int, ...]
    batch_size: int
    steps: int
    lr: float
    scale_bits: int
    training: bool
    commitments: dict
    biases: tuple[bool, ...] = ()
    data_bits: int = 0
    param_bits: int = 0
    param_scale: int = 0
    rows: tuple[int, ...] = ()
    batch_indices: tuple[int, ...] = ()
    dataset: bytes = committed.NO_DIGEST

    @property
    def arch(self) -> tuple[int, ...]:
        return self.widths

    @property
    def circuit(self) -> Circuit:
        lr_q, lr_bits = quantize_lr(self.lr) if self.training else (0, 0)
        return Circuit(self.widths, self.batch_size, self.steps, self.scale_bits, lr_q, lr_bits,
                       self.training, self.biases, self.data_bits, self.param_bits, self.param_scale,
                       self.rows)

    def data_commitment(self, name: str, t: int) -> Commitment:
        """The commitment to step ``t``'s data ``"X"`` or targets ``"Y"``."""
        return self.commitments[("X", t, 1, -1) if name == "X" else ("Y", t, len(self.widths) - 1, -1)]

    def _model(self, step: int) -> ModelCommitment:
        n = len(self.widths) - 1
        biases = tuple(self.biases) or (False,) * n
        weights = tuple(self.commitments[("W", step, l, -1)] for l in range(1, n + 1))
        bias = tuple(self.commitments[("B", step, l, -1)] for l in range(1, n + 1) if biases[l - 1])
        return ModelCommitment(tuple(self.widths), biases, self.scale_bits, self.param_scale, weights, bias)

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

    def _select(self, name: str, step=None) -> list[Commitment]:
        return [c for k, c in self.commitments.items() if k[0] == name and (step is None or k[1] == step)]

    @property
    def initial_weights(self) -> list[Commitment]:
        return self._select("W", 0)

    @property
    def final_weights(self) -> list[Commitment]:
        return self._select("W", self.steps) if self.training else []

    @property
    def data(self) -> list[Commitment]:
        """Commitments to the data batches ``X_t`` (and, for training, the targets ``Y_t``)."""
        return self._select("X") + self._select("Y")

    def describe(self) -> str:
        kind = "training" if self.training else "inference"
        biased = [str(l) for l, b in enumerate(self.biases, start=1) if b]
        layers = f"Linear + ReLU, bias in layer(s) {', '.join(biased)}" if biased else "bias-free Linear + ReLU"
        lines = [f"zkfhe {kind} proof statement",
                 f"  architecture : MLP {'-'.join(map(str, self.widths))} ({layers})",
                 f"  batch size   : {self.batch_size}",
                 f"  fixed point  : activations 2^{self.scale_bits}, parameters 2^{self.param_scale}",
                 f"  ranges       : data {self.data_bits} bits, initial parameters {self.param_bits} bits "
                 "(two's complement, proved)"]
        if self.training:
            lines += [f"  steps        : {self.steps}", f"  learning rate: {self.lr}",
                      "  loss         : MSE (mean over each batch's real rows)",
                      f"  dataset      : {self.dataset.hex() if self.dataset != committed.NO_DIGEST else 'not published'}",
                      f"  batches used : {_ranges(self.batch_indices)}",
                      f"  initial model: {self.initial_model.digest.hex()}",
                      f"  final model  : {self.final_model.digest.hex()}"]
        else:
            lines.append(f"  model        : {self.initial_model.digest.hex()}")
        for key, c in self.commitments.items():
            lines.append(f"  commitment   : {_tensor_name(key):28s} {c.to_bytes()[3:11].hex()}…")
        return "\n".join(lines)

    def absorb(self, t: Transcript) -> None:
        t.absorb_ints("statement/widths", self.widths)
        t.absorb_ints("statement/biases", self._bias_flags())
        t.absorb_ints("statement/params", [self.batch_size, self.steps, self.scale_bits, int(self.training),
                                           self.data_bits, self.param_bits])
        t.absorb("statement/lr", struct.pack("<d", self.lr))
        t.absorb_ints("statement/param-scale", [self.param_scale])
        t.absorb_ints("statement/rows", self.rows)
        t.absorb_ints("statement/batch-indices", self.batch_indices)
        t.absorb("statement/dataset", self.dataset)
        for key, c in self.commitments.items():
            t.absorb(f"statement/{key}", c.to_bytes())

    def validated_circuit(self) -> Circuit:
        """The circuit, after checking that the statement is one a sound proof can be about: sizes
        within the format's limits, a usable learning rate (0 for inference), and every equation
        below the magnitude bound (:mod:`zk.magnitudes`); StatementError naming the problem."""
        widths, batch, steps = self.widths, self.batch_size, self.steps
        if not isinstance(widths, tuple) or not 2 <= len(widths) <= MAX_LAYERS + 1 or \
                not all(isinstance(w, int) and 1 <= w <= MAX_WIDTH for w in widths):
            raise StatementError(f"widths {widths!r}: an MLP has 2..{MAX_LAYERS + 1} widths in [1, {MAX_WIDTH}]")
        if not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise StatementError(f"batch size {batch!r} out of range [1, {MAX_BATCH}]")
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS or (not self.training and steps != 1):
            raise StatementError(f"{steps!r} steps out of range")
        if not isinstance(self.scale_bits, int) or not 1 <= self.scale_bits <= 40:
            raise StatementError(f"scale_bits {self.scale_bits!r} out of range [1, 40]")
        if self.training and not (isinstance(self.lr, float) and np.isfinite(self.lr) and 0 < self.lr < 2**15):
            raise StatementError(f"learning rate {self.lr!r} out of range")
        if not self.training and self.lr != 0.0:
            raise StatementError(f"an inference statement has learning rate 0, not {self.lr!r}")
        if not all(isinstance(b, int) and 2 <= b <= fac4dnn.MAX_RANGE_BITS
                   for b in (self.data_bits, self.param_bits)):
            raise StatementError(f"range widths {self.data_bits!r}, {self.param_bits!r} out of range "
                                 f"[2, {fac4dnn.MAX_RANGE_BITS}]")
        if not isinstance(self.param_scale, int) or not self.scale_bits <= self.param_scale <= 2 * self.scale_bits + 24:
            raise StatementError(f"parameter scale 2^{self.param_scale!r} out of range [2^{self.scale_bits}, "
                                 f"2^{2 * self.scale_bits + 24}]")
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
        try:
            circuit = self.circuit
        except ValueError as exc:
            raise StatementError(str(exc)) from None
        circuit.check_sound()
        return circuit

    def _bias_flags(self) -> list[int]:
        return [int(bool(b)) for b in self.biases] if self.biases else [0] * (len(self.widths) - 1)

    def to_bytes(self) -> bytes:
        """``n (1 byte) || widths (n x u32) || bias flags (n - 1 bytes, 0/1) || batch, steps (u32)
        || scale bits, data bits, parameter bits (1 byte each) || lr (f64) || parameter scale (1
        byte) || dataset digest (32 bytes) || per step: batch index, rows (u32 each)`` then one
        section per statement commitment."""
        head = struct.pack("<B", len(self.widths)) + b"".join(struct.pack("<I", w) for w in self.widths)
        head += bytes(self._bias_flags())
        head += struct.pack("<IIBBBdB", self.batch_size, self.steps, self.scale_bits, self.data_bits,
                            self.param_bits, self.lr, self.param_scale) + self.dataset
        head += b"".join(struct.pack("<II", i, n) for i, n in zip(self.batch_indices, self.rows))
        return head + b"".join(section(c.to_bytes()) for c in self.commitments.values())

    @classmethod
    def read(cls, data: bytes, training: bool, following: int) -> "TrainingStatement":
        """Parse a statement section; ``following``: how many proof bytes come after it, checked
        against what the statement implies before anything proportional to it is allocated."""
        r = Reader(data)
        n = r.unpack("<B")
        if not 2 <= n <= MAX_LAYERS + 1:
            raise ProofFormatError(f"statement: {n} widths (an MLP has 2..{MAX_LAYERS + 1})")
        widths = tuple(r.unpack("<I") for _ in range(n))
        flags = r.take(n - 1)
        if any(f > 1 for f in flags):
            raise ProofFormatError("statement: bias flags must be 0 or 1")
        biases = tuple(bool(f) for f in flags) if any(flags) else ()
        batch, steps, scale_bits = r.unpack("<I"), r.unpack("<I"), r.unpack("<B")
        data_bits, param_bits = r.unpack("<B"), r.unpack("<B")
        lr, param_scale, digest = r.unpack("<d"), r.unpack("<B"), r.take(committed.DIGEST_BYTES)
        if not 1 <= steps <= MAX_STEPS or r.remaining() < 8 * steps:
            raise ProofFormatError(f"statement: {steps} steps (at most {MAX_STEPS}, 8 bytes each)")
        per_step = [struct.unpack("<II", r.take(8)) for _ in range(steps)]
        stmt = cls(widths, batch, steps, lr, scale_bits, training, {}, biases, data_bits, param_bits,
                   param_scale, tuple(n for _, n in per_step), tuple(i for i, _ in per_step), digest)
        try:
            circuit = stmt.validated_circuit()
        except StatementError as exc:
            raise ProofFormatError(f"statement: {exc}") from None
        need = len(circuit.statement_keys) * _MIN_COMMITMENT
        if r.remaining() < need:
            raise ProofFormatError(f"statement: declares {len(circuit.statement_keys)} commitments "
                                   f"(at least {need} bytes), the section has {r.remaining()}")
        need = circuit.proof_key_count() * _MIN_COMMITMENT
        if following < need:
            raise ProofFormatError(f"the statement implies {circuit.proof_key_count()} committed tensors "
                                   f"(at least {need} bytes), the proof has {following} bytes")
        stmt.commitments.update(_read_commitments(r, circuit.statement_keys))
        r.end()
        return stmt


_MIN_COMMITMENT = committed.MIN_COMMITMENT_BYTES


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


def _tensor_name(key) -> str:
    """A statement tensor's name for people (``describe``, error messages)."""
    name, t, l, _ = key
    return {"X": f"data batch X[{t}]", "Y": f"targets Y[{t}]", "Z": "output",
            "W": f"weights W{l} after {t} step(s)", "B": f"bias b{l} after {t} step(s)"}[name]


_layout = committed.layout


def _read_commitments(r: Reader, keys) -> dict:
    out = {}
    for key, shape in keys:
        c = Commitment.from_bytes(r.section())
        if (c.num_vars, c.col_vars) != _layout(shape):
            raise ProofFormatError(f"commitment {key}: layout does not match shape {shape}")
        out[key] = c
    return out


# ----------------------------------------------------------------------------------------
# proofs
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingProof:
    """A proof that the statement's final weights come from ``steps`` SGD steps (or, for an
    :class:`InferenceProof`, that the output commitment is the model's output on the data)."""

    statement: TrainingStatement
    commitments: dict  # the circuit's proof keys -> Commitment
    aggregated: AggregatedProof

    training = True

    @property
    def initial_model(self) -> ModelCommitment:
        return self.statement.initial_model

    @property
    def final_model(self) -> ModelCommitment:
        """The public commitment to the trained model (what a next proof or an inference starts from)."""
        return self.statement.final_model

    def _sections(self) -> list[tuple[str, bytes]]:
        out = [("statement", self.statement.to_bytes())]
        out += [(f"commitments/{k[0]}", c.to_bytes()) for k, c in self.commitments.items()]
        agg = self.aggregated
        out += [("zero-padding sumchecks", s) for rel in agg.padding for s in rel.sections()]
        out.append(("linear relations", field.to_bytes(agg.linear_blind)))
        for name, rels in (("einsum sumchecks", agg.einsums), ("zkReLU sumchecks", agg.relus),
                           ("booleanity sumchecks", agg.booleanity)):
            out += [(name, s) for rel in rels for s in rel.sections()]
        return out

    def to_bytes(self) -> bytes:
        return MAGIC[self.training] + bytes([VERSION]) + b"".join(section(s) for _, s in self._sections())

    def size_breakdown(self) -> dict[str, int]:
        """Bytes per part of the file (section headers included)."""
        sizes = {"header": len(MAGIC[self.training]) + 1}
        for name, s in self._sections():
            sizes[name] = sizes.get(name, 0) + len(s) + 4
        return sizes

    @classmethod
    def from_bytes(cls, data) -> "TrainingProof":
        """Parse and validate; malformed input raises :class:`zk.ProofFormatError` only."""
        try:
            return cls._parse(bytes(data))
        except ProofFormatError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, struct.error) as exc:
            raise ProofFormatError(f"{cls.__name__}: {exc}") from None

    @classmethod
    def _parse(cls, data: bytes) -> "TrainingProof":
        r = Reader(data)
        magic = r.take(8)
        if magic != MAGIC[cls.training]:
            other = "an inference" if magic == MAGIC[False] else "a training" if magic == MAGIC[True] else "no zkfhe"
            raise ProofFormatError(f"not a {'training' if cls.training else 'inference'} proof "
                                   f"(the file holds {other} proof)")
        version = r.take(1)[0]
        if version != VERSION:
            raise ProofFormatError(f"unsupported proof version {version} (this zkfhe reads {VERSION})")
        head = r.section()
        statement = TrainingStatement.read(head, cls.training, r.remaining())
        circuit = statement.circuit
        commitments = _read_commitments(r, circuit.proof_keys)
        pads = [PaddingProof.read(r, _stack_vars(circuit, keys)) for _, keys in circuit.padding_groups()]
        try:
            blind = field.from_bytes(r.section(), 1)[0]
        except ValueError as exc:
            raise ProofFormatError(f"linear relations: {exc}") from None
        einsums = []
        for spec, instances in circuit.einsum_groups():
            n = 1 << (len(instances) - 1).bit_length()
            shapes = [(n, *circuit.shapes[k]) for k in instances[0][:2]]
            einsums.append(EinsumRelationProof.read(r, EinsumLayout(circuits.parse_einsum(spec, *shapes))))
        relus = [HadamardProof.read(r, _stack_vars(circuit, [i[0] for i in inst]))
                 for inst in circuit.relu_groups()]
        booleanity = [BooleanityProof.read(r, _stack_vars(circuit, keys)) for keys in circuit.bit_groups()]
        r.end()
        return cls(statement, commitments, AggregatedProof(tuple(pads), blind, tuple(einsums),
                                                           tuple(relus), tuple(booleanity)))


class InferenceProof(TrainingProof):
    training = False

    @property
    def model(self) -> ModelCommitment:
        """The commitment to the model whose output the proof is about."""
        return self.statement.initial_model


def _stack_vars(circuit: Circuit, keys) -> int:
    return _layout(circuit.shapes[keys[0]])[0] + (len(keys) - 1).bit_length()


def _domain(training: bool) -> bytes:
    return b"zkfhe/training/v2" if training else b"zkfhe/inference/v2"


def _transcript(statement: TrainingStatement, commitments: dict) -> Transcript:
    t = Transcript(_domain(statement.training))
    statement.absorb(t)
    for key, c in commitments.items():
        t.absorb(f"commitment/{key}", c.to_bytes())
    return t


# ----------------------------------------------------------------------------------------
# witness
# ----------------------------------------------------------------------------------------
def _mlp(model) -> tuple[list, tuple[bool, ...]]:
    """The Linear layers of a ``Linear, ReLU, ..., Linear`` Sequential and whether each has a bias
    (``()`` when none has); UnsupportedOp for anything else."""
    import torch.nn as nn

    if not isinstance(model, nn.Sequential):
        raise UnsupportedOp(f"zk proofs take a torch.nn.Sequential MLP, got {type(model).__name__}")
    mods = list(model.named_children())
    linears = []
    for i, (name, m) in enumerate(mods):
        want = nn.Linear if i % 2 == 0 else nn.ReLU
        if not isinstance(m, want):
            raise UnsupportedOp(
                f"module {name} ({type(m).__name__}): zk proofs support MLPs of alternating "
                "Linear and ReLU layers that start and end with Linear")
        if isinstance(m, nn.Linear):
            linears.append((name, m.bias is not None))
    if len(mods) % 2 == 0:
        raise UnsupportedOp("the model must end with a Linear layer (no final ReLU)")
    biases = tuple(b for _, b in linears)
    return [name for name, _ in linears], biases if any(biases) else ()


def mlp_layout(model) -> tuple[tuple[int, ...], tuple[bool, ...], dict[str, str]]:
    """``(widths, bias flag per layer, {standard name: state_dict name})`` of a ReLU MLP (the
    standard names are those of :meth:`zk.model.ModelOpening.to_torch`)."""
    prefixes, biases = _mlp(model)
    biases = biases or (False,) * len(prefixes)
    params = model.state_dict()
    widths = tuple([params[f"{prefixes[0]}.weight"].shape[1]] + [params[f"{p}.weight"].shape[0] for p in prefixes])
    names = {f"{2 * l}.weight": f"{p}.weight" for l, p in enumerate(prefixes)}
    names.update({f"{2 * l}.bias": f"{p}.bias" for l, p in enumerate(prefixes) if biases[l]})
    return widths, biases, names


def _witness_step(circuit: Circuit, graph, vals: dict, t: int, out: dict) -> None:
    """Fill ``out`` with the tensors of step ``t`` from a fixed-point run of ``graph`` (a graph
    of :func:`circuits.trace_training` or :func:`circuits.trace` of the standard MLP)."""
    shapes = circuit.shapes
    nodes = {n.output: n for n in graph.nodes}
    L, p = circuit.layers, circuit.param_scale
    half = lambda k: (1 << k) >> 1  # noqa: E731  the remainder's value on padding entries

    def planes(name, l, arr, fn, width, what, fill=0):
        if not width:  # e.g. the loss remainder when batch x outputs = 1: no planes, it must be 0
            fn(arr, width, what)
            return
        for k, plane in enumerate(fn(fac4dnn.pad(arr, shapes[(name, t, l, 0)], fill), width, what)):
            out[(name, t, l, k)] = plane

    for l in range(1, L + 1):
        pre = str(2 * (l - 1))
        h = nodes[f"{pre}.matmul"].inputs[0]
        out[circuit.h(t, l)] = vals[h]
        out[("P", t, l, -1)] = vals[f"{pre}.matmul"]
        z = vals[f"{pre}.z"]
        out[("Z", t, l, -1)] = z
        planes("R", l, vals[f"{pre}.z.rem"], bits.unsigned, p, f"rescale remainder (layer {l})", half(p))
        if circuit.has_bias(l):
            bias = np.asarray(vals[f"{pre}.bias"]).astype(np.int64)
            out[("BB", t, l, -1)] = np.broadcast_to(bias, (circuit.rows[t], bias.shape[0]))
        for k, plane in enumerate(bits.signed(fac4dnn.pad(z, circuit.act(l)) - 1, circuit.q_act,
                                              f"pre-activation of layer {l} at step {t}")):
            out[("Zb", t, l, k)] = plane
        if not circuit.training:
            continue

        def sgd(param, names, k, what):
            """Gradient, update, next value, remainder planes and update planes of ``param``."""
            grad, update, nxt, rem, update_bits = names
            out[(grad, t, l, -1)] = vals[f"{param}.grad"]
            out[(update, t, l, -1)] = vals[param] - vals[f"{param}.next"]
            out[(nxt, t + 1, l, -1)] = vals[f"{param}.next"]
            planes(rem, l, vals[f"{param}.next.rem"], bits.unsigned, k, f"SGD remainder of {what} (layer {l})",
                   half(k))
            planes(update_bits, l, out[(update, t, l, -1)], bits.signed, circuit.q_update,
                   f"update of {what} of layer {l} at step {t}")

        out[("G", t, l, -1)] = vals[nodes[f"{pre}.weight.grad"].inputs[0]]
        sgd(f"{pre}.weight", ("GW", "U", "W", "RU", "Ub"), circuit.k_update, "the weights")
        if circuit.has_bias(l):
            sgd(f"{pre}.bias", ("GB", "UB", "B", "RUB", "UBb"), circuit.k_bias_update, "the bias")
        if l >= 2:
            out[("GX", t, l, -1)] = vals[f"{pre}.in.grad.raw"]
            out[("GH", t, l, -1)] = vals[f"{pre}.in.grad"]
            planes("RH", l, vals[f"{pre}.in.grad.rem"], bits.unsigned, p, f"rescale remainder (layer {l})",
                   half(p))
            planes("GHb", l, vals[f"{pre}.in.grad"], bits.signed, circuit.q_grad,
                   f"input gradient of layer {l} at step {t}")
        if l == L:
            n = circuit.loss_count(t)
            rl = fac4dnn.pad(vals["loss.grad.rem"], circuit.act(L), n // 2)
            out[("RL", t, l, -1)] = rl
            out[("Y", t, l, -1)] = vals["y"]
            planes("RLb", l, rl, bits.unsigned, circuit.k_loss, "loss remainder")
            planes("RL2b", l, (n - 1) - rl, bits.unsigned, circuit.k_loss, "loss remainder")
            planes("Gb", l, vals["loss.grad"], bits.signed, circuit.q_grad, "loss gradient")


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
    checked = [(key, key[0] in ("X", "Y")) for key, _, _ in circuit.range_checks()]
    circuit = dataclasses.replace(
        circuit, data_bits=bits.signed_width([values[k] for k, is_data in checked if is_data]),
        param_bits=bits.signed_width([values[k] for k, is_data in checked if not is_data]))
    for key, name, width in circuit.range_checks():
        _, t, l, _ = key
        planes = bits.signed(fac4dnn.pad(values[key], circuit.shapes[key]), width, _tensor_name(key))
        for j, plane in enumerate(planes):
            values[(name, t, l, j)] = plane
    return circuit


def _check_limits(widths, batch: int) -> None:
    """Refuse what the proof format cannot state (the parser enforces the same limits)."""
    if len(widths) - 1 > MAX_LAYERS or max(widths) > MAX_WIDTH or batch > MAX_BATCH:
        raise ValueError(f"too large to prove: at most {MAX_LAYERS} layers, widths up to "
                         f"{MAX_WIDTH} and batches up to {MAX_BATCH} (got {len(widths) - 1} layers, "
                         f"widths {widths}, batch {batch})")


def synthetic_mlp(widths, seed: int = 0, bias: bool = False):
    """A seeded ReLU MLP ``Linear, ReLU, ..., Linear`` of the given widths (bias-free unless
    ``bias``), float32 parameters uniform in torch's default range ``±1/sqrt(fan_in)`` (for demos,
    the CLI's ``--arch``, tests and benchmarks)."""
    import torch

    rng = np.random.default_rng(seed)
    layers: list = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        linear = torch.nn.Linear(a, b, bias=bias)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (b, a)) / np.sqrt(a)))
            if bias:
                linear.bias.copy_(torch.from_numpy(rng.uniform(-1, 1, b) / np.sqrt(a)))
        layers += [linear, torch.nn.ReLU()] if i < len(widths) - 2 else [linear]
    return torch.nn.Sequential(*layers)


def synthetic_batches(widths, batch: int, steps: int, seed: int = 0) -> list:
    """``steps`` seeded ``(X, Y)`` batches, standard normal, float32."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, widths[0]), dtype=np.float32),
             rng.standard_normal((batch, widths[-1]), dtype=np.float32)) for _ in range(steps)]


def _float_inputs(x, what: str) -> np.ndarray:
    from circuits.interpret import as_array

    return as_array(x, what).astype(np.float64)


@dataclass(frozen=True)
class _Run:
    """What the prover computed: the circuit, every tensor of the witness, the final integer
    parameters (standard names) and the published tensors the statement reuses."""

    circuit: Circuit
    values: dict
    final: dict
    reused: dict  # statement key -> (Commitment, Opening)


def _model_keys(circuit: Circuit, step: int) -> list[tuple[tuple, str]]:
    """``(("W" or "B", step, l, -1), standard name)`` of every parameter, weights then biases."""
    L = circuit.layers
    out = [(("W", step, l, -1), f"{2 * (l - 1)}.weight") for l in range(1, L + 1)]
    return out + [(("B", step, l, -1), f"{2 * (l - 1)}.bias") for l in range(1, L + 1) if circuit.has_bias(l)]


def _model_opening(model, scale_bits: int, param_scale: int, key) -> ModelOpening:
    """``model`` as a :class:`ModelOpening` (committed now if it is a torch module)."""
    if isinstance(model, ModelOpening):
        if model.commitment.scale_bits != scale_bits:
            raise ValueError(f"the model is committed at scale 2^{model.commitment.scale_bits}, the data at "
                             f"2^{scale_bits}")
        return model
    return _model.commit_model(model, scale_bits, param_scale, key=key)[1]


def model_openings(circuit: Circuit, step: int, opening: ModelOpening, key: commit.CommitKey) -> dict:
    """``{statement key: (Commitment, Opening)}`` of ``opening``'s parameters as the model after
    ``step`` steps (checked against its published commitment)."""
    return {k: pair for (k, _), pair in zip(_model_keys(circuit, step), opening.openings(key))}


class _FixedStep(NamedTuple):
    t: int  # the step's position in the run
    graph: object  # circuits.Graph of the step (its batch's row count)
    values: dict  # every tensor of the step's fixed-point run
    state: dict  # the parameters after the step, by standard name


def fixed_steps(model: ModelOpening, data: DatasetOpening, indices: list[int], lr: float,
                 refuse_underflow: bool = True, first_step: int = 0):
    """Run SGD on ``data``'s batches ``indices`` in exact fixed point from ``model``, one
    :class:`_FixedStep` at a time (only the current step is held), refusing updates that round
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
        yield _FixedStep(t, graph, vals, state)


def training_run(model: ModelOpening, data: DatasetOpening, indices: list[int], lr: float,
                  key: commit.CommitKey, progress=None, refuse_underflow: bool = True, first_step: int = 0) -> _Run:
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
    values = {k: state[name] for k, name in _model_keys(circuit, 0)}
    for step in fixed_steps(model, data, indices, lr, refuse_underflow, first_step):
        _witness_step(circuit, step.graph, step.values, step.t, values)
        state = step.state
        if progress:
            progress("witness", step.t + 1, len(indices))
    for t, i in enumerate(indices):
        reused[("X", t, 1, -1)], reused[("Y", t, circuit.layers, -1)] = opened[i]
    return _Run(_with_ranges(circuit, values), values, state, reused)


def _data_opening(data, scale_bits: int, epochs: int | None, key, progress) -> DatasetOpening:
    """``data`` as a :class:`DatasetOpening`: as it is, or an iterable of ``(X, Y)`` batches (a
    DataLoader) read once per epoch and committed now."""
    if isinstance(data, DatasetOpening):
        if scale_bits != data.commitment.scale_bits:
            raise ValueError(f"the dataset is committed at scale 2^{data.commitment.scale_bits}, not 2^{scale_bits}")
        return data
    if isinstance(data, DatasetCommitment):
        raise TypeError("prove_training needs the dataset's opening (DatasetOpening), not its public commitment")
    passes = 1 if epochs is None or iter(data) is data else epochs
    batches = []
    for _ in range(passes):
        for i, batch in enumerate(data):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ValueError(f"batch {i}: expected an (X, Y) pair, got {type(batch).__name__}")
            batches.append((_float_inputs(batch[0], f"X of batch {i}"), _float_inputs(batch[1], f"Y of batch {i}")))
    if not batches:
        raise ValueError("prove_training needs at least one (X, Y) batch")
    for i, (x, y) in enumerate(batches):
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) > len(batches[0][0]):
            raise ValueError(f"batch {i}: expected X (B, features) and Y (B, outputs) with at most the first "
                             f"batch's {len(batches[0][0])} rows, got {x.shape} and {y.shape}")
    return _dataset.from_batches(batches, scale_bits, key, progress)[1]


def _schedule(batches: int, steps: int | None, epochs: int | None, start_batch: int, read_epochs: bool,
              limit: int = MAX_STEPS) -> list[int]:
    """The batch index of every step: ``start_batch``, the next, ... cycling through the dataset
    (at most ``limit`` steps: one proof's, or a run's of :func:`zk.prove_run`)."""
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if steps is None:
        steps = batches * (1 if epochs is None or read_epochs else epochs)
    if not isinstance(steps, int) or not 1 <= steps <= limit:
        hint = "; prove longer runs in segments (zk.prove_run)" if limit == MAX_STEPS else ""
        raise ValueError(f"steps must be an integer in [1, {limit}], got {steps!r}{hint}")
    if not isinstance(start_batch, int) or not 0 <= start_batch < batches:
        raise ValueError(f"start_batch must be in [0, {batches}), got {start_batch!r}")
    return [(start_batch + t) % batches for t in range(steps)]


def training_witness(model, data, lr: float, steps: int | None = None, scale_bits: int = 16, progress=None, *,
                     epochs: int | None = None, param_scale: int | None = None, start_batch: int = 0,
                     key: commit.CommitKey = commit.DEFAULT_KEY, refuse_underflow: bool = True):
    """Run the SGD steps in exact fixed point: ``(circuit, tensors, final integer parameters)``,
    ``tensors`` mapping every key of the circuit to its integer tensor (the prover's witness) and
    the parameters keyed by their standard state_dict names (arguments as :func:`prove_training`)."""
    run, _, _ = _prepare_training(model, data, lr, steps, scale_bits, progress, epochs, param_scale,
                                  start_batch, key, refuse_underflow)
    return run.circuit, run.values, run.final


def prepare_run(model, data, lr, steps, scale_bits, progress, epochs, param_scale, start_batch, key,
                limit: int = MAX_STEPS) -> tuple[ModelOpening, DatasetOpening, list[int]]:
    """The model and dataset openings (committed now if given as torch module and batches) and
    the batch index of every step, from :func:`prove_training`'s arguments."""
    if scale_bits is None:
        scale_bits = data.commitment.scale_bits if isinstance(data, DatasetOpening) else \
            model.commitment.scale_bits if isinstance(model, ModelOpening) else 16
    read_epochs = not isinstance(data, DatasetOpening) and epochs is not None
    opening = _model_opening(model, scale_bits, circuits.param_scale_for(lr, scale_bits) if param_scale is None
                             else param_scale, key)
    dataset = _data_opening(data, scale_bits, epochs, key, progress)
    indices = _schedule(dataset.commitment.batches, steps, epochs, start_batch, read_epochs, limit)
    return opening, dataset, indices


def _prepare_training(model, data, lr, steps, scale_bits, progress, epochs, param_scale, start_batch, key,
                      refuse_underflow=True):
    opening, dataset, indices = prepare_run(model, data, lr, steps, scale_bits, progress, epochs, param_scale,
                                            start_batch, key)
    return training_run(opening, dataset, indices, lr, key, progress, refuse_underflow), dataset, indices


class TrainingResult(NamedTuple):
    """What :func:`prove_training` returns: the proof, the trained float32 torch model and the
    final model's secret opening (the start of a next proof or of an inference proof)."""

    proof: "TrainingProof"
    model: object
    opening: ModelOpening


# ----------------------------------------------------------------------------------------
# API
# ----------------------------------------------------------------------------------------
def prove_witness(circuit: Circuit, values: dict, lr: float, key: commit.CommitKey = commit.DEFAULT_KEY,
                  progress=None, device="auto"):
    """Commit to a witness (``{key: integer tensor}`` for every key of ``circuit``) and prove the
    circuit on ``device`` (:mod:`zk.device`). An invalid witness yields a proof that does not verify;
    a statement whose equations could wrap modulo ``r`` is refused (:class:`zk.StatementError`)."""
    circuit.check_sound()
    with _device.using(device):
        return commit_and_prove(circuit, values, lr, key, progress)[0]


def commit_and_prove(circuit: Circuit, values: dict, lr: float, key: commit.CommitKey, progress, reused=None,
                   dataset: bytes = committed.NO_DIGEST, batch_indices=None):
    """``(proof, statement tensors {key: (Commitment, Opening)})``; ``reused``: published
    statement tensors, used as they are."""
    reused = reused or {}
    fresh = [(k, s) for k, s in circuit.statement_keys if k not in reused]
    stmt_com = {**reused, **fac4dnn.commit_tensors(circuit, values, fresh, key, _stage(progress, "commit statement"))}
    stmt_com = {k: stmt_com[k] for k, _ in circuit.statement_keys}
    proof_com = fac4dnn.commit_tensors(circuit, values, circuit.proof_keys, key,
                                       _stage(progress, "commit witness"))
    indices = tuple(range(circuit.steps)) if batch_indices is None else tuple(batch_indices)
    statement = TrainingStatement(circuit.widths, circuit.batch, circuit.steps, lr,
                                  circuit.scale_bits, circuit.training,
                                  {k: c for k, (c, _) in stmt_com.items()},
                                  circuit.biases if any(circuit.biases) else (),
                                  circuit.data_bits, circuit.param_bits, circuit.param_scale, circuit.rows,
                                  indices if circuit.training else (0,), dataset)
    commitments = {k: c for k, (c, _) in proof_com.items()}
    t = _transcript(statement, commitments)
    aggregated = fac4dnn.prove(circuit, {**stmt_com, **proof_com}, t, key, _stage(progress, "prove"))
    cls = TrainingProof if circuit.training else InferenceProof
    return cls(statement, commitments, aggregated), stmt_com


def _stage(progress, name):
    if progress is None:
        return None
    return lambda _stage, done, total: progress(name, done, total)


def prove_training(model, data, lr: float, steps: int | None = None, scale_bits: int | None = None,
                   progress=None, key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto", *,
                   epochs: int | None = None, param_scale: int | None = None,
                   start_batch: int = 0) -> TrainingResult:
    """Run SGD steps (MSE loss, mean over each batch's real rows) of a ReLU MLP in exact fixed
    point and prove them: a :class:`TrainingResult` ``(proof, trained torch model, final model's
    opening)``.

    ``model``: a ``torch.nn.Sequential`` of Linear (with or without bias) and ReLU layers, or a
    :class:`zk.ModelOpening` (a committed model, e.g. a previous proof's final model: the proof
    then starts from exactly its committed integers). ``data``: a :class:`zk.DatasetOpening`
    (a published dataset: the proof reuses its commitments and records the batch of every step),
    or any iterable of ``(X, Y)`` batches such as a torch DataLoader (committed now; the last
    batch may be smaller). Steps visit batches ``start_batch, start_batch + 1, ...`` cyclically:
    ``steps`` of them, or ``epochs`` passes (one by default); an iterable is read once per epoch.
    ``scale_bits``: activations' fixed point (default: the dataset's, else 16); ``param_scale``:
    the parameters' when ``model`` is a torch module (default
    :func:`circuits.param_scale_for`). ``progress(stage, done, total)`` is called as work
    proceeds. ``device``: ``"auto"``, ``"cpu"`` or ``"cuda"``; the proof does not depend on it.
    Inputs or updates that underflow the fixed point are refused (ValueError).
    """
    dev = _device.resolve(device)
    run, dataset, indices = _prepare_training(model, data, float(lr), steps, scale_bits, progress, epochs,
                                              param_scale, start_batch, key)
    run.circuit.check_sound()
    with _device.using(dev):
        proof, stmt_com = commit_and_prove(run.circuit, run.values, float(lr), key, progress, run.reused,
                                         dataset.commitment.digest, indices)
    c = run.circuit
    final = {name: stmt_com[k] for k, name in _model_keys(c, c.steps)}
    opening = _model.from_integers(c.widths, c.biases or (False,) * c.layers, c.scale_bits, c.param_scale,
                                   run.final, key, final)
    return TrainingResult(proof, trained_model(model, opening), opening)


def trained_model(model, opening: ModelOpening):
    """The torch model holding ``opening``'s parameters: a copy of ``model`` when it is a torch
    module (its own parameter names and dtypes), else :meth:`ModelOpening.to_torch`."""
    if isinstance(model, ModelOpening):
        return opening.to_torch()
    trained = copy.deepcopy(model)
    names = mlp_layout(model)[2]
    state = trained.state_dict()
    for standard, v in opening.to_torch().state_dict().items():
        state[names[standard]] = v.to(state[names[standard]].dtype)
    trained.load_state_dict(state)
    return trained


def inference_witness(model, X, scale_bits: int | None = None, key: commit.CommitKey = commit.DEFAULT_KEY):
    """Run ``model`` (torch or :class:`zk.ModelOpening`) on ``X`` in exact fixed point:
    ``(circuit, tensors)`` as in :func:`training_witness`."""
    return _inference_run(model, X, scale_bits, key)[:2]


def _inference_run(model, X, scale_bits, key):
    if scale_bits is None:
        scale_bits = model.commitment.scale_bits if isinstance(model, ModelOpening) else 16
    # a torch model is committed at the activations' scale: inference needs no master weights
    opening = _model_opening(model, scale_bits, scale_bits, key)
    mc = opening.commitment
    x = _float_inputs(X, "X")
    if x.ndim != 2 or x.shape[1] != mc.widths[0] or not len(x):
        raise ValueError(f"X must be (batch, {mc.widths[0]}), got shape {x.shape}")
    _check_limits(mc.widths, x.shape[0])
    fp = FixedPoint(scale_bits)
    xq = fp.encode(x)
    committed.check_encoding(x, xq, scale_bits, "X")
    circuit = Circuit(mc.widths, x.shape[0], 1, scale_bits, training=False,
                      biases=mc.biases if any(mc.biases) else (), param_scale=mc.param_scale)
    reused = model_openings(circuit, 0, opening, key)
    graph = circuits.trace(opening.to_torch(), x, scale_bits, mc.param_scale)
    state = opening.integers()
    inputs = {"x": xq, **state}
    vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
    values = {k: state[name] for k, name in _model_keys(circuit, 0)}
    _witness_step(circuit, graph, vals, 0, values)
    return _with_ranges(circuit, values), values, reused


def prove_inference(model, X, scale_bits: int | None = None, progress=None,
                    key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto") -> InferenceProof:
    """Prove that the committed output is ``model(X)`` in exact fixed point (statement:
    architecture, commitments to ``X``, the parameters and the output). ``model``: a torch MLP,
    or a :class:`zk.ModelOpening` (e.g. a training proof's final model: the statement then holds
    that model's published commitments, :func:`verify_inference` with ``model=``)."""
    dev = _device.resolve(device)
    circuit, values, reused = _inference_run(model, X, scale_bits, key)
    circuit.check_sound()
    with _device.using(dev):
        return commit_and_prove(circuit, values, 0.0, key, progress, reused)[0]


def _verify(proof, cls, key, published=None, checks: commit.DeferredChecks | None = None) -> bool:
    """Type checks, then ``published()`` (the checks against published files, cheap and the most
    specific), then the proof itself (its multi-scalar equations added to ``checks`` when given)."""
    if not isinstance(proof, cls) or (cls is TrainingProof and isinstance(proof, InferenceProof)):
        raise VerificationError(f"expected a {cls.__name__}, got {type(proof).__name__}")
    statement = proof.statement
    if not isinstance(statement, TrainingStatement):
        raise VerificationError(f"the proof's statement is a {type(statement).__name__}, not a TrainingStatement")
    if statement.training is not cls.training:
        raise VerificationError(f"a {cls.__name__} cannot hold {'a training' if statement.training else 'an inference'} "
                                "statement")
    with malformed_as_verification_error(cls.__name__):
        if published is not None:
            published(statement)
        return _check(proof, key, checks)


def _check(proof, key, checks=None) -> bool:
    try:
        circuit = proof.statement.validated_circuit()
    except StatementError as exc:
        raise VerificationError(f"statement: {exc}") from None
    expected = [k for k, _ in circuit.proof_keys]
    if list(proof.commitments) != expected or \
            list(proof.statement.commitments) != [k for k, _ in circuit.statement_keys]:
        raise VerificationError("the proof's commitments do not match its statement")
    commitments = {**proof.statement.commitments, **proof.commitments}
    for k, shape in circuit.statement_keys + circuit.proof_keys:
        if not isinstance(commitments[k], Commitment) or \
                (commitments[k].num_vars, commitments[k].col_vars) != _layout(shape):
            raise VerificationError(f"commitment {k} does not have the layout of shape {shape}")
    t = _transcript(proof.statement, proof.commitments)
    fac4dnn.verify(circuit, commitments, proof.aggregated, t, key, checks)
    return True


def verify_training(proof: TrainingProof, key: commit.CommitKey = commit.DEFAULT_KEY, *,
                    dataset: DatasetCommitment | None = None, initial_model: ModelCommitment | None = None) -> bool:
    """Verify a training proof: True, or VerificationError naming the failing check. With
    ``dataset`` (a published :class:`zk.DatasetCommitment`), every step must have used one of its
    batches as committed; with ``initial_model``, training must start from that model."""
    return _verify_training(proof, key, dataset, initial_model)


def _verify_training(proof, key, dataset=None, initial_model=None, checks=None) -> bool:
    """:func:`verify_training`, its multi-scalar equations added to ``checks`` when given."""
    def published(statement):
        if dataset is not None:
            _dataset.check_statement(statement, dataset)
        if initial_model is not None:
            _model.check_statement(statement.initial_model.commitments, statement, initial_model, "initial")
    return _verify(proof, TrainingProof, key, published, checks)


def verify_inference(proof: InferenceProof, key: commit.CommitKey = commit.DEFAULT_KEY, *,
                     model: ModelCommitment | None = None) -> bool:
    """Verify an inference proof: True, or VerificationError naming the failing check. With
    ``model`` (a published :class:`zk.ModelCommitment`, e.g. ``training_proof.final_model``),
    the inference must be of exactly that model."""
    def published(statement):
        if model is not None:
            _model.check_statement(statement.initial_model.commitments, statement, model, "inference")
    return _verify(proof, InferenceProof, key, published)
