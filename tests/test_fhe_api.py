"""The user-facing API: Context, CipherTensor, fhe.einsum with numpy and torch operands, every
error class, the backend registry, and a fixed set of einsums on the real backends."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fhe
from fhe.backends import BACKENDS, get_backend


@pytest.fixture
def ctx():
    return fhe.Context("sim", ring_degree=512, levels=4)


def test_encrypt_decrypt_numpy_torch_and_scalars(ctx):
    a = np.arange(12.0).reshape(3, 4)
    x = ctx.encrypt(a)
    assert isinstance(x, fhe.CipherTensor) and x.shape == (3, 4) and x.level == 4
    assert x.context is ctx and x.layout == fhe.Layout.row_major((3, 4), ctx.slots)
    np.testing.assert_array_equal(ctx.decrypt(x), a)
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    back = ctx.decrypt(ctx.encrypt(t))
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    assert torch.equal(back, t)
    assert ctx.decrypt(ctx.encrypt(2.5)) == 2.5
    np.testing.assert_array_equal(ctx.decrypt(ctx.encrypt(np.array([True, False]))), [1.0, 0.0])
    assert "CipherTensor(shape=(3, 4)" in repr(x)


def test_einsum_mixed_operands(ctx):
    rng = np.random.default_rng(0)
    a, w = rng.uniform(-1, 1, (4, 8)), rng.uniform(-1, 1, (8, 3))
    x = ctx.encrypt(a)
    np.testing.assert_allclose(ctx.decrypt(fhe.einsum("bi,io->bo", x, w)), a @ w, atol=1e-12)
    np.testing.assert_allclose(ctx.decrypt(fhe.einsum("io,bi->bo", w, x)), a @ w, atol=1e-12)
    out = fhe.einsum("bi,io->bo", x, torch.from_numpy(w).float())
    assert isinstance(ctx.decrypt(out), torch.Tensor)          # torch in -> torch out
    np.testing.assert_allclose(fhe.einsum("ij->j", a), a.sum(0))  # nothing encrypted: numpy
    assert fhe.einsum("bi,io->bo", x, w).level == 2     # one ct-pt product, one mask
    # the same einsum again reuses the cached plan
    assert ctx.plan("bi,io->bo", x, w) is ctx.plan("bi,io->bo", x, w)


def test_shape_mismatch_and_invalid_spec(ctx):
    x = ctx.encrypt(np.ones((2, 3)))
    with pytest.raises(fhe.ShapeMismatch, match="'j'"):
        fhe.einsum("ij,jk->ik", x, np.ones((4, 5)))
    with pytest.raises(fhe.InvalidSpec):
        fhe.einsum("ij,jk->iz", x, np.ones((3, 5)))
    with pytest.raises(fhe.InvalidSpec):
        fhe.einsum("ij->j", x, x)
    with pytest.raises(fhe.ShapeMismatch):
        ctx.encrypt(np.ones(3), layout=fhe.Layout.row_major((4,), ctx.slots))
    assert issubclass(fhe.ShapeMismatch, ValueError) and issubclass(fhe.InvalidSpec, fhe.FHEError)


def test_out_of_levels_is_refused_before_any_work():
    ctx = fhe.Context("sim", ring_degree=512, levels=2)
    x = ctx.encrypt(np.ones((4, 4)))
    y = fhe.einsum("ij,ij->ij", x, x)                   # level 1
    z = fhe.einsum("ij,ij->ij", y, y)                   # level 0
    ctx.backend.counters.clear()
    with pytest.raises(fhe.OutOfLevels, match="level"):
        fhe.einsum("ij,jk->ik", z, x)
    assert not ctx.backend.counters                    # nothing ran


def test_missing_rotation_keys_with_manual_key_management():
    ctx = fhe.Context("sim", ring_degree=512, levels=3, rotation_keys="manual")
    x = ctx.encrypt(np.ones((4, 4)))
    with pytest.raises(fhe.MissingRotationKey, match="generate_rotation_keys"):
        fhe.einsum("ij->i", x)
    assert not ctx.backend.counters
    ctx.generate_rotation_keys(ctx.plan("ij->i", x).rotation_keys)
    np.testing.assert_allclose(ctx.decrypt(fhe.einsum("ij->i", x)), np.full(4, 4.0))
    with pytest.raises(ValueError, match="rotation_keys"):
        fhe.Context("sim", rotation_keys="sometimes")


def test_auto_keys_are_only_those_the_plan_needs(ctx):
    x = ctx.encrypt(np.ones((4, 4)))
    p = ctx.plan("ij->i", x)
    fhe.einsum("ij->i", x)
    held = {s for s in range(1, ctx.slots) if ctx.backend.has_rotation_key(s)}
    assert held == {k % ctx.slots for k in p.rotation_keys}


def test_context_mismatch(ctx):
    other = fhe.Context("sim", ring_degree=512, levels=4)
    x, y = ctx.encrypt(np.ones((2, 2))), other.encrypt(np.ones((2, 2)))
    with pytest.raises(fhe.ContextMismatch):
        fhe.einsum("ij,jk->ik", x, y)
    with pytest.raises(fhe.ContextMismatch):
        other.decrypt(x)


@pytest.mark.parametrize("bad", [np.ones(3, dtype=complex), np.array(["a", "b"]),
                                 np.array([1.0, np.nan]), np.array([np.inf]),
                                 torch.ones(2, dtype=torch.complex64), {"a": 1}])
def test_unsupported_inputs(ctx, bad):
    with pytest.raises(fhe.UnsupportedInput):
        ctx.encrypt(bad)
    with pytest.raises(fhe.UnsupportedInput):
        fhe.einsum("i,i->i", ctx.encrypt(np.ones(1)), bad)


def test_backend_registry(monkeypatch):
    with pytest.raises(fhe.UnsupportedBackend, match="unknown backend 'heaan'"):
        fhe.Context("heaan")
    # a backend whose library is missing: a clear error naming the package to install
    monkeypatch.setitem(BACKENDS, "fake", ("fhe.backends._not_installed", "Fake", "fakefhe"))
    with pytest.raises(fhe.UnsupportedBackend, match="pip install fakefhe"):
        get_backend("fake", levels=2)
    assert get_backend("sim", ring_degree=64).slots == 32


def test_sim_picks_the_real_ring_size():
    assert fhe.Context("sim", levels=2).slots == 4096      # what seal picks for 2 levels
    assert fhe.Context("sim", levels=3).slots == 8192
    assert "NO ENCRYPTION" in repr(fhe.Context("sim"))


# ------------------------------------------------------------------------ real backends
REAL_CASES = [
    ("ij,jk->ik", [(8, 8), (8, 8)], (True, True)),
    ("ii->", [(8, 8)], (True,)),
    ("bthd,bThd->bhtT", [(1, 4, 2, 8), (1, 4, 2, 8)], (True, True)),
    ("bi,oi->bo", [(4, 16), (8, 16)], (True, False)),
]


@pytest.fixture(scope="module", params=["seal", "desilo"])
def real(request):
    pytest.importorskip({"seal": "tenseal", "desilo": "desilofhe"}[request.param])
    return fhe.Context(request.param, levels=3)


@pytest.mark.parametrize("spec,shapes,encrypted", REAL_CASES, ids=[c[0] for c in REAL_CASES])
def test_real_backends_match_numpy(real, spec, shapes, encrypted):
    rng = np.random.default_rng(11)
    arrays = [rng.uniform(-1, 1, s) for s in shapes]
    ops = [real.encrypt(a) if e else a for a, e in zip(arrays, encrypted)]
    plan = real.plan(spec, *ops)
    real.backend.counters.clear()
    got = real.decrypt(fhe.einsum(spec, *ops))
    np.testing.assert_allclose(got, np.einsum(spec, *arrays), atol=1e-3)
    cost = plan.cost()
    counters = real.backend.counters
    assert (counters["rotate"], counters["mul"], counters["mul_plain"]) == (
        cost.rotations, cost.ct_ct_mults, cost.ct_pt_mults)
