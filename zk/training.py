"""zkDL training and inference proofs: the public API and the proof file format.

``prove_training(model, batches, lr)`` runs the SGD steps in exact fixed point through
:mod:`circuits` (the witness), commits to every tensor, and proves the aggregated FAC4DNN
circuit (:mod:`zk.fac4dnn`). The statement — architecture, hyperparameters, number of steps,
commitments to the initial weights, to every data batch and to the final weights — is all the
verifier needs besides the proof.

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

import numpy as np

import circuits
from circuits import FixedPoint, UnsupportedOp, quantize_lr

from . import bits, commit, fac4dnn, field, group, mle
from . import device as _device
from .bits import BooleanityProof
from .commit import Commitment
from .einsum import EinsumLayout, EinsumRelationProof
from .errors import ProofFormatError, StatementError, VerificationError, malformed_as_verification_error
from .fac4dnn import AggregatedProof, Circuit
from .hadamard import HadamardProof
from .padding import PaddingProof
from .stack import instance_col_vars
from .transcript import Transcript
from .wire import Reader, section

__all__ = ["TrainingStatement", "TrainingProof", "InferenceProof", "prove_training",
           "verify_training", "prove_inference", "verify_inference", "synthetic_mlp",
           "synthetic_batches"]

VERSION = 3  # 2: per-layer bias flags; 3: range widths, zero-padding proofs, magnitude bounds
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
    targets, and of the initial weights and biases."""

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

    @property
    def arch(self) -> tuple[int, ...]:
        return self.widths

    @property
    def circuit(self) -> Circuit:
        lr_q, lr_bits = quantize_lr(self.lr) if self.training else (0, 0)
        return Circuit(self.widths, self.batch_size, self.steps, self.scale_bits, lr_q, lr_bits,
                       self.training, self.biases, self.data_bits, self.param_bits)

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
                 f"  fixed point  : scale 2^{self.scale_bits}",
                 f"  ranges       : data {self.data_bits} bits, initial parameters {self.param_bits} bits "
                 "(two's complement, proved)"]
        if self.training:
            lines += [f"  steps        : {self.steps}", f"  learning rate: {self.lr}",
                      "  loss         : MSE (mean)"]
        for key, c in self.commitments.items():
            lines.append(f"  commitment   : {_tensor_name(key):28s} {c.to_bytes()[3:11].hex()}…")
        return "\n".join(lines)

    def absorb(self, t: Transcript) -> None:
        t.absorb_ints("statement/widths", self.widths)
        t.absorb_ints("statement/biases", self._bias_flags())
        t.absorb_ints("statement/params", [self.batch_size, self.steps, self.scale_bits, int(self.training),
                                           self.data_bits, self.param_bits])
        t.absorb("statement/lr", struct.pack("<d", self.lr))
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
        || scale bits, data bits, parameter bits (1 byte each) || lr (f64)`` then one section per
        statement commitment."""
        head = struct.pack("<B", len(self.widths)) + b"".join(struct.pack("<I", w) for w in self.widths)
        head += bytes(self._bias_flags())
        head += struct.pack("<IIBBBd", self.batch_size, self.steps, self.scale_bits, self.data_bits,
                            self.param_bits, self.lr)
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
        lr = r.unpack("<d")
        stmt = cls(widths, batch, steps, lr, scale_bits, training, {}, biases, data_bits, param_bits)
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


#: Fewest bytes a commitment section can take: length, header and one row.
_MIN_COMMITMENT = 4 + 3 + group.POINT_BYTES


def _tensor_name(key) -> str:
    """A statement tensor's name for people (``describe``, error messages)."""
    name, t, l, _ = key
    return {"X": f"data batch X[{t}]", "Y": f"targets Y[{t}]", "Z": "output",
            "W": f"weights W{l} after {t} step(s)", "B": f"bias b{l} after {t} step(s)"}[name]


def _layout(shape) -> tuple[int, int]:
    m = sum(mle.dim_bits(shape))
    return m, instance_col_vars(m)


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


def _stack_vars(circuit: Circuit, keys) -> int:
    return _layout(circuit.shapes[keys[0]])[0] + (len(keys) - 1).bit_length()


def _domain(training: bool) -> bytes:
    return b"zkfhe/training/v1" if training else b"zkfhe/inference/v1"


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


def _witness_step(circuit: Circuit, graph, vals: dict, prefixes: list, t: int, out: dict) -> None:
    """Fill ``out`` with the tensors of step ``t`` from a fixed-point run of ``graph``."""
    shapes = circuit.shapes
    nodes = {n.output: n for n in graph.nodes}
    L, S = circuit.layers, circuit.scale_bits

    def planes(name, l, arr, fn, width, what):
        if not width:  # e.g. the loss remainder when batch x outputs = 1: no planes, it must be 0
            fn(arr, width, what)
            return
        for k, plane in enumerate(fn(fac4dnn.pad(arr, shapes[(name, t, l, 0)]), width, what)):
            out[(name, t, l, k)] = plane

    for l, p in enumerate(prefixes, start=1):
        h = nodes[f"{p}.matmul"].inputs[0]
        out[circuit.h(t, l)] = vals[h]
        out[("P", t, l, -1)] = vals[f"{p}.matmul"]
        z = vals[f"{p}.z"]
        out[("Z", t, l, -1)] = z
        rescaled = f"{p}.zw" if circuit.has_bias(l) else f"{p}.z"  # z = rescale(P) (+ bias)
        planes("R", l, vals[f"{rescaled}.rem"], bits.unsigned, S, f"rescale remainder (layer {l})")
        if circuit.has_bias(l):
            bias = np.asarray(vals[f"{p}.bias"]).astype(np.int64)
            out[("BB", t, l, -1)] = np.broadcast_to(bias, (circuit.batch, bias.shape[0]))
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
            planes(rem, l, vals[f"{param}.next.rem"], bits.unsigned, k, f"SGD remainder of {what} (layer {l})")
            planes(update_bits, l, out[(update, t, l, -1)], bits.signed, circuit.q_update,
                   f"update of {what} of layer {l} at step {t}")

        out[("G", t, l, -1)] = vals[nodes[f"{p}.weight.grad"].inputs[0]]
        sgd(f"{p}.weight", ("GW", "U", "W", "RU", "Ub"), circuit.k_update, "the weights")
        if circuit.has_bias(l):
            sgd(f"{p}.bias", ("GB", "UB", "B", "RUB", "UBb"), circuit.k_bias_update, "the bias")
        if l >= 2:
            out[("GX", t, l, -1)] = vals[f"{p}.in.grad.raw"]
            out[("GH", t, l, -1)] = vals[f"{p}.in.grad"]
            planes("RH", l, vals[f"{p}.in.grad.rem"], bits.unsigned, S, f"rescale remainder (layer {l})")
            planes("GHb", l, vals[f"{p}.in.grad"], bits.signed, circuit.q_grad,
                   f"input gradient of layer {l} at step {t}")
        if l == L:
            rl = vals["loss.grad.rem"]
            out[("RL", t, l, -1)] = rl
            out[("Y", t, l, -1)] = vals["y"]
            planes("RLb", l, rl, bits.unsigned, circuit.k_loss, "loss remainder")
            rl2 = (circuit.loss_count - 1) - fac4dnn.pad(rl, circuit.act(L))
            for k, plane in enumerate(bits.unsigned(rl2, circuit.k_loss, "loss remainder")):
                out[("RL2b", t, l, k)] = plane
            planes("Gb", l, vals["loss.grad"], bits.signed, circuit.q_grad, "loss gradient")


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
        return _prove_witness(circuit, values, lr, key, progress)


def _prove_witness(circuit: Circuit, values: dict, lr: float, key: commit.CommitKey, progress):
    stmt_com = fac4dnn.commit_tensors(circuit, values, circuit.statement_keys, key,
                                      _stage(progress, "commit statement"))
    proof_com = fac4dnn.commit_tensors(circuit, values, circuit.proof_keys, key,
                                       _stage(progress, "commit witness"))
    statement = TrainingStatement(circuit.widths, circuit.batch, circuit.steps, lr,
                                  circuit.scale_bits, circuit.training,
                                  {k: c for k, (c, _) in stmt_com.items()},
                                  circuit.biases if any(circuit.biases) else (),
                                  circuit.data_bits, circuit.param_bits)
    commitments = {k: c for k, (c, _) in proof_com.items()}
    t = _transcript(statement, commitments)
    aggregated = fac4dnn.prove(circuit, {**stmt_com, **proof_com}, t, key, _stage(progress, "prove"))
    cls = TrainingProof if circuit.training else InferenceProof
    return cls(statement, commitments, aggregated)


def _stage(progress, name):
    if progress is None:
        return None
    return lambda _stage, done, total: progress(name, done, total)


def training_witness(model, batches, lr: float, steps: int | None = None, scale_bits: int = 16,
                     progress=None):
    """Run the SGD steps in exact fixed point: ``(circuit, tensors, final integer parameters)``,
    ``tensors`` mapping every key of the circuit to its integer tensor (the prover's witness) and
    the parameters keyed by their state_dict names."""
    prefixes, biases = _mlp(model)
    batches = list(batches)
    if not batches:
        raise ValueError("prove_training needs at least one (X, Y) batch")
    steps = len(batches) if steps is None else steps
    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    params = dict(model.state_dict())
    widths = tuple([params[f"{prefixes[0]}.weight"].shape[1]]
                   + [params[f"{p}.weight"].shape[0] for p in prefixes])
    data = []
    for i, (x, y) in enumerate(batches):
        x, y = _float_inputs(x, f"X of batch {i}"), _float_inputs(y, f"Y of batch {i}")
        if x.ndim != 2 or x.shape[1] != widths[0] or y.shape != (x.shape[0], widths[-1]):
            raise ValueError(f"batch {i}: expected X (B, {widths[0]}) and Y (B, {widths[-1]}), "
                             f"got {x.shape} and {y.shape}")
        if data and x.shape[0] != data[0][0].shape[0]:
            raise ValueError(f"batch {i} has {x.shape[0]} rows, batch 0 has {data[0][0].shape[0]}")
        data.append((x, y))
    batch = data[0][0].shape[0]
    _check_limits(widths, batch)
    lr_q, lr_bits = quantize_lr(lr)
    circuit = Circuit(widths, batch, steps, scale_bits, lr_q, lr_bits, True, biases)
    graph = circuits.trace_training(model, batch, lr, scale_bits=scale_bits)
    fp = FixedPoint(scale_bits)
    names = _parameters(circuit, prefixes)
    state = {n: fp.encode(_float_inputs(params[n], n)) for _, n in names}
    values: dict = {(k[0], 0, k[2], -1): state[n] for k, n in names}
    for t in range(steps):
        x, y = data[t % len(data)]
        inputs = {"x": x, "y": y, **{n: fp.decode(v) for n, v in state.items()}}
        vals = circuits.run(graph, inputs, mode="fixed")
        _witness_step(circuit, graph, vals, prefixes, t, values)
        state = {n: np.asarray(vals[f"{n}.next"]).astype(np.int64) for n in state}
        if progress:
            progress("witness", t + 1, steps)
    return _with_ranges(circuit, values), values, state


def _parameters(circuit: Circuit, prefixes: list) -> list[tuple[tuple, str]]:
    """``(("W" or "B", 0, l, -1), state_dict name)`` of every parameter, layer by layer."""
    out = []
    for l, p in enumerate(prefixes, start=1):
        out.append((("W", 0, l, -1), f"{p}.weight"))
        if circuit.has_bias(l):
            out.append((("B", 0, l, -1), f"{p}.bias"))
    return out


def prove_training(model, batches, lr: float, steps: int | None = None, scale_bits: int = 16,
                   progress=None, key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto"):
    """Run ``steps`` SGD steps (MSE loss) of a ReLU MLP (Linear layers with or without bias) on
    ``batches`` in exact fixed point and prove them. Returns ``(TrainingProof, trained_model)``.

    ``batches``: a sequence of ``(X, Y)`` arrays or tensors, all of one batch size, cycled if
    ``steps`` exceeds their number. ``progress(stage, done, total)`` is called as work proceeds.
    ``device``: ``"auto"`` (CUDA when cupy sees a GPU, else CPU), ``"cpu"`` or ``"cuda"``; the
    proof does not depend on it.
    """
    import torch

    dev = _device.resolve(device)
    circuit, values, params = training_witness(model, batches, lr, steps, scale_bits, progress)
    proof = prove_witness(circuit, values, float(lr), key, progress, dev)
    trained = copy.deepcopy(model)
    state = trained.state_dict()
    fp = FixedPoint(scale_bits)
    for name, v in params.items():
        state[name] = torch.from_numpy(fp.decode(v)).to(state[name].dtype)
    trained.load_state_dict(state)
    return proof, trained


def inference_witness(model, X, scale_bits: int = 16):
    """Run ``model`` on ``X`` in exact fixed point: ``(circuit, tensors)`` as in :func:`training_witness`."""
    prefixes, biases = _mlp(model)
    x = _float_inputs(X, "X")
    graph = circuits.trace(model, x)
    params = model.state_dict()
    widths = tuple([x.shape[1]] + [params[f"{p}.weight"].shape[0] for p in prefixes])
    _check_limits(widths, x.shape[0])
    circuit = Circuit(widths, x.shape[0], 1, scale_bits, training=False, biases=biases)
    vals = circuits.run(graph, {"x": x, **{k: _float_inputs(v, k) for k, v in params.items()}},
                        mode="fixed")
    values = {key: vals[name] for key, name in _parameters(circuit, prefixes)}
    _witness_step(circuit, graph, vals, prefixes, 0, values)
    return _with_ranges(circuit, values), values


def prove_inference(model, X, scale_bits: int = 16, progress=None,
                    key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto") -> InferenceProof:
    """Prove that the committed output is ``model(X)`` in exact fixed point (statement:
    architecture, commitments to ``X``, the weights and the output), on ``device`` as in
    :func:`prove_training`."""
    dev = _device.resolve(device)
    circuit, values = inference_witness(model, X, scale_bits)
    return prove_witness(circuit, values, 0.0, key, progress, dev)


def _verify(proof, cls, key) -> bool:
    if not isinstance(proof, cls) or (cls is TrainingProof and isinstance(proof, InferenceProof)):
        raise VerificationError(f"expected a {cls.__name__}, got {type(proof).__name__}")
    statement = proof.statement
    if not isinstance(statement, TrainingStatement):
        raise VerificationError(f"the proof's statement is a {type(statement).__name__}, not a TrainingStatement")
    if statement.training is not cls.training:
        raise VerificationError(f"a {cls.__name__} cannot hold {'a training' if statement.training else 'an inference'} "
                                "statement")
    with malformed_as_verification_error(cls.__name__):
        return _check(proof, key)


def _check(proof, key) -> bool:
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
    fac4dnn.verify(circuit, commitments, proof.aggregated, t, key)
    return True


def verify_training(proof: TrainingProof, key: commit.CommitKey = commit.DEFAULT_KEY) -> bool:
    """Verify a training proof against its statement: True, or VerificationError naming the
    failing check."""
    return _verify(proof, TrainingProof, key)


def verify_inference(proof: InferenceProof, key: commit.CommitKey = commit.DEFAULT_KEY) -> bool:
    """Verify an inference proof: True, or VerificationError naming the failing check."""
    return _verify(proof, InferenceProof, key)
