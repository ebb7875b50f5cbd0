"""Dropped, duplicated or reordered relation groups, proofs of the wrong kind, malformed objects."""
import dataclasses

import numpy as np
import pytest

import zk
from zk import fac4dnn, training

from forge import rejection


@pytest.fixture(scope="module")
def proofs():
    model = training.synthetic_mlp((5, 4, 3), bias=True)
    data = training.synthetic_batches((5, 4, 3), 3, 2)
    proof, _, _ = zk.prove_training(model, data, 0.1)
    return proof, zk.prove_inference(model, data[0][0])


def _with(proof, **changes):
    return dataclasses.replace(proof, aggregated=dataclasses.replace(proof.aggregated, **changes))


@pytest.mark.parametrize("kind, name", [("padding", "zero-padding"), ("einsums", "einsum"),
                                        ("relus", "zkReLU"), ("lookups", "lookup")])
def test_dropped_or_duplicated_relation_groups(proofs, kind, name):
    proof = proofs[0]
    rels = getattr(proof.aggregated, kind)
    assert len(rels) >= 1
    for bad in ((), rels[:-1], rels + rels[:1], list(rels)):
        assert f"{name} relations" in rejection(_with(proof, **{kind: bad}))


def test_reordered_relation_groups(proofs):
    proof = proofs[0]
    rels = proof.aggregated.einsums
    assert len(rels) >= 2  # same counts and types: the transcript and sumchecks reject the swap
    rejection(_with(proof, einsums=(rels[1], rels[0]) + rels[2:]))


def test_reordered_or_replayed_lookup_proofs(proofs, monkeypatch):
    """A small circuit's range lookups fit one proof: it cannot be reordered, but one of another
    proof of the same statement shape (other data) is rejected. With smaller lookup trees
    (``MAX_LOOKUP_VARS``, for prover and verifier alike) the lookups split over several proofs,
    and swapping two is rejected."""
    proof = proofs[0]
    assert len(proof.aggregated.lookups) == 1
    model = training.synthetic_mlp((5, 4, 3), bias=True)
    other, _, _ = zk.prove_training(model, training.synthetic_batches((5, 4, 3), 3, 2, seed=1), 0.1)
    assert "range lookups 0" in rejection(_with(proof, lookups=other.aggregated.lookups))
    monkeypatch.setattr(fac4dnn, "MAX_LOOKUP_VARS", proof.statement.circuit.limb_bits + 3)
    split, _, _ = zk.prove_training(model, training.synthetic_batches((5, 4, 3), 3, 2), 0.1)
    lookups = split.aggregated.lookups
    assert len(lookups) >= 2 and zk.verify_training(split)
    assert "range lookups" in rejection(_with(split, lookups=(lookups[1], lookups[0]) + lookups[2:]))


def test_proofs_of_the_wrong_kind(proofs):
    train, infer = proofs
    assert "expected a TrainingProof" in rejection(infer, zk.verify_training)
    assert "expected a InferenceProof" in rejection(train, zk.verify_inference)
    holding = zk.TrainingProof(infer.statement, infer.commitments, infer.aggregated)
    assert "cannot hold an inference statement" in rejection(holding)
    holding = zk.InferenceProof(train.statement, train.commitments, train.aggregated)
    assert "cannot hold a training statement" in rejection(holding, zk.verify_inference)
    einsum = zk.prove_einsum("ij,jk->ik", np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))
    assert "expected a TrainingProof" in rejection(einsum)
    assert "expected an EinsumProof" in rejection(train, zk.verify_einsum)
    with pytest.raises(zk.ProofFormatError, match="not a training proof"):
        zk.TrainingProof.from_bytes(infer.to_bytes())
    with pytest.raises(zk.ProofFormatError, match="not a zkfhe einsum proof"):
        zk.EinsumProof.from_bytes(train.to_bytes())


def test_malformed_objects_raise_zk_errors(proofs):
    train, infer = proofs
    stmt = train.statement
    for change in (dict(architecture="5-4-3"), dict(batch_size=-1), dict(lr=float("nan"))):
        with pytest.raises(zk.StatementError):  # a malformed statement cannot even be made
            dataclasses.replace(stmt, **change)
    cases = [
        dataclasses.replace(train, statement=None),
        dataclasses.replace(train, aggregated=None),
        dataclasses.replace(train, commitments={}),
        _with(train, linear_blind=np.zeros(3)),
        _with(train, einsums=(None,) * len(train.aggregated.einsums)),
        _with(train, padding=tuple(dataclasses.replace(p, value=None) for p in train.aggregated.padding)),
        _with(train, openings=None),
        _with(train, openings=dataclasses.replace(train.aggregated.openings, ipa=None)),
        _with(train, openings=dataclasses.replace(train.aggregated.openings, sumcheck=None)),
    ]
    for case in cases:
        with pytest.raises(zk.ZKError):
            zk.verify_training(case)
    with pytest.raises(zk.ZKError):
        zk.verify_inference(dataclasses.replace(infer, aggregated=_with(infer, relus=(None,)).aggregated))


def test_einsum_spec_is_canonical():
    a, b = np.ones((2, 3), np.int64), np.ones((3, 2), np.int64)
    proof = zk.prove_einsum(" i j , j k ", a, b)
    assert proof.spec == "ij,jk->ik" and zk.verify_einsum(proof)
    for other in ("ij,jk", " i j , j k -> i k"):
        assert "canonical" in rejection(dataclasses.replace(proof, spec=other), zk.verify_einsum)
        raw = proof.to_bytes()
        spec = proof.spec.encode()
        at = raw.index(spec)
        forged = raw[:at - 2] + len(other).to_bytes(2, "little") + other.encode() + raw[at + len(spec):]
        with pytest.raises(zk.ProofFormatError, match="canonical"):
            zk.EinsumProof.from_bytes(forged)
