"""logUp-GKR range lookups (zk/lookup.py, the two-tree protocol).

* completeness: columns of every size (one entry to 2^10, stacks with zero-instance padding),
  scales, tables of 1 to 16 bits, through the proof bytes;
* false statements proved by the module's own prover on doctored witnesses (its range check
  skipped): a value outside the table, values wrapping modulo r, a scaled value outside the table,
  wrong multiplicities; and true proofs checked against other statements;
* a forging prover (:func:`_forge`, the module's prover with hooks) that lies where the protocol
  leaves it room: the committed roots (P, Q), (P', Q') and their products, layer values propagated
  through either tree's sumchecks, the lookup tree's unit-numerator layer, its leaves (blocks,
  unused leaves, scales), the table tree's leaves (numerators and denominators chosen after alpha),
  the column and multiplicity openings (values, tables, points: evaluation claims the lookup leaves
  to its caller, opened together by zk.openings), the multiplicities' size;
* the relation's documented limit: a scaled column alone bounds c F mod r only;
* tampered, truncated and malformed proofs, the layout, and what the honest prover refuses.
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zk import commit, field, lookup, mle, openings, sigma, wire, zksumcheck
from zk.device import CPU
from zk.errors import ProofFormatError, VerificationError
from zk.stack import stack
from zk.transcript import Transcript

DOMAIN = "test/lookup"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Col:
    """One column on both sides: the prover's (with the opening) and the verifier's (commitment only)."""

    prover: lookup.Column
    verifier: lookup.Column
    commitments: tuple

    def scaled(self, scale: int) -> "Col":
        return Col(lookup.Column(self.prover.stack, scale), lookup.Column(self.verifier.stack, scale),
                   self.commitments)


def col(*instances, scale: int = 1) -> Col:
    """A column stacking the committed ``instances`` (one instance: a plain commitment)."""
    pairs = [commit.commit(np.asarray(v)) for v in instances]
    coms, opens = [c for c, _ in pairs], [o for _, o in pairs]
    return Col(lookup.Column(stack(coms, opens), scale), lookup.Column(stack(coms), scale), tuple(coms))


def rand_col(shape, bits, seed, scale=1) -> Col:
    return col(np.random.default_rng(seed).integers(0, 1 << bits, shape), scale=scale)


@dataclasses.dataclass(frozen=True)
class Proved(lookup.LookupProof):
    """A lookup proof with the opening of the evaluation claims it leaves to its caller (as a
    proof's top level sends it, :mod:`zk.openings`): its sections are the lookup's, then the
    openings'; :meth:`from_bytes` parses both."""

    openings: openings.OpeningsProof = None

    def sections(self):
        return super().sections() + self.openings.sections()

    @classmethod
    def read(cls, reader, layout):
        proof = super().read(reader, layout)
        return dataclasses.replace(proof, openings=openings.OpeningsProof.read(reader))


def prove(cols, L):
    """The lookup proof, then (on its transcript) the opening of its claims."""
    t, evals = Transcript(DOMAIN), openings.Openings()
    proof = lookup.prove([c.prover for c in cols], L, t, evals)
    return Proved(**vars(proof), openings=evals.prove(t))


def verify(cols, L, proof, t=None, checks=None):
    """The lookup's checks, then (on its transcript) those of the claims it leaves."""
    t, claims = t or Transcript(DOMAIN), openings.Claims()
    lookup.verify([c.verifier for c in cols], L, proof, t, claims, checks=checks)
    claims.verify(proof.openings, t, checks)


def round_trip(cols, L, proof):
    data = proof.to_bytes()
    again = Proved.from_bytes(data, [c.verifier for c in cols], L)
    assert again.to_bytes() == data
    return again


def rejected(cols, L, proof, match=None):
    with pytest.raises(VerificationError, match=match):
        verify(cols, L, proof)


def entries_of(columns):
    """The looked-up integers ``scale * F(x)`` of prover columns, unchecked (int64 entries)."""
    return [c.scale * field.to_signed(c.stack.opening.field_table(CPU)).reshape(-1) for c in columns]


def counts_of(columns, L, unused=0):
    """The multiplicities of prover columns' entries over ``[0, 2^L)`` (``unused`` more zeros), by
    :func:`lookup.multiplicities` (which returns the counts, or ``(entries, counts)``)."""
    out = lookup.multiplicities(columns, L, unused)
    return np.asarray(out[1] if isinstance(out, tuple) else out)


#: Whether :func:`lookup.multiplicities` returns ``(entries, counts)`` (else the counts only).
_RETURNS_ENTRIES = "device" not in inspect.signature(lookup.multiplicities).parameters


def lenient(monkeypatch, fold=None, doctor=None):
    """Make the module's prover skip its range check: entries outside the table are counted as
    ``fold(entries, L)`` (default: as 0), then ``doctor(counts)`` (default: unchanged); the
    prover's leaves are still the true entries."""
    def multiplicities(columns, table_bits, unused=0, device=CPU, function=None):
        entries = entries_of(columns)
        inside = [(fold or (lambda e, L: np.where((e >= 0) & (e < 1 << L), e, 0)))(e, table_bits) for e in entries]
        counts = np.bincount(np.concatenate(inside), minlength=1 << table_bits).astype(np.int64)
        counts[0] += unused  # the unused leaves count as entries 0 (zk.lookup since 04b065a)
        counts = doctor(counts) if doctor else counts
        return (entries, counts) if _RETURNS_ENTRIES else counts
    monkeypatch.setattr(lookup, "multiplicities", multiplicities)


# ---------------------------------------------------------------------------------------------
# completeness
# ---------------------------------------------------------------------------------------------
CASES = {
    "one entry": (lambda: [col(np.array([1]))], 1),
    "4 entries": (lambda: [rand_col(4, 2, 1)], 2),
    "16 entries": (lambda: [rand_col((4, 4), 4, 2)], 4),
    "2^10 entries": (lambda: [rand_col((32, 32), 10, 3)], 10),
    "3 instances padded to 4": (lambda: [col(*np.random.default_rng(4).integers(0, 8, (3, 2, 4)))], 3),
    "mixed sizes and stacks": (lambda: [col(np.array([5])), rand_col(4, 6, 5), rand_col(16, 6, 6),
                                        col(*np.random.default_rng(7).integers(0, 64, (5, 8))),
                                        rand_col(100, 6, 8)], 6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_honest_proofs_verify_through_their_bytes(case):
    make, L = CASES[case]
    cols = make()
    proof = prove(cols, L)
    verify(cols, L, proof)
    verify(cols, L, round_trip(cols, L, proof))
    checks = commit.DeferredChecks()  # the openings' equations deferred to a batch
    verify(cols, L, round_trip(cols, L, proof), checks=checks)
    assert len(checks) >= 1
    checks.run()


def test_scaled_columns_check_narrower_ranges():
    """Scale 2^(L-w) beside scale 1 on the same stack: entries in [0, 2^w); several scales at once."""
    L = 6
    base = col(np.array([0, 3, 1, 2, 2, 3, 0, 1]), np.array([1, 1, 1, 1, 3, 3, 3, 3]))  # [0, 4)
    other = rand_col(8, 3, 9)  # [0, 8)
    cols = [base, base.scaled(1 << (L - 2)), other, other.scaled(1 << (L - 3)), base.scaled(3)]
    proof = prove(cols, L)
    verify(cols, L, round_trip(cols, L, proof))


@pytest.mark.parametrize("L", range(1, 17))
def test_every_table_size_from_1_to_16_bits(L):
    top = (1 << L) - 1
    cols = [col(np.array([0, top, top // 2, 1 % (top + 1), top, 0, top])),  # padded with a 0
            col(np.array([top]))]
    proof = prove(cols, L)
    verify(cols, L, round_trip(cols, L, proof))


def test_proof_size_depends_on_the_statement_only():
    a, b = rand_col(16, 5, 10), col(np.zeros(16, dtype=np.int64))
    assert len(prove([a], 5).to_bytes()) == len(prove([b], 5).to_bytes())


def test_two_proofs_of_one_statement_share_no_section():
    """Every message is blinded: proving twice gives fresh bytes in every section (a value sent in
    the clear, or an unblinded commitment, would repeat). The only empty sections are the two
    trees' layer-0 sumchecks (no rounds); the only other section that repeats is the openings'
    first, their number of column variables (the statement's). The table tree's denominators are
    public, so its c, d commitments hide nothing secret but are fresh all the same."""
    cols, L = [rand_col(8, 4, 11), col(np.array([3]))], 4
    p1, p2 = prove(cols, L), prove(cols, L)
    one, two = p1.sections(), p2.sections()
    assert len(one) == len(two) == _section_count(_layout(cols, L), L)
    table_at = 1 + len(p1.lookups.sections())
    assert [k for k, x in enumerate(one) if not x] == [k for k, x in enumerate(two) if not x] == [2, table_at + 1]
    assert [k for k, (x, y) in enumerate(zip(one, two)) if x == y] == [2, table_at + 1, len(one) - 3]


# ---------------------------------------------------------------------------------------------
# the honest prover refuses false statements
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, scale, shown", [([1, 2, 64, 3], 1, r"\[1, 64\]"), ([1, -1, 5, 3], 1, r"\[-1, 5\]"),
                                                  ([1, 5, 0, 2], 16, r"\[0, 5\]")])
def test_the_honest_prover_refuses_a_value_outside_the_table(values, scale, shown):
    cols = [rand_col(4, 6, 12), col(np.array(values), scale=scale)]
    with pytest.raises(ValueError, match=r"column 1 has values in " + shown + r", outside \[0, 2\^6\) at scale "
                       + str(scale)):
        prove(cols, 6)


@pytest.mark.parametrize("bits, cols", [(0, 1), (lookup.MAX_TABLE_BITS + 1, 1), (4, 0)])
def test_statement_limits(bits, cols):
    with pytest.raises(ValueError, match="lookup: "):
        prove([rand_col(4, 1, 13)] * cols, bits)


@pytest.mark.parametrize("scale", [0, 1 << 4, -1])
def test_scales_outside_the_table_are_refused(scale):
    c = rand_col(4, 1, 13).scaled(scale)
    with pytest.raises(ValueError, match="column scale"):
        prove([c], 4)
    with pytest.raises(VerificationError, match="column scale"):
        verify([c], 4, prove([rand_col(4, 1, 13)], 4))


@pytest.mark.parametrize("value, scale", [(1 << 62, 4), ((1 << 63) - 1, 2), ((1 << 58) + 1, 32), (2, 32)])
def test_the_honest_prover_refuses_a_scaled_value_that_overflows_int64(value, scale):
    """``scale * F`` past 2^63 (4 * 2^62 would wrap to 0 in int64): the scale is checked on Python
    integers before multiplying, so the prover refuses; so does the verifier (next test)."""
    with pytest.raises(ValueError, match=r"column 0 has values in \[1, %d\].* at scale %d" % (value, scale)):
        prove([col(np.array([value, 1]), scale=scale)], 6)


def test_a_scaled_value_that_overflows_int64_is_rejected():
    """The forger commits 4 * 2^62 wrapped to 0 in int64 (the old prover's bug): the leaves say 0,
    the column's entry is 2^64 in the field."""
    cols = [col(np.array([1 << 62, 1]), scale=4)]
    entries = [np.array([0, 4], dtype=np.int64)]  # 4 * 2^62 as int64 wraps to 0
    rejected(cols, 6, forge(cols, 6, witness=_witness(cols, 6, entries)), "leaves differ")


def test_the_honest_prover_refuses_a_field_element_that_is_no_int64():
    with pytest.raises(ValueError):
        prove([col(np.stack([field.inv(field.from_int(16)), field.from_int(1)]), scale=16)], 6)


# ---------------------------------------------------------------------------------------------
# the module's prover on doctored witnesses
# ---------------------------------------------------------------------------------------------
def test_a_value_outside_the_table_counted_as_0_is_rejected(monkeypatch):
    lenient(monkeypatch)
    cols = [rand_col(8, 6, 14), col(np.array([1, 2, 64, 3]))]
    rejected(cols, 6, prove(cols, 6), "do not cancel")


@pytest.mark.parametrize("counted_as", ["0", "63"])
def test_values_that_wrap_modulo_r_are_rejected(monkeypatch, counted_as):
    """-1 is r - 1 in the field: counted as 0, or as 63 (its value modulo the table), it fails."""
    as_0, modulo = (lambda e, L: np.where(e < 0, 0, e)), (lambda e, L: e % (1 << L))
    lenient(monkeypatch, fold=as_0 if counted_as == "0" else modulo)
    cols = [col(np.array([-1, 2, 5, 3]))]
    rejected(cols, 6, prove(cols, 6), "do not cancel")


def test_a_scaled_value_outside_the_table_is_rejected(monkeypatch):
    """5 at scale 2^(L-2) is 80: outside [0, 64), although 5 is inside; counted as 80 mod 64."""
    lenient(monkeypatch, fold=lambda e, L: e % (1 << L))
    base = col(np.array([0, 3, 5, 1]))
    cols = [base, base.scaled(1 << 4)]
    rejected(cols, 6, prove(cols, 6), "do not cancel")


@pytest.mark.parametrize("how", ["shift one count", "move one count further", "all zero", "one extra"])
def test_wrong_multiplicities_are_rejected(monkeypatch, how):
    def doctor(m):
        m = m.copy()
        v = int(np.flatnonzero(m)[0])
        if how == "shift one count":
            m[v] -= 1
            m[(v + 1) % len(m)] += 1
        elif how == "move one count further":  # the same total
            m[v] -= 1
            m[(v + 7) % len(m)] += 1
        elif how == "all zero":
            m[:] = 0
        else:
            m[v] += 1
        return m
    lenient(monkeypatch, doctor=doctor)
    cols = [rand_col(16, 6, 15), rand_col(4, 6, 16)]
    rejected(cols, 6, prove(cols, 6), "do not cancel")


def test_true_proofs_are_rejected_for_other_statements():
    L = 6
    a, b, c = rand_col(16, 4, 17), rand_col(4, 4, 18), rand_col(16, 4, 19)
    proof = prove([a, b], L)
    verify([a, b], L, proof)
    rejected([c, b], L, proof)  # a column swapped for another commitment of the same size
    rejected([b, a], L, proof)  # columns reordered
    rejected([a, b.scaled(2)], L, proof)  # another scale
    for bits in (5, 7):  # another table
        rejected([a, b], bits, proof, "multiplicities of the wrong size|another layout")
    rejected([a], L, proof, "another layout")  # a column left out
    rejected([a, b, b], L, proof, "another layout")  # a column added
    rejected([a, rand_col(8, 4, 20)], L, proof)  # a column of another size
    with pytest.raises(VerificationError):  # the same proof in another transcript
        t = Transcript(DOMAIN)
        t.absorb("earlier", b"x")
        verify([a, b], L, proof, t)
    with pytest.raises(ProofFormatError):  # the bytes parse only for the statement's layout
        Proved.from_bytes(proof.to_bytes(), [a.verifier], L)
    with pytest.raises(ProofFormatError):
        Proved.from_bytes(proof.to_bytes(), [a.verifier, b.verifier], L + 1)


def test_a_proof_for_a_different_layout_is_rejected():
    """Same columns' commitments, but the proof was made for 2^4 entries where the statement has
    a stack of two (2^5): the tree has another depth."""
    small = col(np.arange(16) % 8)
    proof = prove([small], 4)
    pair = Col(lookup.Column(stack([small.commitments[0]] * 2)), lookup.Column(stack([small.commitments[0]] * 2)),
               small.commitments * 2)
    rejected([pair], 4, proof, "another layout")


# ---------------------------------------------------------------------------------------------
# a forging prover: lookup.prove with hooks where a cheater has freedom
# ---------------------------------------------------------------------------------------------
class _Shifted:
    """A sumcheck prover that sends round polynomials summing to ``claim`` (a false claim) by
    moving ``g(0)``; it tracks the false claim through the rounds, ending at ``claim``."""

    def __init__(self, inner, claim):
        self.inner, self.claim = inner, claim
        self.num_vars, self.degree = inner.num_vars, inner.degree

    def round_polynomial(self):
        g = np.array(self.inner.round_polynomial(), dtype=np.uint64).copy()
        g[0] = field.sub(self.claim, g[1])
        self.g = g
        return g

    def bind(self, r):
        self.claim = field.inner(zksumcheck.lagrange_coefficients(self.degree, r), self.g)
        self.inner.bind(r)

    def final_evaluations(self):
        return self.inner.final_evaluations()


def _div(x, y):
    return field.mul(x, field.inv(y))


def _forge_tree(layers, root, root_blinds, t, key, *, unit, lie=(), fix_last=True, full_unit=False):
    """Step 4 of one tree (:func:`lookup._prove_tree`) from committed root values ``root = (P, Q)``
    (perhaps false) with blinds ``root_blinds``. ``layers[i] = (p_i, q_i)`` (``p`` None: unit
    numerators). ``unit``: the last layer is the lookup tree's unit layer (``c, d, cd``), where the
    sum is ``c + d + lambda c d`` whatever ``p`` the leaves have (the format has no ``a, b``), unless
    ``full_unit``: then that layer is proved and committed as a general one (7 values). ``lie``:
    layers whose sumchecks are shifted to the tracked (false) claim and whose first value (``a``,
    or ``c`` on the unit layer) is chosen to meet it, except the last layer when not ``fix_last``.
    Returns ``(layers' proofs, leaf point, blind of p~ (None: unit), blind of q~)``."""
    (vp, vq), (bp, bq) = root, root_blinds
    point = np.zeros((0, 4), dtype=np.uint64)
    n, proofs = len(layers) - 1, []
    for i in range(n):
        lam = t.challenge_scalar("lookup/lambda")
        p_next, q_next = layers[i + 1]
        h = len(q_next) // 2
        unit_layer = unit and i == n - 1 and not full_unit
        if unit_layer:
            prover = CPU.eq_sumcheck(point, [q_next[:h], q_next[h:]], [(1, (0,)), (1, (1,)), (lam, (0, 1))])
        else:
            p_next = p_next if p_next is not None else np.array(np.broadcast_to(field.ONE, q_next.shape))
            prover = CPU.eq_sumcheck(point, [p_next[:h], p_next[h:], q_next[:h], q_next[h:]],
                                     [(1, (0, 3)), (1, (1, 2)), (lam, (2, 3))])
        if i in lie:
            prover = _Shifted(prover, field.add(vp, field.mul(lam, vq)))
        sc, s, finals, final_blind = zksumcheck.prove(prover, field.add(bp, field.mul(lam, bq)), t, key)
        eq = lookup._eq(point, s)
        meet = i in lie and (fix_last or i < n - 1)
        if unit_layer:
            c, d = finals[:2]
            if meet:  # c (1 + lambda d) + d = the false claim / eq
                c = _div(field.sub(_div(prover.claim, eq), d), field.add(field.ONE, field.mul(lam, d)))
            vals, pairs = np.stack([c, d, field.mul(c, d)]), lookup._UNIT_PRODUCTS
        else:
            a, b, c, d = finals[:4]
            if meet:  # a d + b c + lambda c d = the false claim / eq
                need = _div(prover.claim, eq)
                a = _div(field.sub(field.sub(need, field.mul(b, c)), field.mul(lam, field.mul(c, d))), d)
            vals = np.stack([a, b, c, d, field.mul(a, d), field.mul(b, c), field.mul(c, d)])
            pairs = lookup._PRODUCTS
        points, blinds = commit.commit_scalars(vals, key)
        t.absorb_points("lookup/layer-values", points)
        products = tuple(sigma.prove_product(vals[x], blinds[x], vals[y], blinds[y], blinds[z],
                                             (points[x], points[y], points[z]), t, key) for x, y, z in pairs)
        if unit_layer:
            combined = field.add(field.add(blinds[0], blinds[1]), field.mul(lam, blinds[2]))
        else:
            combined = field.add(field.add(blinds[4], blinds[5]), field.mul(lam, blinds[6]))
        delta = zksumcheck.prove_final_claim(final_blind, eq, combined)
        t.absorb_scalars("lookup/layer-final", delta)
        proofs.append(lookup.LayerProof(sc, tuple(points), products, delta))
        mu = t.challenge_scalar("lookup/mu")
        if unit_layer:
            bp, bq, vp, vq = None, lookup._line(blinds[0], blinds[1], mu), None, lookup._line(c, d, mu)
        else:
            bp, bq = lookup._line(blinds[0], blinds[1], mu), lookup._line(blinds[2], blinds[3], mu)
            vp, vq = lookup._line(a, b, mu), lookup._line(c, d, mu)
        point = np.concatenate([mu[None], s])
    return tuple(proofs), point, bp, bq


def _denominators(layout, alpha, entries):
    """The lookup tree's leaf denominators ``alpha - c_j F_j(x)`` (``alpha`` on unused leaves), on
    the host (the forger's own: zk.lookup's helpers may run on a device)."""
    q = np.array(np.broadcast_to(alpha, (1 << layout.num_vars, 4)))
    for off, e in zip(layout.offsets, entries):
        q[off:off + len(e)] = field.sub(alpha, field.from_int(e))
    return q


def _tree(p, q):
    """Every layer ``(p_i, q_i)``, the root first; ``p = None``: unit numerators (step 3)."""
    layers = [(p, q)]
    while len(q) > 1:
        h = len(q) // 2
        c, d = q[:h], q[h:]
        p = field.add(c, d) if p is None else field.add(field.mul(p[:h], d), field.mul(p[h:], c))
        q = field.mul(c, d)
        layers.append((p, q))
    return layers[::-1]


def _forge(columns, L, t, *, witness=None, mult=None, layout=None, lookup_leaves=None, table_leaves=None,
           roots=None, root_products=None, lie=(), table_lie=(), fix_last=True, full_unit=False, opened_as=None,
           value=None, m_point=None, key=commit.DEFAULT_KEY):
    """:func:`zk.lookup.prove` for prover columns, with hooks (none: the honest prover, byte for byte):

    ``witness``: ``(entries, counts)`` instead of :func:`lookup.multiplicities` (unused leaves counted);
    ``mult(counts)``: commit the counts another way; ``layout``: the lookup leaves' layout;
    ``lookup_leaves(q, layout, alpha)``: change the lookup tree's denominators in place, return its
    numerators (None: units); ``table_leaves(p, q, alpha)``: change the table tree's leaves in place;
    ``roots([P, Q, P', Q'], alpha)``: the committed roots; ``root_products(six)``: the six committed
    root values (the four roots, ``P Q'``, ``P' Q``); ``lie``, ``table_lie``, ``fix_last``,
    ``full_unit``: see :func:`_forge_tree`; ``opened_as[j]``: the opening used for table ``j``'s
    evaluation and its claim (``j = len(columns)``: the multiplicities); ``value(j, v, alpha, rho,
    rho_t)``: the committed value of table ``j`` (its claim, :meth:`zk.openings.Openings.add`,
    commits to the opening's own value with the same blind); ``m_point(rho, rho_t)``: where ``M`` is
    evaluated and claimed. Returns the proof with the opening of its claims (:class:`Proved`)."""
    true_layout = lookup._check(columns, L)
    layout = layout or true_layout
    entries, counts = witness or (entries_of(columns), counts_of(columns, L, true_layout.unused))
    m_com, m_open = (mult or commit.commit)(counts)
    lookup._absorb_statement(t, columns, L)
    t.absorb("lookup/multiplicities", m_com.to_bytes())
    alpha = t.challenge_scalar("lookup/alpha")
    q = _denominators(layout, alpha, entries)
    p = lookup_leaves(q, layout, alpha) if lookup_leaves else None
    tp = field.neg(field.from_int(np.asarray(counts)))
    tq = field.sub(alpha, field.from_int(np.arange(1 << L, dtype=np.int64)))
    if table_leaves:
        table_leaves(tp, tq, alpha)
    lookup_layers, table_layers = _tree(p, q), _tree(tp, tq)
    (pa, qa), (pb, qb) = lookup_layers[0], table_layers[0]
    four = [pa[0], qa[0], pb[0], qb[0]]
    if roots:
        four = roots(four, alpha)
    six = four + [field.mul(four[0], four[3]), field.mul(four[2], four[1])]
    if root_products:
        six = root_products(six)
    rp, rb = commit.commit_scalars(np.stack(six), key)
    t.absorb_points("lookup/roots", rp)
    lookups, rho, _, bq = _forge_tree(lookup_layers, (six[0], six[1]), (rb[0], rb[1]), t, key, unit=True, lie=lie,
                                      fix_last=fix_last, full_unit=full_unit)
    table, rho_t, bp_t, bq_t = _forge_tree(table_layers, (six[2], six[3]), (rb[2], rb[3]), t, key, unit=False,
                                           lie=table_lie, fix_last=fix_last)
    products = (sigma.prove_product(six[0], rb[0], six[3], rb[3], rb[4], (rp[0], rp[3], rp[4]), t, key),
                sigma.prove_product(six[2], rb[2], six[1], rb[1], rb[5], (rp[2], rp[1], rp[5]), t, key))
    root_blind = field.add(rb[4], rb[5])
    t.absorb_scalars("lookup/root-blind", root_blind)

    n, s = true_layout.num_vars, len(columns)
    tables = [((opened_as or {}).get(j, c.stack.opening), c.stack.commitment) for j, c in enumerate(columns)]
    tables.append(((opened_as or {}).get(s, m_open), m_com))
    subs = [rho[n - m:] for m in true_layout.column_vars] + [m_point(rho, rho_t) if m_point else rho_t]
    vals = [commit.evaluate(o, x) for (o, _), x in zip(tables, subs)]
    if value:
        vals = [value(j, v, alpha, rho, rho_t) for j, v in enumerate(vals)]
    values, blinds = commit.commit_scalars(np.stack(vals), key)
    evals = openings.Openings(key)
    for (opening, com), x, blind in zip(tables, subs, blinds):
        evals.add(opening, com, x, t, value_blind=blind)
    zq = bq
    for c, off, blind in zip(columns, true_layout.offsets, blinds):
        sel = true_layout.selector(off, c.num_vars, rho)
        zq = field.add(zq, field.mul(field.mul(sel, field.from_int(c.scale)), blind))
    leaf_blinds = np.stack([zq, field.add(bp_t, blinds[-1]), bq_t])
    return Proved(m_com, lookup.TreeProof((rp[0], rp[1]), lookups), lookup.TreeProof((rp[2], rp[3]), table),
                  (rp[4], rp[5]), products, root_blind, tuple(values), leaf_blinds, evals.prove(t))


def forge(cols, L, **kw):
    return _forge([c.prover for c in cols], L, Transcript(DOMAIN), **kw)


def _layout(cols, L):
    return lookup._check([c.prover for c in cols], L)


def _witness(cols, L, entries):
    """``(entries, counts)`` for the given looked-up entries (the unused leaves counted as 0)."""
    counts = np.bincount(np.concatenate(entries), minlength=1 << L).astype(np.int64)
    counts[0] += _layout(cols, L).unused
    return entries, counts


def _bad_witness(cols, L, bad_value_as=0):
    """Entries as they are, counts with every entry outside the table counted as ``bad_value_as``
    (None: not counted at all); the unused leaves counted as 0."""
    entries = [c.prover.scale * field.to_signed(c.prover.stack.opening.field_table(CPU)).reshape(-1) for c in cols]
    flat = np.concatenate(entries)
    inside = (flat >= 0) & (flat < 1 << L)
    kept = flat[inside] if bad_value_as is None else np.where(inside, flat, bad_value_as)
    counts = np.bincount(kept, minlength=1 << L).astype(np.int64)
    counts[0] += _layout(cols, L).unused
    return entries, counts


BAD = (lambda: [rand_col(8, 6, 21), col(np.array([1, 2, 64, 3]))], 6, 1, 2)  # columns, L, bad column, index


def _leaf(cols, L, j, index):
    return _layout(cols, L).offsets[j] + index


def _mle(table, point):
    return field.inner(mle.eq_table(point), table)


def seeded(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(field, "random", lambda shape=(): field.random_seeded(shape, rng))


# the forger itself ----------------------------------------------------------------------------
def test_the_forger_without_lies_is_the_honest_prover(monkeypatch):
    """Guards every attack below: the forging prover with no hook makes the module's proof byte for
    byte (same randomness), so a rejection below is the lie's doing."""
    cols = [rand_col(8, 6, 22), col(np.array([1, 2, 63, 3])), rand_col(8, 4, 22).scaled(4), col(np.array([7]))]
    seeded(monkeypatch, 1)
    honest = prove(cols, 6)
    seeded(monkeypatch, 1)
    forged = forge(cols, 6)
    assert forged.to_bytes() == honest.to_bytes()
    verify(cols, 6, round_trip(cols, 6, forged))
    # a true claim "shifted" to itself changes nothing, in both trees
    n = _layout(cols, 6).num_vars
    verify(cols, 6, forge(cols, 6, lie=range(n), table_lie=range(6)))


# the committed roots ----------------------------------------------------------------------------
def test_honest_roots_of_a_false_statement_do_not_cancel():
    make, L, _, _ = BAD
    cols = make()
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L)), "do not cancel")


@pytest.mark.parametrize("lies, where", [("none", "lookup tree layer 0 final claim"),
                                         ("not the last layers", "lookup tree layer 3 final claim"),
                                         ("all layers", "leaves differ")])
def test_zero_denominator_roots_are_rejected(lies, where):
    """Q = Q' = 0 makes P Q' + P' Q = 0 for any P, P' (honest products and zero opening): the
    claims P + lambda Q must then be carried down both trees to the leaves, where they fail."""
    make, L, _, _ = BAD
    cols = make()
    n = _layout(cols, L).num_vars
    assert n == 4
    kw = {} if lies == "none" else dict(lie=range(n), table_lie=range(L), fix_last=lies == "all layers")
    proof = forge(cols, L, witness=_bad_witness(cols, L), roots=lambda r, a: [r[0], field.ZERO, r[2], field.ZERO],
                  **kw)
    rejected(cols, L, proof, where)
    honest = [rand_col(8, 6, 23)]  # even for a true statement
    rejected(honest, L, forge(honest, L, roots=lambda r, a: [r[0], field.ZERO, r[2], field.ZERO],
                              lie=range(_layout(honest, L).num_vars), table_lie=range(L)), "leaves differ")


@pytest.mark.parametrize("which", ["lookup", "table"])
def test_a_zero_root_pair_is_rejected(which):
    """P = Q = 0 for one tree: P Q' + P' Q = 0 whatever the other tree says."""
    make, L, _, _ = BAD
    cols = make()
    n = _layout(cols, L).num_vars

    def zero(r, a):
        return [field.ZERO, field.ZERO, r[2], r[3]] if which == "lookup" else [r[0], r[1], field.ZERO, field.ZERO]
    kw = dict(lie=range(n)) if which == "lookup" else dict(table_lie=range(L))
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L), roots=zero, **kw), "leaves differ")


@pytest.mark.parametrize("lies, where", [("none", "table tree layer 0 final claim"),
                                         ("not the last layer", "table tree layer 5 final claim"),
                                         ("all layers", "leaves differ")])
def test_a_table_root_chosen_to_cancel_is_rejected(lies, where):
    """The lookup tree honest (with the entry 64), the table root's numerator set to
    P' = -P Q' / Q so the roots cancel: the lie must go down the table tree to M's opening."""
    make, L, _, _ = BAD
    cols = make()
    kw = {} if lies == "none" else dict(table_lie=range(L), fix_last=lies == "all layers")
    cancel = lambda r, a: [r[0], r[1], field.neg(_div(field.mul(r[0], r[3]), r[1])), r[3]]  # noqa: E731
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L), roots=cancel, **kw), where)


def test_a_lookup_root_chosen_to_cancel_is_rejected():
    make, L, _, _ = BAD
    cols = make()
    n = _layout(cols, L).num_vars
    cancel = lambda r, a: [field.neg(_div(field.mul(r[2], r[1]), r[3])), r[1], r[2], r[3]]  # noqa: E731
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L), roots=cancel, lie=range(n)), "leaves differ")


@pytest.mark.parametrize("which", [0, 1])
def test_false_root_products_are_rejected(which):
    """The honest (non-cancelling) roots of a false statement, one product committed as minus the
    other so the zero opening holds: its product proof fails."""
    make, L, _, _ = BAD
    cols = make()

    def lie(six):
        six = list(six)
        six[4 + which] = field.neg(six[5 - which])
        return six
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L), root_products=lie), "roots: proof of product")


# the layers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fix_last, where", [(True, "leaves differ"), (False, "lookup tree layer 3 final claim")])
def test_forged_lookup_layers_propagated_to_the_leaves_are_rejected(fix_last, where):
    """A cancelling lookup root (numerator forged) kept false layer by layer: every sumcheck
    shifted to the false claim, every ``a`` (``c`` on the unit layer) chosen to meet it. The lie
    reaches the leaves (or, if the last layer commits its true values, its final claim)."""
    make, L, _, _ = BAD
    cols = make()
    n = _layout(cols, L).num_vars
    cancel = lambda r, a: [field.neg(_div(field.mul(r[2], r[1]), r[3])), r[1], r[2], r[3]]  # noqa: E731
    proof = forge(cols, L, witness=_bad_witness(cols, L), roots=cancel, lie=range(n), fix_last=fix_last)
    rejected(cols, L, proof, where)


@pytest.mark.parametrize("tree, where", [("lookup", "lookup tree layer 1 sumcheck round 0"),
                                         ("table", "table tree layer 1 sumcheck round 0")])
def test_forged_layer_0_values_are_caught_by_the_next_sumcheck(tree, where):
    """Only layer 0 lies (it meets the forged root): layer 1's honest round polynomials do not sum
    to the false claim."""
    make, L, _, _ = BAD
    cols = make()
    if tree == "lookup":
        kw = dict(roots=lambda r, a: [field.neg(_div(field.mul(r[2], r[1]), r[3])), r[1], r[2], r[3]], lie={0})
    else:
        kw = dict(roots=lambda r, a: [r[0], r[1], field.neg(_div(field.mul(r[0], r[3]), r[1])), r[3]],
                  table_lie={0})
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L), **kw), where)


# the lookup tree's unit numerators ---------------------------------------------------------------
def _numerator_0_at_the_bad_entry(cols, L):
    """Numerators 1 except 0 at the entry 64 (so it adds nothing), which is left uncounted."""
    _, _, j, k = BAD
    x = _leaf(cols, L, j, k)

    def leaves(q, layout, alpha):
        p = np.array(np.broadcast_to(field.ONE, q.shape))
        p[x] = field.ZERO
        return p
    return leaves


def test_a_numerator_smuggled_below_the_unit_layer_is_rejected():
    """The lookup tree built with numerator 0 at the bad entry (its sum then cancels the counts
    honestly): the unit layer's sumcheck is of c + d + lambda c d, which the claim above (a d + b c
    with a != 1) does not match."""
    make, L, _, _ = BAD
    cols = make()
    leaves = _numerator_0_at_the_bad_entry(cols, L)
    witness = _bad_witness(cols, L, None)
    rejected(cols, L, forge(cols, L, witness=witness, lookup_leaves=leaves), "lookup tree layer 3 sumcheck round 0")
    # shifted to the claim, c chosen to meet it: the leaves' denominators then differ
    rejected(cols, L, forge(cols, L, witness=witness, lookup_leaves=leaves, lie={3}), "leaves differ")


def test_a_general_layer_in_the_unit_layers_place_is_rejected():
    """The unit layer proved and committed with a, b, c, d and its 7 values: not the format."""
    make, L, _, _ = BAD
    cols = make()
    proof = forge(cols, L, witness=_bad_witness(cols, L, None), lookup_leaves=_numerator_0_at_the_bad_entry(cols, L),
                  full_unit=True)
    rejected(cols, L, proof, "lookup tree layer 3: malformed")
    with pytest.raises(ProofFormatError, match="points"):
        Proved.from_bytes(proof.to_bytes(), [c.verifier for c in cols], L)


def test_a_single_layer_lookup_tree_is_a_unit_layer():
    """One entry: two leaves (one unused), the unit layer is layer 0 with no rounds; a lying
    denominator there is caught by its final claim or the leaves."""
    cols, L = [col(np.array([9]))], 4
    assert _layout(cols, L).num_vars == 1
    verify(cols, L, round_trip(cols, L, prove(cols, L)))
    bad = [col(np.array([16]))]
    cancel = lambda r, a: [field.neg(_div(field.mul(r[2], r[1]), r[3])), r[1], r[2], r[3]]  # noqa: E731
    witness = _bad_witness(bad, L)
    rejected(bad, L, forge(bad, L, witness=witness, roots=cancel), "lookup tree layer 0 final claim")
    rejected(bad, L, forge(bad, L, witness=witness, roots=cancel, lie={0}), "leaves differ")


# the lookup tree's leaves --------------------------------------------------------------------------
def test_a_bad_entry_whose_leaf_says_0_is_rejected():
    make, L, j, k = BAD
    cols = make()
    x = _leaf(cols, L, j, k)

    def zero(q, layout, alpha):
        q[x] = alpha
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L, 0), lookup_leaves=zero), "leaves differ")


@pytest.mark.parametrize("deferred", [False, True])
def test_a_column_opened_as_the_doctored_values_is_rejected(deferred):
    """The leaves say 64 is 0 and the column's evaluation and claim are made for the doctored
    table, with the real row blinds: every lookup check and the openings' sumcheck pass (the
    claims are the doctored table's), the inner-product argument does not (with deferred checks:
    when they run)."""
    make, L, j, k = BAD
    cols = make()
    x = _leaf(cols, L, j, k)
    doctored = commit.commit(np.array([1, 2, 0, 3]), blinds=cols[j].prover.stack.opening.blinds)[1]

    def zero(q, layout, alpha):
        q[x] = alpha
    proof = forge(cols, L, witness=_bad_witness(cols, L, 0), lookup_leaves=zero, opened_as={j: doctored})
    if not deferred:
        rejected(cols, L, proof, "evaluation claims' inner-product argument")
        return
    checks = commit.DeferredChecks()
    verify(cols, L, proof, checks=checks)  # the lookup's own checks pass: the lie is in the opening
    with pytest.raises(VerificationError, match="inner-product argument"):
        checks.run()


def test_a_column_value_committed_for_the_doctored_leaves_is_rejected():
    """The committed column value is the doctored table's evaluation (so the leaf check holds),
    the claim opened the real table's: the openings reject it."""
    make, L, j, k = BAD
    cols = make()
    x = _leaf(cols, L, j, k)
    doctored = commit.commit(np.array([1, 2, 0, 3]))[1]

    def zero(q, layout, alpha):
        q[x] = alpha
    n = _layout(cols, L).num_vars
    proof = forge(cols, L, witness=_bad_witness(cols, L, 0), lookup_leaves=zero,
                  value=lambda i, v, a, rho, rt: commit.evaluate(doctored, rho[n - 2:]) if i == j else v)
    rejected(cols, L, proof, "evaluation claims")


@pytest.mark.parametrize("offsets", [(8, 0), (0, 12), (4, 0)], ids=["swapped", "into the unused leaves", "misaligned"])
def test_leaves_in_another_layout_are_rejected(offsets):
    """A true witness, its leaves in another layout (the blocks swapped, the small block moved into
    the unused leaves, the large one misaligned over them): the verifier's selectors are the
    statement's layout."""
    cols, L = [rand_col(8, 4, 24), rand_col(4, 4, 25)], 4  # blocks at 0 and 8, 4 unused leaves
    true = _layout(cols, L)
    assert (true.offsets, true.num_vars, true.unused) == ((0, 8), 4, 4)
    moved = dataclasses.replace(true, offsets=offsets)
    rejected(cols, L, forge(cols, L, layout=moved), "leaves differ")


def test_leaves_without_the_scale_are_rejected():
    """The statement (transcript) has scale 16; the leaves hold the unscaled entries (5, in the
    table) and count them: the verifier's leaf check applies the scale."""
    L = 6
    base = col(np.array([0, 3, 5, 1]))
    cols = [base, base.scaled(16)]
    entries = [field.to_signed(base.prover.stack.opening.field_table(CPU)).reshape(-1)] * 2
    rejected(cols, L, forge(cols, L, witness=_witness(cols, L, entries)), "leaves differ")


# the unused leaves (entries 0) ------------------------------------------------------------------
def test_unused_leaves_left_out_of_the_counts_are_rejected():
    cols, L = [rand_col(8, 4, 26), rand_col(4, 4, 27)], 4
    prover = [c.prover for c in cols]
    entries, counts = entries_of(prover), counts_of(prover, L, 0)  # the unused leaves not counted
    assert _layout(cols, L).unused == 4
    rejected(cols, L, forge(cols, L, witness=(entries, counts)), "do not cancel")


@pytest.mark.parametrize("v", [5, 15])
def test_unused_leaves_given_another_entry_are_rejected(v):
    """The unused leaves' denominators alpha - v (counted as v, so the roots cancel): the verifier's
    unused term is alpha."""
    cols, L = [rand_col(8, 4, 26), rand_col(4, 4, 27)], 4
    layout = _layout(cols, L)
    used = [range(o, o + (1 << m)) for o, m in zip(layout.offsets, layout.column_vars)]
    unused = [x for x in range(1 << layout.num_vars) if not any(x in r for r in used)]
    assert len(unused) == layout.unused == 4
    entries, counts = entries_of([c.prover for c in cols]), counts_of([c.prover for c in cols], L, 0)
    counts = counts.copy()
    counts[v] += layout.unused

    def leaves(q, lay, alpha):
        q[unused] = field.sub(alpha, field.from_int(v))
    rejected(cols, L, forge(cols, L, witness=(entries, counts), lookup_leaves=leaves), "leaves differ")


def test_an_unused_leaf_cancelling_a_bad_entry_is_rejected():
    """An unused leaf turned into -1 / (alpha - 64), cancelling the bad entry's 1 / (alpha - 64)
    (64 not counted; the unused leaf not counted either): the trees' sums cancel, but the unit
    layer has no numerators (its sumcheck fails), and shifting it to the claim leaves the
    denominators wrong at the leaves."""
    make, L, _, _ = BAD
    cols = make()
    layout = _layout(cols, L)
    u = (1 << layout.num_vars) - 1  # the last leaf: unused (blocks of 8 and 4 at 0 and 8)
    assert layout.offsets == (0, 8) and layout.unused == 4
    entries, counts = _bad_witness(cols, L, None)
    counts = counts.copy()
    counts[0] -= 1

    def leaves(q, lay, alpha):
        q[u] = field.sub(alpha, field.from_int(64))
        p = np.array(np.broadcast_to(field.ONE, q.shape))
        p[u] = field.neg(field.ONE)
        return p
    rejected(cols, L, forge(cols, L, witness=(entries, counts), lookup_leaves=leaves),
             "lookup tree layer 3 sumcheck round 0")
    rejected(cols, L, forge(cols, L, witness=(entries, counts), lookup_leaves=leaves, lie={3}), "leaves differ")
    # with the general layer's format in the unit layer's place: not the format
    rejected(cols, L, forge(cols, L, witness=(entries, counts), lookup_leaves=leaves, full_unit=True),
             "lookup tree layer 3: malformed")


# the table tree's leaves and M's opening ---------------------------------------------------------
def _cancelling_table_numerators(cols, L):
    """After alpha, numerator ``p'_0`` moved so that the table tree's sum cancels the lookup's
    1 / (alpha - 64) (the bad entry counted as 0 in M): the roots cancel, honestly."""
    def leaves(tp, tq, alpha):
        extra = field.sub(_div(field.ONE, field.sub(alpha, field.from_int(64))), _div(field.ONE, alpha))
        tp[0] = field.sub(tp[0], field.mul(extra, alpha))  # p'_0 / alpha -= 1/(alpha-64) - 1/alpha
    return leaves


def test_table_numerators_chosen_after_alpha_are_rejected():
    make, L, _, _ = BAD
    cols = make()
    rejected(cols, L, forge(cols, L, witness=_bad_witness(cols, L), table_leaves=_cancelling_table_numerators(cols, L)),
             "leaves differ")


def test_table_denominators_moved_to_the_bad_entry_are_rejected():
    """A value v no entry takes gets the denominator alpha - 64 and M_v = 1 (the count of 64):
    the roots cancel; the verifier's table MLE t~ does not say 64 there."""
    make, L, _, _ = BAD
    cols = make()
    entries, counts = _bad_witness(cols, L, None)
    v = int(np.flatnonzero(counts == 0)[0])
    counts = counts.copy()
    counts[v] = 1

    def leaves(tp, tq, alpha):
        tq[v] = field.sub(alpha, field.from_int(64))
    rejected(cols, L, forge(cols, L, witness=(entries, counts), table_leaves=leaves), "leaves differ")


def test_an_m_value_committed_for_the_cancelling_numerators_is_rejected():
    """The table numerators chosen after alpha, and M's committed value at rho' set to minus their
    MLE (so the table leaf check holds): M's claim opened is of the committed counts."""
    make, L, _, _ = BAD
    cols = make()
    entries, counts = _bad_witness(cols, L)
    hook = _cancelling_table_numerators(cols, L)

    def value(j, v, alpha, rho, rho_t):
        if j < len(cols):
            return v
        tp, tq = field.neg(field.from_int(counts)), field.sub(alpha, field.from_int(np.arange(1 << L)))
        hook(tp, tq, alpha)
        return field.neg(_mle(tp, rho_t))
    rejected(cols, L, forge(cols, L, witness=(entries, counts), table_leaves=hook, value=value), "evaluation claims")


@pytest.mark.parametrize("deferred", [False, True])
def test_m_opened_as_other_counts_is_rejected(deferred):
    """A true statement, M committed (before alpha) to wrong counts (one shifted), the table tree
    built from the true counts (so the roots cancel) and M evaluated and claimed as the true counts
    with M's real row blinds: every lookup check and the openings' sumcheck pass, the
    inner-product argument fails."""
    cols, L = [rand_col(16, 4, 38), rand_col(4, 4, 39)], 4
    prover = [c.prover for c in cols]
    entries, counts = entries_of(prover), counts_of(prover, L, _layout(cols, L).unused)
    wrong = counts.copy()
    v = int(np.flatnonzero(wrong)[0])
    wrong[v] -= 1
    wrong[(v + 1) % len(wrong)] += 1
    m_com, m_open = commit.commit(wrong)
    doctored = commit.commit(counts, blinds=m_open.blinds)[1]
    proof = forge(cols, L, witness=(entries, counts), mult=lambda _: (m_com, m_open), opened_as={len(cols): doctored})
    if not deferred:
        rejected(cols, L, proof, "evaluation claims' inner-product argument")
        return
    checks = commit.DeferredChecks()
    verify(cols, L, proof, checks=checks)  # the lookup's own checks pass: the lie is in M's opening
    with pytest.raises(VerificationError, match="inner-product argument"):
        checks.run()
    # the same wrong M opened honestly: the table tree's numerators are not -M
    rejected(cols, L, forge(cols, L, witness=(entries, counts), mult=lambda _: (m_com, m_open)), "leaves differ")


@pytest.mark.parametrize("where", ["reversed", "lookup point"])
def test_m_opened_at_another_point_is_rejected(where):
    """M evaluated and claimed (an honest claim, opened) at a point other than the table tree's
    rho': reversed, or the lookup tree's leaf point. The verifier's claim is at rho': M's value
    there fails the table tree's leaf check; with M's value at rho' committed instead, the
    claim made elsewhere is not the verifier's and the openings reject it."""
    cols, L = [rand_col(16, 4, 28)], 4
    assert _layout(cols, L).num_vars == L
    point = (lambda rho, rt: rt[::-1].copy()) if where == "reversed" else (lambda rho, rt: rho[len(rho) - L:])
    rejected(cols, L, forge(cols, L, m_point=point), "leaves differ")
    counts = field.from_int(counts_of([c.prover for c in cols], L, _layout(cols, L).unused))
    at_rho_t = lambda j, v, alpha, rho, rt: _mle(counts, rt) if j == len(cols) else v  # noqa: E731
    rejected(cols, L, forge(cols, L, m_point=point, value=at_rho_t), "evaluation claims")


@pytest.mark.parametrize("how", ["more variables", "other row width", "fewer variables"])
def test_multiplicities_of_another_size_are_rejected(how):
    """Multiplicities over 2^7 entries for a 2^6 table (room for 64's count), over 2^5, or of
    another row split: rejected by the verifier and by the parser."""
    make, L, _, _ = BAD
    cols = make()
    entries, counts = _bad_witness(cols, L, None)
    if how == "more variables":
        wide = np.bincount(np.concatenate(entries), minlength=1 << (L + 1)).astype(np.int64)
        wide[0] += _layout(cols, L).unused
        proof = forge(cols, L, witness=(entries, counts), mult=lambda _: commit.commit(wide),  # opened at (0, rho')
                      m_point=lambda rho, rt: np.concatenate([field.zeros()[None], rt]))
    elif how == "fewer variables":
        proof = dataclasses.replace(forge(cols, L, witness=(entries, counts)),
                                    multiplicities=commit.commit(counts[:1 << (L - 1)])[0])
    else:
        proof = forge(cols, L, witness=(entries, counts), mult=lambda m: commit.commit(m, col_vars=L))
    rejected(cols, L, proof, "multiplicities of the wrong size")
    with pytest.raises(ProofFormatError, match="multiplicities of the wrong size"):
        Proved.from_bytes(proof.to_bytes(), [c.verifier for c in cols], L)


def test_multiplicities_with_field_counts_are_rejected():
    """Counts as any field elements (here r - 5 and +5 on two values): the logUp identity needs
    the true counts modulo r."""
    cols, L = [rand_col(16, 4, 25)], 4
    entries, counts = entries_of([c.prover for c in cols]), counts_of([c.prover for c in cols], L)
    counts = counts.copy()
    counts[0] -= 5
    counts[1] += 5
    rejected(cols, L, forge(cols, L, witness=(entries, counts)), "do not cancel")


# the relation's limit: a scaled column alone ------------------------------------------------------
def test_a_scaled_column_alone_bounds_c_f_mod_r_only():
    """The documented limit (zk/lookup.py's docstring): at scale c alone, F = c^-1 (mod r) passes,
    as c F = 1 is in the table although F is no integer in [0, 4). Beside the scale-1 column of the
    same entries (as zk.fac4dnn always adds) it is rejected: with the true leaf alpha - c^-1 the
    roots cannot cancel; with the leaf saying 0, the leaf check fails."""
    L, c = 6, 16
    inv = field.inv(field.from_int(c))
    values = np.stack([inv, field.from_int(1), field.from_int(2), field.from_int(3)])  # c*F = 1, 16, 32, 48
    alone = [col(values, scale=c)]
    entries = [np.array([1, 16, 32, 48], dtype=np.int64)]
    verify(alone, L, round_trip(alone, L, forge(alone, L, witness=_witness(alone, L, entries))))  # accepted

    base = col(values)
    cols = [base.scaled(c), base]
    x = _leaf(cols, L, 1, 0)
    entries = [np.array([1, 16, 32, 48]), np.array([0, 1, 2, 3])]  # the scale-1 entry "0" for c^-1
    rejected(cols, L, forge(cols, L, witness=_witness(cols, L, entries)), "leaves differ")

    def true_leaf(q, layout, alpha):
        q[x] = field.sub(alpha, inv)
    for counted in (0, None):  # c^-1 counted as 0, or not at all
        e, m = _witness(cols, L, entries)
        if counted is None:
            m = m.copy()
            m[0] -= 1
        rejected(cols, L, forge(cols, L, witness=(e, m), lookup_leaves=true_leaf), "do not cancel")


# proof objects --------------------------------------------------------------------------------------
def test_a_zero_round_layer_0_cannot_be_replaced():
    """Layer 0 has no sumcheck round; a proof giving it one (the layers of a deeper tree) fails,
    in either tree."""
    cols, L = [rand_col(4, 2, 26)], 2
    proof = prove(cols, L)
    deeper = prove([rand_col(8, 2, 27)], 3)
    lk, tb = proof.lookups, proof.table
    bad = dataclasses.replace(proof, lookups=dataclasses.replace(lk, layers=deeper.table.layers[1:2] + lk.layers[1:]))
    rejected(cols, L, bad, "lookup tree layer 0 sumcheck: expected 0 rounds")
    bad = dataclasses.replace(proof, table=dataclasses.replace(tb, layers=deeper.table.layers[1:2] + tb.layers[1:]))
    rejected(cols, L, bad, "table tree layer 0 sumcheck: expected 0 rounds")
    for tree in ("lookups", "table"):  # one layer too many, one too few
        t = getattr(proof, tree)
        for layers in (t.layers[:1] + t.layers, t.layers[:-1]):
            rejected(cols, L, dataclasses.replace(proof, **{tree: dataclasses.replace(t, layers=layers)}),
                     "another layout")


def test_swapped_or_shifted_proof_parts_are_rejected():
    cols, L = [rand_col(8, 3, 28), rand_col(8, 3, 29), rand_col(2, 3, 34)], 3  # row widths 2, 2, 1 and M's 2
    assert _layout(cols, L).num_vars == 5
    proof = prove(cols, L)
    U, H = commit.DEFAULT_KEY.U, commit.DEFAULT_KEY.H
    lk, tb, ops = proof.lookups, proof.table, proof.openings
    assert ops.col_vars == 2  # the claims of both row widths in one opening

    def layer(tree, i, **kw):
        t = getattr(proof, tree)
        layers = list(t.layers)
        layers[i] = dataclasses.replace(layers[i], **kw)
        return dataclasses.replace(proof, **{tree: dataclasses.replace(t, layers=tuple(layers))})
    for bad in (
        dataclasses.replace(proof, values=proof.values[1::-1] + proof.values[2:]),  # two columns' values
        dataclasses.replace(proof, values=proof.values[:2] + proof.values[:1:-1]),  # a column's and M's
        dataclasses.replace(proof, values=(proof.values[0] + U,) + proof.values[1:]),
        dataclasses.replace(proof, values=(proof.values[0] + U, proof.values[1] - U) + proof.values[2:]),
        dataclasses.replace(proof, values=proof.values[:-1] + (proof.values[-1] + U,)),  # M's value
        dataclasses.replace(proof, lookups=dataclasses.replace(lk, root=lk.root[::-1])),
        dataclasses.replace(proof, lookups=dataclasses.replace(lk, root=(lk.root[0] + H, lk.root[1]))),
        dataclasses.replace(proof, table=dataclasses.replace(tb, root=(tb.root[0], tb.root[1] + U))),
        dataclasses.replace(proof, lookups=dataclasses.replace(lk, root=tb.root),
                            table=dataclasses.replace(tb, root=lk.root)),  # the two roots swapped
        dataclasses.replace(proof, roots=proof.roots[::-1]),
        dataclasses.replace(proof, roots=(proof.roots[0] + U, proof.roots[1] - U)),  # still sum to the blind
        dataclasses.replace(proof, root_products=proof.root_products[::-1]),
        dataclasses.replace(proof, root_blind=field.add(proof.root_blind, field.ONE)),
        dataclasses.replace(proof, openings=dataclasses.replace(ops, ipa=dataclasses.replace(ops.ipa, L=ops.ipa.R,
                                                                                             R=ops.ipa.L))),
        dataclasses.replace(proof, openings=prove(cols, L).openings),  # another proof's (of the same statement)
        dataclasses.replace(proof, leaf_blinds=proof.leaf_blinds[::-1].copy()),
        dataclasses.replace(proof, leaf_blinds=proof.leaf_blinds[[1, 0, 2]].copy()),
        layer("lookups", 0, values=lk.layers[0].values[::-1]),
        layer("lookups", 4, values=lk.layers[4].values[::-1]),  # the unit layer's c, d, cd
        layer("lookups", 4, values=(lk.layers[4].values[1], lk.layers[4].values[0], lk.layers[4].values[2])),
        layer("table", 2, values=tb.layers[2].values[::-1]),
        layer("table", 1, final_blind=field.add(tb.layers[1].final_blind, field.ONE)),
        dataclasses.replace(proof, lookups=dataclasses.replace(lk, layers=lk.layers[:1] + (lk.layers[2], lk.layers[1])
                                                               + lk.layers[3:])),
        dataclasses.replace(proof, table=dataclasses.replace(tb, layers=tb.layers[:1] + tb.layers[2:0:-1])),
    ):
        rejected(cols, L, bad)


def test_the_two_trees_swapped_are_rejected():
    """A lookup tree and a table tree of the same depth (2^4 entries, a 2^4 table), swapped."""
    cols, L = [rand_col(16, 4, 35)], 4
    proof = prove(cols, L)
    assert len(proof.lookups.layers) == len(proof.table.layers) == 4
    rejected(cols, L, dataclasses.replace(proof, lookups=proof.table, table=proof.lookups), "lookup tree layer 0")
    k = 1 + len(proof.lookups.sections()) + len(proof.table.sections())
    parts = [proof.multiplicities.to_bytes(), *proof.table.sections(), *proof.lookups.sections()] + proof.sections()[k:]
    data = b"".join(wire.section(x) for x in parts)
    with pytest.raises(ProofFormatError):
        Proved.from_bytes(data, [c.verifier for c in cols], L)


def test_malformed_proof_objects_raise_verification_errors():
    """Proof objects of the wrong structure (not from the parser) are VerificationErrors, not
    IndexError / TypeError / ValueError from the arithmetic."""
    cols, L = [rand_col(8, 3, 36), col(np.array([5]))], 3
    proof = prove(cols, L)
    lk, tb = proof.lookups, proof.table
    for bad in (
        dataclasses.replace(proof, leaf_blinds=proof.leaf_blinds[:2].copy()),
        dataclasses.replace(proof, leaf_blinds=None),
        dataclasses.replace(proof, root_blind=np.zeros(3, dtype=np.uint64)),
        dataclasses.replace(proof, values=proof.values[:-1]),
        dataclasses.replace(proof, openings=None),
        dataclasses.replace(proof, openings=dataclasses.replace(proof.openings, ipa=None)),
        dataclasses.replace(proof, openings=dataclasses.replace(proof.openings, col_vars=proof.openings.col_vars - 1)),
        dataclasses.replace(proof, roots=proof.roots[:1]),
        dataclasses.replace(proof, root_products=proof.root_products[:1]),
        dataclasses.replace(proof, lookups=dataclasses.replace(lk, root=lk.root[:1])),
        dataclasses.replace(proof, table=dataclasses.replace(tb, root=tb.root + tb.root[:1])),
        dataclasses.replace(proof, lookups=None),
        dataclasses.replace(proof, multiplicities=cols[0].commitments[0]),
        dataclasses.replace(proof, lookups=dataclasses.replace(
            lk, layers=lk.layers[:-1] + (dataclasses.replace(lk.layers[-1], products=lk.layers[-1].products * 3),))),
        dataclasses.replace(proof, table=dataclasses.replace(
            tb, layers=(dataclasses.replace(tb.layers[0], values=tb.layers[0].values[:3]),) + tb.layers[1:])),
    ):
        rejected(cols, L, bad)


# ---------------------------------------------------------------------------------------------
# proof bytes
# ---------------------------------------------------------------------------------------------
def _sections(data: bytes):
    """``(start, end)`` of every section's content in the proof bytes."""
    reader, out = wire.Reader(data), []
    while reader.remaining():
        n = reader.unpack("<I")
        out.append((reader.pos, reader.pos + n))
        reader.take(n)
    return out


def _section_count(layout, L):
    """Sections of a lookup proof with its openings: M; the lookup tree (root, 6 per layer, 4 for
    the unit layer); the table tree (root, 6 per layer); roots, two products, the root blind; the
    leaf values, the leaf blinds; the openings (column variables, sumcheck, inner-product argument)."""
    return 1 + (1 + 6 * layout.num_vars - 2) + (1 + 6 * L) + 4 + 1 + 1 + 3


def test_a_flipped_byte_in_any_section_is_rejected():
    cols, L = [rand_col(4, 2, 30), col(np.array([2]))], 2
    proof = prove(cols, L)
    data = proof.to_bytes()
    spans = _sections(data)
    layout = _layout(cols, L)
    assert len(spans) == len(proof.sections()) == _section_count(layout, L)
    assert len(spans) == 1 + (1 + 6 + 6 + 4) + (1 + 6 + 6) + 4 + 1 + 1 + 3  # N = 3, L = 2
    rng = np.random.default_rng(31)
    verifier = [c.verifier for c in cols]
    for k, (start, end) in enumerate(spans):
        inside = {start, int(rng.integers(start, end)), end - 1} if end > start else set()
        for pos in inside | {start - 1, start - 4}:  # the length prefix's high and low bytes
            bad = bytearray(data)
            bad[pos] ^= 1 << int(rng.integers(8))
            with pytest.raises((ProofFormatError, VerificationError)):
                verify(cols, L, Proved.from_bytes(bytes(bad), verifier, L))


def test_truncated_or_extended_bytes_are_rejected():
    cols, L = [rand_col(4, 2, 32)], 2
    data = prove(cols, L).to_bytes()
    verifier = [c.verifier for c in cols]
    for n in (0, 1, 4, 5, 100, len(data) // 2, len(data) - 32, len(data) - 1):
        with pytest.raises(ProofFormatError):
            Proved.from_bytes(data[:n], verifier, L)
    with pytest.raises(ProofFormatError, match="trailing"):
        Proved.from_bytes(data + b"\0", verifier, L)
    rng = np.random.default_rng(33)
    with pytest.raises(ProofFormatError):
        Proved.from_bytes(rng.bytes(len(data)), verifier, L)


# ---------------------------------------------------------------------------------------------
# the layout
# ---------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(column_vars=st.lists(st.integers(0, 12), min_size=1, max_size=8), table_bits=st.integers(1, 12))
def test_layout_blocks_are_disjoint_aligned_and_minimal(column_vars, table_bits):
    layout = lookup.Layout.of(column_vars, table_bits)
    n, sizes, offsets = layout.num_vars, [1 << m for m in column_vars], list(layout.offsets)
    assert layout.column_vars == tuple(column_vars)
    assert layout.table_bits == table_bits
    spans = sorted((o, o + s) for o, s in zip(offsets, sizes))
    assert all(o % s == 0 for o, s in zip(offsets, sizes))  # aligned to their size
    assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:]))  # disjoint
    assert spans[0][0] >= 0 and spans[-1][1] <= 1 << n  # inside the tree
    assert n >= 1 and (n == 1 or sum(sizes) > 1 << (n - 1))  # minimal: half the leaves would not hold them
    assert layout.unused == (1 << n) - sum(sizes) >= 0  # the leaves no block covers
    # each selector is the MLE of its block's indicator; 1 - their sum is the unused leaves'
    if n <= 12:
        rho = field.random_seeded(n, np.random.default_rng(sum(sizes)))
        eq = mle.eq_table(rho)
        covered = np.zeros(1 << n, dtype=bool)
        total = field.zeros()
        for o, s, m in zip(offsets, sizes, column_vars):
            sel = layout.selector(o, m, rho)
            assert field.equal(sel, field.sum(eq[o:o + s], axis=0)).all()
            covered[o:o + s] = True
            total = field.add(total, sel)
        assert int((~covered).sum()) == layout.unused
        unused_mle = field.sum(eq[~covered], axis=0) if layout.unused else field.zeros()
        assert field.equal(field.sub(field.ONE, total), unused_mle).all()


def test_layout_limits():
    assert lookup.Layout.of([30], 4).num_vars == 30  # no table block: 2^30 entries fit
    with pytest.raises(ValueError, match="more than 2\\^30"):
        lookup.Layout.of([30, 0], 4)
    assert lookup.Layout.of([29, 29], 4).num_vars == 30
    assert lookup.Layout.of([0], 1).num_vars == 1  # one entry: two leaves, one unused
    assert lookup.Layout.of([0], 1).unused == 1
    assert lookup.Layout.of([4], 20).num_vars == 4  # the table's size does not matter
    assert lookup.Layout.of([3, 3], 4).unused == 0


def test_the_unused_leaves_are_counted_as_entries_0():
    cols, L = [rand_col(8, 4, 37), col(np.array([0, 5]))], 4
    layout = _layout(cols, L)
    assert layout.unused == 16 - 8 - 2 == 6
    counts = counts_of([c.prover for c in cols], L, layout.unused)
    plain = counts_of([c.prover for c in cols], L)
    assert counts[0] == plain[0] + 6 and (counts[1:] == plain[1:]).all()
    assert counts.sum() == 1 << layout.num_vars
    verify(cols, L, prove(cols, L))
