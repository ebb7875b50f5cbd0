"""Model commitments: a model's parameters committed once, so that proofs chain through them.

A :class:`ModelCommitment` is public: the architecture (:class:`zk.architecture.Architecture`: the
forward graph with its parameter names and shapes and the fixed-point scales, activations
``2^scale_bits`` and parameters ``2^param_scale``) and one Hyrax commitment per parameter, padded
as the circuits pad them (:mod:`zk.committed`). A :class:`ModelOpening` is secret: the integer
parameters and their blinds. A training proof's statement holds its initial and final models'
commitments; the prover gets the final opening back, so the next proof (the next epoch, or an
inference) starts from exactly the committed integers, and a verifier links the two by comparing
commitments (:func:`check_statement`).

A model in the middle of a run with momentum also carries the optimizer's state: one commitment per
momentum buffer (``"<param>.momentum_buffer"``, at its gradient's scale), so that the next proof
starts from exactly those buffers as it starts from exactly those parameters.

Files: ``"ZKMODEL\\0" || version || architecture section || one commitment per parameter || state
count u32 || per state tensor: name (u8 length, UTF-8), shape (u8 rank, u32 dims) || one
commitment per state tensor`` and ``"ZKMOPEN\\0" || version || commitment section || per
parameter, then per state tensor: tensor and blinds``.
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from circuits import FixedPoint

from . import commit, committed
from .architecture import MAX_WIDTH, Architecture, Scaled
from .commit import Commitment
from .errors import ProofFormatError, VerificationError
from .wire import section

__all__ = ["ModelCommitment", "ModelOpening", "commit_model"]

#: 2: the architecture is the forward graph (any model circuits traces), not MLP widths
MAGIC, OPENING_MAGIC, VERSION = b"ZKMODEL\0", b"ZKMOPEN\0", 2


@dataclass(frozen=True)
class ModelCommitment(Scaled, committed.PublishedFile):
    """Public: the architecture and scales, the commitment to every parameter (graph order) and
    to every tensor of the optimizer's state (``state``: name and shape of each)."""

    MAGIC, VERSION, WHAT = MAGIC, VERSION, "model commitment"

    architecture: Architecture
    commitments: tuple[Commitment, ...]
    state: tuple[tuple[str, tuple[int, ...]], ...] = ()
    state_commitments: tuple[Commitment, ...] = ()

    def parameter_shapes(self) -> list[tuple[str, tuple, tuple]]:
        """``(state_dict name, true shape, padded shape)`` of every parameter."""
        return [(name, shape, committed.padded(shape)) for name, shape in self.architecture.params]

    def state_shapes(self) -> list[tuple[str, tuple, tuple]]:
        """``(name, true shape, padded shape)`` of every optimizer state tensor."""
        return [(name, shape, committed.padded(shape)) for name, shape in self.state]

    def to_bytes(self) -> bytes:
        state = struct.pack("<I", len(self.state)) + b"".join(
            struct.pack("<B", len(name.encode())) + name.encode() + struct.pack("<B", len(shape))
            + b"".join(struct.pack("<I", d) for d in shape) for name, shape in self.state)
        return (MAGIC + bytes([VERSION]) + section(self.architecture.data) + committed.write_commitments(self.commitments)
                + state + committed.write_commitments(self.state_commitments))

    @cached_property
    def digest(self) -> bytes:
        return committed.digest(self.to_bytes())

    @classmethod
    def _read_body(cls, r) -> "ModelCommitment":
        architecture = Architecture.read(r.section())
        out = cls(architecture, ())
        coms = committed.read_commitments(r, [s for _, _, s in out.parameter_shapes()], "model commitment")
        count = r.unpack("<I")
        if count > len(coms) or r.remaining() < 3 * count:
            raise ProofFormatError(f"model commitment: {count} optimizer state tensors for {len(coms)} parameters")
        state = []
        for _ in range(count):
            name = r.take(r.unpack("<B")).decode("utf-8", errors="strict")
            rank = r.unpack("<B")
            shape = tuple(r.unpack("<I") for _ in range(rank))
            if not name or not 1 <= rank <= 8 or not all(1 <= d <= MAX_WIDTH for d in shape):
                raise ProofFormatError(f"model commitment: bad optimizer state tensor {name!r} {shape}")
            state.append((name, shape))
        out = cls(architecture, coms, tuple(state))
        return cls(architecture, coms, out.state,
                   committed.read_commitments(r, [s for _, _, s in out.state_shapes()], "model commitment state"))

    def describe(self) -> str:
        return "\n".join([
            "zkfhe model commitment (public)",
            f"  digest       : {self.digest.hex()}",
            f"  architecture : {self.architecture.describe()}",
            f"  fixed point  : activations 2^{self.scale_bits}, parameters 2^{self.param_scale}"]
            + ([f"  optimizer    : momentum buffers of {len(self.state)} parameters"] if self.state else []))


@dataclass(frozen=True, repr=False)
class ModelOpening(committed.PublishedFile):
    """Secret: the commitment, the integer parameters (at ``2^param_scale``, state_dict order of
    :meth:`ModelCommitment.parameter_shapes`) and their row blinds."""

    MAGIC, VERSION, WHAT = OPENING_MAGIC, VERSION, "model opening"

    commitment: ModelCommitment
    values: tuple[np.ndarray, ...]
    blinds: tuple[np.ndarray, ...]

    def __repr__(self) -> str:  # never print secrets
        return f"ModelOpening({self.commitment.architecture.describe()}, digest " \
               f"{committed.short_digest(self.commitment.digest)})"

    def integers(self) -> dict[str, np.ndarray]:
        """The integer parameters by state_dict name."""
        return {name: v for (name, _, _), v in zip(self.commitment.parameter_shapes(), self.values)}

    def state_integers(self) -> dict[str, np.ndarray]:
        """The optimizer state (momentum buffers) by name."""
        n = len(self.commitment.commitments)
        return {name: v for (name, _, _), v in zip(self.commitment.state_shapes(), self.values[n:])}

    def openings(self, key: commit.CommitKey = commit.DEFAULT_KEY) -> list:
        """``(name, (Commitment, Opening))`` per parameter, then per state tensor, checked against
        the published commitment."""
        c = self.commitment
        shapes = c.parameter_shapes() + c.state_shapes()
        return [(name, committed.reopen(v, shape, b, com, key, f"model tensor {name}"))
                for (name, _, shape), v, b, com in zip(shapes, self.values, self.blinds,
                                                       c.commitments + c.state_commitments)]

    def state_dict(self) -> dict:
        """The parameters as float32 torch tensors by state_dict name (decoded)."""
        import torch

        fp, p = FixedPoint(self.commitment.scale_bits), self.commitment.param_scale
        return {k: torch.from_numpy(fp.decode(v, p)).float() for k, v in self.integers().items()}

    def to_torch(self):
        """A float32 ``torch.nn.Sequential`` (Linear, ReLU, ..., Linear) holding these parameters,
        for an MLP architecture (ValueError for another: load :meth:`state_dict` into the module)."""
        import torch

        a = self.commitment.architecture
        if not a.widths:
            raise ValueError(f"the model ({a.describe()}) is no Sequential MLP: load opening.state_dict() into "
                             "your own module")
        layers: list = []
        for l in range(1, len(a.widths)):
            layers.append(torch.nn.Linear(a.widths[l - 1], a.widths[l], bias=a.biases[l - 1]))
            if l < len(a.widths) - 1:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        model.load_state_dict(self.state_dict())
        return model

    def to_bytes(self) -> bytes:
        body = b"".join(committed.write_tensor(v, b) for v, b in zip(self.values, self.blinds))
        return OPENING_MAGIC + bytes([VERSION]) + section(self.commitment.to_bytes()) + body

    @classmethod
    def _read_body(cls, r) -> "ModelOpening":
        c = ModelCommitment.from_bytes(r.section())
        values, blinds = [], []
        for name, shape, padded in c.parameter_shapes() + c.state_shapes():
            m, cols = committed.layout(padded)
            v, b = committed.read_tensor(r, shape, 1 << (m - cols), f"model opening, {name}")
            values.append(v), blinds.append(b)
        return cls(c, tuple(values), tuple(blinds))


def from_integers(architecture: Architecture, values: dict, key: commit.CommitKey,
                  openings: dict | None = None, state: dict | None = None) -> ModelOpening:
    """A :class:`ModelOpening` of integer parameters ``{state_dict name: array}`` and optimizer
    ``state`` (``{name: array}``, e.g. momentum buffers); ``openings`` (same names: ``(Commitment,
    Opening)``) reuses commitments made elsewhere."""
    state = state or {}
    shell = ModelCommitment(architecture, (), tuple((n, np.shape(state[n])) for n in sorted(state)))
    coms, blinds, arrays = [], [], []
    for name, shape, padded in shell.parameter_shapes() + shell.state_shapes():
        v = np.asarray(values[name] if name not in state else state[name]).astype(np.int64).reshape(shape)
        com, opening = openings[name] if openings else committed.commit_padded(v, padded, key)
        coms.append(com), blinds.append(opening.blinds), arrays.append(v)
    n = len(architecture.params)
    commitment = ModelCommitment(architecture, tuple(coms[:n]), shell.state, tuple(coms[n:]))
    return ModelOpening(commitment, tuple(arrays), tuple(blinds))


def commit_model(model, scale_bits: int = 16, param_scale: int | None = None, lr: float | None = None,
                 key: commit.CommitKey = commit.DEFAULT_KEY) -> tuple[ModelCommitment, ModelOpening]:
    """Commit to a torch model (any module :func:`circuits.trace` accepts, e.g. a Sequential of
    Linear and ReLU, residual blocks, average pooling): ``(ModelCommitment, ModelOpening)``.
    Parameters are encoded at ``2^param_scale``: by default what training at ``lr`` needs
    (:func:`circuits.param_scale_for`), or without ``lr`` ``2^(2 scale_bits)`` (master weights
    precise enough for learning rates down to about 1e-4). A parameter whose encoding would
    underflow is refused (ValueError); an unsupported module raises UnsupportedOp naming it."""
    from circuits import param_scale_for
    from circuits.interpret import as_array

    if param_scale is None:
        param_scale = 2 * scale_bits if lr is None else param_scale_for(lr, scale_bits)
    if not (isinstance(param_scale, int) and scale_bits <= param_scale <= min(56, 2 * scale_bits + 24)):
        raise ValueError(f"param_scale must be an integer in [scale_bits, min(56, 2 scale_bits + 24)], "
                         f"got {param_scale!r}")
    architecture = Architecture.of_torch(model, scale_bits, param_scale)
    fp, state, values = FixedPoint(scale_bits), model.state_dict(), {}
    for name, _ in architecture.params:
        x = as_array(state[name], f"parameter {name}").astype(np.float64)
        values[name] = fp.encode(x, param_scale)
        committed.check_encoding(x, values[name], param_scale, f"parameter {name}")
    opening = from_integers(architecture, values, key)
    return opening.commitment, opening


def check_statement(stated: ModelCommitment, model: ModelCommitment, which: str, optimizer_state: bool = True) -> None:
    """VerificationError unless the statement's ``which`` model (``"initial"``, ``"final"`` or
    ``"inference"``) is exactly ``model``: architecture, scales, parameters and (unless not
    ``optimizer_state``: an inference reads none) the optimizer state."""
    if not isinstance(model, ModelCommitment):
        raise VerificationError(f"model= takes a ModelCommitment, got {type(model).__name__}")
    if not optimizer_state:
        model = dataclasses.replace(model, state=(), state_commitments=())
    if stated.architecture != model.architecture:
        raise VerificationError(f"the proof's {which} model has another architecture or fixed-point scale "
                                f"than the published model {committed.short_digest(model.digest)}")
    if [c.to_bytes() for c in stated.commitments] != [c.to_bytes() for c in model.commitments]:
        raise VerificationError(f"the proof's {which} parameters are not the published model "
                                f"{committed.short_digest(model.digest)}")
    if stated.to_bytes() != model.to_bytes():
        raise VerificationError(f"the proof's {which} optimizer state (momentum buffers) is not the published "
                                f"model {committed.short_digest(model.digest)}'s")
