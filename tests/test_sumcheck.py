"""zk.sumcheck: completeness for sums of products, soundness against tampering, transcript binding."""
import numpy as np
import pytest

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


def make(m: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [F.random_seeded(1 << m, rng) for _ in range(k)]


def accept(tables, terms, claim, result, degree) -> bool:
    """The full verifier check: sumcheck rounds plus the final value against the true MLEs."""
    point, expected = S.verify(claim, len(result.messages), degree, result.messages, Transcript(DOMAIN))
    values = np.array([mle.evaluate(t, point) for t in tables])
    return bool(np.array_equal(S.combine(terms, values), expected))


CASES = {
    "one MLE": (1, [(1, (0,))]),
    "product of two": (2, [(1, (0, 1))]),
    "product of three": (3, [(1, (0, 1, 2))]),
    "sum of products": (3, [(2, (0, 1)), (-1, (1, 2, 0)), (5, (2,))]),
    "repeated factor (booleanity-style)": (2, [(1, (0, 1)), (-1, (0, 1, 1))]),
    "constant term": (2, [(3, ()), (1, (0, 1))]),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("m", [1, 4, 13])
def test_completeness(name, m):
    k, terms = CASES[name]
    tables = make(m, k, seed=m)
    originals = [t.copy() for t in tables]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    degree = max(1, max(len(idx) for _, idx in terms))
    assert result.messages.shape == (m, degree + 1, 4)
    claim = hypercube_sum(tables, terms)
    point, expected = S.verify(claim, m, degree, result.messages, Transcript(DOMAIN))
    assert np.array_equal(point, result.point)
    assert np.array_equal(result.finals, np.array([mle.evaluate(t, point) for t in tables]))
    assert np.array_equal(S.combine(terms, result.finals), expected)
    assert all(np.array_equal(a, b) for a, b in zip(tables, originals))  # inputs untouched


def test_zero_variables():
    tables = [F.from_int([6]), F.from_int([7])]
    terms = [(1, (0, 1))]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    assert result.messages.shape == (0, 3, 4)
    point, expected = S.verify(F.from_int(42), 0, 2, result.messages, Transcript(DOMAIN))
    assert point.shape == (0, 4) and F.to_int(expected) == 42
    assert F.to_int(S.combine(terms, result.finals)) == 42


def test_field_coefficients_and_integer_tensors():
    a = np.arange(12).reshape(3, 4) - 6
    b = np.arange(12).reshape(3, 4) * 3
    tables = [mle.table(a), mle.table(b)]
    c = F.random_seeded((), np.random.default_rng(5))
    terms = [(c, (0, 1))]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    claim = F.mul(c, F.from_int(int((a * b).sum())))
    assert accept(tables, terms, claim, result, 2)


def test_wrong_claim_rejected():
    tables = make(5, 2)
    terms = [(1, (0, 1))]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    claim = F.add(hypercube_sum(tables, terms), F.ONE)
    with pytest.raises(VerificationError, match=r"sumcheck round 0: g\(0\)\+g\(1\) != previous claim"):
        S.verify(claim, 5, 2, result.messages, Transcript(DOMAIN))


def test_every_tampered_message_rejected():
    m = 4
    tables = make(m, 3, seed=1)
    terms = [(1, (0, 1, 2)), (2, (1,))]
    claim = hypercube_sum(tables, terms)
    result = S.prove(tables, terms, Transcript(DOMAIN))
    assert accept(tables, terms, claim, result, 3)
    for i in range(m):
        for x in range(4):
            bad = result.messages.copy()
            bad[i, x] = F.add(bad[i, x], F.ONE)
            tampered = result._replace(messages=bad)
            try:
                ok = accept(tables, terms, claim, tampered, 3)
            except VerificationError as err:
                round_ = i if x < 2 else i + 1  # g(0), g(1) fail their round; g(x>=2) the next one
                assert f"sumcheck round {round_}:" in str(err)
                continue
            assert not ok and (i, x) in [(m - 1, 2), (m - 1, 3)], (i, x)


def test_wrong_degree_rejected():
    tables = make(4, 2)
    terms = [(1, (0, 1))]
    claim = hypercube_sum(tables, terms)
    result = S.prove(tables, terms, Transcript(DOMAIN))
    for degree in (1, 3):
        with pytest.raises(VerificationError, match="evaluations, degree"):
            S.verify(claim, 4, degree, result.messages, Transcript(DOMAIN))
    # A prover of a degree-3 summand cannot pass as degree 2 by dropping an evaluation.
    cubic_tables, cubic_terms = make(4, 3), [(1, (0, 1, 2))]
    cubic = S.prove(cubic_tables, cubic_terms, Transcript(DOMAIN))
    with pytest.raises(VerificationError, match="sumcheck round 1:"):
        S.verify(hypercube_sum(cubic_tables, cubic_terms), 4, 2, cubic.messages[:, :3], Transcript(DOMAIN))
    with pytest.raises(VerificationError, match="expected 5 rounds"):
        S.verify(claim, 5, 2, result.messages, Transcript(DOMAIN))
    with pytest.raises(VerificationError, match="degree must be at least 1"):
        S.verify(claim, 4, 0, result.messages[:, :1], Transcript(DOMAIN))


def test_high_degree_round_polynomial_rejected():
    """Evaluations of a genuinely higher-degree g that still satisfy g(0)+g(1) = claim are refused by shape."""
    tables = make(3, 2)
    terms = [(1, (0, 1))]
    claim = hypercube_sum(tables, terms)
    result = S.prove(tables, terms, Transcript(DOMAIN))
    padded = np.concatenate([result.messages, result.messages[:, :1]], axis=1)
    with pytest.raises(VerificationError, match="degree 2 needs 3"):
        S.verify(claim, 3, 2, padded, Transcript(DOMAIN))


def test_transcript_binding():
    """Messages are bound to the transcript: under another one, round 1 no longer matches g_0(r_0)."""
    tables = make(6, 2)
    terms = [(1, (0, 1))]
    result = S.prove(tables, terms, Transcript(DOMAIN))
    other = Transcript(DOMAIN)
    other.absorb_ints("shape", [64])  # a statement value the prover did not absorb
    with pytest.raises(VerificationError, match="sumcheck round 1:"):
        S.verify(hypercube_sum(tables, terms), 6, 2, result.messages, other)


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
    assert factored.degree == with_table.degree and factored.num_vars == m
    for _ in range(m):
        assert np.array_equal(factored.round_polynomial(), with_table.round_polynomial())
        r = F.random_seeded((), rng)
        factored.bind(r)
        with_table.bind(r)
    assert np.array_equal(factored.final_evaluations(), with_table.final_evaluations()[:2])


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
