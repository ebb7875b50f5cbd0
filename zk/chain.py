"""Chains of training proofs: epochs, or the segments of a long run, proved one after another.

Proof ``i + 1`` continues from proof ``i``'s final model: its statement's initial parameter
commitments are exactly proof ``i``'s final ones (the prover starts it from the
:class:`zk.ModelOpening` that proof ``i`` ended at). :func:`verify_chain` verifies every proof,
checks every link, optionally that the chain starts from a published model and that every step
used a batch of a published dataset, and reports what the chain covers. The openings'
multi-scalar equations of several proofs are checked as one batch (one random linear
combination, :class:`zk.commit.DeferredChecks`), every :data:`BATCH_PROOFS` proofs.

A :class:`Chain` is the file of a run proved in segments (:func:`zk.prove_run`)::

    magic "ZKCHAIN\\0" || version u8 || count u32 || count x (u32 length || training proof file)

Parsing checks the framing and each proof's header; each proof is parsed in full when it is
verified (one at a time, so verifying a long chain holds one proof).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from . import commit, committed
from .dataset import DatasetCommitment
from .errors import ProofFormatError, VerificationError
from .model import ModelCommitment, check_statement
from .proof_format import MAGIC as PROOF_MAGIC, VERSION as PROOF_VERSION, TrainingProof
from .training import _verify_training
from .wire import section

__all__ = ["Chain", "ChainReport", "verify_chain"]

MAGIC, VERSION = b"ZKCHAIN\0", 1
#: Most proofs a chain file may hold (4096 steps each at most).
MAX_PROOFS = 1 << 16
#: Proofs whose deferred equations are checked in one batch.
BATCH_PROOFS = 16


@dataclass(frozen=True)
class Chain(committed.PublishedFile):
    """The proofs of a run, in order, each kept as its file bytes (parsed when used)."""

    MAGIC, VERSION, WHAT = MAGIC, VERSION, "training chain"

    segments: tuple[bytes, ...]

    @classmethod
    def of(cls, proofs) -> "Chain":
        """The chain of ``proofs`` (:class:`zk.TrainingProof` objects or their file bytes)."""
        return cls(tuple(p if isinstance(p, bytes) else p.to_bytes() for p in proofs))

    def __len__(self) -> int:
        return len(self.segments)

    def proof(self, i: int):
        """Proof ``i`` (0-based), parsed."""
        return TrainingProof.from_bytes(self.segments[i])

    def __iter__(self):
        return (self.proof(i) for i in range(len(self)))

    def to_bytes(self) -> bytes:
        return MAGIC + bytes([VERSION]) + struct.pack("<I", len(self.segments)) + \
            b"".join(section(s) for s in self.segments)

    @classmethod
    def _read_body(cls, r) -> "Chain":
        n = r.unpack("<I")
        if not 1 <= n <= MAX_PROOFS or r.remaining() < 4 * n:
            raise ProofFormatError(f"training chain: {n} proofs (1..{MAX_PROOFS}, at least 4 bytes each)")
        segments = []
        for i in range(n):
            s = r.section()
            if s[:9] != PROOF_MAGIC[True] + bytes([PROOF_VERSION]):
                raise ProofFormatError(f"training chain: segment {i + 1} is not a version {PROOF_VERSION} "
                                       "training proof")
            segments.append(s)
        return cls(tuple(segments))

    def describe(self) -> str:
        first, last = self.proof(0).statement, self.proof(len(self) - 1).statement
        return "\n".join([
            "zkfhe training chain (does not verify; zkfhe verify-chain does)",
            f"  proofs       : {len(self)} ({sum(len(s) for s in self.segments):,} bytes)",
            f"  architecture : {first.architecture.describe()}, batch {first.batch_size}, lr {first.lr}",
            f"  initial model: {first.initial_model.digest.hex()}",
            f"  final model  : {last.final_model.digest.hex()}"])


@dataclass(frozen=True)
class ChainReport:
    """What a verified chain covers."""

    proofs: int
    steps: int
    batches: tuple[int, ...]  # every batch index used, in step order
    initial_model: ModelCommitment
    final_model: ModelCommitment
    dataset: bytes  # the digest every proof names (a label unless checked_dataset)
    lr: float  # the learning rate of every step
    batch_size: int
    checked_dataset: bool = False  # every step's batch was checked against the published dataset
    checked_initial_model: bool = False  # the first proof was checked to start from the published model
    sgd: tuple[float, float, float] = (0.0, 0.0, 0.0)  # momentum, dampening and weight decay of every step
    loss: str = "mse"  # the loss of every step

    @property
    def distinct_batches(self) -> int:
        return len(set(self.batches))

    def describe(self) -> str:
        data = "" if self.checked_dataset else " (as the proofs name it; not checked against a published dataset)"
        model = "" if self.checked_initial_model else " (the initial model not checked against a published one)"
        momentum, dampening, decay = self.sgd
        options = "".join(f", {name} {v}" for name, v in (("momentum", momentum), ("dampening", dampening),
                                                          ("weight decay", decay)) if v)
        loss = ", softmax cross-entropy" if self.loss == "cross_entropy" else ""
        return (f"valid chain: {self.proofs} proof(s), {self.steps} SGD steps (lr {self.lr}{options}{loss}, "
                f"batch {self.batch_size}) "
                f"over {self.distinct_batches} distinct batches of dataset {committed.short_digest(self.dataset)}{data}, "
                f"model {committed.short_digest(self.initial_model.digest)} -> "
                f"{committed.short_digest(self.final_model.digest)}{model}")


def verify_chain(proofs, dataset: DatasetCommitment | None = None, initial_model: ModelCommitment | None = None,
                 key: commit.CommitKey = commit.DEFAULT_KEY, progress=None) -> ChainReport:
    """Verify training proofs ``[p1, p2, ...]`` (or their files' bytes, or a :class:`Chain`) as one run: each proof
    valid (against ``dataset`` when given), the first starting from ``initial_model`` when
    given, each next one from the previous one's final model, all on one dataset with one
    learning rate and batch size. A
    :class:`ChainReport`, or VerificationError naming the proof and the failing check.
    ``progress("verify", done, total)`` is called after each proof."""
    if not isinstance(proofs, Chain):
        proofs = list(proofs)
        if proofs and all(isinstance(p, bytes) for p in proofs):
            proofs = Chain(tuple(proofs))
    if isinstance(proofs, Chain):
        total, get = len(proofs), proofs.proof
    else:
        total, get = len(proofs), proofs.__getitem__
    if not total:
        raise VerificationError("an empty chain proves nothing")
    checks = commit.DeferredChecks()
    batches: list[int] = []
    first = previous = None
    for i in range(total):
        where = f"proof {i + 1} of {total}: "
        try:
            proof = get(i)
        except ProofFormatError as exc:
            raise VerificationError(f"{where}{exc}") from None
        if not isinstance(proof, TrainingProof) or not proof.training:
            raise VerificationError(f"{where}a chain holds training proofs, got {type(proof).__name__}")
        try:
            _verify_training(proof, key, dataset, initial_model if i == 0 else None, checks.scoped(where))
            if previous is not None:
                if proof.statement.dataset != previous.dataset:
                    raise VerificationError("it names another dataset than the proof before it")
                if (proof.statement.lr, proof.statement.batch_size) != (first.lr, first.batch_size):
                    raise VerificationError(f"it trains with learning rate {proof.statement.lr} and batch size "
                                            f"{proof.statement.batch_size}, the chain with {first.lr} and "
                                            f"{first.batch_size}: one run has one of each")
                if _sgd(proof.statement) != _sgd(first) or proof.statement.loss != first.loss:
                    raise VerificationError(f"it trains with momentum, dampening and weight decay {_sgd(proof.statement)} "
                                            f"and loss {proof.statement.loss}, the chain with {_sgd(first)} and "
                                            f"{first.loss}: one run has one of each")
                if proof.statement.momentum and not proof.statement.resumed:
                    raise VerificationError("it starts with fresh momentum buffers after another proof: a run with "
                                            "momentum resumes from the buffers the proof before it ends with")
                try:
                    check_statement(proof.statement.initial_model, previous.final_model, "initial")
                except VerificationError:
                    raise VerificationError(f"it does not start from proof {i}'s final model (missing, "
                                            "reordered or foreign proof)") from None
        except VerificationError as exc:
            raise VerificationError(f"{where}{exc}") from None
        if (i + 1) % BATCH_PROOFS == 0:
            checks.run()
        batches += proof.statement.batch_indices
        first = first or proof.statement
        previous = proof.statement
        if progress:
            progress("verify", i + 1, total)
    checks.run()
    return ChainReport(total, len(batches), tuple(batches), first.initial_model, previous.final_model,
                       first.dataset, first.lr, first.batch_size, dataset is not None, initial_model is not None,
                       _sgd(first), first.loss)


def _sgd(statement) -> tuple[float, float, float]:
    return statement.momentum, statement.dampening, statement.weight_decay
