"""Hyrax commitments and the zero-knowledge evaluation argument (zk.commit)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from zk import commit as cm
from zk import field, group
from zk.device import CPU
from zk.errors import ProofFormatError, VerificationError
from zk.transcript import Transcript

R = field.R


def mle_reference(values: list[int], point: list[int]) -> int:
    """The MLE at ``point`` by folding Python ints, variable 0 (most significant bit) first."""
    t = [v % R for v in values]
    for x in point:
        half = len(t) // 2
        t = [(t[j] + x * (t[j + half] - t[j])) % R for j in range(half)]
    return t[0]


def transcript():
    t = Transcript(b"test/hyrax")
    t.absorb("statement", b"shapes and the like")
    return t


def random_point(m, rng):
    return [int(x) for x in field.to_int(field.random_seeded(m, rng)).reshape(-1)] if m else []


@pytest.mark.parametrize("m", range(11))
def test_commit_open_public_and_committed_value(m):
    rng = np.random.default_rng(m)
    values = rng.integers(-2**40, 2**40, 1 << m)
    com, opening = cm.commit(values)
    assert com.num_vars == m and len(com.rows) == 1 << (m // 2)
    x = random_point(m, rng)
    v = cm.evaluate(opening, x)
    assert field.to_int(v) == mle_reference(values.tolist(), x)

    proof = cm.prove_eval(opening, com, x, transcript())
    assert len(proof.L) == m - m // 2
    cm.verify_eval(com, x, v, proof, transcript())
    cm.verify_eval(com, x, field.to_int(v), cm.EvalProof.from_bytes(proof.to_bytes()), transcript())
    with pytest.raises(VerificationError):
        cm.verify_eval(com, x, field.add(v, field.ONE), proof, transcript())

    r_v = field.random(())
    c_v, blind = cm.commit_scalar(v, blind=r_v)
    assert np.array_equal(blind, r_v)
    proof = cm.prove_eval(opening, com, x, transcript(), value_blind=r_v)
    cm.verify_eval(com, x, c_v, proof, transcript())
    with pytest.raises(VerificationError):
        cm.verify_eval(com, x, cm.commit_scalar(field.add(v, field.ONE), blind=r_v)[0], proof, transcript())
    with pytest.raises(VerificationError):  # the committed-value proof is not a public-value proof
        cm.verify_eval(com, x, v, proof, transcript())


def test_field_table_bits_and_padding_match():
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2, (3, 5))  # padded to (4, 8): 5 variables, non-square
    blinds = field.random_seeded(4, rng)
    com_int, op_int = cm.commit(bits, blinds=blinds)
    com_bool, _ = cm.commit(bits.astype(bool), blinds=blinds)
    com_torch, _ = cm.commit(torch.tensor(bits), blinds=blinds)
    com_field, op_field = cm.commit(field.from_int(bits), blinds=blinds)
    assert com_int == com_bool == com_torch == com_field and com_int.num_vars == 5
    padded = np.zeros((4, 8), dtype=np.int64)
    padded[:3, :5] = bits
    x = random_point(5, rng)
    assert field.to_int(cm.evaluate(op_field, x)) == mle_reference(padded.reshape(-1).tolist(), x)
    # the rows are the Pedersen commitments C_i = <T_i, G> + r_i H
    g, h = cm.DEFAULT_KEY.g(8), cm.DEFAULT_KEY.H
    for i in range(4):
        assert com_int.rows[i] == group.msm(g + [h], np.concatenate([field.from_int(padded[i]), blinds[i:i + 1]]))


def test_big_integers_and_field_elements():
    rng = np.random.default_rng(12)
    big = np.array([R - 1, 2**200, -(2**100), 7], dtype=object)
    com, opening = cm.commit(big)
    x = random_point(2, rng)
    v = cm.evaluate(opening, x)
    assert field.to_int(v) == mle_reference(big.tolist(), x)
    cm.verify_eval(com, x, v, cm.prove_eval(opening, com, x, transcript()), transcript())


@pytest.fixture(scope="module")
def instance():
    rng = np.random.default_rng(20)
    m = 7
    com, opening = cm.commit(field.random_seeded(1 << m, rng))
    x = random_point(m, rng)
    v = cm.evaluate(opening, x)
    r_v = field.random(())
    c_v, _ = cm.commit_scalar(v, blind=r_v)
    proof = cm.prove_eval(opening, com, x, transcript(), value_blind=r_v)
    cm.verify_eval(com, x, c_v, proof, transcript())
    return com, opening, x, v, c_v, proof


def _replace(proof, name, index, new):
    parts = {k: getattr(proof, k) for k in ("L", "R", "A", "z1", "z2")}
    if index is None:
        parts[name] = new
    else:
        seq = list(parts[name])
        seq[index] = new
        parts[name] = tuple(seq)
    return cm.EvalProof(**parts)


def test_every_tampered_proof_element_is_rejected(instance):
    com, _, x, _, c_v, proof = instance
    other = group.generators(1, b"test/other")[0]
    tampered = []
    for name in ("L", "R"):
        for j, p in enumerate(getattr(proof, name)):
            tampered.append(_replace(proof, name, j, p + other))
    tampered.append(_replace(proof, "A", None, proof.A + other))
    for name in ("z1", "z2"):
        tampered.append(_replace(proof, name, None, field.add(getattr(proof, name), field.ONE)))
    tampered.append(_replace(proof, "L", 0, proof.R[0]))  # swapped messages
    for bad in tampered:
        with pytest.raises(VerificationError):
            cm.verify_eval(com, x, c_v, bad, transcript())
    with pytest.raises(VerificationError):  # a round missing
        cm.verify_eval(com, x, c_v, cm.EvalProof(proof.L[1:], proof.R[1:], proof.A, proof.z1, proof.z2), transcript())


def test_wrong_statement_is_rejected(instance):
    com, opening, x, v, c_v, proof = instance
    rng = np.random.default_rng(21)
    other_com, _ = cm.commit(field.random_seeded(1 << 7, rng))
    with pytest.raises(VerificationError):
        cm.verify_eval(other_com, x, c_v, proof, transcript())
    shifted = com.rows[:1] + (com.rows[1] + cm.DEFAULT_KEY.g(1)[0],) + com.rows[2:]
    with pytest.raises(VerificationError):
        cm.verify_eval(cm.Commitment(7, shifted), x, c_v, proof, transcript())
    with pytest.raises(VerificationError):  # another point
        cm.verify_eval(com, [x[0] + 1] + x[1:], c_v, proof, transcript())
    with pytest.raises(VerificationError):  # a point of the wrong length
        cm.verify_eval(com, x[1:], c_v, proof, transcript())
    with pytest.raises(VerificationError):  # another commitment key
        cm.verify_eval(com, x, c_v, proof, transcript(), key=cm.CommitKey(b"test/other-key"))
    small_com, small_opening = cm.commit(np.arange(8))  # a commitment of another size
    with pytest.raises(VerificationError):
        cm.verify_eval(small_com, x[:3], c_v, proof, transcript())


def test_transcript_binding(instance):
    com, _, x, _, c_v, proof = instance
    other_domain = Transcript(b"test/hyrax-other")
    other_domain.absorb("statement", b"shapes and the like")
    other_statement = Transcript(b"test/hyrax")
    other_statement.absorb("statement", b"other shapes")
    for t in (other_domain, other_statement, Transcript(b"test/hyrax")):
        with pytest.raises(VerificationError):
            cm.verify_eval(com, x, c_v, proof, t)
    # prover and verifier transcripts stay in sync after the proof
    tp, tv = transcript(), transcript()
    com2, op2 = cm.commit(np.arange(16))
    proof2 = cm.prove_eval(op2, com2, [1, 2, 3, 4], tp)
    cm.verify_eval(com2, [1, 2, 3, 4], cm.evaluate(op2, [1, 2, 3, 4]), proof2, tv)
    assert tp.challenge("next") == tv.challenge("next")


def test_hiding_and_blinds():
    values = np.arange(32)
    c1, o1 = cm.commit(values)
    c2, o2 = cm.commit(values)
    assert all(a != b for a, b in zip(c1.rows, c2.rows))
    assert not np.array_equal(o1.blinds, o2.blinds)
    c3, _ = cm.commit(values, blinds=o1.blinds)
    assert c3 == c1
    assert "blinds" not in repr(o1) and "table" not in repr(o1)
    p1, _ = cm.commit_scalar(5)
    p2, _ = cm.commit_scalar(5)
    assert p1 != p2


def test_commit_scalars():
    rng = np.random.default_rng(30)
    v = field.random_seeded(3, rng)
    points, blinds = cm.commit_scalars(v)
    key = cm.DEFAULT_KEY
    for p, vi, ri in zip(points, v, blinds):
        assert p == group.msm([key.U, key.H], np.stack([vi, ri]))
    assert cm.commit_scalars([1, 2], blinds=[3, 4])[0] == cm.commit_scalars(field.from_int([1, 2]), blinds=field.from_int([3, 4]))[0]


def test_homomorphism():
    rng = np.random.default_rng(40)
    a = rng.integers(-1000, 1000, (4, 4))
    b = rng.integers(-1000, 1000, (4, 4))
    ca, oa = cm.commit(a)
    cb, ob = cm.commit(b)
    x = random_point(4, rng)
    for com, opening, expected in (
        (ca + cb, cm.Opening.combine([1, 1], [oa, ob], CPU), a + b),
        (ca - cb, cm.Opening.combine([1, -1], [oa, ob], CPU), a - b),
        (cm.Commitment.combine([3, -2], [ca, cb]), cm.Opening.combine([3, -2], [oa, ob], CPU), 3 * a - 2 * b),
    ):
        assert com == cm.commit(expected, blinds=opening.blinds)[0]
        proof = cm.prove_eval(opening, com, x, transcript())
        cm.verify_eval(com, x, cm.evaluate(opening, x), proof, transcript())
        assert field.to_int(cm.evaluate(opening, x)) == mle_reference(expected.reshape(-1).tolist(), x)
    lam = field.random_seeded((), rng)
    combo = cm.Commitment.combine([lam], [ca])
    assert combo == cm.commit(field.mul(lam, field.from_int(a)), blinds=cm.Opening.combine([lam], [oa], CPU).blinds)[0]
    with pytest.raises(ValueError):
        ca + cm.commit(np.arange(8))[0]
    with pytest.raises(ValueError):
        cm.Commitment.combine([1, 2], [ca])


def test_serialisation_round_trip(instance):
    com, _, _, _, _, proof = instance
    assert cm.Commitment.from_bytes(com.to_bytes()) == com
    again = cm.EvalProof.from_bytes(proof.to_bytes())
    assert again.to_bytes() == proof.to_bytes()
    assert len(proof.to_bytes()) == 2 + 48 * (2 * 4 + 1) + 64


def _parse_only_format_errors(parse, data):
    try:
        parse(data)
    except ProofFormatError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    _parse_only_format_errors(cm.EvalProof.from_bytes, data)
    _parse_only_format_errors(cm.Commitment.from_bytes, data)
    _parse_only_format_errors(cm.EvalProof.from_bytes, b"\x01" + data)
    _parse_only_format_errors(cm.Commitment.from_bytes, b"\x01" + data)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_mutated_proof_and_commitment(instance, data):
    com, _, x, _, c_v, proof = instance
    for blob, parse in ((proof.to_bytes(), cm.EvalProof.from_bytes), (com.to_bytes(), cm.Commitment.from_bytes)):
        blob = bytearray(blob)
        kind = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
        if kind == "flip":
            pos = data.draw(st.integers(0, len(blob) - 1))
            blob[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            del blob[data.draw(st.integers(0, len(blob) - 1)):]
        else:
            blob += data.draw(st.binary(min_size=1, max_size=64))
        try:
            parsed = parse(bytes(blob))
        except ProofFormatError:
            continue
        # a mutation that still parses must not verify
        args = (parsed, x, c_v, proof) if parse is cm.Commitment.from_bytes else (com, x, c_v, parsed)
        with pytest.raises(VerificationError):
            cm.verify_eval(*args, transcript())


@pytest.mark.parametrize("m, col_vars", [(6, 0), (6, 6), (7, 2), (5, 4)])
def test_explicit_row_width(m, col_vars):
    rng = np.random.default_rng(m + col_vars)
    values = rng.integers(-1000, 1000, 1 << m)
    com, opening = cm.commit(values, col_vars=col_vars)
    assert len(com.rows) == 1 << (m - col_vars) and com.col_vars == col_vars
    assert cm.Commitment.from_bytes(com.to_bytes()) == com
    point = field.random(m)
    proof = cm.prove_eval(opening, com, point, Transcript(b"t"))
    cm.verify_eval(com, point, cm.evaluate(opening, point), proof, Transcript(b"t"))
    # rows of separately committed halves concatenate into the whole (block stacking)
    left, lo = cm.commit(values[: len(values) // 2], col_vars=min(col_vars, m - 1))
    right, ro = cm.commit(values[len(values) // 2:], col_vars=min(col_vars, m - 1))
    whole = cm.Commitment(m, left.rows + right.rows, min(col_vars, m - 1))
    joined = cm.Opening(np.concatenate([lo.table, ro.table]), np.concatenate([lo.blinds, ro.blinds]))
    proof = cm.prove_eval(joined, whole, point, Transcript(b"t"))
    cm.verify_eval(whole, point, cm.evaluate(joined, point), proof, Transcript(b"t"))
    with pytest.raises(ValueError, match="column variables"):
        cm.commit(values, col_vars=m + 1)


def test_deferred_checks_batch_and_name_the_failure():
    rng = np.random.default_rng(9)
    com, opening = cm.commit(rng.integers(-50, 50, 64))
    point = field.random(6)
    value = cm.evaluate(opening, point)
    proof = cm.prove_eval(opening, com, point, Transcript(b"d"))
    checks = cm.DeferredChecks()
    cm.verify_eval(com, point, value, proof, Transcript(b"d"), checks=checks)
    cm.verify_eval(com, point, value, proof, Transcript(b"d"), checks=checks)
    checks.run()  # both hold
    bad = cm.DeferredChecks()
    cm.verify_eval(com, point, value, proof, Transcript(b"d"), checks=bad)
    cm.verify_eval(com, point, field.add(value, field.ONE), proof, Transcript(b"d"), checks=bad)
    with pytest.raises(VerificationError, match="inner-product"):
        bad.run()


@pytest.mark.parametrize("coeff", [1, -1, 3, 2**41 + 5])
def test_derive_is_the_commitment_the_relation_implies(coeff):
    """``coeff D + 2 A - 5 B = 7`` entrywise: D's derived commitment is a Hyrax commitment of D (the
    blinds it returns), the relation holds on the commitments with blind 0, and D opens."""
    rng = np.random.default_rng(41)
    a, b = rng.integers(-1000, 1000, (2, 8, 16))
    num = 7 - 2 * a + 5 * b
    d = num // coeff if coeff in (1, -1) else None
    ca, oa = cm.commit(a, col_vars=3)
    cb, ob = cm.commit(b, col_vars=3)
    ones = group.msm_small(cm.DEFAULT_KEY.g(8), np.ones(8, dtype=np.int64))
    values = d if d is not None else field.mul(field.from_int(num), field.inv(field.from_int(coeff)))
    com, opening = cm.derive(values, coeff, [(2, ca, oa), (-5, cb, ob)], 7, ones, 3)
    assert com == cm.commit(values, blinds=opening.blinds, col_vars=3)[0]
    ones_com = cm.Commitment(com.num_vars, (ones,) * len(com.rows), com.col_vars)
    zero = cm.Commitment.combine([coeff, 2, -5, -7], [com, ca, cb, ones_com])
    assert all(p == group.identity() for p in zero.rows)
    x = random_point(com.num_vars, rng)
    proof = cm.prove_eval(opening, com, x, transcript())
    cm.verify_eval(com, x, cm.evaluate(opening, x), proof, transcript())


def test_derive_refuses_other_layouts_and_a_zero_coefficient():
    a = np.arange(128).reshape(8, 16)
    ca, oa = cm.commit(a, col_vars=3)
    ones = group.msm_small(cm.DEFAULT_KEY.g(16), np.ones(16, dtype=np.int64))
    with pytest.raises(ValueError, match="column variables"):
        cm.derive(a, 1, [(1, ca, oa)], 0, ones, 4)
    with pytest.raises(ValueError, match="coefficient is 0"):
        cm.derive(a, R, [(1, ca, oa)], 0, ones, 3)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-R, R), min_size=1, max_size=4))
def test_integer_combinations_agree_with_field_ones(coeffs):
    rng = np.random.default_rng(len(coeffs))
    coms = [cm.commit(rng.integers(-50, 50, 16), col_vars=2)[0] for _ in coeffs]
    fast = cm.Commitment.combine(coeffs, coms)
    assert fast == cm.Commitment.combine([field.from_int(c) for c in coeffs], coms)
