"""logUp lookups (zk/lookup.py): completeness, and rejection of false statements made by our own
prover on doctored witnesses (a value outside the table, wrong multiplicities, helpers that are
not the inverses, values that wrap modulo r), other tables or tensors, and tampered proofs."""
from __future__ import annotations

import numpy as np
import pytest

from zk import commit, field, lookup
from zk.errors import ProofFormatError, VerificationError
from zk.transcript import Transcript

TABLE = lookup.Table.range(6)  # 0..63


def _tensors(seed=0, shapes=((4, 8), (5,))):
    rng = np.random.default_rng(seed)
    return [commit.commit(rng.integers(0, 64, s)) for s in shapes]


def _prove(tensors, table=TABLE):
    return lookup.prove(tensors, table, Transcript("test/lookup"))


def _verify(commitments, proof, table=TABLE):
    lookup.verify(commitments, table, proof, Transcript("test/lookup"))


def test_lookups_verify_and_round_trip():
    tensors = _tensors()
    proof = _prove(tensors)
    coms = [c for c, _ in tensors]
    _verify(coms, proof)
    again = lookup.LookupProof.from_bytes(proof.to_bytes(), coms, TABLE)
    assert again.to_bytes() == proof.to_bytes()
    _verify(coms, again)


def test_table_padding_and_repeats():
    table = lookup.Table((3, 5, 7, 5, 11))  # padded to 8 with 3s; 5 repeated
    assert len(table.values) == 8 and table.num_vars == 3
    tensors = [commit.commit(np.array([5, 5, 3, 11, 7, 7, 7]))]  # padding zero: not in the table
    with pytest.raises(ValueError, match=r"not in the table, e\.g\. \[0\]"):
        _prove(tensors, table)
    tensors = [commit.commit(np.array([5, 5, 3, 11, 7, 7, 7, 3]))]
    _verify([tensors[0][0]], _prove(tensors, table), table)


def test_a_value_outside_the_table_is_refused_by_the_prover():
    c, o = commit.commit(np.array([1, 2, 64, 3]))
    with pytest.raises(ValueError, match=r"not in the table, e\.g\. \[64\]"):
        _prove([(c, o)])


def _honest_counts(monkeypatch, doctor):
    """Run our prover with the multiplicities ``doctor(counts)`` returns."""
    real = lookup.Table.multiplicities

    def doctored(self, entries):
        return doctor(real(self, np.where(np.isin(entries, self.values), entries, self.values[0])))
    monkeypatch.setattr(lookup.Table, "multiplicities", doctored)


def test_cheating_prover_with_a_value_outside_the_table_is_rejected(monkeypatch):
    """The prover's own code, its table check bypassed: 64 counted as a 0."""
    _honest_counts(monkeypatch, lambda m: m)
    tensors = [commit.commit(np.array([1, 2, 64, 3]))]
    proof = _prove(tensors)
    with pytest.raises(VerificationError, match="sums of the helpers differ"):
        _verify([tensors[0][0]], proof)


def test_values_that_wrap_modulo_r_are_rejected(monkeypatch):
    """-1 is r - 1 in the field: not 63, not in the table."""
    _honest_counts(monkeypatch, lambda m: m)
    tensors = [commit.commit(np.array([-1, 2, 5, 3]))]
    with pytest.raises(VerificationError):
        _verify([tensors[0][0]], _prove(tensors))


def test_wrong_multiplicities_are_rejected(monkeypatch):
    def shift(m):
        m = m.copy()
        m[0] += 1
        m[1] -= 1 if m[1] else -1
        return m
    _honest_counts(monkeypatch, shift)
    tensors = _tensors(1)
    with pytest.raises(VerificationError):
        _verify([c for c, _ in tensors], _prove(tensors))


def test_helpers_that_are_not_the_inverses_are_rejected(monkeypatch):
    """H off by one entry: the sums could be made to match, the Hadamard relation cannot."""
    real = lookup._inverses

    def doctored(alpha, values):
        out = real(alpha, values).copy()
        out[0] = field.add(out[0], field.from_int(1))
        return out
    monkeypatch.setattr(lookup, "_inverses", doctored)
    tensors = _tensors(2)
    with pytest.raises(VerificationError, match="tensor 0|multiplicities"):
        _verify([c for c, _ in tensors], _prove(tensors))


def test_other_tables_and_other_tensors_are_rejected():
    tensors = _tensors(3)
    proof = _prove(tensors)
    coms = [c for c, _ in tensors]
    with pytest.raises(VerificationError):
        _verify(coms, proof, lookup.Table(tuple(range(1, 65))))
    other = _tensors(4)
    with pytest.raises(VerificationError):
        _verify([other[0][0], coms[1]], proof)
    with pytest.raises(VerificationError):
        _verify(coms[::-1], proof)


def test_tampered_proofs_are_rejected():
    tensors = _tensors(5)
    coms = [c for c, _ in tensors]
    proof = _prove(tensors)
    data = proof.to_bytes()
    import dataclasses

    forged = dataclasses.replace(proof, delta=field.add(proof.delta, field.from_int(1)))
    with pytest.raises(VerificationError):
        _verify(coms, forged)
    swapped = dataclasses.replace(proof, sums=proof.sums[1:2] + proof.sums[:1] + proof.sums[2:])
    with pytest.raises(VerificationError):
        _verify(coms, swapped)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(data), 12, replace=False):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises((VerificationError, ProofFormatError)):
            _verify(coms, lookup.LookupProof.from_bytes(bytes(bad), coms, TABLE))
    with pytest.raises(ProofFormatError):
        lookup.LookupProof.from_bytes(data[:-1], coms, TABLE)
    with pytest.raises(ProofFormatError):
        lookup.LookupProof.from_bytes(data, coms[:1], TABLE)


def test_statement_limits():
    with pytest.raises(ValueError):
        lookup.Table(())
    with pytest.raises(ValueError, match="at most"):
        lookup.Table.range(lookup.MAX_TABLE_VARS + 1)


def test_hadamard_with_a_constant_out_binds_the_constant():
    """The relation lookups use, ``c = F ∘ G`` with a public constant ``c``: the claim comes from
    the statement, never from the proof."""
    from zk import hadamard
    from zk.stack import Stack

    def forms(*arrays):
        coms = [commit.commit(np.array(a)) for a in arrays]
        prover = [hadamard.Affine(0, [(1, Stack(c, o, 1, 0))]) for c, o in coms]
        verifier = [hadamard.Affine(0, [(1, Stack(c, None, 1, 0))]) for c, _ in coms]
        return prover, verifier

    u = Transcript("u").challenge_scalars("u", 2)
    (f, g), (fv, gv) = forms([3, 5, 7, 9], [5, 3, 2, 1])  # products 15, 15, 14, 9: not 15
    false = hadamard.prove(15, f, g, u, Transcript("h"))
    with pytest.raises(VerificationError):
        hadamard.verify(15, fv, gv, u, false, Transcript("h"))
    (f, g), (fv, gv) = forms([1, 1, 1, 1], [2, 2, 2, 2])  # 2 everywhere: true
    good = hadamard.prove(2, f, g, u, Transcript("h"))
    hadamard.verify(2, fv, gv, u, good, Transcript("h"))
    with pytest.raises(VerificationError):  # the same proof for another constant
        hadamard.verify(3, fv, gv, u, good, Transcript("h"))
    with pytest.raises(VerificationError):  # a constant-Out proof where Out is committed
        hadamard.verify(gv, fv, gv, u, good, Transcript("h"))
