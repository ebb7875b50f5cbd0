"""zk.prove_einsum / zk.verify_einsum: completeness, soundness, format robustness, binding."""
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import zk
from zk import field

CASES = [
    ("ij,jk->ik", (5, 7), (7, 3)),  # matmul, non-powers of two
    ("bij,bjk->bik", (3, 2, 5), (3, 5, 4)),  # batched matmul (degree-3 sumcheck)
    ("ijk,jkl->il", (2, 3, 4), (3, 4, 5)),  # two contracted indices
    ("i,j->ij", (3,), (4,)),  # outer product (no sumcheck rounds)
    ("ij,jk->", (3, 4), (4, 2)),  # full contraction
    ("bi,oi->bo", (6, 9), (4, 9)),  # a Linear layer
    ("ij,j->ij", (4, 1), (3,)),  # size-1 broadcasting
]


@pytest.fixture(scope="module")
def proofs():
    rng = np.random.default_rng(7)
    out = {}
    for spec, sa, sb in CASES:
        A = rng.integers(-2**20, 2**20, sa)
        B = rng.integers(-2**20, 2**20, sb)
        out[spec] = (A, B, zk.prove_einsum(spec, A, B))
    return out


@pytest.mark.parametrize("spec", [c[0] for c in CASES])
def test_honest_proofs_verify_and_round_trip(proofs, spec):
    _, _, proof = proofs[spec]
    assert zk.verify_einsum(proof) is True
    again = zk.EinsumProof.from_bytes(proof.to_bytes())
    assert again.to_bytes() == proof.to_bytes()
    assert zk.verify_einsum(again) is True


@pytest.mark.parametrize("spec", ["ij,jk->ik", "bij,bjk->bik", "i,j->ij"])
def test_wrong_output_never_verifies(proofs, spec):
    A, B, _ = proofs[spec]
    C = np.einsum(spec, A, B)
    C.flat[0] += 1
    bad = zk.prove_einsum(spec, A, B, C=C)
    with pytest.raises(zk.VerificationError):
        zk.verify_einsum(bad)


def test_torch_integer_tensors():
    A = torch.randint(-50, 50, (3, 4))
    B = torch.randint(-50, 50, (4, 2))
    assert zk.verify_einsum(zk.prove_einsum("ij,jk->ik", A, B))


def test_statement_is_bound(proofs):
    A, B, proof = proofs["ij,jk->ik"]
    other = zk.prove_einsum("ij,jk->ik", A + 1, B)
    # swap in another commitment: the transcript (and the openings) no longer match
    forged = dataclasses.replace(proof, commitments=(other.commitments[0], *proof.commitments[1:]))
    with pytest.raises(zk.VerificationError):
        zk.verify_einsum(forged)
    # a different statement shape for the same proof
    forged = dataclasses.replace(proof, shapes=((5, 8), (8, 3)))
    with pytest.raises(zk.VerificationError):
        zk.verify_einsum(forged)
    forged = dataclasses.replace(proof, spec="ij,kj->ik", shapes=((5, 7), (3, 7)))
    with pytest.raises(zk.VerificationError):
        zk.verify_einsum(forged)


def test_every_section_tampered_is_rejected(proofs):
    _, _, proof = proofs["bij,bjk->bik"]
    rel = proof.relation
    two = field.from_int(2)
    rows = list(rel.sumcheck.commitments)
    rows[-1] = (rows[-1][1], rows[-1][0]) + rows[-1][2:]
    tampered = [
        dataclasses.replace(rel, final_blind=field.add(rel.final_blind, field.ONE)),
        dataclasses.replace(rel, value_commitments=rel.value_commitments[1:] + rel.value_commitments[:1]),
        dataclasses.replace(rel, product=dataclasses.replace(rel.product, z=field.mul(rel.product.z, two))),
        dataclasses.replace(rel, sumcheck=dataclasses.replace(
            rel.sumcheck, deltas=field.add(rel.sumcheck.deltas, field.ONE))),
        dataclasses.replace(rel, sumcheck=dataclasses.replace(rel.sumcheck, commitments=tuple(rows))),
    ]
    for t in tampered:
        with pytest.raises(zk.VerificationError):
            zk.verify_einsum(dataclasses.replace(proof, relation=t))
    ops = proof.openings
    ipa = ops.ipa
    for bad in (dataclasses.replace(ops, ipa=dataclasses.replace(ipa, L=ipa.L[1:] + ipa.L[:1])),
                dataclasses.replace(ops, ipa=dataclasses.replace(ipa, z1=field.add(ipa.z1, field.ONE))),
                dataclasses.replace(ops, sumcheck=dataclasses.replace(
                    ops.sumcheck, deltas=field.add(ops.sumcheck.deltas, field.ONE))),
                dataclasses.replace(ops, col_vars=ops.col_vars + 1)):
        with pytest.raises(zk.VerificationError):
            zk.verify_einsum(dataclasses.replace(proof, openings=bad))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_bytes_never_verify_and_never_crash(proofs, data):
    _, _, proof = proofs["ij,jk->ik"]
    raw = bytearray(proof.to_bytes())
    mode = data.draw(st.sampled_from(["flip", "truncate", "extend", "random"]))
    if mode == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif mode == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif mode == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=8))
    else:
        raw = bytearray(data.draw(st.binary(max_size=300)))
    try:
        parsed = zk.EinsumProof.from_bytes(bytes(raw))
    except zk.ProofFormatError:
        return
    with pytest.raises(zk.VerificationError):
        zk.verify_einsum(parsed)


def test_no_witness_value_in_the_clear(proofs):
    A, B, proof = proofs["ij,jk->ik"]
    raw = proof.to_bytes()
    C = np.einsum("ij,jk->ik", A, B)
    for value in [*A.flat[:10], *B.flat[:10], *C.flat[:10]]:
        assert field.to_bytes(field.from_int(int(value))) not in raw


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="integer tensor"):
        zk.prove_einsum("ij,jk->ik", np.ones((2, 2)), np.ones((2, 2), dtype=int))
    with pytest.raises(ValueError, match="size mismatch"):
        zk.prove_einsum("ij,jk->ik", np.ones((2, 3), dtype=int), np.ones((2, 2), dtype=int))
    with pytest.raises(ValueError, match="names 1 operand"):
        zk.prove_einsum("ij->ji", np.ones((2, 3), dtype=int), np.ones((2, 2), dtype=int))
    with pytest.raises(ValueError, match="repeated index"):
        zk.prove_einsum("ii,i->i", np.ones((2, 2), dtype=int), np.ones(2, dtype=int))
    with pytest.raises(zk.VerificationError, match="expected an EinsumProof"):
        zk.verify_einsum(b"not a proof")
    with pytest.raises(zk.ProofFormatError, match="bad magic"):
        zk.EinsumProof.from_bytes(b"x" * 40)
