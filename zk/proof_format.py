"""The training and inference proof files: :class:`TrainingProof` and :class:`InferenceProof`.

File format (all integers little-endian; every section is ``u32 length || bytes``)::

    magic "ZKTRAIN\\0" or "ZKINFER\\0" || version u8 || statement section
    || one section per committed tensor, in the circuit's canonical order
    || zero-padding relations || linear-relations blind || einsum relations || zkReLU relations
    || range lookups || the openings of every evaluation claim (zk.openings)

The statement section is :meth:`zk.statement.TrainingStatement.to_bytes`. Parsing is bounded
and validating: malformed bytes raise :class:`zk.ProofFormatError` only.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import circuits

from . import committed, field
from .einsum import EinsumLayout, EinsumRelationProof
from .errors import ProofFormatError
from .fac4dnn import AggregatedProof, Circuit
from .hadamard import HadamardProof
from .lookup import Layout, LookupProof
from .model import ModelCommitment
from .openings import OpeningsProof
from .padding import PaddingProof
from .statement import TrainingStatement, read_commitments
from .wire import Reader, section

__all__ = ["TrainingProof", "InferenceProof", "VERSION", "MAGIC"]

#: 2: per-layer bias flags; 3: range widths, zero-padding proofs, magnitude bounds; 4: parameter
#: scale, rounding to nearest, rows, batch indices and dataset digest per step; 5: tensors named
#: after the circuits graph (zk.lower), SGD momentum, dampening and weight decay; 6: ranges by limbs
#: and logUp-GKR lookups instead of bit planes and booleanity; 7: one batched opening of every
#: evaluation claim at the end instead of an opening per claim
VERSION = 7
MAGIC = {True: b"ZKTRAIN\0", False: b"ZKINFER\0"}


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
        out += [(f"commitments/{k.kind.value}", c.to_bytes()) for k, c in self.commitments.items()]
        agg = self.aggregated
        out += [("zero-padding sumchecks", s) for rel in agg.padding for s in rel.sections()]
        out.append(("linear relations", field.to_bytes(agg.linear_blind)))
        for name, rels in (("einsum sumchecks", agg.einsums), ("zkReLU sumchecks", agg.relus),
                           ("range lookups", agg.lookups)):
            out += [(name, s) for rel in rels for s in rel.sections()]
        out += [("openings", s) for s in agg.openings.sections()]
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
        commitments = read_commitments(r, circuit.proof_keys)
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
        lookups = [LookupProof.read(r, Layout.of([_stack_vars(circuit, keys) for keys, _ in columns], circuit.limb_bits))
                   for columns in circuit.lookup_groups()]
        lookups += [LookupProof.read(r, Layout.of([_stack_vars(circuit, keys) for keys, _ in columns], bits, paired=True))
                    for bits, _, columns in circuit.function_groups()]
        openings = OpeningsProof.read(r)
        r.end()
        return cls(statement, commitments, AggregatedProof(tuple(pads), blind, tuple(einsums),
                                                           tuple(relus), tuple(lookups), openings))


class InferenceProof(TrainingProof):
    training = False

    @property
    def model(self) -> ModelCommitment:
        """The commitment to the model whose output the proof is about."""
        return self.statement.initial_model


def _stack_vars(circuit: Circuit, keys) -> int:
    """Variables of the stack of the tensors ``keys`` (one shape): a relation proof's size."""
    return committed.layout(circuit.shapes[keys[0]])[0] + (len(keys) - 1).bit_length()
