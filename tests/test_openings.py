"""zk.openings: evaluation claims on Hyrax-committed tables opened together by one committed
sumcheck over the row combinations and one inner-product argument.

What is tested:

* completeness: tables of different sizes and row widths (a 1-entry table, one column, tables
  narrower than the widest one, so their rows are zero-extended, a padded table, a bit plane),
  public and committed values, one table claimed at two points, all through the wire format;
  ``Openings.add`` returns ``T~(x)`` (checked against ``commit.evaluate`` and a Python fold);
* soundness against malicious provers that run this module's prover code on a doctored
  witness (another table behind the honest commitment, a table doctored to yield exactly
  ``v + 1``, the right rows with wrong blinds), against false, missing, extra, reordered and
  moved claims, and against forged proofs spliced from honest ones;
* a value or point coordinate given as an int ``x + r`` or ``x - r`` is the same field element;
* deferred checks: a false claim fails only at ``DeferredChecks.run``, which names the check;
* malformed input: the parser raises only ProofFormatError, the verifier only
  VerificationError, the prover ValueError for an empty or mismatched use;
* a weak zero-knowledge sanity check: fresh randomness leaves no proof point in common.

Malformed proof objects are named as such: among them a sumcheck object without its zero-opening
blinds, which once left rounds unchecked (their challenges uninitialised memory) and let a forger
who guessed that memory prove a false claim.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from zk import commit, field, mle, openings, wire, zksumcheck
from zk.device import CPU
from zk.errors import ProofFormatError, VerificationError
from zk.group import Point
from zk.transcript import Transcript

R = field.R


def transcript() -> Transcript:
    t = Transcript(b"test/openings")
    t.absorb("statement", b"what the enclosing proof absorbed first")
    return t


def to_ints(a) -> list[int]:
    return [int(v) for v in np.asarray(field.to_int(a)).reshape(-1)] if len(a) else []


def mle_reference(values, point) -> int:
    """The MLE of ``values`` (Python ints, C order, power-of-two length) at ``point`` (ints),
    variable 0 (the most significant index bit) bound first."""
    tab = [int(v) % R for v in values]
    for x in point:
        half = len(tab) // 2
        tab = [(tab[j] + x * (tab[j + half] - tab[j])) % R for j in range(half)]
    return tab[0]


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    entries: np.ndarray  # the padded table as ints, C order (the MLE table's entries)
    com: commit.Commitment
    op: commit.Opening

    @property
    def num_vars(self) -> int:
        return self.com.num_vars


def _make(name: str, values: np.ndarray, col_vars=None, seed: int = 0) -> Table:
    rng = np.random.default_rng(1000 + seed)
    padded = mle.pad_pow2(np.asarray(values, dtype=np.int64))
    n = padded.size
    blinds = field.random_seeded(n >> commit.split_vars(n.bit_length() - 1, col_vars)[1], rng)
    com, op = commit.commit(values, col_vars=col_vars, blinds=blinds)
    return Table(name, padded.reshape(-1), com, op)


@lru_cache(maxsize=None)
def tables() -> dict[str, Table]:
    """Fixed test tables: (num_vars, col_vars) in the comment."""
    rng = np.random.default_rng(7)
    out = [
        _make("one", np.array([rng.integers(-50, 50)]), None, 0),  # (0, 0): a single entry
        _make("column", rng.integers(-2**20, 2**20, 8), 0, 1),  # (3, 0): one column
        _make("square", rng.integers(-2**30, 2**30, 16), None, 2),  # (4, 2)
        _make("padded", rng.integers(0, 99, (3, 5)), None, 3),  # (5, 3): a 3x5 tensor padded to 4x8
        _make("bits", rng.integers(0, 2, (8, 4)).astype(bool), None, 4),  # (5, 3): a bit plane
        _make("tall", rng.integers(-9, 9, 64), 1, 5),  # (6, 1)
        _make("big", rng.integers(-2**40, 2**40, 1024), None, 6),  # (10, 5): the widest
        _make("square2", rng.integers(-2**30, 2**30, 16), None, 8),  # (4, 2), like "square"
    ]
    return {t.name: t for t in out}


def point(m: int, seed: int) -> np.ndarray:
    return field.random_seeded(m, np.random.default_rng(seed))


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim as the prover makes it: the table, the point, the value's blind (None: public)."""

    table: Table
    x: np.ndarray
    blind: np.ndarray | None = None


def claim(name: str, seed: int, committed: bool = False) -> Claim:
    t = tables()[name]
    return Claim(t, point(t.num_vars, seed), field.random_seeded((), np.random.default_rng(500 + seed))
                 if committed else None)


def prove(claims, *, opening=None) -> tuple[openings.OpeningsProof, list[np.ndarray]]:
    """Run the module's prover on ``claims``; ``opening(claim)`` may replace a claim's opening
    (a malicious prover's doctored witness). Returns the proof and the values ``add`` returned."""
    t, o = transcript(), openings.Openings()
    values = []
    for c in claims:
        op = c.table.op if opening is None else opening(c)
        values.append(o.add(op, c.table.com, c.x, t, value_blind=c.blind))
    assert len(o) == len(claims)
    proof = o.prove(t)
    assert len(o) == 0  # prove forgets the claims
    return proof, values


def stated(c: Claim, v):
    """What the verifier is given for value ``v`` of claim ``c``: ``v`` or ``C_v``."""
    return v if c.blind is None else commit.commit_scalar(v, blind=c.blind)[0]


def statement(claims, values) -> list[tuple]:
    return [(c.table.com, c.x, stated(c, v)) for c, v in zip(claims, values)]


def verify(triples, proof, checks=None) -> None:
    t, cl = transcript(), openings.Claims()
    for com, x, value in triples:
        cl.add(com, x, value, t)
    assert len(cl) == len(triples)
    try:
        cl.verify(proof, t, checks)
    finally:
        assert len(cl) == 0  # verify forgets the claims, whatever the outcome


def rejected(triples, proof) -> str:
    with pytest.raises(VerificationError) as info:
        verify(triples, proof)
    return str(info.value)


def accepted_without_the_inner_product_check(monkeypatch, triples, proof) -> None:
    """``proof`` verifies once the final inner-product equation is dropped (the transcript still
    runs through it): a forgery whose only flaw is the one the argument exists to catch."""
    real = commit.inner_product_equation

    def vacuous(*args, **kwargs):
        real(*args, **kwargs)
        return [], field.zeros(0)

    with monkeypatch.context() as m:
        m.setattr(commit, "inner_product_equation", vacuous)
        verify(triples, proof)


def through_wire(proof: openings.OpeningsProof) -> openings.OpeningsProof:
    data = b"".join(wire.section(s) for s in proof.sections())
    reader = wire.Reader(data)
    out = openings.OpeningsProof.read(reader)
    reader.end()
    assert out.sections() == proof.sections()
    return out


def plus_one(v):
    return field.add(v, field.ONE)


# The main mixed set of claims: every table, public and committed values, "square" at two points.
MIXED = [("one", 1, False), ("column", 2, True), ("square", 3, False), ("square", 4, True),
         ("padded", 5, True), ("bits", 6, False), ("tall", 7, True), ("big", 8, False)]


@lru_cache(maxsize=None)
def mixed() -> tuple[list[Claim], openings.OpeningsProof, list[np.ndarray]]:
    claims = [claim(*spec) for spec in MIXED]
    proof, values = prove(claims)
    return claims, proof, values


@lru_cache(maxsize=None)
def mixed_bytes() -> bytes:
    return b"".join(wire.section(s) for s in mixed()[1].sections())


# ------------------------------------------------------------------------------------------
# Completeness
# ------------------------------------------------------------------------------------------
def test_tables_cover_the_layouts():
    layouts = {name: (t.com.num_vars, t.com.col_vars) for name, t in tables().items()}
    assert layouts == {"one": (0, 0), "column": (3, 0), "square": (4, 2), "padded": (5, 3), "bits": (5, 3),
                       "tall": (6, 1), "big": (10, 5), "square2": (4, 2)}
    assert tables()["bits"].op.table.dtype == np.uint8  # the bit plane stays bytes


def test_add_returns_the_true_value():
    """``Openings.add`` returns ``T~(x)``: as ``commit.evaluate`` computes it, and as a Python
    fold of the padded table computes it (the small tables)."""
    t, o = transcript(), openings.Openings()
    for name, table in tables().items():
        for seed in (11, 12):
            x = point(table.num_vars, seed)
            v = o.add(table.op, table.com, x, t)
            assert field.equal(v, commit.evaluate(table.op, x))
            if table.num_vars <= 6:
                assert field.to_int(v) == mle_reference(table.entries.tolist(), to_ints(x)), name
    # on a Boolean point the value is a table entry
    table = tables()["padded"]
    v = o.add(table.op, table.com, [1, 0, 1, 1, 0], t)  # row 2 (of 4), column 6 (of 8)
    assert field.to_int(v) == table.entries[2 * 8 + 6] == 0  # the padding column
    v = o.add(table.op, table.com, [0, 1, 1, 0, 0], t)
    assert field.to_int(v) == table.entries[1 * 8 + 4]


def test_mixed_claims_verify_through_the_wire():
    claims, proof, values = mixed()
    assert proof.col_vars == 5 and proof.sumcheck.num_rounds == 5 and len(proof.ipa.L) == 5
    verify(statement(claims, values), proof)
    verify(statement(claims, values), through_wire(proof))
    # a public value may be given as an int or a field element
    verify([(com, x, field.to_int(v) if not isinstance(v, Point) else v)
            for com, x, v in statement(claims, values)], proof)


@pytest.mark.parametrize("specs", [
    [("one", 1, False)],
    [("one", 1, True)],
    [("column", 2, False), ("one", 3, True)],  # every row one entry wide: no sumcheck round
    [("big", 4, True)],
    [("square", 5, False), ("square", 5, False)],  # the same claim twice
    [("tall", 6, True), ("square", 7, False), ("bits", 8, True)],  # widest table not first
])
def test_small_claim_sets_verify(specs):
    claims = [claim(*s) for s in specs]
    proof, values = prove(claims)
    assert proof.col_vars == max(c.table.com.col_vars for c in claims)
    verify(statement(claims, values), through_wire(proof))


def test_batch_of_one_matches_a_single_opening_value():
    """A claim opened in a batch and by ``commit.prove_eval`` state the same value."""
    c = claim("padded", 9)
    (proof, (v,)) = prove([c])
    single = commit.prove_eval(c.table.op, c.table.com, c.x, transcript())
    commit.verify_eval(c.table.com, c.x, v, single, transcript())
    verify(statement([c], [v]), proof)


# ------------------------------------------------------------------------------------------
# Malicious provers: the module's own prover code on doctored witnesses
# ------------------------------------------------------------------------------------------
def doctored_table(table: Table, seed: int) -> commit.Opening:
    """Another table of the same layout behind the same blinds."""
    other = field.random_seeded(table.op.field_table(CPU).shape[:2], np.random.default_rng(seed))
    return commit.Opening(other, table.op.blinds)


@pytest.mark.parametrize("committed", [False, True])
def test_doctored_table_rejected(committed, monkeypatch):
    """(a) The prover opens another table behind the honest commitment and claims what that
    table yields: its sumcheck is consistent, the inner-product argument is not."""
    claims = [claim("square", 21, committed), claim("big", 22, committed), claim("one", 23, committed)]
    for victim in range(len(claims)):
        proof, values = prove(claims, opening=lambda c: doctored_table(c.table, 99) if c is claims[victim]
                              else c.table.op)
        assert not field.equal(values[victim], commit.evaluate(claims[victim].table.op, claims[victim].x))
        assert "inner-product argument" in rejected(statement(claims, values), proof)
        accepted_without_the_inner_product_check(monkeypatch, statement(claims, values), proof)


def shifted_by_one(c: Claim) -> commit.Opening:
    """The table of ``c`` with one entry changed so that its value at ``c.x`` is exactly ``v + 1``
    (entry (i, j) moves by ``1 / (L_i R_j)``)."""
    m_row = c.table.num_vars - c.table.com.col_vars
    left, right = mle.eq_table(c.x[:m_row]), mle.eq_table(c.x[m_row:])
    tab = np.array(c.table.op.field_table(CPU))
    tab[0, 0] = field.add(tab[0, 0], field.inv(field.mul(left[0], right[0])))
    return commit.Opening(tab, c.table.op.blinds)


@pytest.mark.parametrize("committed", [False, True])
def test_value_off_by_one_rejected(committed, monkeypatch):
    """(b) ``v + 1``: checked by the verifier against the honest proof, and claimed by a prover
    whose doctored table yields exactly ``v + 1`` (a consistent sumcheck of the false sum)."""
    claims = [claim("tall", 31, committed), claim("square", 32, committed), claim("big", 33, committed)]
    proof, values = prove(claims)
    for victim in range(len(claims)):
        lie = list(values)
        lie[victim] = plus_one(values[victim])
        rejected(statement(claims, lie), proof)

        bad_proof, bad_values = prove(claims, opening=lambda c: shifted_by_one(c) if c is claims[victim]
                                      else c.table.op)
        assert field.equal(bad_values[victim], lie[victim])
        assert "inner-product argument" in rejected(statement(claims, bad_values), bad_proof)
        accepted_without_the_inner_product_check(monkeypatch, statement(claims, bad_values), bad_proof)


def test_errors_that_cancel_in_a_plain_sum_rejected():
    """``v_0 + 1`` and ``v_1 - 1``: the claims are combined with powers of a challenge, not summed."""
    claims = [claim("square", 34), claim("square", 35)]
    proof, (v0, v1) = prove(claims)
    rejected(statement(claims, [plus_one(v0), field.sub(v1, field.ONE)]), proof)


@pytest.mark.parametrize("specs", [[("column", 36, False), ("one", 37, True)], [("one", 38, False)]])
def test_false_claim_without_sumcheck_rounds_rejected(specs):
    """Every table one entry wide (``c = 0``): the inner-product argument alone catches a lie."""
    claims = [claim(*s) for s in specs]
    proof, values = prove(claims)
    assert proof.sumcheck.num_rounds == 0
    verify(statement(claims, values), proof)
    rejected(statement(claims, [plus_one(values[0]), *values[1:]]), proof)
    bad_proof, bad_values = prove(claims, opening=lambda c: shifted_by_one(c) if c is claims[0] else c.table.op)
    rejected(statement(claims, bad_values), bad_proof)


def test_extra_and_dropped_claims_rejected():
    """(c) The verifier checks a true claim the prover never added, or drops one it added."""
    claims, proof, values = mixed()
    triples = statement(claims, values)
    extra = claim("square", 41)
    extra_value = commit.evaluate(extra.table.op, extra.x)
    rejected(triples + [(extra.table.com, extra.x, extra_value)], proof)
    rejected([(extra.table.com, extra.x, extra_value)] + triples, proof)
    rejected(triples[:-2] + triples[-1:], proof)  # "tall" dropped: the widest claim stays, c = 5
    rejected(triples[1:], proof)


def test_reordered_claims_rejected():
    """(d) The same true claims in another order on the verifier's side."""
    claims, proof, values = mixed()
    triples = statement(claims, values)
    rejected(triples[::-1], proof)
    rejected([triples[1], triples[0], *triples[2:]], proof)
    rejected([triples[0], triples[1], triples[3], triples[2], *triples[4:]], proof)  # "square" at its 2 points


def test_claim_at_another_point_rejected():
    """(e) The verifier's point differs: with the prover's value, and with the true value there."""
    claims, proof, values = mixed()
    triples = statement(claims, values)
    for i in (2, 4, 7):  # public, committed, the widest
        com, x, v = triples[i]
        for k in (0, len(x) - 1):  # a row and a column coordinate
            moved = x.copy()
            moved[k] = plus_one(moved[k])
            c = claims[i]
            for value in (v, stated(c, commit.evaluate(c.table.op, moved))):
                rejected(triples[:i] + [(com, moved, value)] + triples[i + 1:], proof)
    # the two "square" claims with their points swapped (values kept)
    (com, x3, v3), (_, x4, v4) = triples[2], triples[3]
    rejected(triples[:2] + [(com, x4, v3), (com, x3, v4)] + triples[4:], proof)


def test_values_and_points_that_wrap_are_the_same_field_elements():
    """(f) ``v + r`` and ``v - r`` given as Python ints are ``v`` (ints are reduced mod r), so the
    claim is the same and is accepted; ``v + 1 + r`` is still ``v + 1`` and rejected. Point
    coordinates given as ints are reduced alike."""
    claims = [claim("square", 51), claim("one", 52), claim("big", 53, True)]
    proof, values = prove(claims)
    triples = statement(claims, values)
    for shift in (R, -R, 2 * R, -3 * R):
        wrapped = [(com, x, field.to_int(v) + shift if i < 2 else v) for i, (com, x, v) in enumerate(triples)]
        assert field.equal(field.from_int(wrapped[0][2]), values[0])
        verify(wrapped, proof)
    rejected([(triples[0][0], triples[0][1], field.to_int(values[0]) + 1 + R), *triples[1:]], proof)
    rejected([(triples[0][0], triples[0][1], field.to_int(values[0]) + 1 - R), *triples[1:]], proof)
    # a committed value is a point: C_v of v + r is C_v of v
    assert commit.commit_scalar(field.to_int(values[2]) + R, blind=claims[2].blind)[0] == triples[2][2]
    # point coordinates as ints shifted by multiples of r
    com, x, v = triples[0]
    shifted = [xi + (R if k % 2 else -R) for k, xi in enumerate(to_ints(x))]
    verify([(com, shifted, v), *triples[1:]], proof)
    shifted[0] += 1
    rejected([(com, shifted, v), *triples[1:]], proof)


def test_proof_of_other_claims_of_the_same_shape_rejected():
    """(g) A valid proof of one set of claims, checked against another set of the same layout:
    the same tables at other points, or other tables of the same layout, with true values."""
    claims = [claim("square", 61), claim("tall", 62, True)]
    proof, values = prove(claims)
    verify(statement(claims, values), proof)
    others = [
        [claim("square", 63), claim("tall", 64, True)],
        [dataclasses.replace(claims[0], table=tables()["square2"]), claims[1]],
        [claims[0], dataclasses.replace(claims[1], blind=claim("tall", 65, True).blind)],
    ]
    for other in others:
        other_proof, other_values = prove(other)
        verify(statement(other, other_values), other_proof)
        rejected(statement(other, other_values), proof)
        rejected(statement(claims, values), other_proof)


def test_spliced_proofs_rejected():
    """(h) An honest proof with its inner-product argument or sumcheck taken from another honest
    proof (of the same claims, or of claims of the same layout), its rounds swapped, or its
    column-variable count changed."""
    claims, proof, values = mixed()
    triples = statement(claims, values)
    again, _ = prove(claims)  # the same claims, fresh randomness
    elsewhere, _ = prove([dataclasses.replace(c, x=point(c.table.num_vars, 70 + i)) for i, c in enumerate(claims)])
    verify(triples, again)
    for donor in (again, elsewhere):
        rejected(triples, dataclasses.replace(proof, ipa=donor.ipa))
        rejected(triples, dataclasses.replace(proof, sumcheck=donor.sumcheck))
    sc = proof.sumcheck
    order = [1, 0, 2, 3, 4]
    swapped = zksumcheck.CommittedSumcheck(tuple(sc.commitments[i] for i in order), sc.deltas[order])
    assert "round 0" in rejected(triples, dataclasses.replace(proof, sumcheck=swapped))
    last_two = [0, 1, 2, 4, 3]
    swapped = zksumcheck.CommittedSumcheck(tuple(sc.commitments[i] for i in last_two), sc.deltas[last_two])
    assert "round 3" in rejected(triples, dataclasses.replace(proof, sumcheck=swapped))
    # one round's commitments permuted (g(0) and g(1) swapped keeps g(0) + g(1))
    rows = list(sc.commitments)
    rows[2] = (rows[2][1], rows[2][0], rows[2][2])
    rejected(triples, dataclasses.replace(proof, sumcheck=zksumcheck.CommittedSumcheck(tuple(rows), sc.deltas)))
    for c in (4, 6, 0):
        assert "column variables" in rejected(triples, dataclasses.replace(proof, col_vars=c))
    # an inner-product argument of another width (from a proof with c = 2)
    narrow, _ = prove([claim("square", 3)])
    assert "rounds" in rejected(triples, dataclasses.replace(proof, ipa=narrow.ipa))
    rejected(triples, dataclasses.replace(proof, ipa=dataclasses.replace(proof.ipa, L=proof.ipa.L[:-1])))


def test_right_rows_wrong_row_blinds_rejected(monkeypatch):
    """(i) The prover's row combinations are right but their blinds are not: the opening has the
    honest table with other blinds (``Openings.add`` then computes a wrong ``sum_j L_ij r_ij``),
    or one claim's row blind is shifted by hand."""
    claims = [claim("square", 81), claim("big", 82, True), claim("tall", 83)]

    def reblinded(c):
        return commit.Opening(c.table.op.table, field.add(c.table.op.blinds, field.ONE))

    for victim in range(len(claims)):
        proof, values = prove(claims, opening=lambda c: reblinded(c) if c is claims[victim] else c.table.op)
        assert all(field.equal(v, commit.evaluate(c.table.op, c.x)) for c, v in zip(claims, values))
        assert "inner-product argument" in rejected(statement(claims, values), proof)
        accepted_without_the_inner_product_check(monkeypatch, statement(claims, values), proof)

    t, o = transcript(), openings.Openings()
    values = [o.add(c.table.op, c.table.com, c.x, t, value_blind=c.blind) for c in claims]
    honest = o._claims[1]
    o._claims[1] = dataclasses.replace(honest, row_blind=plus_one(honest.row_blind))
    proof = o.prove(t)
    assert "inner-product argument" in rejected(statement(claims, values), proof)
    accepted_without_the_inner_product_check(monkeypatch, statement(claims, values), proof)


def test_wrong_value_blind_rejected():
    """The prover's committed value is right but the blind it proves with is not the blind of the
    ``C_v`` the verifier holds (a claim the prover cannot open)."""
    claims = [claim("square", 84, True), claim("big", 85, True)]
    t, o = transcript(), openings.Openings()
    values = [o.add(c.table.op, c.table.com, c.x, t, value_blind=c.blind) for c in claims]
    o._claims[0] = dataclasses.replace(o._claims[0], value_blind=plus_one(o._claims[0].value_blind))
    assert "sumcheck round 0" in rejected(statement(claims, values), o.prove(t))


def test_public_and_committed_values_are_different_statements():
    claims = [claim("square", 86)]
    proof, (v,) = prove(claims)
    com, x = claims[0].table.com, claims[0].x
    rejected([(com, x, commit.commit_scalar(v, blind=field.ZERO)[0])], proof)  # v U, as a commitment
    committed = [claim("square", 86, True)]
    proof, (v,) = prove(committed)
    rejected([(com, x, v)], proof)


# ------------------------------------------------------------------------------------------
# Deferred checks
# ------------------------------------------------------------------------------------------
def test_deferred_checks_honest():
    claims, proof, values = mixed()
    checks = commit.DeferredChecks()
    verify(statement(claims, values), proof, checks)
    assert len(checks) == proof.col_vars + 1  # one zero opening per round, one inner-product equation
    checks.run()
    assert len(checks) == 0


def test_deferred_checks_catch_a_false_value_at_run():
    claims, proof, values = mixed()
    lie = [plus_one(values[0]), *values[1:]]
    checks = commit.DeferredChecks()
    verify(statement(claims, lie), proof, checks)  # nothing raised yet
    with pytest.raises(VerificationError, match="the evaluation claims' sumcheck round 0"):
        checks.run()


def test_deferred_checks_catch_a_doctored_table_at_run():
    claims = [claim("square", 91), claim("big", 92, True)]
    proof, values = prove(claims, opening=lambda c: doctored_table(c.table, 93) if c is claims[1] else c.table.op)
    checks = commit.DeferredChecks()
    scoped = checks.scoped("proof 2 of 2: ")
    verify(statement(claims, values), proof, scoped)
    with pytest.raises(VerificationError, match=r"^proof 2 of 2: the evaluation claims' inner-product argument"):
        checks.run()


def test_deferred_checks_catch_a_lie_without_sumcheck_rounds():
    claims = [claim("column", 94), claim("one", 95, True)]
    proof, values = prove(claims)
    checks = commit.DeferredChecks()
    verify(statement(claims, [values[0], plus_one(values[1])]), proof, checks)
    with pytest.raises(VerificationError, match="inner-product argument"):
        checks.run()


# ------------------------------------------------------------------------------------------
# Malformed input
# ------------------------------------------------------------------------------------------
def read(data: bytes) -> openings.OpeningsProof:
    return openings.OpeningsProof.read(wire.Reader(data))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_truncated_bytes(data):
    full = mixed_bytes()
    n = data.draw(st.integers(0, len(full) - 1))
    with pytest.raises(ProofFormatError):
        read(full[:n])


def test_extended_sections_and_trailing_bytes():
    sections = mixed()[1].sections()
    for i in range(len(sections)):
        for extra in (b"\x00", b"\x01" * 48):
            longer = list(sections)
            longer[i] = longer[i] + extra
            with pytest.raises(ProofFormatError):
                read(b"".join(wire.section(s) for s in longer))
        shorter = list(sections)
        shorter[i] = shorter[i][:-1]
        with pytest.raises(ProofFormatError):
            read(b"".join(wire.section(s) for s in shorter))
    # bytes after the proof are the caller's to reject (Reader.end)
    reader = wire.Reader(mixed_bytes() + b"\x00")
    read_proof = openings.OpeningsProof.read(reader)
    assert read_proof.sections() == sections and reader.remaining() == 1
    with pytest.raises(ProofFormatError):
        reader.end()


@pytest.mark.parametrize("head", [b"", b"\x05\x00", bytes([commit.MAX_VARS + 1]), b"\xff", b"\x04", b"\x06"])
def test_bad_column_variable_byte(head):
    sections = mixed()[1].sections()
    with pytest.raises(ProofFormatError):
        read(b"".join(wire.section(s) for s in [head, *sections[1:]]))


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data):
    try:
        proof = read(data)
    except ProofFormatError:
        return
    claims, _, values = mixed()  # parsed by chance: it must not verify
    with pytest.raises(VerificationError):
        verify(statement(claims, values), proof)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_changed_byte_is_rejected(data):
    """A changed byte of an honest proof fails to parse or fails to verify."""
    full = bytearray(mixed_bytes())
    i = data.draw(st.integers(0, len(full) - 1))
    full[i] ^= data.draw(st.integers(1, 255))
    try:
        proof = read(bytes(full))
    except ProofFormatError:
        return
    claims, _, values = mixed()
    with pytest.raises(VerificationError):
        verify(statement(claims, values), proof)


def _not_proofs():
    _, proof, _ = mixed()
    return [
        None, "proof", mixed_bytes(), 5, proof.ipa, proof.sumcheck, proof.sections(),
        dataclasses.replace(proof, sumcheck=None), dataclasses.replace(proof, ipa=None),
        openings.OpeningsProof(proof.col_vars, None, None),
        openings.OpeningsProof(proof.col_vars, proof.ipa, proof.sumcheck),  # parts swapped
        dataclasses.replace(proof, col_vars=None), dataclasses.replace(proof, col_vars="5"),
        dataclasses.replace(proof, col_vars=5.0 + 1),
    ]


@pytest.mark.parametrize("index", range(14))
def test_verify_rejects_malformed_proof_objects(index):
    assert len(_not_proofs()) == 14
    bad = _not_proofs()[index]
    claims, _, values = mixed()
    rejected(statement(claims, values), bad)


def _deep_malformed():
    _, proof, _ = mixed()
    sc, ipa = proof.sumcheck, proof.ipa
    return {
        "sumcheck commitments None": dataclasses.replace(proof, sumcheck=zksumcheck.CommittedSumcheck(None, sc.deltas)),
        "sumcheck deltas None": dataclasses.replace(proof, sumcheck=zksumcheck.CommittedSumcheck(sc.commitments, None)),
        "a round commitment None": dataclasses.replace(proof, sumcheck=zksumcheck.CommittedSumcheck(
            (sc.commitments[0][:2] + (None,), *sc.commitments[1:]), sc.deltas)),
        "ipa L None": dataclasses.replace(proof, ipa=dataclasses.replace(ipa, L=None)),
        "ipa A None": dataclasses.replace(proof, ipa=dataclasses.replace(ipa, A=None)),
        "ipa z1 None": dataclasses.replace(proof, ipa=dataclasses.replace(ipa, z1=None)),
        "ipa z1 an int": dataclasses.replace(proof, ipa=dataclasses.replace(ipa, z1=5)),
    }


@pytest.mark.parametrize("what", ["sumcheck commitments None", "sumcheck deltas None", "a round commitment None",
                                  "ipa L None", "ipa A None", "ipa z1 None", "ipa z1 an int"])
def test_verify_rejects_malformed_parts(what):
    claims, _, values = mixed()
    rejected(statement(claims, values), _deep_malformed()[what])


def test_sumcheck_with_missing_round_blinds_is_malformed():
    claims, proof, values = mixed()
    sc = proof.sumcheck
    for deltas in (sc.deltas[:2], sc.deltas[:0]):
        bad = dataclasses.replace(proof, sumcheck=zksumcheck.CommittedSumcheck(sc.commitments, deltas))
        with pytest.raises(VerificationError, match="sumcheck|malformed"):
            verify(statement(claims, values), bad)


def test_sumcheck_with_extra_round_blinds_is_malformed():
    claims, proof, values = mixed()
    sc = proof.sumcheck
    bad = dataclasses.replace(proof, sumcheck=zksumcheck.CommittedSumcheck(
        sc.commitments, np.concatenate([sc.deltas, field.ONE[None]])))
    rejected(statement(claims, values), bad)


def test_forgery_through_a_sumcheck_object_without_blinds():
    """A malicious prover running the module's inner-product prover: one table (2 x 2, c = 1),
    a sumcheck object with one round of junk commitments and no blinds (a verifier that zipped the
    rounds with the blinds would check no round and use ``np.empty``'s contents as the challenge
    ``r``); the forger proves ``f(r) = eq(x_col, g) t~(g)`` for its guess ``g`` of ``r`` and claims
    that as the value. Rejected: the verifier counts the blinds."""
    from zk.transcript import Transcript as T

    rng = np.random.default_rng(1)
    com, op = commit.commit(rng.integers(0, 100, 4), col_vars=1)
    x = field.random_seeded(2, rng)
    guess = np.array([[1, 0, 0, 0]], dtype=np.uint64)
    rc = commit.claim_eval(op, com, x, T("scratch"))
    gamma = mle.eq(x[1:], guess)
    false_v = field.mul(gamma, field.inner(rc.row, mle.eq_table(guess)))
    assert not field.equal(false_v, commit.evaluate(op, x))
    t = transcript()
    commit._absorb_statement(t, com, rc.x, false_v, None)
    openings._absorb_count(t, 1, 1)
    ipa = commit.prove_inner_product(field.mul(gamma, rc.row), mle.eq_table(guess), field.mul(gamma, rc.row_blind),
                                     field.ZERO, t)
    junk = commit.commit_scalar(0)[0]
    forged = openings.OpeningsProof(1, zksumcheck.CommittedSumcheck(((junk,) * 3,), field.zeros((0,))), ipa)
    rejected([(com, x, false_v)], forged)


def test_prove_and_verify_without_claims():
    with pytest.raises(ValueError, match="no evaluation claims"):
        openings.Openings().prove(transcript())
    _, proof, _ = mixed()
    with pytest.raises(VerificationError, match="no evaluation claims"):
        openings.Claims().verify(proof, transcript())
    # a second prove after the first forgot its claims
    c = claim("one", 96)
    t, o = transcript(), openings.Openings()
    o.add(c.table.op, c.table.com, c.x, t)
    o.prove(t)
    with pytest.raises(ValueError):
        o.prove(t)


def test_add_with_mismatched_layout():
    rng = np.random.default_rng(97)
    values = rng.integers(0, 9, 16)
    com1, op1 = commit.commit(values, col_vars=1)
    com2, op2 = commit.commit(values, col_vars=2)
    com_small, op_small = commit.commit(values[:8])
    x = point(4, 98)
    for op, com in ((op1, com2), (op2, com1), (op_small, com1), (op1, com_small)):
        with pytest.raises(ValueError):
            openings.Openings().add(op, com, x, transcript())


def test_claims_add_with_malformed_statement():
    table = tables()["square"]
    x = point(4, 99)
    for com, pt, value in [(table.com, x[:3], 0), (table.com, [0.5] * 4, 0), (table.com, x, 1.5),
                           (table.com, x, field.zeros(2)), (table.com, x, "1"), (None, x, 0),
                           (table.com.rows, x, 0)]:
        with pytest.raises(VerificationError):
            openings.Claims().add(com, pt, value, transcript())


# ------------------------------------------------------------------------------------------
# Zero knowledge (sanity)
# ------------------------------------------------------------------------------------------
def test_fresh_randomness_shares_no_proof_element():
    claims, proof, values = mixed()
    again, again_values = prove(claims)
    assert all(field.equal(a, b) for a, b in zip(values, again_values))
    verify(statement(claims, values), again)
    first = [p for row in proof.sumcheck.commitments for p in row] + [*proof.ipa.L, *proof.ipa.R, proof.ipa.A]
    second = [p for row in again.sumcheck.commitments for p in row] + [*again.ipa.L, *again.ipa.R, again.ipa.A]
    encoded = {bytes(p.to_compressed_bytes()) for p in first}
    assert len(encoded) == len(first)  # no repeated point within a proof either
    assert not encoded & {bytes(p.to_compressed_bytes()) for p in second}
    assert not field.equal(proof.sumcheck.deltas, again.sumcheck.deltas).any()
    assert not field.equal(np.stack([proof.ipa.z1, proof.ipa.z2]), np.stack([again.ipa.z1, again.ipa.z2])).any()
    # no value of the claims appears in the clear among the proof's scalars
    scalars = {field.to_int(s) for s in (*proof.sumcheck.deltas, proof.ipa.z1, proof.ipa.z2)}
    assert not scalars & {field.to_int(v) for v in values}
