"""Model commitments: a ReLU MLP's parameters committed once, so that proofs chain through them.

A :class:`ModelCommitment` is public: the architecture (widths, which layers have a bias), the
fixed-point scales (activations ``2^scale_bits``, parameters ``2^param_scale``) and one Hyrax
commitment per weight matrix and bias, padded as the circuits pad them (:mod:`zk.committed`).
A :class:`ModelOpening` is secret: the integer parameters and their blinds. A training proof's
statement holds its initial and final models' commitments; the prover gets the final opening
back, so the next proof (the next epoch, or an inference) starts from exactly the committed
integers, and a verifier links the two by comparing commitments (:func:`check_statement`).

Files: ``"ZKMODEL\\0" || version || header || weight commitments || bias commitments`` and
``"ZKMOPEN\\0" || version || commitment section || per parameter: tensor and blinds``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from circuits import FixedPoint, UnsupportedOp

from . import commit, committed
from .commit import Commitment
from .errors import ProofFormatError, VerificationError
from .wire import section

__all__ = ["ModelCommitment", "ModelOpening", "commit_model", "mlp_layout"]

MAGIC, OPENING_MAGIC, VERSION = b"ZKMODEL\0", b"ZKMOPEN\0", 1
MAX_LAYERS, MAX_WIDTH = 64, 1 << 16


@dataclass(frozen=True)
class ModelCommitment(committed.PublishedFile):
    """Public: architecture, scales and the commitments to every weight and bias."""

    MAGIC, VERSION, WHAT = MAGIC, VERSION, "model commitment"

    widths: tuple[int, ...]
    biases: tuple[bool, ...]  # per Linear layer
    scale_bits: int
    param_scale: int
    weights: tuple[Commitment, ...]  # per layer
    bias: tuple[Commitment, ...]  # per biased layer, in order

    @property
    def layers(self) -> int:
        return len(self.widths) - 1

    def parameter_shapes(self) -> list[tuple[str, tuple, tuple]]:
        """``(name, true shape, padded shape)`` of every parameter, weights then biases, named as
        in the state_dict of :meth:`ModelOpening.to_torch`."""
        d = self.widths
        out = [(f"{2 * (l - 1)}.weight", (d[l], d[l - 1]), committed.padded((d[l], d[l - 1])))
               for l in range(1, self.layers + 1)]
        out += [(f"{2 * (l - 1)}.bias", (d[l],), committed.padded((d[l],)))
                for l in range(1, self.layers + 1) if self.biases[l - 1]]
        return out

    @property
    def commitments(self) -> tuple[Commitment, ...]:
        return self.weights + self.bias

    def to_bytes(self) -> bytes:
        head = struct.pack("<B", len(self.widths)) + b"".join(struct.pack("<I", w) for w in self.widths)
        head += bytes(int(b) for b in self.biases) + struct.pack("<BB", self.scale_bits, self.param_scale)
        return MAGIC + bytes([VERSION]) + head + committed.write_commitments(self.commitments)

    @cached_property
    def digest(self) -> bytes:
        return committed.digest(self.to_bytes())

    @classmethod
    def _read_body(cls, r) -> "ModelCommitment":
        n = r.unpack("<B")
        if not 2 <= n <= MAX_LAYERS + 1:
            raise ProofFormatError(f"model commitment: {n} widths (an MLP has 2..{MAX_LAYERS + 1})")
        widths = tuple(r.unpack("<I") for _ in range(n))
        if not all(1 <= w <= MAX_WIDTH for w in widths):
            raise ProofFormatError(f"model commitment: widths must be in [1, {MAX_WIDTH}]")
        flags = r.take(n - 1)
        if any(f > 1 for f in flags):
            raise ProofFormatError("model commitment: bias flags must be 0 or 1")
        scale, param_scale = r.unpack("<B"), r.unpack("<B")
        if not (1 <= scale <= 40 and scale <= param_scale <= 2 * scale + 24):
            raise ProofFormatError(f"model commitment: scales 2^{scale}, 2^{param_scale} out of range")
        out = cls(widths, tuple(bool(f) for f in flags), scale, param_scale, (), ())
        coms = committed.read_commitments(r, [s for _, _, s in out.parameter_shapes()], "model commitment")
        return cls(widths, out.biases, scale, param_scale, coms[:n - 1], coms[n - 1:])

    def describe(self) -> str:
        biased = [str(l) for l, b in enumerate(self.biases, start=1) if b]
        return "\n".join([
            "zkfhe model commitment (public)",
            f"  digest       : {self.digest.hex()}",
            f"  architecture : MLP {'-'.join(map(str, self.widths))}"
            + (f", bias in layer(s) {', '.join(biased)}" if biased else ", bias-free"),
            f"  fixed point  : activations 2^{self.scale_bits}, parameters 2^{self.param_scale}"])


@dataclass(frozen=True, repr=False)
class ModelOpening(committed.PublishedFile):
    """Secret: the commitment, the integer parameters (at ``2^param_scale``, state_dict order of
    :meth:`ModelCommitment.parameter_shapes`) and their row blinds."""

    MAGIC, VERSION, WHAT = OPENING_MAGIC, VERSION, "model opening"

    commitment: ModelCommitment
    values: tuple[np.ndarray, ...]
    blinds: tuple[np.ndarray, ...]

    def __repr__(self) -> str:  # never print secrets
        return f"ModelOpening(MLP {'-'.join(map(str, self.commitment.widths))}, digest " \
               f"{committed.short_digest(self.commitment.digest)})"

    def integers(self) -> dict[str, np.ndarray]:
        """The integer parameters by state_dict name."""
        return {name: v for (name, _, _), v in zip(self.commitment.parameter_shapes(), self.values)}

    def openings(self, key: commit.CommitKey = commit.DEFAULT_KEY) -> list:
        """``(Commitment, Opening)`` per parameter, checked against the published commitment."""
        c = self.commitment
        return [committed.reopen(v, shape, b, com, key, f"model parameter {name}")
                for (name, _, shape), v, b, com in zip(c.parameter_shapes(), self.values, self.blinds,
                                                       c.commitments)]

    def to_torch(self):
        """A float32 ``torch.nn.Sequential`` (Linear, ReLU, ..., Linear) holding these parameters."""
        import torch

        c = self.commitment
        layers: list = []
        for l in range(1, c.layers + 1):
            layers.append(torch.nn.Linear(c.widths[l - 1], c.widths[l], bias=c.biases[l - 1]))
            if l < c.layers:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        fp = FixedPoint(c.scale_bits)
        model.load_state_dict({k: torch.from_numpy(fp.decode(v, c.param_scale)).float()
                               for k, v in self.integers().items()})
        return model

    def to_bytes(self) -> bytes:
        body = b"".join(committed.write_tensor(v, b) for v, b in zip(self.values, self.blinds))
        return OPENING_MAGIC + bytes([VERSION]) + section(self.commitment.to_bytes()) + body

    @classmethod
    def _read_body(cls, r) -> "ModelOpening":
        c = ModelCommitment.from_bytes(r.section())
        values, blinds = [], []
        for name, shape, padded in c.parameter_shapes():
            m, cols = committed.layout(padded)
            v, b = committed.read_tensor(r, shape, 1 << (m - cols), f"model opening, {name}")
            values.append(v), blinds.append(b)
        return cls(c, tuple(values), tuple(blinds))


def from_integers(widths, biases, scale_bits: int, param_scale: int, values: dict, key: commit.CommitKey,
                  openings: dict | None = None) -> ModelOpening:
    """A :class:`ModelOpening` of integer parameters ``{state_dict name: array}``; ``openings``
    (same names: ``(Commitment, Opening)``) reuses commitments made elsewhere."""
    c = ModelCommitment(tuple(widths), tuple(biases), scale_bits, param_scale, (), ())
    coms, blinds, arrays = [], [], []
    for name, shape, padded in c.parameter_shapes():
        v = np.asarray(values[name]).astype(np.int64).reshape(shape)
        com, opening = openings[name] if openings else committed.commit_padded(v, padded, key)
        coms.append(com), blinds.append(opening.blinds), arrays.append(v)
    n = c.layers
    c = ModelCommitment(c.widths, c.biases, scale_bits, param_scale, tuple(coms[:n]), tuple(coms[n:]))
    return ModelOpening(c, tuple(arrays), tuple(blinds))


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


def commit_model(model, scale_bits: int = 16, param_scale: int | None = None, lr: float | None = None,
                 key: commit.CommitKey = commit.DEFAULT_KEY) -> tuple[ModelCommitment, ModelOpening]:
    """Commit to a ReLU MLP (``torch.nn.Sequential`` of Linear and ReLU, with or without biases):
    ``(ModelCommitment, ModelOpening)``. Parameters are encoded at ``2^param_scale``: by default
    what training at ``lr`` needs (:func:`circuits.param_scale_for`), or without ``lr``
    ``2^(2 scale_bits)`` (master weights precise enough for learning rates down to about 1e-4).
    A parameter whose encoding would underflow is refused (ValueError)."""
    from circuits import param_scale_for
    from circuits.interpret import as_array

    widths, biases, names = mlp_layout(model)
    if param_scale is None:
        param_scale = 2 * scale_bits if lr is None else param_scale_for(lr, scale_bits)
    if not (isinstance(param_scale, int) and scale_bits <= param_scale <= min(56, 2 * scale_bits + 24)):
        raise ValueError(f"param_scale must be an integer in [scale_bits, min(56, 2 scale_bits + 24)], "
                         f"got {param_scale!r}")
    fp, state, values = FixedPoint(scale_bits), model.state_dict(), {}
    for standard, name in names.items():
        x = as_array(state[name], f"parameter {name}").astype(np.float64)
        values[standard] = fp.encode(x, param_scale)
        committed.check_encoding(x, values[standard], param_scale, f"parameter {name}")
    opening = from_integers(widths, biases, scale_bits, param_scale, values, key)
    return opening.commitment, opening


def check_statement(commitments: list[Commitment], statement, model: ModelCommitment, which: str) -> None:
    """VerificationError unless the statement's ``commitments`` to its ``which`` parameters
    (``"initial"``, ``"final"`` or ``"inference"``) are exactly ``model``'s, with the same
    architecture and scales."""
    if not isinstance(model, ModelCommitment):
        raise VerificationError(f"model= takes a ModelCommitment, got {type(model).__name__}")
    biases = tuple(statement.biases) or (False,) * (len(statement.widths) - 1)
    if (tuple(statement.widths), biases, statement.scale_bits, statement.param_scale) != \
            (model.widths, model.biases, model.scale_bits, model.param_scale):
        raise VerificationError(f"the proof's {which} model has another architecture or fixed-point scale "
                                f"than the published model {committed.short_digest(model.digest)}")
    if [c.to_bytes() for c in commitments] != [c.to_bytes() for c in model.commitments]:
        raise VerificationError(f"the proof's {which} parameters are not the published model "
                                f"{committed.short_digest(model.digest)}")
