"""zk.curve: Fp arithmetic against Python integers, row MSMs against arkworks' (and py_ecc's through
``test_group``), the exceptional cases of the addition formulas, and the input checks."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from zk import curve, field, group

GENS = group.generators(70, b"test-curve")
COORDS = curve.affine_points(b"".join(bytes(p.to_xy_bytes_le()) for p in GENS))
MONT = 1 << 384


def limbs(x: int) -> np.ndarray:
    return np.array([(x >> (64 * k)) & (2**64 - 1) for k in range(6)], dtype=np.uint64)


def value(a) -> int:
    return sum(int(v) << (64 * k) for k, v in enumerate(a))


@njit
def _fp_ops(a, b, out):
    x = (a[0], a[1], a[2], a[3], a[4], a[5])
    y = (b[0], b[1], b[2], b[3], b[4], b[5])
    for row, z in enumerate((curve.fp_mul(x, y), curve.fp_add(x, y), curve.fp_sub(x, y))):
        for k in range(6):
            out[row, k] = z[k]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, curve.P - 1), st.integers(0, curve.P - 1))
def test_fp_arithmetic_matches_integers(a, b):
    out = np.empty((3, 6), dtype=np.uint64)
    _fp_ops(limbs(a * MONT % curve.P), limbs(b * MONT % curve.P), out)
    got = [value(row) * pow(MONT, -1, curve.P) % curve.P for row in out]
    assert got == [a * b % curve.P, (a + b) % curve.P, (a - b) % curve.P]
    assert all(value(row) < curve.P for row in out)  # fully reduced


def points_of(affine, identity):
    return [group.identity() if z else group.Point.from_xy_bytes_unchecked_le(xy)
            for xy, z in zip(curve.to_xy_bytes(affine), identity)]


def reference(points, rows):
    return [group.msm(points, field.from_int(row.tolist())) for row in rows]


@pytest.mark.parametrize("bits", [1, 2, 7, 16, 25, 41, 63])
def test_rows_msm_matches_arkworks(bits):
    rng = np.random.default_rng(bits)
    for width in (1, 3, 70):
        rows = rng.integers(-2**bits + 1, 2**bits, (4, width))
        rows[0] = 0  # an all-zero row is the identity
        rows[1, ::2] = 0
        got = points_of(*curve.rows_msm(curve.RowBases(COORDS[:width]), rows))
        assert got == reference(GENS[:width], rows)
        assert got[0] == group.identity()


def test_rows_msm_at_the_int64_extremes():
    rows = np.array([[-2**63, 2**63 - 1, -1, 1], [2**63 - 1, 2**63 - 1, -2**63, -2**63]], dtype=np.int64)
    assert points_of(*curve.rows_msm(curve.RowBases(COORDS[:4]), rows)) == reference(GENS[:4], rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=12), st.integers(0, 2**32))
def test_rows_msm_law(values, seed):
    """A row MSM is the sum of its entries' multiples, whatever the window the widths pick."""
    row = np.array([values], dtype=np.int64)
    idx = np.random.default_rng(seed).integers(0, 8, len(values))  # repeated points: equal buckets
    pts = [GENS[i] for i in idx]
    assert points_of(*curve.rows_msm(curve.RowBases(COORDS[idx]), row)) == reference(pts, row)


def test_exceptional_sums():
    """Equal points meeting in a bucket (doubling), opposite ones (identity), and both in the
    running sums of the bucket reduction."""
    g = curve.RowBases(COORDS[[0, 0, 0, 1]])
    pts = [GENS[0]] * 3 + [GENS[1]]
    rows = np.array([[1, 1, 0, 0], [1, -1, 0, 0], [1, 2, 0, 0], [2, 2, -4, 0], [3, 3, 3, 3], [5, -5, 0, 7]])
    assert points_of(*curve.rows_msm(g, rows)) == reference(pts, rows)
    assert curve.rows_msm(g, rows)[1].tolist() == [False, True, False, True, False, False]


def test_window_choice():
    assert curve.window_bits(1, 4096) == 1
    assert curve.window_bits(16, 4096) == 8
    assert 4 <= curve.window_bits(16, 64) < 8  # narrow rows cannot pay for many buckets
    assert curve.window_bits(40, 4096) in range(8, 12)


def test_input_checks():
    with pytest.raises(ValueError, match="identity"):
        curve.affine_points(bytes(96))
    with pytest.raises(ValueError, match="96-byte"):
        curve.affine_points(bytes(95))
    bad = bytearray(bytes(GENS[0].to_xy_bytes_le()))
    bad[:48] = curve.P.to_bytes(48, "little")
    with pytest.raises(ValueError, match="reduced"):
        curve.affine_points(bytes(bad))
    with pytest.raises(ValueError, match="points for rows"):
        curve.rows_msm(curve.RowBases(COORDS[:3]), np.zeros((2, 4), dtype=np.int64))


def test_group_falls_back_to_arkworks_for_the_identity():
    pts = [GENS[0], group.identity(), GENS[1]]
    rows = np.array([[3, 5, -7], [0, 9, 0]])
    assert group.msm_rows(pts, rows) == reference(pts, rows)
    assert group.msm_small(pts, np.array([-2**63, 4, 2**63 - 1])) == \
        group.msm(pts, field.from_int([-2**63, 4, 2**63 - 1]))
