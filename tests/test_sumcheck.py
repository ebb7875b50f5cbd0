"""zk.sumcheck's prover (completeness, the eq-factored prover) and zk.zksumcheck's committed
sumcheck (completeness, soundness against tampering)."""
import dataclasses

import numpy as np
import pytest

from zk import commit, zksumcheck
from zk import field as F
from zk import mle
from zk import sumcheck as S
from zk.errors import VerificationError
from zk.field import R
from zk.transcript import Transcript

DOMAIN = b"zkfhe/test/sumcheck"


def hypercube_sum(tables, terms) -> np.ndarray:
    """The claim, computed directly: sum_x sum_t c_t prod_j P_j(x)."""
    total = F.zeros()
    for c, idx in terms:
        p = F.ones(len(tables[0]))
        for j in idx:
            p = F.mul(p, tables[j])
        total = F.add(total, F.mul(F.from_int(c) if isinstance(c, int) else c, F.sum(p)))
    return total


def summand(terms, values) -> int:
    """sum_t c_t prod_j values[j], as an int."""
    total = 0
    for c, idx in terms:
        p = F.to_int(F.from_int(c) if isinstance(c, int) else c)
        for j in idx:
            p = p * F.to_int(values[j]) % R
        total += p
    return total % R


def make(m: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [F.random_seeded(1 << m, rng) for _ in range(k)]


def check_plain(tables, terms, claim, result) -> None:
    """The plain verifier: g_i(0) + g_i(1) = claim_i under the prover's transcript, then the last
    claim against the summand at the point, from the tables' true MLEs."""
    t = Transcript(DOMAIN)
    current = F.to_int(claim)
    for i, g in enumerate(result.messages):
        values = [int(v) for v in F.to_int(g)]
        assert (values[0] + values[1]) % R == current, f"round {i}"
        t.absorb_scalars("sumcheck/round", g)
        r = t.challenge_scalar("sumcheck/challenge")
        assert np.array_equal(r, result.point[i])
        current = S.interpolate(values, F.to_int(r))
    finals = np.array([mle.evaluate(tab, result.point) for tab in tables])
    assert np.array_equal(result.finals, finals)
    assert summand(terms, finals) == current


CASES = {
    "one MLE": (1, [(1, (0,))]),
    "product of two": (2, [(1, (0, 1))]),
    "product of three": (3, [(1, (0, 1, 2))]),
    "sum of products": (3, [(2, (0, 1)), (-1, (1, 2, 0)), (5, (2,))]),
    "repeated factor (booleanity-style)": (2, [(1, (0, 1)), (-1, (0, 1, 1))]),
    "constant term": (2, [(3, ()), (1, (0, 1))]),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("m", [0, 1, 4, 13])
def test_completeness(name, m):
    k, terms = CASES[name]
    tables = make(m, k, seed=m)
    originals = [t.copy() for t in tables]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    degree = max(1, max(len(idx) for _, idx in terms))
    assert result.messages.shape == (m, degree + 1, 4)
    check_plain(tables, terms, hypercube_sum(tables, terms), result)
    assert all(np.array_equal(a, b) for a, b in zip(tables, originals))  # inputs untouched


def test_field_coefficients_and_integer_tensors():
    a = np.arange(12).reshape(3, 4) - 6
    b = np.arange(12).reshape(3, 4) * 3
    tables = [mle.table(a), mle.table(b)]
    c = F.random_seeded((), np.random.default_rng(5))
    terms = [(c, (0, 1))]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    check_plain(tables, terms, F.mul(c, F.from_int(int((a * b).sum()))), result)


# ---------------------------------------------------------------------------------------------
# the committed sumcheck (zk.zksumcheck)
# ---------------------------------------------------------------------------------------------
TERMS = [(1, (0, 1, 2)), (2, (1,))]


def committed(m: int = 4, seed: int = 1):
    """``(tables, C_claim, proof)`` for an honest committed sumcheck, its point, finals and blind."""
    tables = make(m, 3, seed)
    c_claim, blind = commit.commit_scalar(hypercube_sum(tables, TERMS))
    return tables, c_claim, zksumcheck.prove(S.SumcheckProver(tables, TERMS), blind, Transcript(DOMAIN))


def test_committed_sumcheck_completeness():
    tables, c_claim, (proof, point, finals, final_blind) = committed()
    r, final = zksumcheck.verify(c_claim, 4, 3, proof, Transcript(DOMAIN))
    assert np.array_equal(r, point)
    assert np.array_equal(finals, np.array([mle.evaluate(t, point) for t in tables]))
    assert final == commit.commit_scalar(summand(TERMS, finals), blind=final_blind)[0]
    parsed = zksumcheck.CommittedSumcheck.from_bytes(proof.to_bytes(), 4, 3)
    assert zksumcheck.verify(c_claim, 4, 3, parsed, Transcript(DOMAIN))[1] == final


def test_committed_sumcheck_final_claim():
    """verify_final_claim accepts C_final = e * C_v with prove_final_claim's blind, nothing else."""
    tables, c_claim, (proof, point, finals, final_blind) = committed()
    _, final = zksumcheck.verify(c_claim, 4, 3, proof, Transcript(DOMAIN))
    e = F.random_seeded((), np.random.default_rng(2))
    value = F.mul(F.from_int(summand(TERMS, finals)), F.inv(e))
    c_v, b_v = commit.commit_scalar(value)
    delta = zksumcheck.prove_final_claim(final_blind, e, b_v)
    zksumcheck.verify_final_claim(final, e, c_v, delta, commit.DEFAULT_KEY, "final")
    with pytest.raises(VerificationError, match="final: committed values"):
        zksumcheck.verify_final_claim(final, F.add(e, F.ONE), c_v, delta, commit.DEFAULT_KEY, "final")


def test_committed_sumcheck_rejects_a_wrong_claim():
    _, c_claim, (proof, *_) = committed()
    wrong = c_claim + commit.DEFAULT_KEY.U
    with pytest.raises(VerificationError, match=r"sumcheck round 0: g\(0\)\+g\(1\) = claim"):
        zksumcheck.verify(wrong, 4, 3, proof, Transcript(DOMAIN))


def test_committed_sumcheck_rejects_every_tampered_round():
    _, c_claim, (proof, *_) = committed()
    for i in range(proof.num_rounds):
        deltas = proof.deltas.copy()
        deltas[i] = F.add(deltas[i], F.ONE)
        with pytest.raises(VerificationError, match=f"sumcheck round {i}:"):
            zksumcheck.verify(c_claim, 4, 3, dataclasses.replace(proof, deltas=deltas), Transcript(DOMAIN))
        for k in range(2):  # g(0), g(1) fail their round (g(k >= 2) only change the next claim)
            rows = [list(row) for row in proof.commitments]
            rows[i][k] = rows[i][k] + commit.DEFAULT_KEY.U
            bad = dataclasses.replace(proof, commitments=tuple(map(tuple, rows)))
            with pytest.raises(VerificationError, match=f"sumcheck round {i}:"):
                zksumcheck.verify(c_claim, 4, 3, bad, Transcript(DOMAIN))


def test_committed_sumcheck_binds_rounds_degree_and_transcript():
    _, c_claim, (proof, *_) = committed()
    with pytest.raises(VerificationError, match="expected 5 rounds"):
        zksumcheck.verify(c_claim, 5, 3, proof, Transcript(DOMAIN))
    with pytest.raises(VerificationError, match="must have degree 2"):
        zksumcheck.verify(c_claim, 4, 2, proof, Transcript(DOMAIN))
    other = Transcript(DOMAIN)
    other.absorb_ints("shape", [16])  # a statement value the prover did not absorb
    with pytest.raises(VerificationError, match="sumcheck round 1:"):
        zksumcheck.verify(c_claim, 4, 3, proof, other)


def test_interpolate():
    coeffs = [5, R - 3, 7, 11]  # g(X) = 5 - 3X + 7X^2 + 11X^3
    g = [sum(c * x**k for k, c in enumerate(coeffs)) % R for x in range(4)]
    for x in (0, 3, 10, R - 1, 2**200):
        assert S.interpolate(g, x) == sum(c * pow(x, k, R) for k, c in enumerate(coeffs)) % R


def test_prover_validates_input():
    with pytest.raises(ValueError, match="refers to table 2"):
        S.SumcheckProver(make(2, 2), [(1, (0, 2))])
    with pytest.raises(ValueError, match="one shape"):
        S.SumcheckProver([F.zeros(4), F.zeros(8)], [(1, (0, 1))])
    with pytest.raises(ValueError, match="one shape"):
        S.SumcheckProver([F.zeros(6)], [(1, (0,))])
    with pytest.raises(ValueError, match="no terms"):
        S.SumcheckProver(make(2, 1), [])


@pytest.mark.parametrize("m", [1, 2, 5])
@pytest.mark.parametrize("terms", [[(1, (0,)), (-1, (0, 0))], [(1, (0, 1))], [(3, (1,)), (2, (0, 1, 1))], [(5, ())]])
def test_eq_prover_sends_the_messages_of_the_prover_with_an_eq_table(m, terms):
    """EqSumcheckProver never builds eq(u, .), yet every round message equals SumcheckProver's with
    eq(u, .) as one more factor of each term, and the final evaluations agree."""
    rng = np.random.default_rng(m)
    tables = [F.random_seeded(1 << m, rng) for _ in range(2)]
    u = F.random_seeded(m, rng)
    with_table = S.SumcheckProver(tables + [mle.eq_table(u)], [(c, idx + (2,)) for c, idx in terms])
    factored = S.EqSumcheckProver(u, tables, terms)
    consumed = S.EqSumcheckProver(u, [t.copy() for t in tables], terms, consume=True)  # folds in place
    assert factored.degree == with_table.degree and factored.num_vars == m
    for _ in range(m):
        message = with_table.round_polynomial()
        assert np.array_equal(factored.round_polynomial(), message)
        assert np.array_equal(consumed.round_polynomial(), message)
        r = F.random_seeded((), rng)
        for p in (factored, with_table, consumed):
            p.bind(r)
    assert np.array_equal(factored.final_evaluations(), with_table.final_evaluations()[:2])
    assert np.array_equal(consumed.final_evaluations(), with_table.final_evaluations()[:2])


def test_prover_leaves_the_callers_tables_untouched():
    rng = np.random.default_rng(4)
    tables = [F.random_seeded(8, rng) for _ in range(2)]
    before = [t.copy() for t in tables]
    prover = S.SumcheckProver(tables, [(1, (0, 1))])
    for _ in range(3):
        prover.round_polynomial()
        prover.bind(F.random_seeded((), rng))
    assert all(np.array_equal(a, b) for a, b in zip(tables, before))
    with pytest.raises(ValueError, match="coordinates"):
        S.EqSumcheckProver(F.random_seeded(2, rng), tables, [(1, (0,))])


@pytest.mark.parametrize("chunk", [1, 4, 1 << 18])
def test_integer_tables_give_the_messages_of_their_field_elements(chunk, monkeypatch):
    """Integer tables (a 0/1 mask, int64 values), expanded chunk by chunk in the first round and
    bind, give the messages and final evaluations of the same tables as field elements."""
    monkeypatch.setattr(S, "INTEGER_CHUNK", chunk)
    rng = np.random.default_rng(chunk)
    m = 5
    mask = rng.integers(0, 2, 1 << m).astype(np.uint8)
    values = rng.integers(-2**62, 2**62, 1 << m)
    other = F.random_seeded(1 << m, rng)
    terms = [(1, (0, 1)), (3, (1, 2, 2))]
    u = F.random_seeded(m, rng)
    as_ints = S.EqSumcheckProver(u, [mask, values, other], terms)
    as_field = S.EqSumcheckProver(u, [F.from_int(mask), F.from_int(values), other], terms)
    for _ in range(m):
        assert np.array_equal(as_ints.round_polynomial(), as_field.round_polynomial())
        r = F.random_seeded((), rng)
        as_ints.bind(r)
        as_field.bind(r)
    assert np.array_equal(as_ints.final_evaluations(), as_field.final_evaluations())
    with pytest.raises(ValueError, match="one shape"):
        S.SumcheckProver([mask, values[:16]], terms[:1])
