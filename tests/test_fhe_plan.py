"""The planner without keys: layouts, the sparse-diagonal transform, plan printing, costs,
level refusal, and the comparison with the EinHops recipe."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fhe
from fhe.backends.sim import SimBackend
from fhe.layout import Layout, pow2
from fhe.program import Builder
from fhe.transform import Split, gather


# ------------------------------------------------------------------------------ layouts
def test_row_major_layout_pads_and_tiles():
    lay = Layout.row_major((3, 5), 64)
    assert (lay.strides, lay.blocks, lay.n_cts) == ((8, 1), (4, 8), 1)
    big = Layout.row_major((128, 128), 8192)
    assert (big.strides, big.blocks, big.grid) == ((128, 1), (64, 128), (2, 1))
    assert big.describe(["i", "j"]) == "i:128=2x64@128 j:128@1 (2 cts)"
    assert Layout.row_major((), 16).describe() == "scalar@0 (1 ct)"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), max_size=3), st.sampled_from([8, 16, 64]), st.integers(0, 99))
def test_pack_unpack_round_trip(shape, slots, seed):
    lay = Layout.row_major(tuple(shape), slots)
    a = np.random.default_rng(seed).uniform(-1, 1, shape)
    vecs = lay.pack(a)
    assert vecs.shape == (lay.n_cts, slots)
    assert np.count_nonzero(lay.element_map >= 0) == a.size
    np.testing.assert_array_equal(lay.unpack(vecs), a)


def test_layout_rejects_collisions_and_overflow():
    with pytest.raises(ValueError, match="share a slot"):
        Layout((4, 4), 16, (1, 2), (4, 4))
    with pytest.raises(ValueError, match="past"):
        Layout((4, 4), 8, (4, 1), (4, 4))
    with pytest.raises(fhe.ShapeMismatch):
        Layout.row_major((3, 0), 16)
    assert pow2(1) == 1 and pow2(5) == 8 and pow2(8) == 8


# ------------------------------------------------------------------------------ transform
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([16, 64]), st.integers(1, 3))
def test_gather_moves_every_element(seed, slots, n_src):
    """Random placements of random subsets: the transform puts every element where asked."""
    rng = np.random.default_rng(seed)
    n = n_src * slots // 2
    source = np.full((n_src, slots), -1)
    for u in range(n_src):
        half = slots // 2
        source[u, rng.permutation(slots)[:half]] = np.arange(u * half, (u + 1) * half)
    targets = np.full((2, slots), -1)
    for t in range(2):
        pick = rng.permutation(n)[: slots // 3]
        targets[t, rng.permutation(slots)[: pick.size]] = pick
    b = Builder(slots)
    regs = [b.input() for _ in range(n_src)]
    out = gather(b, regs, source, targets)
    values = rng.uniform(-1, 1, n)
    backend = SimBackend(ring_degree=2 * slots, levels=1)
    backend.ensure_rotation_keys({op.step for op in b.ops if op.kind == "rotate"})
    regs_ct = {r: backend.encrypt(np.where(source[u] >= 0, values[source[u]], 0))
               for u, r in enumerate(regs)}
    for op in b.ops:
        args = [regs_ct[a] for a in op.args]
        if op.kind == "rotate":
            regs_ct[op.out] = backend.rotate(args[0], op.step)
        elif op.kind == "add":
            regs_ct[op.out] = backend.add(*args)
        else:
            regs_ct[op.out] = backend.mul_plain(args[0], op.plain.values(slots))
    for t, reg in enumerate(out):
        want = np.where(targets[t] >= 0, values[targets[t]], 0)
        np.testing.assert_allclose(backend.decrypt(regs_ct[reg]), want, atol=1e-12)


def test_gather_reuses_identical_ciphertext_and_splits_offsets():
    b = Builder(16)
    r = b.input()
    source = np.arange(16)[None, :]
    assert gather(b, [r], source, source.copy()) == [r] and not b.ops
    for q, k, n1 in [(1, 0, 4), (3, 0, 2), (5, 2, 4)]:
        split = Split(64, k, q, n1)
        for off in range(0, 64, 1 << k):
            baby, giant = split(off)
            assert (baby + giant) % 64 == off


# ------------------------------------------------------------------------------ plans
def test_plan_prints_every_packing_step():
    p = fhe.plan("ij,jk->ik", (16, 32), (32, 32), slots=8192)
    text = str(p)
    for needle in ["ij,jk->ik", "strategy", "i:16@32 j:32@1", "place", "replicate", "multiply",
                   "reduce", "mask", "output ik", "cost: rotations=", "rotation keys ("]:
        assert needle in text, needle
    cost = p.cost()
    assert cost.levels == p.levels == 3 and cost.keys == len(p.rotation_keys)
    assert all(isinstance(k, int) and k for k in p.rotation_keys)
    assert repr(p).startswith("<Plan 'ij,jk->ik'")
    listing = p.listing().splitlines()
    assert sum(" = " in line for line in listing) == len(p.ops)
    assert any(line.startswith("r") and "rotate A[0] by" in line for line in listing)
    assert listing[-1].startswith("output: r")


def test_plan_needs_no_keys_and_checks_levels():
    p = fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192)
    assert p.strategy == "diagonal" and p.levels == 2
    with pytest.raises(fhe.OutOfLevels):
        fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192, levels=1)
    with pytest.raises(fhe.OutOfLevels, match="2 from fresh ciphertexts") as err:
        p.check_levels([2, 1])
    assert err.value.have == 2 and "re-encrypt" in str(err.value)
    assert p.check_levels([3, 3]) == 1


def test_plan_beats_einhops_on_matmul_and_transpose():
    """Where EinHops permutes, the planner keeps operands in place (or relabels)."""
    t = fhe.plan("ij->ji", (128, 128), slots=16384)
    assert t.cost().rotations == 0 and t.levels == 0
    assert t.einhops_baseline_cost().rotations > 200
    m = fhe.plan("ik,kj->ij", (16, 32), (32, 32), slots=16384)
    base = m.einhops_baseline_cost()
    assert m.cost().rotations < base.rotations and m.cost().levels <= base.levels
    assert fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192).einhops_baseline_cost() is None


def test_plaintext_only_plan_is_computed_in_the_clear():
    p = fhe.plan("ij,jk->ik", (2, 3), (3, 4), encrypted=(False, False))
    assert p.strategy == "clear" and p.output_layout is None and p.cost().rotations == 0


def test_strategies_agree_on_sim():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(-1, 1, (8, 8)), rng.uniform(-1, 1, (8, 8))
    for strategy in ["aligned", "diagonal", "einhops"]:
        p = fhe.plan("ij,jk->ik", (8, 8), (8, 8), slots=512, strategy=strategy)
        backend = SimBackend(ring_degree=1024, levels=4)
        cts = [[backend.encrypt(v) for v in lay.pack(x)] for lay, x in zip(p.input_layouts, (a, b))]
        out = fhe.execute(p, backend, cts, [None, None])
        got = p.output_layout.unpack(np.stack([backend.decrypt(c) for c in out]))
        np.testing.assert_allclose(got, a @ b, atol=1e-12)


def test_out_layout_forces_row_major():
    want = Layout.row_major((8, 8), 256)
    p = fhe.plan("ij,jk->ik", (8, 8), (8, 8), slots=256, out_layout=want)
    assert p.output_layout == want


def test_plan_errors_name_the_problem():
    with pytest.raises(fhe.ShapeMismatch, match="size mismatch"):
        fhe.plan("ij,jk->ik", (2, 3), (4, 5))
    with pytest.raises(fhe.InvalidSpec, match="invalid character"):
        fhe.plan("i1,jk->ik", (2, 3), (3, 5))
    with pytest.raises(fhe.InvalidSpec):
        fhe.plan("ij,jk->ik", (2, 3, 4), (3, 5))
    with pytest.raises(fhe.ShapeMismatch, match="layout"):
        fhe.plan("ij->j", (2, 3), layouts=[Layout.row_major((3, 2), 8192)])
    with pytest.raises(ValueError, match="strategy"):
        fhe.plan("ij->j", (2, 3), strategy="fastest")


def test_diagonal_does_not_degrade_on_larger_rings():
    """At 16384 slots the 64x64 product once chose extended rows at pitch 95: a skew of 3040
    diagonals, 474 rotations and 6584 ct-pt products against 122 and 255 at 8192 slots."""
    base = fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192, levels=2).cost()
    for slots in (16384, 32768):
        cost = fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=slots, levels=2).cost()
        assert cost.rotations <= 1.2 * base.rotations
        assert cost.ct_pt_mults <= 2 * base.ct_pt_mults and cost.ct_ct_mults == base.ct_ct_mults
