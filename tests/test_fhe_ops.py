"""CipherTensor operators (fhe/ops.py): + - * @, unary -, sum, polyval, ** — against numpy,
with numpy broadcasting, their level costs, the layout invariant (unused slots stay zero) and
the errors. Mostly on ``sim`` (exact); a few on ``seal``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fhe
from fhe import ops


def sim(levels=6, ring_degree=256):
    return fhe.Context(backend="sim", ring_degree=ring_degree, levels=levels, allow_insecure=True)


@pytest.fixture
def ctx():
    return sim()


def close(ctx, got, want, atol=1e-9):
    assert isinstance(got, fhe.CipherTensor)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(ctx.decrypt(got), want, atol=atol, rtol=0)


def unused_slots_are_zero(x):
    raw = np.stack([x.context.backend.decrypt(ct) for ct in x.ciphertexts])
    assert np.abs(raw[x.layout.element_map < 0]).max(initial=0) < 1e-9


rng = np.random.default_rng(7)
SHAPE_PAIRS = [
    ((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)), ((2, 1, 4), (3, 4)),
    ((5,), (1,)), ((), (3, 2)), ((2, 3), ()), ((1, 1), (6, 5)),
]


# -- elementwise ----------------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS)
def test_elementwise_ct_ct_and_ct_plain_match_numpy(ctx, sa, sb):
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    x, y = ctx.encrypt(a), ctx.encrypt(b)
    for got, want in [(x + y, a + b), (x - y, a - b), (x * y, a * b),
                      (x + b, a + b), (b + x, b + a), (x - b, a - b), (b - x, b - a),
                      (x * b, a * b), (b * x, b * a)]:
        close(ctx, got, want)
        unused_slots_are_zero(got)


def test_scalars_and_negation(ctx):
    a = rng.normal(size=(3, 5))
    x = ctx.encrypt(a)
    for got, want in [(x + 2, a + 2), (2 + x, 2 + a), (x - 1.5, a - 1.5), (1.5 - x, 1.5 - a),
                      (x * 3, a * 3), (-4 * x, -4 * a), (x * 0.25, a * 0.25), (0 * x, 0 * a),
                      (-x, -a), (+x, a), (x + np.float32(1), a + 1), (x * np.int64(-2), -2 * a),
                      (x + [1, 2, 3, 4, 5], a + [1, 2, 3, 4, 5])]:
        close(ctx, got, want)
        unused_slots_are_zero(got)   # a scalar is added to the elements only


def test_level_costs_of_elementwise_ops(ctx):
    x, y = ctx.encrypt(rng.normal(size=(3, 4))), ctx.encrypt(rng.normal(size=(3, 4)))
    top = ctx.levels
    assert (x + y).level == (x - y).level == (-x).level == top         # same layout: free
    assert (x + 1.0).level == (x - np.ones((3, 4))).level == top       # add_plain: free
    assert (x * 5).level == (x * -3).level == (x * 1).level == top     # integer scalars: adds
    assert (x * 2.5).level == (x * y).level == (x * np.ones(4)).level == top - 1
    low = x * 2.5
    assert (low + y).level == top - 1                                  # meets at the lower level
    before = dict(ctx.backend.counters)
    _ = x * y
    after = ctx.backend.counters
    assert after["mul"] - before.get("mul", 0) == ctx.plan("ij,ij->ij", x, y).cost().ct_ct_mults


def test_add_relayouts_the_operand_with_spare_levels(ctx):
    a = rng.normal(size=(4, 3))
    x = ctx.encrypt(a)
    t = fhe.einsum("ij->ji", ctx.encrypt(a.T))   # same shape, transposed layout
    assert t.layout != x.layout
    s = x + t
    close(ctx, s, 2 * a)
    assert s.layout == x.layout                   # both at the top level: t is moved
    low = x * 2.5                                 # now x has fewer levels: x is moved
    s2 = t + low
    close(ctx, s2, 3.5 * a)
    assert s2.layout == low.layout or s2.layout == t.layout
    unused_slots_are_zero(s2)


def test_multi_ciphertext_layouts():
    ctx = sim(levels=4, ring_degree=64)        # 32 slots: a 10x7 tensor needs several cts
    a, b = rng.normal(size=(10, 7)), rng.normal(size=(7,))
    x = ctx.encrypt(a)
    assert x.layout.n_cts > 1
    for got, want in [(x + b, a + b), (x * b, a * b), (x - x * 2.5, a - 2.5 * a),
                      (ctx.encrypt(b) + x, b + a), (x @ rng.normal(size=(7, 3)) * 0, 0 * a[:, :3])]:
        close(ctx, got, want)
        unused_slots_are_zero(got)


small = st.integers(1, 3)


@st.composite
def broadcastable(draw):
    out = draw(st.lists(small, min_size=0, max_size=3))
    def operand():
        k = draw(st.integers(0, len(out)))
        return tuple(n if draw(st.booleans()) else 1 for n in out[len(out) - k:])
    return operand(), operand(), operand()


@settings(max_examples=15, deadline=None)
@given(broadcastable(), st.integers(0, 2**31 - 1))
def test_ring_laws_match_numpy(shapes, seed):
    r = np.random.default_rng(seed)
    a, b, c = (r.normal(size=s) for s in shapes)
    ctx = sim(levels=6, ring_degree=128)
    x, y, z = (ctx.encrypt(v) for v in (a, b, c))
    close(ctx, x + y, b + a)
    close(ctx, (x + y) - y, a + b - b)
    close(ctx, x * (y + z), a * b + a * c)
    close(ctx, x * y + x * z, a * b + a * c)
    close(ctx, -(x - c), c - a)


# -- matmul ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", [
    ((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
])
def test_matmul_matches_numpy(ctx, sa, sb):
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    x, y = ctx.encrypt(a), ctx.encrypt(b)
    want = a @ b
    close(ctx, x @ y, want, atol=1e-9)
    close(ctx, x @ b, want, atol=1e-9)
    close(ctx, a @ y, want, atol=1e-9)          # numpy defers to __rmatmul__


def test_matmul_goes_through_the_planner(ctx):
    a, w = rng.normal(size=(4, 8)), rng.normal(size=(8, 3))
    x = ctx.encrypt(a)
    out = x @ w
    p = ctx.plan("ab,bc->ac", x, w)
    assert out.layout == p.output_layout and out.level == ctx.levels - p.levels


def test_torch_operands_give_torch_results(ctx):
    a = rng.normal(size=(3, 4))
    x = ctx.encrypt(a)
    w = torch.from_numpy(rng.normal(size=(4, 2))).float()
    for out in (x @ w, x + torch.ones(4), torch.ones(4) * x, x * w[:, 0]):
        back = ctx.decrypt(out)
        assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    np.testing.assert_allclose(ctx.decrypt(x @ w).numpy(), a @ w.double().numpy(), atol=1e-5)


# -- sum --------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (2, 0), (), (0, 1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_matches_numpy(ctx, axis, keepdims):
    a = rng.normal(size=(2, 3, 5))
    x = ctx.encrypt(a)
    got = x.sum(axis=axis, keepdims=keepdims)
    close(ctx, got, a.sum(axis=axis, keepdims=keepdims))
    unused_slots_are_zero(got)


def test_sum_axis_errors(ctx):
    x = ctx.encrypt(np.ones((2, 3)))
    with pytest.raises(np.exceptions.AxisError):
        x.sum(2)
    with pytest.raises(ValueError, match="repeated axis"):
        x.sum((0, -2))
    assert x.sum(()).level == x.level and x.sum(0, keepdims=True).shape == (1, 3)


def test_expand_dims_is_free(ctx):
    a = rng.normal(size=(3, 4))
    x = ctx.encrypt(a)
    e = x.expand_dims((0, 2))
    assert e.shape == (1, 3, 1, 4) and e.ciphertexts == x.ciphertexts
    close(ctx, e + np.ones((2, 1, 5, 1)), a[None, :, None, :] + np.ones((2, 1, 5, 1)))


# -- polyval ----------------------------------------------------------------------------------
@pytest.mark.parametrize("degree", range(1, 10))
def test_polyval_depth_is_log2_of_degree_plus_one(degree):
    r = np.random.default_rng(degree)
    coeffs = r.uniform(-1, 1, degree + 1) + 0.1     # no integer coefficients: the worst case
    need = math.ceil(math.log2(degree + 1))
    assert ops.polyval_levels(coeffs) == need
    ctx = sim(levels=need)
    a = r.uniform(-1.5, 1.5, (3, 5))
    x = ctx.encrypt(a)
    out = fhe.polyval(x, coeffs)
    close(ctx, out, np.polyval(coeffs, a), atol=1e-9)
    assert out.level == 0
    unused_slots_are_zero(out)
    if need > 1:
        with pytest.raises(fhe.OutOfLevels, match=f"needed {need} levels, have {need - 1}"):
            sim(levels=need - 1).encrypt(a).polyval(coeffs)


def test_polyval_checks_levels_before_any_work():
    ctx = sim(levels=2)
    x = ctx.encrypt(np.ones(4))
    before = dict(ctx.backend.counters)
    with pytest.raises(fhe.OutOfLevels) as err:
        x.polyval([1.5, 0.5, 0.25, 2.0, -1.0])      # degree 4: 3 levels
    assert err.value.needed == 3 and err.value.have == 2
    assert dict(ctx.backend.counters) == before
    with pytest.raises(fhe.OutOfLevels, match="needed 2 levels, have 1"):
        (x * 0.5).polyval([0.5, 0.25, 2.0])


def test_polyval_special_coefficients(ctx):
    a = rng.uniform(-1, 1, (2, 3))
    x = ctx.encrypt(a)
    for coeffs in ([3.0], [0.0], [0, 0, 2.0, 1.0], [1, 0, 0], [2, -1, 3], [0.5, 0, 0, 0, 1.0],
                   [-1.0, 0, 0, 0, 0, 0, 0, 0, 0.5], np.array([0.3, 0.2, 0.1])):
        out = x.polyval(coeffs)
        close(ctx, out, np.polyval(coeffs, a))
        assert ctx.levels - out.level == ops.polyval_levels(coeffs)
        unused_slots_are_zero(out)
    assert ops.polyval_levels([1, 0, 0]) == 1            # x^2: one squaring
    assert ops.polyval_levels([2, -1, 3]) == 1           # integer leading terms: additions
    assert ops.polyval_levels([0.5, 0, 0]) == 2
    assert ops.polyval_levels([7.0]) == 0
    with pytest.raises(fhe.ShapeMismatch):
        x.polyval(np.ones((2, 2)))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8, 9])
def test_integer_powers(ctx, k):
    a = rng.uniform(-1.2, 1.2, (3, 3))
    x = ctx.encrypt(a)
    out = x ** k
    close(ctx, out, a ** k, atol=1e-9)
    assert ctx.levels - out.level == math.ceil(math.log2(k))


# -- errors -----------------------------------------------------------------------------------
def test_shapes_that_do_not_broadcast(ctx):
    x, y = ctx.encrypt(np.ones((3, 4))), ctx.encrypt(np.ones((3, 5)))
    for fn in (lambda: x + y, lambda: x - y, lambda: x * y, lambda: x + np.ones(5),
               lambda: np.ones((2, 4)) * x):
        with pytest.raises(fhe.ShapeMismatch, match=r"\(3, 4\)") as err:
            fn()
        assert "(3, 5)" in str(err.value) or "(5,)" in str(err.value) or "(2, 4)" in str(err.value)
    with pytest.raises(fhe.ShapeMismatch, match=r"\(3, 4\) and \(3, 5\)"):
        x @ y
    with pytest.raises(fhe.ShapeMismatch, match="batch"):
        ctx.encrypt(np.ones((2, 3, 4))) @ np.ones((3, 4, 5))
    with pytest.raises(fhe.ShapeMismatch):
        x @ 2.0


def test_context_mismatch(ctx):
    x, y = ctx.encrypt(np.ones(4)), sim().encrypt(np.ones(4))
    for fn in (lambda: x + y, lambda: x - y, lambda: x * y, lambda: x @ y):
        with pytest.raises(fhe.ContextMismatch):
            fn()


def test_unsupported_operands(ctx):
    x = ctx.encrypt(np.ones(3))
    for bad in ("abc", object(), {1: 2}, None):
        for fn in (lambda: x + bad, lambda: bad + x, lambda: x * bad, lambda: x @ bad,
                   lambda: bad - x):
            with pytest.raises(TypeError):
                fn()
    with pytest.raises(fhe.UnsupportedInput):
        x + np.array([1j, 2, 3])
    with pytest.raises(fhe.UnsupportedInput):
        x * np.array([np.nan, 1, 2])
    with pytest.raises(fhe.UnsupportedInput):
        ops.add(x, "abc")
    with pytest.raises(TypeError):
        x ** 0.5
    with pytest.raises(fhe.UnsupportedInput):
        x ** 0


# -- a real backend ---------------------------------------------------------------------------
def test_operators_on_seal():
    pytest.importorskip("tenseal")
    ctx = fhe.Context(backend="seal", levels=3)
    a, b = rng.uniform(-1, 1, (4, 8)), rng.uniform(-1, 1, (4, 8))
    w = rng.uniform(-1, 1, (8, 3))
    x, y = ctx.encrypt(a), ctx.encrypt(b)
    h = (x + y) * 0.5 - 1                      # one level (same layouts: no relayout)
    assert h.level == 2
    np.testing.assert_allclose(ctx.decrypt(h), (a + b) * 0.5 - 1, atol=1e-4)
    poly = [0.25, -0.5, 1.0, 0.125]            # degree 3: two levels
    out = h.polyval(poly)
    assert out.level == 0
    np.testing.assert_allclose(ctx.decrypt(out), np.polyval(poly, (a + b) * 0.5 - 1), atol=1e-3)
    z = (-x @ w).sum(axis=0, keepdims=True)
    np.testing.assert_allclose(ctx.decrypt(z), (-a @ w).sum(0, keepdims=True), atol=1e-3)
    np.testing.assert_allclose(ctx.decrypt(x - b[0] + 3 * x), 4 * a - b[0], atol=1e-4)
    c7 = rng.uniform(-1, 1, 8)                 # degree 7 in the 3 levels of a fresh ciphertext
    deg7 = x.polyval(c7)
    assert deg7.level == 0
    np.testing.assert_allclose(ctx.decrypt(deg7), np.polyval(c7, a), atol=1e-4)
    shifted = x + 3
    raw = np.stack([ctx.backend.decrypt(ct) for ct in shifted.ciphertexts])
    assert np.abs(raw[shifted.layout.element_map < 0]).max() < 1e-4   # unused slots stay zero


# -- division, transpose, layouts -------------------------------------------------------------
def test_division_by_plaintext_and_transpose(ctx):
    a = rng.normal(size=(3, 4))
    x = ctx.encrypt(a)
    close(ctx, x / 4.0, a / 4.0)
    close(ctx, x / np.array([1.0, 2.0, -4.0, 0.5]), a / np.array([1.0, 2.0, -4.0, 0.5]))
    assert (x / 0.5).level == x.level                  # x * 2: additions
    assert isinstance(ctx.decrypt(x / torch.tensor(2.0)), torch.Tensor)
    with pytest.raises(fhe.UnsupportedInput, match="zero"):
        x / np.array([1.0, 0.0, 1.0, 1.0])
    with pytest.raises(fhe.UnsupportedInput, match="ciphertext"):
        x / x
    with pytest.raises(TypeError):
        2.0 / x
    close(ctx, x.T, a.T)
    assert x.T.level == x.level and x.T.ciphertexts == x.ciphertexts   # a relabelling
    b = rng.normal(size=(2, 3, 4))
    y = ctx.encrypt(b)
    close(ctx, y.transpose(2, 0, 1), b.transpose(2, 0, 1))
    close(ctx, y.transpose((1, 0, 2)) @ a.T, b.transpose(1, 0, 2) @ a.T)
    close(ctx, x @ x.T, a @ a.T)


@pytest.mark.parametrize("which", ["transposed", "multi-ct", "einsum output"])
def test_polyval_keeps_unusual_layouts(which):
    ctx = sim(levels=4, ring_degree=64)
    a = rng.uniform(-1, 1, (6, 5))
    if which == "transposed":
        x = ctx.encrypt(a.T).T
    elif which == "multi-ct":
        a = np.tile(a, (2, 2))
        x = ctx.encrypt(a)
        assert x.layout.n_cts > 1
    else:
        w = rng.uniform(-1, 1, (5, 5))
        x = ctx.encrypt(a) @ w
        a = a @ w
    coeffs = [0.3, -0.2, 0.7, 0.1]
    out = x.polyval(coeffs)
    close(ctx, out, np.polyval(coeffs, a))
    assert out.layout == x.layout and x.level - out.level == 2
    unused_slots_are_zero(out)


def test_scalar_ciphertexts(ctx):
    a, b = rng.normal(size=4), rng.normal(size=(2, 4))
    x, y = ctx.encrypt(a), ctx.encrypt(b)
    d = x @ x                                        # shape ()
    close(ctx, d + 1.0, a @ a + 1.0)
    close(ctx, d * y, (a @ a) * b)
    close(ctx, y - d, b - a @ a)
    close(ctx, y.sum() * 3, b.sum() * 3)


def test_operators_on_desilo():
    pytest.importorskip("desilofhe")
    ctx = fhe.Context(backend="desilo", levels=3)
    a, w = rng.uniform(-1, 1, (4, 8)), rng.uniform(-1, 1, (8, 2))
    x = ctx.encrypt(a)
    out = (3 * x - x).polyval([1.0, 0.0, -0.5]) @ w   # free, one level, two levels
    np.testing.assert_allclose(ctx.decrypt(out), np.polyval([1.0, 0, -0.5], 2 * a) @ w, atol=1e-4)


def test_numpy_functions_dispatch_to_the_methods(ctx):
    a = rng.normal(size=(3, 4))
    x = ctx.encrypt(a)
    close(ctx, np.sum(x), a.sum())
    close(ctx, np.sum(x, axis=0, keepdims=True), a.sum(axis=0, keepdims=True))
    close(ctx, np.transpose(x), a.T)
    with pytest.raises(fhe.UnsupportedInput):
        np.sum(x, dtype=np.float32)
    with pytest.raises(TypeError):
        np.add(a, x)            # ufuncs are not intercepted; the operators are
