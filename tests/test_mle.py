"""zk.mle against a naive Python evaluation of the multilinear extension."""
import itertools

import numpy as np
import pytest

from zk import field as F
from zk import mle
from zk.field import R


def naive_eval(values: list[int], point: list[int]) -> int:
    """sum_j values[j] * prod_v eq(point_v, bit v of j), variable 0 = most significant bit."""
    m = len(point)
    total = 0
    for j, v in enumerate(values):
        term = v
        for k, r in enumerate(point):
            bit = (j >> (m - 1 - k)) & 1
            term = term * (r if bit else 1 - r) % R
        total += term
    return total % R


def test_dim_bits_and_padding():
    assert mle.dim_bits((1, 2, 3, 4, 5, 1024, 1025)) == (0, 1, 2, 2, 3, 10, 11)
    assert mle.dim_bits(()) == ()
    with pytest.raises(ValueError):
        mle.dim_bits((3, 0))
    a = np.arange(15).reshape(3, 5)
    p = mle.pad_pow2(a)
    assert p.shape == (4, 8)
    assert np.array_equal(p[:3, :5], a) and not p[3:].any() and not p[:, 5:].any()


def test_table_from_ints_and_field_arrays_agree():
    a = np.arange(-7, 8).reshape(3, 5)
    t = mle.table(a)
    assert t.shape == (32, 4)
    assert np.array_equal(t, mle.table(F.from_int(a)))
    assert F.to_signed(t).tolist() == mle.pad_pow2(a).reshape(-1).tolist()
    assert mle.table(np.int64(5)).shape == (1, 4)
    with pytest.raises(TypeError):
        mle.table(np.zeros((3, 5), dtype=np.uint64))


def test_convention_boolean_points_index_the_tensor():
    """At a Boolean point (bits of i, then bits of j, each most significant first) the MLE is A[i, j]."""
    a = np.arange(1, 16).reshape(3, 5)
    t = mle.table(a)
    for i, j in itertools.product(range(4), range(8)):
        point = [(i >> 1) & 1, i & 1, (j >> 2) & 1, (j >> 1) & 1, j & 1]
        expected = a[i, j] if i < 3 and j < 5 else 0
        assert F.to_int(mle.evaluate(t, F.from_int(point))) == expected


@pytest.mark.parametrize("m", [0, 1, 2, 5, 7])
def test_evaluate_matches_naive(m):
    rng = np.random.default_rng(m)
    t = F.random_seeded(1 << m, rng)
    point = F.random_seeded((m,), rng)
    expected = naive_eval(list(F.to_int(t)), [int(v) for v in F.to_int(point)])
    assert F.to_int(mle.evaluate(t, point)) == expected
    assert F.to_int(F.inner(t, mle.eq_table(point))) == expected


def test_eq_table_matches_definition():
    rng = np.random.default_rng(1)
    point = F.random_seeded((4,), rng)
    r = [int(v) for v in F.to_int(point)]
    eq = [int(v) for v in F.to_int(mle.eq_table(point))]
    for j in range(16):
        bits = [(j >> (3 - k)) & 1 for k in range(4)]
        want = 1
        for rv, b in zip(r, bits):
            want = want * (rv if b else 1 - rv) % R
        assert eq[j] == want
    assert F.to_int(F.sum(mle.eq_table(point))) == 1
    assert F.to_int(mle.eq_table(F.zeros((0,)))[0]) == 1
    big = F.random_seeded((14,), rng)  # several parallel chunks per level
    assert F.to_int(F.sum(mle.eq_table(big))) == 1


def test_fold_binds_first_variable():
    rng = np.random.default_rng(2)
    t = F.random_seeded(1 << 6, rng)
    point = F.random_seeded((6,), rng)
    full = mle.evaluate(t, point)
    work = t.copy()
    folded = mle.fold(work, point[0])
    assert folded.shape == (32, 4) and np.shares_memory(folded, work)  # overwrites the first half
    assert np.array_equal(mle.evaluate(folded, point[1:]), full)
    frozen = t.copy()
    frozen.flags.writeable = False
    assert np.array_equal(mle.fold(frozen, point[0]), folded)  # read-only input: copied, left alone
    assert np.array_equal(frozen, t)
    fresh = mle.fold(t, point[0], in_place=False)  # a new array, the input left alone
    assert np.array_equal(fresh, folded) and not np.shares_memory(fresh, t)
    with pytest.raises(ValueError):
        mle.fold(F.ones(1), point[0])


def test_evaluate_validates_point_length():
    with pytest.raises(ValueError, match="needs a point of 3"):
        mle.evaluate(F.zeros(8), F.zeros(2))
    with pytest.raises(ValueError):
        mle.evaluate(F.zeros(6), F.zeros(2))


@pytest.mark.parametrize("unit", [False, True])
def test_fraction_layer_adds_the_fractions_pairwise(unit):
    """The fused kernel agrees with the device's composition of adds and multiplies, and its
    fractions are the children's sums."""
    from zk.device import CPU, Device
    rng = np.random.default_rng(7)
    q = F.random_seeded(16, rng)
    p = None if unit else F.random_seeded(16, rng)
    fused = mle.fraction_layer(p, q)
    for a, b in zip(fused, Device.fraction_layer(CPU, p, q)):
        np.testing.assert_array_equal(a, b)
    pi = [1] * 16 if unit else [int(v) for v in F.to_int(p)]
    qi = [int(v) for v in F.to_int(q)]
    for j in range(8):
        got = int(F.to_int(fused[0][j])) * pow(int(F.to_int(fused[1][j])), -1, R) % R
        assert got == (pi[j] * pow(qi[j], -1, R) + pi[j + 8] * pow(qi[j + 8], -1, R)) % R
    with pytest.raises(ValueError, match="fraction_layer"):
        mle.fraction_layer(None, q[:1])


@pytest.mark.parametrize("dtype", ["int64", "uint16", "uint8", "field"])
@pytest.mark.parametrize("positions", [[], [0], [3, 7], [0, 1, 2, 9], list(range(10))])
def test_partial_eval_binds_the_chosen_variables(dtype, positions):
    """Binding some variables of an MLE (integer tables read as they are) equals folding them one
    at a time, and the result evaluates like the MLE on the merged point."""
    rng = np.random.default_rng(len(positions))
    m = 10
    ints = rng.integers(-2**40 if dtype in ("int64", "field") else 0, 2**8 if dtype == "uint8" else 2**16, 1 << m)
    table = F.from_int(ints.tolist())
    tab = table if dtype == "field" else ints.astype(dtype)
    values = F.random_seeded(len(positions), rng)
    got = mle.partial_eval(tab, positions, values)
    t = table.reshape((2,) * m + (4,))
    for p, v in zip(reversed(positions), reversed(list(values))):
        lo, hi = np.take(t, 0, axis=p), np.take(t, 1, axis=p)
        t = F.add(lo, F.mul(F.sub(hi, lo), v))
    assert np.array_equal(got, t.reshape(-1, 4))
    rest = F.random_seeded(m - len(positions), rng)
    point = np.empty((m, 4), dtype=np.uint64)
    point[positions] = values
    point[[p for p in range(m) if p not in positions]] = rest
    assert np.array_equal(mle.evaluate(got, rest), mle.evaluate(table, point))
    with pytest.raises(ValueError, match="increasing"):
        mle.partial_eval(tab, [3, 1], F.random_seeded(2, rng))
