"""zk.field against galois and plain Python integers mod r."""
import galois
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zk import field as F
from zk.field import R

GF = galois.GF(R, primitive_element=7, verify=False)  # default arguments search ~90 s for a generator

elements = st.integers(0, R - 1)
vectors = st.lists(elements, min_size=1, max_size=24)
any_ints = st.integers(-(2**600), 2**600)
SETTINGS = settings(max_examples=40, deadline=None)


def ints(a) -> list[int]:
    return [int(v) for v in F.to_int(a)]


def gf_ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a)]


def test_constants():
    assert F.to_int(F.ONE) == 1 and F.to_int(F.ZERO) == 0
    assert np.array_equal(F.from_int(1), F.ONE) and np.array_equal(F.from_int(0), F.ZERO)
    assert F.ONE.shape == (4,) and F.ONE.dtype == np.uint64
    assert F.to_int(F.from_int(R)) == 0


@SETTINGS
@given(st.lists(any_ints, max_size=16))
def test_int_round_trip(xs):
    a = F.from_int(xs)
    assert a.shape == (len(xs), 4)
    assert ints(a) == [x % R for x in xs]


@SETTINGS
@given(any_ints)
def test_single_int_round_trip(x):
    a = F.from_int(x)
    assert a.shape == (4,)
    assert F.to_int(a) == x % R


@SETTINGS
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=32))
def test_int64_paths_agree(xs):
    fast = F.from_int(np.array(xs, dtype=np.int64))
    slow = F.from_int(np.array(xs, dtype=object))
    assert np.array_equal(fast, slow)
    assert np.array_equal(F.to_signed(fast), np.array(xs, dtype=np.int64))


def test_from_int_shapes_and_dtypes():
    nested = [[1, -2, 3], [2**70, 0, -(2**200)]]
    a = F.from_int(nested)
    assert a.shape == (2, 3, 4)
    assert F.to_int(a).tolist() == [[v % R for v in row] for row in nested]
    for dtype in (np.int8, np.int32, np.uint16, np.uint64, np.bool_):
        v = np.array([0, 1, 2 if dtype != np.bool_ else 1], dtype=dtype)
        assert ints(F.from_int(v)) == [int(x) for x in v]
    big = np.array([2**64 - 1, 5], dtype=np.uint64)
    assert ints(F.from_int(big)) == [2**64 - 1, 5]
    assert F.from_int(np.int64(-3)).shape == (4,)
    assert F.from_int([]).shape == (0, 4)
    with pytest.raises(TypeError):
        F.from_int(np.array([1.5]))
    with pytest.raises(TypeError):
        F.from_int([1, 2.5])


def test_from_int_torch():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[-1, 2], [3, -4]], dtype=torch.int64)
    assert F.to_int(F.from_int(t)).tolist() == [[R - 1, 2], [3, R - 4]]


def test_to_signed_range():
    edge = [-(2**63), 2**63 - 1, 0, -1, 1]
    assert F.to_signed(F.from_int(edge)).tolist() == edge
    assert F.to_signed(F.from_int(7)) == 7
    for bad in (2**63, -(2**63) - 1, R // 2):
        a = F.from_int([[0, 1], [2, bad]])
        with pytest.raises(ValueError, match=r"index \(1, 1\)"):
            F.to_signed(a)


@SETTINGS
@given(vectors, st.data())
def test_arithmetic_matches_galois(xs, data):
    ys = data.draw(st.lists(elements, min_size=len(xs), max_size=len(xs)))
    a, b = F.from_int(xs), F.from_int(ys)
    ga, gb = GF(xs), GF(ys)
    assert ints(F.add(a, b)) == gf_ints(ga + gb)
    assert ints(F.sub(a, b)) == gf_ints(ga - gb)
    assert ints(F.mul(a, b)) == gf_ints(ga * gb)
    assert ints(F.neg(a)) == gf_ints(-ga)
    assert ints(F.square(a)) == gf_ints(ga * ga)
    assert F.to_int(F.inner(a, b)) == int(np.sum(ga * gb))
    assert F.to_int(F.sum(a)) == int(np.sum(ga))
    nonzero = [x or 1 for x in xs]
    assert ints(F.inv(F.from_int(nonzero))) == gf_ints(np.reciprocal(GF(nonzero)))


@SETTINGS
@given(vectors, st.integers(-(2**300), 2**300))
def test_pow_matches_python(xs, e):
    xs = [x or 1 for x in xs]  # negative exponents need invertible bases
    assert ints(F.pow(F.from_int(xs), e)) == [pow(x, e, R) for x in xs]


def test_pow_zero_cases():
    assert ints(F.pow(F.from_int([0, 5]), 0)) == [1, 1]
    assert ints(F.pow(F.from_int([0, 5]), 3)) == [0, 125]


@SETTINGS
@given(elements, elements, elements)
def test_field_laws(x, y, z):
    a, b, c = F.from_int(x), F.from_int(y), F.from_int(z)
    assert np.array_equal(F.mul(F.mul(a, b), c), F.mul(a, F.mul(b, c)))
    assert np.array_equal(F.add(F.add(a, b), c), F.add(a, F.add(b, c)))
    assert np.array_equal(F.mul(a, b), F.mul(b, a))
    assert np.array_equal(F.mul(a, F.add(b, c)), F.add(F.mul(a, b), F.mul(a, c)))
    assert np.array_equal(F.add(a, F.neg(a)), F.ZERO)
    assert np.array_equal(F.sub(a, b), F.add(a, F.neg(b)))
    if x:
        assert np.array_equal(F.mul(a, F.inv(a)), F.ONE)


def test_edge_values():
    xs = [0, 1, 2, R - 1, R - 2, 2**64 - 1, 2**64, 2**128 + 3, 2**254, 2**255 % R]
    a = F.from_int(xs)
    for x, y in [(x, y) for x in xs for y in xs]:
        assert F.to_int(F.mul(F.from_int(x), F.from_int(y))) == x * y % R
        assert F.to_int(F.add(F.from_int(x), F.from_int(y))) == (x + y) % R
        assert F.to_int(F.sub(F.from_int(x), F.from_int(y))) == (x - y) % R
    assert ints(F.neg(a)) == [(-x) % R for x in xs]


def test_broadcasting():
    s = F.from_int(3)
    v = F.from_int([1, 2, 3])
    assert ints(F.mul(s, v)) == [3, 6, 9] and ints(F.mul(v, s)) == [3, 6, 9]
    col = F.from_int([[10], [20]])
    grid = F.add(col, v)
    assert grid.shape == (2, 3, 4)
    assert F.to_int(grid).tolist() == [[11, 12, 13], [21, 22, 23]]
    assert F.mul(s, s).shape == (4,)
    with pytest.raises(ValueError):
        F.add(v, F.from_int([1, 2]))
    with pytest.raises(TypeError):
        F.add(v, np.array([1, 2, 3]))


def test_large_arrays_cross_chunks():
    rng = np.random.default_rng(7)
    n = 20_011  # several parallel chunks, not a multiple of any
    a = F.random_seeded(n, rng)
    xs = ints(a)
    assert ints(F.inv(a)) == [pow(x, -1, R) for x in xs]
    assert F.to_int(F.sum(a)) == sum(xs) % R
    b = F.random_seeded(n, rng)
    assert F.to_int(F.inner(a, b)) == sum(x * y for x, y in zip(xs, ints(b))) % R
    assert F.to_int(F.inner(F.from_int(2), a)) == 2 * sum(xs) % R


def test_inv_zero_names_element():
    with pytest.raises(ZeroDivisionError, match=r"index \(1, 0\)"):
        F.inv(F.from_int([[1, 2], [0, 3]]))
    with pytest.raises(ZeroDivisionError):
        F.inv(F.ZERO)
    with pytest.raises(ZeroDivisionError):
        F.pow(F.ZERO, -1)


def test_sum_axes():
    m = np.arange(24).reshape(2, 3, 4) - 5
    a = F.from_int(m)
    for axis in (0, 1, 2, -1):
        assert F.to_signed(F.sum(a, axis=axis)).tolist() == m.sum(axis=axis).tolist()
    assert F.to_int(F.sum(F.zeros(0))) == 0
    with pytest.raises(ValueError):
        F.sum(a, axis=3)


def test_powers_and_constructors():
    assert ints(F.powers(F.from_int(3), 6)) == [3**k for k in range(6)]
    assert ints(F.powers(5, 3)) == [1, 5, 25]
    assert F.powers(F.from_int(3), 0).shape == (0, 4)
    assert ints(F.zeros(3)) == [0, 0, 0] and F.to_int(F.ones((2, 2))).tolist() == [[1, 1], [1, 1]]
    assert F.equal(F.from_int([1, 2, 3]), F.from_int(2)).tolist() == [False, True, False]


def test_random():
    a = F.random((3, 5))
    assert a.shape == (3, 5, 4)
    vals = F.to_int(a).reshape(-1).tolist()
    assert all(0 <= v < R for v in vals) and len(set(vals)) == 15
    assert F.random().shape == (4,)
    x = F.random_seeded(8, np.random.default_rng(3))
    assert np.array_equal(x, F.random_seeded(8, np.random.default_rng(3)))
    assert all(0 <= v < R for v in ints(x))


@SETTINGS
@given(st.lists(elements, max_size=8))
def test_bytes_round_trip(xs):
    a = F.from_int(xs)
    data = F.to_bytes(a)
    assert data == b"".join(x.to_bytes(32, "little") for x in xs)
    assert np.array_equal(F.from_bytes(data, len(xs)), a)


def test_from_bytes_rejects():
    with pytest.raises(ValueError, match="expected"):
        F.from_bytes(b"\x00" * 31, 1)
    with pytest.raises(ValueError, match="expected"):
        F.from_bytes(b"\x00" * 64, 1)
    for bad in (R, R + 1, 2**256 - 1):
        with pytest.raises(ValueError, match="element 1 is not canonical"):
            F.from_bytes((5).to_bytes(32, "little") + bad.to_bytes(32, "little"), 2)
    assert F.to_int(F.from_bytes((R - 1).to_bytes(32, "little"), 1)[0]) == R - 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100), st.integers(0, 4))
def test_from_bytes_fuzz(data, count):
    try:
        a = F.from_bytes(data, count)
    except ValueError:
        return
    assert a.shape == (count, 4)
    assert F.to_bytes(a) == data


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, R - 1)), max_size=40))
def test_scatter_add_sums_values_into_their_slots(entries):
    index = [i for i, _ in entries]
    values = F.from_int([v for _, v in entries]) if entries else F.zeros(0)
    got = F.to_int(F.scatter_add(index, values, 6))
    expected = [sum(v for i, v in entries if i == j) % R for j in range(6)]
    assert [int(x) for x in got] == expected


def test_scatter_add_rejects_bad_indices():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        F.scatter_add([0, 2], F.ones(2), 2)
    with pytest.raises(ValueError, match="2 indices for 1 values"):
        F.scatter_add([0, 1], F.ones(1), 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from(["int64", "uint16", "uint8", "bool"]), st.integers(0, 2**32))
def test_vecmat_on_integers_equals_vecmat_on_their_field_elements(rows, cols, dtype, seed):
    rng = np.random.default_rng(seed)
    v = F.random_seeded(rows, rng)
    if dtype == "int64":
        m = rng.integers(-2**63, 2**63 - 1, (rows, cols), dtype=np.int64, endpoint=True)
        m[0, 0] = -2**63
    else:
        m = rng.integers(0, np.iinfo(dtype).max if dtype != "bool" else 1, (rows, cols), endpoint=True).astype(dtype)
    expected = F.vecmat(v, F.from_int(m.astype(np.int64).tolist()))
    assert np.array_equal(F.vecmat(v, m), expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.sampled_from(["int64", "uint16", "uint8", "field"]), st.integers(0, 2**32))
def test_scale_add_on_integers_and_field_elements(n, dtype, seed):
    rng = np.random.default_rng(seed)
    ints = rng.integers(-2**63 if dtype in ("int64", "field") else 0,
                        2**63 - 1 if dtype in ("int64", "field") else np.iinfo(dtype).max, n, endpoint=True)
    a = F.from_int(ints.tolist()) if dtype == "field" else ints.astype(dtype)
    scale, offset = F.random_seeded((), rng), F.random_seeded((), rng)
    expected = F.add(F.mul(F.from_int(ints.tolist()), scale), offset)
    assert np.array_equal(F.scale_add(a, scale, offset), expected)
    out = F.zeros(n + 2)
    F.scale_add(a, scale, offset, out=out[1:n + 1])
    assert np.array_equal(out[1:n + 1], expected) and not out[0].any() and not out[-1].any()


def test_add_into_out():
    rng = np.random.default_rng(9)
    a, b = F.random_seeded(8, rng), F.random_seeded(8, rng)
    expected = F.add(a, b)
    assert F.add(a, b, out=a) is a and np.array_equal(a, expected)
    with pytest.raises(ValueError, match="out"):
        F.add(a, b, out=F.zeros(4))
