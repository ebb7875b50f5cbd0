"""Chains of training proofs: epochs (or segments of a long run) proved one after another.

Proof ``i + 1`` continues from proof ``i``'s final model: its statement's initial parameter
commitments are exactly proof ``i``'s final ones (the prover starts it from the
:class:`zk.ModelOpening` that proof ``i`` returned). :func:`verify_chain` verifies every proof,
checks every link, optionally that the chain starts from a published model and that every step
used a batch of a published dataset, and reports what the chain covers.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import commit, committed
from .dataset import DatasetCommitment
from .errors import VerificationError
from .model import ModelCommitment, check_statement

__all__ = ["ChainReport", "verify_chain"]


@dataclass(frozen=True)
class ChainReport:
    """What a verified chain covers."""

    proofs: int
    steps: int
    batches: tuple[int, ...]  # every batch index used, in step order
    initial_model: ModelCommitment
    final_model: ModelCommitment
    dataset: bytes  # the digest every proof names

    @property
    def distinct_batches(self) -> int:
        return len(set(self.batches))

    def describe(self) -> str:
        return (f"valid chain: {self.proofs} proof(s), {self.steps} SGD steps over {self.distinct_batches} distinct "
                f"batches of dataset {committed.short_digest(self.dataset)}, model "
                f"{committed.short_digest(self.initial_model.digest)} -> {committed.short_digest(self.final_model.digest)}")


def verify_chain(proofs, dataset: DatasetCommitment | None = None, initial_model: ModelCommitment | None = None,
                 key: commit.CommitKey = commit.DEFAULT_KEY) -> ChainReport:
    """Verify training proofs ``[p1, p2, ...]`` as one run: each proof valid (against ``dataset``
    when given), the first starting from ``initial_model`` when given, each next one from the
    previous one's final model, all on one dataset. A :class:`ChainReport`, or VerificationError
    naming the proof and the failing check."""
    from .training import TrainingProof, verify_training

    proofs = list(proofs)
    if not proofs:
        raise VerificationError("an empty chain proves nothing")
    batches: list[int] = []
    for i, proof in enumerate(proofs):
        if not isinstance(proof, TrainingProof) or not proof.training:
            raise VerificationError(f"proof {i + 1}: a chain holds training proofs, got {type(proof).__name__}")
        try:
            verify_training(proof, key, dataset=dataset, initial_model=initial_model if i == 0 else None)
            if i:
                previous = proofs[i - 1].statement
                if proof.statement.dataset != previous.dataset:
                    raise VerificationError("it names another dataset than the proof before it")
                try:
                    check_statement(proof.statement.initial_model.commitments, proof.statement,
                                    previous.final_model, "initial")
                except VerificationError:
                    raise VerificationError(f"it does not start from proof {i}'s final model (missing, "
                                            "reordered or foreign proof)") from None
        except VerificationError as exc:
            raise VerificationError(f"proof {i + 1} of {len(proofs)}: {exc}") from None
        batches += proof.statement.batch_indices
    first, last = proofs[0].statement, proofs[-1].statement
    return ChainReport(len(proofs), len(batches), tuple(batches), first.initial_model, last.final_model,
                       first.dataset)
