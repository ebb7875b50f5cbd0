"""Encrypted einsum on the ``sim`` backend against numpy.einsum: generated specs (repeated
indices, ellipsis, broadcasting, implicit output, 1-3 operands, plaintext operands, several
ciphertexts), the 15 EinHops workloads, chained einsums; and the plan's predicted op counts
and levels equal what the backend executed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fhe
from fhe.backends.sim import SimBackend
from fhe.errors import ContextMismatch, MissingRotationKey, OutOfLevels

CASES_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "einhops_cases.json"
LETTERS = "abcdeAB"


def run_sim(spec, arrays, encrypted, ring_degree, levels=8):
    """Encrypt, plan, run on sim; return (result, plan, backend counters). Checks that the
    output is as many levels down as the plan predicts."""
    ctx = fhe.Context("sim", ring_degree=ring_degree, levels=levels)
    ops = [ctx.encrypt(a) if e else a for a, e in zip(arrays, encrypted)]
    plan = ctx.plan(spec, *ops)
    ctx.backend.counters.clear()
    out = fhe.einsum(spec, *ops)
    assert out.level == levels - plan.levels
    return ctx.decrypt(out), plan, ctx.backend.counters


def assert_counts_match(plan, counters):
    cost = plan.cost()
    assert (cost.rotations, cost.ct_ct_mults, cost.ct_pt_mults, cost.additions) == (
        counters["rotate"], counters["mul"], counters["mul_plain"], counters["add"])


@st.composite
def einsums(draw):
    """A random valid einsum with numpy's features, its operands and encryption flags."""
    sizes = {c: draw(st.integers(1, 5)) for c in LETTERS}
    n_ops = draw(st.integers(1, 3))
    ell = draw(st.lists(st.integers(1, 3), max_size=2))
    terms, shapes = [], []
    for _ in range(n_ops):
        labels = draw(st.lists(st.sampled_from(LETTERS), max_size=3))
        shape = [1 if draw(st.integers(0, 6)) == 0 else sizes[c] for c in labels]
        for i, c in enumerate(labels):  # repeated labels need equal sizes
            shape[i] = shape[labels.index(c)]
        term = "".join(labels)
        if ell and draw(st.booleans()):
            cut = draw(st.integers(0, len(labels)))
            k = draw(st.integers(0, len(ell)))
            term = term[:cut] + "..." + term[cut:]
            shape = shape[:cut] + ell[len(ell) - k:] + shape[cut:]
        terms.append(term)
        shapes.append(tuple(shape))
    spec = ",".join(terms)
    if draw(st.booleans()):
        present = sorted({c for t in terms for c in t if c != "."})
        out = "".join(draw(st.lists(st.sampled_from(present), unique=True))) if present else ""
        if any("..." in t for t in terms):
            cut = draw(st.integers(0, len(out)))
            out = out[:cut] + "..." + out[cut:]
        spec += "->" + out
    encrypted = draw(st.lists(st.booleans(), min_size=n_ops, max_size=n_ops))
    encrypted[draw(st.integers(0, n_ops - 1))] = True
    ring = draw(st.sampled_from([64, 128, 256]))  # 32..128 slots: many cases span ciphertexts
    return spec, shapes, encrypted, ring


@settings(max_examples=100, deadline=None)
@given(einsums(), st.integers(0, 2**32 - 1))
def test_random_einsums_match_numpy(case, seed):
    spec, shapes, encrypted, ring = case
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, s) for s in shapes]
    expected = np.einsum(spec, *arrays)
    got, plan, counters = run_sim(spec, arrays, encrypted, ring)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert_counts_match(plan, counters)


# ------------------------------------------------------------------------ fixed workloads
def einhops_cases():
    if not CASES_FILE.exists():
        return []
    return json.loads(CASES_FILE.read_text())["cases"]


@pytest.mark.skipif(not CASES_FILE.exists(), reason=f"{CASES_FILE} not found")
@pytest.mark.parametrize("case", einhops_cases(), ids=lambda c: f"{c['id']}-{c['spec']}")
def test_einhops_workloads(case):
    """All 15 EinHops workloads at EinHops' parameters (2^14 slots, its starting level):
    exact on sim, the plan's counts are what ran, and never more rotations or levels than
    the EinHops recipe."""
    rng = np.random.default_rng(int(case["id"]))
    arrays = [rng.uniform(-1, 1, s) for s in case["shapes"]]
    got, plan, counters = run_sim(case["spec"], arrays, [True] * len(arrays), 32768,
                                  levels=case["level"])
    np.testing.assert_allclose(got, np.einsum(case["spec"], *arrays), atol=1e-9)
    assert_counts_match(plan, counters)
    base = plan.einhops_baseline_cost()
    cost = plan.cost()
    assert cost.rotations <= base.rotations and cost.levels <= base.levels


def test_einhops_baseline_runs_correctly():
    """The baseline recipe itself computes the einsum (it is a faithful, runnable plan)."""
    rng = np.random.default_rng(3)
    for spec, shapes in [("ik,kj->ij", [(4, 8), (8, 8)]), ("i,j->ij", [(4,), (8,)]),
                         ("ij,jk,kl->il", [(4, 2), (2, 2), (2, 4)])]:
        arrays = [rng.uniform(-1, 1, s) for s in shapes]
        p = fhe.plan(spec, *shapes, slots=256, strategy="einhops")
        backend = SimBackend(ring_degree=512, levels=6)
        backend.ensure_rotation_keys(p.rotation_keys)
        cts = [[backend.encrypt(v) for v in lay.pack(a)] for lay, a in zip(p.input_layouts, arrays)]
        out = fhe.execute(p, backend, cts, [None] * len(arrays))
        got = p.output_layout.unpack(np.stack([backend.decrypt(c) for c in out]))
        np.testing.assert_allclose(got, np.einsum(spec, *arrays), atol=1e-12)


@pytest.mark.parametrize("spec,shapes,slots", [
    ("ij,jk->ik", [(32, 32), (32, 32)], 256),         # 2^15 joint indices on 256 slots
    ("ij,jk->ik", [(8, 24), (24, 16)], 128),          # padding and tiles
    ("bij,bjk->bik", [(3, 8, 8), (3, 8, 8)], 64),     # batched, diagonal strategy with tiles
    ("ij->ji", [(16, 16)], 64),                       # multi-ciphertext transpose
    ("ij,ij->", [(16, 16), (16, 16)], 64),            # reduction across ciphertexts
])
def test_multi_ciphertext(spec, shapes, slots):
    rng = np.random.default_rng(5)
    arrays = [rng.uniform(-1, 1, s) for s in shapes]
    got, plan, counters = run_sim(spec, arrays, [True] * len(arrays), 2 * slots)
    assert max(lay.n_cts for lay in plan.input_layouts) > 1
    np.testing.assert_allclose(got, np.einsum(spec, *arrays), atol=1e-9)
    assert_counts_match(plan, counters)


@pytest.mark.slow
def test_matmul_128_on_8192_slots():
    """The issue's example: 128x128 . 128x128 on 8192 slots (inputs span two ciphertexts)."""
    rng = np.random.default_rng(6)
    a, b = rng.uniform(-1, 1, (128, 128)), rng.uniform(-1, 1, (128, 128))
    got, plan, counters = run_sim("ij,jk->ik", [a, b], [True, True], 16384, levels=3)
    np.testing.assert_allclose(got, a @ b, atol=1e-9)
    assert_counts_match(plan, counters)


def test_chained_einsums_stay_encrypted():
    """An output layout (strided, possibly several ciphertexts) feeds the next einsum."""
    rng = np.random.default_rng(7)
    ctx = fhe.Context("sim", ring_degree=512, levels=8)
    a, w1, w2 = (rng.uniform(-1, 1, s) for s in [(8, 16), (16, 16), (16, 4)])
    x = ctx.encrypt(a)
    h = fhe.einsum("bi,io->bo", x, w1)                       # plaintext weights
    g = fhe.einsum("bo,bo->bo", h, h)                        # square, both encrypted
    y = fhe.einsum("bo,ok->bk", g, ctx.encrypt(w2))          # encrypted weights
    t = fhe.einsum("bk->kb", y)                              # a pure relabelling: free
    np.testing.assert_allclose(ctx.decrypt(t), (((a @ w1) ** 2) @ w2).T, atol=1e-9)
    assert t.level == y.level

    big = ctx.encrypt(rng.uniform(-1, 1, (32, 32)))         # 4 ciphertexts of 256 slots
    two = fhe.einsum("ij,jk->ik", big, big)
    three = fhe.einsum("ij,jk->ik", two, big)
    m = ctx.decrypt(big)
    np.testing.assert_allclose(ctx.decrypt(three), m @ m @ m, atol=1e-9)


def test_plaintext_operand_costs_no_rotation():
    """Only the encrypted operand is moved; the plaintext one is laid out in the clear."""
    rng = np.random.default_rng(8)
    a, w = rng.uniform(-1, 1, (16, 16)), rng.uniform(-1, 1, (16, 16))
    _, enc, _ = run_sim("ij,jk->ik", [a, w], [True, True], 1024)
    got, mixed, counters = run_sim("ij,jk->ik", [a, w], [True, False], 1024)
    np.testing.assert_allclose(got, a @ w, atol=1e-9)
    assert_counts_match(mixed, counters)
    assert mixed.cost().ct_ct_mults == 0
    assert mixed.cost().rotations < enc.cost().rotations
    moved = [s.title for s in mixed.steps if s.ops and ("place" in s.title or "skew" in s.title)]
    assert all(" A" in t for t in moved)


def test_diagonal_strategy_matmul_64():
    """64x64 fully encrypted on 8192 slots: the diagonal strategy, two levels, exact."""
    rng = np.random.default_rng(9)
    a, b = rng.uniform(-1, 1, (64, 64)), rng.uniform(-1, 1, (64, 64))
    got, plan, counters = run_sim("ij,jk->ik", [a, b], [True, True], 16384, levels=2)
    assert plan.strategy == "diagonal" and plan.levels == 2
    assert plan.cost().ct_ct_mults == 64 and plan.cost().rotations <= 130
    np.testing.assert_allclose(got, a @ b, atol=1e-9)
    assert_counts_match(plan, counters)


def test_noise_option_perturbs_results():
    rng = np.random.default_rng(10)
    a = rng.uniform(-1, 1, (8, 8))
    exact = fhe.Context("sim", ring_degree=256)
    noisy = fhe.Context("sim", ring_degree=256, noise=1e-6, seed=1)
    e = exact.decrypt(fhe.einsum("ij,jk->ik", exact.encrypt(a), exact.encrypt(a)))
    n = noisy.decrypt(fhe.einsum("ij,jk->ik", noisy.encrypt(a), noisy.encrypt(a)))
    np.testing.assert_allclose(e, a @ a, atol=1e-12)
    assert 0 < np.abs(n - a @ a).max() < 1e-3


# ------------------------------------------------------------------------ sim bookkeeping
def test_sim_tracks_levels_keys_and_owners():
    be = SimBackend(ring_degree=64, levels=1)
    assert be.slots == 32 and be.max_level == 1
    x = be.encrypt(np.arange(5.0))
    np.testing.assert_array_equal(be.decrypt(x)[:6], [0, 1, 2, 3, 4, 0])
    y = be.mul_plain(x, np.full(32, 2.0))
    assert be.level(y) == 0 and be.level(be.add(x, y)) == 0
    with pytest.raises(OutOfLevels):
        be.mul(y, x)
    with pytest.raises(MissingRotationKey, match="3"):
        be.rotate(x, 3)
    be.ensure_rotation_keys([3, -1])
    np.testing.assert_array_equal(be.decrypt(be.rotate(x, 3))[:2], [3, 4])
    assert be.has_rotation_key(31) and be.has_rotation_key(0)
    assert be.rotate(x, 32) is x                 # a full turn: no key, no count
    with pytest.raises(ContextMismatch):
        SimBackend(ring_degree=64).add(x, x)
    assert dict(be.counters) == {"mul_plain": 1, "rescale": 1, "add": 1, "rotate": 1}
