"""A model's architecture as proofs and model files state it: its forward circuits graph.

An :class:`Architecture` is the canonical bytes of the model's forward graph for one row
(:func:`circuits.architecture_bytes`: ops, parameter names and shapes, constants, fixed-point
scales). A verifier reads it back with the bounded parser, re-instantiates it for a batch
(:func:`circuits.rebatch`) and derives the training step from it (:func:`circuits.training_graph`);
the prover runs that same graph. Any model :func:`circuits.trace` accepts is an architecture; a
Linear/ReLU MLP also has :attr:`Architecture.widths`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

import circuits
from circuits import ArchitectureError

from .errors import ProofFormatError

__all__ = ["Architecture", "Scaled", "MAX_WIDTH"]

#: Largest dimension of a parameter or activation (the statement's limit).
MAX_WIDTH = 1 << 16


@dataclass(frozen=True)
class Architecture:
    """The forward graph of a model for one row, as canonical bytes."""

    data: bytes

    @classmethod
    def of_graph(cls, forward: circuits.Graph) -> "Architecture":
        """The architecture of a forward graph (data input ``"x"``, output ``"out"``); ValueError
        naming what a proof cannot state."""
        out = cls(circuits.architecture_bytes(circuits.rebatch(forward, 1)))
        out.check()
        return out

    @classmethod
    def mlp(cls, widths, biases=(), scale_bits: int = 16, param_scale: int | None = None) -> "Architecture":
        """A Linear/ReLU MLP of ``widths`` (``biases``: per Linear layer, or empty for none)."""
        return cls.of_graph(circuits.mlp_graph(tuple(widths), tuple(biases) or False, 1, scale_bits, param_scale))

    @classmethod
    def of_torch(cls, model, scale_bits: int, param_scale: int) -> "Architecture":
        """The architecture of a torch module (:func:`circuits.trace`; UnsupportedOp names what is not)."""
        from circuits.fx import layers

        example = np.zeros((1, layers(model).in_features))
        return cls.of_graph(circuits.trace(model, example, scale_bits, param_scale))

    @classmethod
    def read(cls, data: bytes) -> "Architecture":
        """Parse published bytes (bounded, validating): ProofFormatError naming the problem."""
        try:
            graph = circuits.read_architecture(data)
        except ArchitectureError as exc:
            raise ProofFormatError(f"architecture: {exc}") from None
        out = cls(bytes(data))
        out.__dict__["graph"] = graph
        try:
            out.check()
        except ValueError as exc:
            raise ProofFormatError(f"architecture: {exc}") from None
        return out

    def check(self) -> None:
        """ValueError unless the graph has what a proof needs: a data input ``"x"`` of shape
        ``(1, features)``, an output ``(1, outputs)``, parameters, dimensions up to MAX_WIDTH."""
        g = self.graph
        if "x" not in g.tensors or g["x"].role != "data" or len(g["x"].shape) != 2:
            raise ValueError("the model's input must be a data tensor x of shape (batch, features)")
        others = [t.name for t in g.inputs if t.name != "x" and t.role != "param"]
        if others or "y" in g.tensors:
            raise ValueError(f"the model's inputs are x and its parameters (and no tensor is named y), "
                             f"got {', '.join(others) or 'a tensor y'}")
        if set(g.outputs) != {"out"} or g.outputs["out"] not in {n.output for n in g.nodes}:
            raise ValueError("the model has one output, out, computed by an op (not an input or a constant)")
        fp = circuits.FixedPoint(g.scale_bits)
        for name, value in g.constants.items():
            try:
                fp.encode(value, g[name].scale)
            except (OverflowError, ValueError) as exc:
                raise ValueError(f"constant {name} at scale 2^{g[name].scale}: {exc}") from None
        if "out" not in g.outputs or len(g[g.outputs["out"]].shape) != 2:
            raise ValueError("the model's output must be (batch, outputs)")
        if not self.params:
            raise ValueError("the model has no parameters")
        widest = max(d for t in g.tensors.values() for d in t.shape)
        if widest > MAX_WIDTH:
            raise ValueError(f"too large to prove: dimensions up to {MAX_WIDTH} (the model has {widest})")

    @cached_property
    def graph(self) -> circuits.Graph:
        return circuits.read_architecture(self.data)

    def forward(self, rows: int) -> circuits.Graph:
        """The forward graph on a batch of ``rows`` rows."""
        return _rebatched(self, rows)

    @property
    def scale_bits(self) -> int:
        return self.graph.scale_bits

    @property
    def param_scale(self) -> int:
        return self.graph.param_scale

    @cached_property
    def params(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(name, shape)`` of every parameter, in the graph's (state_dict) order."""
        return tuple((t.name, t.shape) for t in self.graph.inputs if t.role == "param")

    @property
    def features(self) -> int:
        return self.graph["x"].shape[1]

    @property
    def outputs(self) -> int:
        return self.graph[self.graph.outputs["out"]].shape[1]

    @cached_property
    def widths(self) -> tuple[int, ...] | None:
        """The widths of a Linear/ReLU MLP (None for another architecture)."""
        shapes = [shape for _, shape in self.params if len(shape) == 2]
        if not shapes:
            return None
        widths = tuple([shapes[0][1]] + [s[0] for s in shapes])
        names = {n for n, _ in self.params}
        biases = tuple(f"{2 * l}.bias" in names for l in range(len(shapes)))
        try:
            same = Architecture.mlp(widths, biases if any(biases) else (), self.scale_bits, self.param_scale)
        except ValueError:
            return None
        return widths if same == self else None

    @property
    def biases(self) -> tuple[bool, ...]:
        """Per Linear layer of an MLP, whether it has a bias."""
        names = {n for n, _ in self.params}
        return tuple(f"{2 * l}.bias" in names for l in range(len(self.widths) - 1)) if self.widths else ()

    def describe(self) -> str:
        """One line for people: ``MLP 5-4-3 (bias in layer(s) 1, 2)`` or the graph's op counts."""
        if self.widths:
            biased = [str(l) for l, b in enumerate(self.biases, start=1) if b]
            layers = f"Linear + ReLU, bias in layer(s) {', '.join(biased)}" if biased else "bias-free Linear + ReLU"
            return f"MLP {'-'.join(map(str, self.widths))} ({layers})"
        ops: dict[str, int] = {}
        for node in self.graph.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        counts = ", ".join(f"{n} {op}" for op, n in ops.items())
        return f"graph {self.features} -> {self.outputs} ({counts}; {len(self.params)} parameters)"


class Scaled:
    """The fixed-point scales of an object's ``architecture`` (a statement, a circuit, a model)."""

    architecture: Architecture

    @property
    def scale_bits(self) -> int:
        return self.architecture.scale_bits

    @property
    def param_scale(self) -> int:
        return self.architecture.param_scale


@functools.lru_cache(maxsize=64)
def _rebatched(architecture: Architecture, rows: int) -> circuits.Graph:
    return circuits.rebatch(architecture.graph, rows)
