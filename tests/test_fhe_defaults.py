"""Defaults that work (issue 14, part 4): real encryption by default, levels and rings that
follow the work, values the scale cannot hold detected, a fast planner, a clean fhe CLI."""
from __future__ import annotations

import numpy as np
import pytest

import fhe


# ---------------------------------------------------------------- 1. real encryption by default
def test_default_context_encrypts_with_seal():
    pytest.importorskip("tenseal")
    ctx = fhe.Context()
    assert type(ctx.backend).__name__ == "SealBackend"
    assert ctx.backend.security_bits >= 128
    assert repr(ctx).startswith("Context(seal,") and "ENCRYPTION" not in repr(ctx)


def test_simulator_only_by_name_and_says_so():
    ctx = fhe.Context(backend="sim", ring_degree=256, levels=2)
    assert repr(ctx).startswith("Context(sim — NO ENCRYPTION, debugging only")
    assert "ring_degree=256" in repr(ctx) and "levels=2" in repr(ctx)


# ---------------------------------------------------------------- 2. public errors, numbers in them
def test_too_deep_is_a_public_out_of_levels_with_needed_and_have():
    with pytest.raises(fhe.OutOfLevels) as err:
        fhe.plan("ij,jk,kl->il", (16, 8), (8, 8), (8, 16), slots=8192, levels=3)
    exc = err.value
    assert type(exc) is fhe.OutOfLevels and exc.__cause__ is None
    assert (exc.needed, exc.have) == (4, 3)
    msg = str(exc)
    assert "needs at least 4" in msg and "have 3" in msg and "fhe.Context(levels=4)" in msg
    assert "for_einsum" in msg and "_TooDeep" not in msg


def test_too_deep_after_encrypting_names_the_fix():
    ctx = fhe.Context(backend="sim", ring_degree=1024, levels=1)
    x = ctx.encrypt(np.ones((16, 16)))
    with pytest.raises(fhe.OutOfLevels) as err:
        fhe.einsum("ij,jk->ik", x, x)
    assert type(err.value) is fhe.OutOfLevels and err.value.have == 1
    assert f"fhe.Context(levels={err.value.needed})" in str(err.value)


def test_worn_operands_are_told_to_re_encrypt():
    p = fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192)
    with pytest.raises(fhe.OutOfLevels, match="operand 1 at level 1") as err:
        p.check_levels([2, 1])
    assert "re-encrypt" in str(err.value)


def test_no_plan_says_why():
    with pytest.raises(fhe.FHEError, match="does not apply.*strategy='auto'"):
        fhe.plan("ij->ji", (8, 8), slots=64, strategy="diagonal")
    with pytest.raises(fhe.FHEError, match="262144 ciphertext tiles of 64 slots, more than the 4096"):
        fhe.plan("ij,kl->ijkl", (64, 64), (64, 64), slots=64, strategy="aligned")


# ---------------------------------------------------------------- 3. levels and ring follow the work
WORKLOAD_13 = ("ij,jk,kl->il", [(16, 8), (8, 8), (8, 16)])
WORKLOAD_14 = ("ik,jkl,il->ij", [(8, 16), (8, 16, 16), (8, 16)])


def test_default_levels_fit_every_einhops_workload_on_the_default_ring():
    import json
    from pathlib import Path

    from fhe.context import DEFAULT_LEVELS

    path = Path(__file__).resolve().parents[2] / "shared" / "bench" / "einhops_cases.json"
    cases = json.loads(path.read_text())["cases"] if path.exists() else [
        {"spec": WORKLOAD_13[0], "shapes": WORKLOAD_13[1]},
        {"spec": WORKLOAD_14[0], "shapes": WORKLOAD_14[1]}]
    slots = fhe.Context(backend="sim").slots  # the ring seal picks for the default levels
    assert DEFAULT_LEVELS == 4 and slots == 8192
    for case in cases:
        p = fhe.plan(case["spec"], *map(tuple, case["shapes"]), slots=slots, levels=DEFAULT_LEVELS)
        assert p.levels <= DEFAULT_LEVELS


@pytest.mark.parametrize("spec,shapes", [WORKLOAD_13, WORKLOAD_14])
def test_default_context_runs_workloads_13_and_14(spec, shapes):
    pytest.importorskip("tenseal")
    ctx = fhe.Context()
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, s) for s in shapes]
    got = ctx.decrypt(fhe.einsum(spec, *[ctx.encrypt(x) for x in xs]))
    np.testing.assert_allclose(got, np.einsum(spec, *xs), atol=1e-3)
    assert (ctx.levels, ctx.slots) == (4, 8192)  # sized by the workload: N = 16384


def test_default_context_is_sized_by_its_first_einsum():
    pytest.importorskip("tenseal")
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, (2, 64, 64))
    ctx = fhe.Context()
    assert not ctx.sized and "unsized" in repr(ctx)
    x, y = ctx.encrypt(a), ctx.encrypt(b)
    assert x.shape == (64, 64) and not ctx.sized and "encrypted when" in repr(x)
    got = ctx.decrypt(fhe.einsum("ij,jk->ik", x, y))
    # the product needs 2 levels: N = 8192 (4 levels would need N = 16384)
    assert (ctx.levels, ctx.slots) == (2, 4096) and "ij,jk->ik" in ctx.sized_by
    assert x.level == 2 and ctx.backend.security_bits >= 128
    np.testing.assert_allclose(got, a @ b, atol=1e-3)
    with pytest.raises(fhe.OutOfLevels, match="chosen by the first einsum 'ij,jk->ik'.*levels="):
        fhe.einsum("ij,jk->ik", fhe.einsum("ij,jk->ik", x, y), y)


def test_lazy_sizing_tops_up_to_the_default_levels_where_the_ring_holds_them():
    ctx = fhe.Context(backend="sim")
    fhe.einsum("ij,ij->ij", ctx.encrypt(np.ones((8, 8))), np.ones((8, 8)))
    assert ctx.levels == 1  # 1 level: N = 8192, which cannot hold 4
    ctx = fhe.Context(backend="sim")
    xs = [ctx.encrypt(np.ones(s)) for s in ((8, 16), (8, 16, 16))]
    fhe.einsum("ik,jkl->ij", *xs)
    assert ctx.slots == 8192 and ctx.levels == 4  # needs 3: N = 16384, which holds 4


def test_anything_needing_parameters_first_fixes_the_defaults():
    from fhe.context import DEFAULT_LEVELS

    ctx = fhe.Context(backend="sim")
    x = ctx.encrypt(np.ones((4, 4)))
    np.testing.assert_allclose(ctx.decrypt(x + 1.0), 2.0)  # an operator with no einsum
    assert ctx.levels == DEFAULT_LEVELS and "default" in ctx.sized_by
    ctx = fhe.Context(backend="sim")
    ctx.public()
    assert ctx.levels == DEFAULT_LEVELS


def test_program_run_sizes_an_unsized_context():
    import torch

    import fhe.compiler as fc

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    program = fc.compile(model, (2, 8))
    ctx = fhe.Context(backend="sim")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8))
    out = program.run(ctx.encrypt(x, program.input_layout))
    assert (ctx.slots, ctx.levels) == (program.slots, program.levels)
    np.testing.assert_allclose(ctx.decrypt(out), program.reference(x), atol=1e-6)


def test_unsized_context_refuses_bad_arguments_at_once():
    with pytest.raises(fhe.UnsupportedBackend):
        fhe.Context(backend="nope")
    with pytest.raises(ValueError, match="ring degree"):
        fhe.Context(ring_degree=1000)
    with pytest.raises(ValueError, match="scale_bits"):
        fhe.Context(scale_bits=5)


def test_for_einsum_takes_the_plans_depth_and_ring():
    ctx = fhe.Context.for_einsum(*WORKLOAD_13[:1], *WORKLOAD_13[1], backend="sim")
    assert ctx.levels == 4 and ctx.slots == 8192
    ctx = fhe.Context.for_einsum("ij->ji", np.ones((128, 128)), backend="sim")
    assert ctx.levels == 1 and ctx.slots == 4096
    ctx = fhe.Context.for_einsum("bi,oi->bo", (4, 16), (8, 16), encrypted=(True, False),
                                 backend="sim")
    x = ctx.encrypt(np.ones((4, 16)))
    np.testing.assert_allclose(ctx.decrypt(fhe.einsum("bi,oi->bo", x, np.ones((8, 16)))), 16.0)
    assert len(ctx._plans) == 1  # the plan for_einsum made is the one einsum used
    with pytest.raises(fhe.OutOfLevels, match="needs at least 4"):
        fhe.Context.for_einsum(*WORKLOAD_13[:1], *WORKLOAD_13[1], backend="sim", levels=3)


def test_for_einsum_on_seal_is_secure_and_runs():
    pytest.importorskip("tenseal")
    ctx = fhe.Context.for_einsum("ij,jk->ik", (8, 8), (8, 8))
    assert type(ctx.backend).__name__ == "SealBackend" and ctx.backend.security_bits >= 128
    x = np.arange(64.0).reshape(8, 8) / 64
    got = ctx.decrypt(fhe.einsum("ij,jk->ik", ctx.encrypt(x), ctx.encrypt(x)))
    np.testing.assert_allclose(got, x @ x, atol=1e-3)


# ---------------------------------------------------------------- 4. values the scale cannot hold
def test_encrypt_refuses_values_beyond_the_bound_sim():
    ctx = fhe.Context(backend="sim", ring_degree=256, levels=2)
    assert ctx.value_bound(0) == pytest.approx(2.0 ** 19, rel=1e-4)
    with pytest.raises(fhe.errors.ValueTooLarge, match=r"2\^19 = 524288") as err:
        ctx.encrypt(np.array([1.0, 1e11]))
    assert isinstance(err.value, fhe.UnsupportedInput) and err.value.bound == ctx.value_bound(0)
    assert "scale_bits=21" in str(err.value)
    small = fhe.Context(backend="sim", ring_degree=256, levels=2, scale_bits=50)
    with pytest.raises(fhe.errors.ValueTooLarge, match=r"2\^9 = 512"):
        small.encrypt(np.array([600.0]))
    ctx.encrypt(np.array([5e5]))  # below the bound: fine


def test_decrypt_warns_when_a_result_reaches_the_bound_sim():
    ctx = fhe.Context(backend="sim", ring_degree=256, levels=1)
    x = ctx.encrypt(np.full(ctx.slots, 3e5))
    with pytest.warns(fhe.errors.ScaleOverflowWarning, match=r"2\^19 = 524288.*may have wrapped"):
        ctx.decrypt(fhe.einsum("i,i->i", x, np.full(ctx.slots, 2.0)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.decrypt(fhe.einsum("i,i->i", x, np.full(ctx.slots, 0.5)))  # well inside: silent


def test_seal_refuses_1e11_on_two_levels_and_flags_a_wrapped_result():
    pytest.importorskip("tenseal")
    ctx = fhe.Context(levels=2)
    with pytest.raises(fhe.errors.ValueTooLarge, match=r"524288"):
        ctx.encrypt(np.full((4, 4), 1e11))
    one = fhe.Context(levels=1)
    x = one.encrypt(np.full(one.slots, 3e5))
    with pytest.warns(fhe.errors.ScaleOverflowWarning):  # 6e5 at level 0 wraps on SEAL
        got = one.decrypt(fhe.einsum("i,i->i", x, np.full(one.slots, 2.0)))
    assert abs(got[0] - 6e5) > 1e5  # it really did wrap: the warning was needed


# ---------------------------------------------------------------- 5. the planner answers large products
def test_large_product_plans_one_candidate_and_runs_right():
    from fhe import diagonal

    n, slots = 512, 8192
    p = fhe.plan("ij,jk->ik", (n, n), (n, n), slots=slots)
    cost = p.cost()
    # sane: the diagonal method, 2 levels, at most twice the ct-ct products one would need
    # with every slot busy (n^3 / slots), fewer rotations than products
    assert p.strategy == "diagonal" and cost.levels == 2
    assert n ** 3 // slots <= cost.ct_ct_mults <= 2 * n ** 3 // slots
    assert cost.rotations < cost.ct_ct_mults
    assert diagonal.LARGE < cost.rotations + 1.4 * cost.ct_ct_mults  # the capped path
    backend = fhe.backends.get_backend("sim", ring_degree=2 * slots, levels=2)
    rng = np.random.default_rng(5)
    a, b = rng.integers(-2, 3, (n, n)).astype(float), rng.integers(-2, 3, (n, n)).astype(float)
    cts = [[backend.encrypt(v) for v in lay.pack(x)] for lay, x in zip(p.input_layouts, (a, b))]
    out = fhe.execute(p, backend, cts, [None, None])
    got = p.output_layout.unpack(np.stack([backend.decrypt(c) for c in out]))
    np.testing.assert_array_equal(got, a @ b)


def test_a_deferred_tensor_with_an_explicit_layout_fixes_the_ring():
    from fhe.layout import Layout

    ctx = fhe.Context(backend="sim")
    x = ctx.encrypt(np.ones((8, 8)), Layout.row_major((8, 8), 8192))
    assert x.requested_slots == 8192 and not ctx.sized
    np.testing.assert_allclose(ctx.decrypt(fhe.einsum("ij,ij->ij", x, np.full((8, 8), 2.0))), 2.0)
    assert ctx.slots == 8192 and ctx.levels == 4  # the ring of 8192 slots holds the default 4
