"""The CUDA kernels: arithmetic and schedules checked on the host build of the same sources, against
Python integers, galois, py_ecc and arkworks; GPU-vs-host bit identity where a GPU is present."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpu
from gpu import ops, runtime

R, P = ops.R, ops.P
MASK = (1 << 64) - 1
EDGE = [0, 1, 2, R - 1, R - 2, R // 2, R // 2 + 1, MASK, 1 << 64, (1 << 128) - 1, 1 << 192, 1 << 254]


@pytest.fixture(scope="module", autouse=True)
def host_library():
    try:
        runtime.host_backend()
    except runtime.HostBuildError as exc:
        pytest.skip(f"host build of gpu/kernels unavailable: {exc}")


# ---------------------------------------------------------------------------------------------
# Python references
# ---------------------------------------------------------------------------------------------
def encode(values, modulus=R, limbs=4):
    """Montgomery-form limb array of Python ints."""
    mont = [(v % modulus) * (1 << (64 * limbs)) % modulus for v in values]
    return np.array([[(x >> (64 * k)) & MASK for k in range(limbs)] for x in mont], dtype=np.uint64).reshape(-1, limbs)


def decode(arr, modulus=R):
    arr = np.asarray(arr)
    limbs = arr.shape[-1]
    inv = pow(1 << (64 * limbs), -1, modulus)
    return [sum(int(v) << (64 * k) for k, v in enumerate(row)) * inv % modulus for row in arr.reshape(-1, limbs)]


def raw_limbs(values, limbs):
    return np.array([[(x >> (64 * k)) & MASK for k in range(limbs)] for x in values], dtype=np.uint64)


def fold_ref(table, c):
    half = len(table) // 2
    return [(table[i] + c * (table[i + half] - table[i])) % R for i in range(half)]


def eq_ref(point):
    k = len(point)
    out = []
    for x in range(1 << k):
        v = 1
        for j, p in enumerate(point):
            bit = (x >> (k - 1 - j)) & 1
            v = v * (p if bit else 1 - p) % R
        out.append(v)
    return out


def round_ref(tables, degree):
    half = len(tables[0]) // 2
    out = []
    for x in range(degree + 1):
        acc = 0
        for i in range(half):
            prod = 1
            for t in tables:
                prod = prod * (t[i] + x * (t[i + half] - t[i])) % R
            acc += prod
        out.append(acc % R)
    return out


ints = st.integers(min_value=0, max_value=R - 1)


# ---------------------------------------------------------------------------------------------
# Fr arithmetic
# ---------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(ints, ints), min_size=1, max_size=40))
def test_fr_add_sub_mul_match_python_ints(pairs):
    xs, ys = [p[0] for p in pairs] + EDGE, [p[1] for p in pairs] + EDGE[::-1]
    a, b = encode(xs), encode(ys)
    assert decode(gpu.fr_add(a, b)) == [(x + y) % R for x, y in zip(xs, ys)]
    assert decode(gpu.fr_sub(a, b)) == [(x - y) % R for x, y in zip(xs, ys)]
    assert decode(gpu.fr_mul(a, b)) == [x * y % R for x, y in zip(xs, ys)]


def test_fr_broadcasts_one_element_and_keeps_shape():
    rng = random.Random(1)
    xs = [rng.randrange(R) for _ in range(12)]
    a = encode(xs).reshape(3, 4, 4)
    c = encode([7])[0]
    assert gpu.fr_mul(a, c).shape == (3, 4, 4)
    assert decode(gpu.fr_mul(a, c)) == [7 * x % R for x in xs]
    assert decode(gpu.fr_sub(c, a)) == [(7 - x) % R for x in xs]
    with pytest.raises(ValueError, match="shapes"):
        gpu.fr_add(encode(xs[:3]), encode(xs[:4]))
    with pytest.raises(TypeError, match="uint64"):
        gpu.fr_add(np.zeros((2, 4), dtype=np.int64), encode(xs[:2]))


def test_fr_matches_zk_field_layout_bit_for_bit():
    field = pytest.importorskip("zk.field")
    rng = np.random.default_rng(3)
    a, b = field.random_seeded(100, rng), field.random_seeded(100, rng)
    assert np.array_equal(gpu.fr_mul(a, b), field.mul(a, b))
    assert np.array_equal(gpu.fr_sub(a, b), field.sub(a, b))
    assert np.array_equal(encode(EDGE), field.from_int(EDGE))


def test_mle_and_sumcheck_ops_match_the_zk_cpu_path_bit_for_bit():
    field = pytest.importorskip("zk.field")
    mle = pytest.importorskip("zk.mle")
    sumcheck = pytest.importorskip("zk.sumcheck")
    rng = np.random.default_rng(6)
    f, g, h = (field.random_seeded(64, rng) for _ in range(3))
    c, point = field.random_seeded(1, rng)[0], field.random_seeded(6, rng)
    assert np.array_equal(gpu.fold(f, c), mle.fold(f.copy(), c))
    assert np.array_equal(gpu.eq_table(point), mle.eq_table(point))
    # a one-term sumcheck round is round_poly; several terms are its linear combination
    prover = sumcheck.SumcheckProver([f, g, h], [(1, (0, 1, 2))])
    assert np.array_equal(gpu.round_poly([f, g, h], 3), prover.round_polynomial())
    prover = sumcheck.SumcheckProver([f, g, h], [(5, (0, 1)), (1, (2,))])
    combined = gpu.fr_add(gpu.fr_mul(gpu.round_poly([f, g], 2), field.from_int(5)), gpu.round_poly([h], 2))
    assert np.array_equal(combined, prover.round_polynomial())


def test_msm_matches_zk_group_bit_for_bit():
    field = pytest.importorskip("zk.field")
    group = pytest.importorskip("zk.group")
    pts = group.generators(40, b"test/gpu")
    s = field.random_seeded(40, np.random.default_rng(8))
    limbs = gpu.g1_from_compressed(group.points_to_bytes(pts))
    assert compressed(gpu.msm(limbs, s)) == group.point_to_bytes(group.msm(pts, s))
    rows = field.from_int(np.random.default_rng(9).integers(-9, 9, (3, 40)))
    got = compressed(gpu.commit_rows(limbs, rows))
    assert got == b"".join(group.point_to_bytes(p) for p in group.msm_rows(pts, rows))


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 1000])
def test_fr_inv_matches_galois(n):
    galois = pytest.importorskip("galois")
    GF = galois.GF(R, primitive_element=7, verify=False)
    rng = random.Random(n)
    xs = [rng.randrange(1, R) for _ in range(n)]
    expected = [int(v) for v in np.reciprocal(GF(xs))] if n > 1 else [pow(xs[0], -1, R)]
    assert decode(gpu.fr_inv(encode(xs))) == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=1, max_size=50))
def test_fr_from_int64_matches_zk_field(values):
    field = pytest.importorskip("zk.field")
    v = np.array(values + [0, -1, 1, -(1 << 63), (1 << 63) - 1], dtype=np.int64)
    assert np.array_equal(gpu.fr_from_int64(v), field.from_int(v))
    assert decode(gpu.fr_from_int64(v.reshape(-1, 1))) == [x % R for x in v.tolist()]
    with pytest.raises(TypeError, match="int64"):
        gpu.fr_from_int64(v.astype(np.int32))


def test_vecmat_matches_zk_field_and_rejects_bad_shapes():
    field = pytest.importorskip("zk.field")
    rng = np.random.default_rng(4)
    for rows, cols in ((1, 1), (63, 3), (64, 8), (65, 8), (200, 2)):
        v, m = field.random_seeded(rows, rng), field.random_seeded((rows, cols), rng)
        assert np.array_equal(gpu.vecmat(v, m), field.vecmat(v, m))
    with pytest.raises(ValueError, match="vecmat"):
        gpu.vecmat(field.ones(3), field.ones((4, 2)))


def test_fr_inv_rejects_zero():
    with pytest.raises(ZeroDivisionError, match="element 2"):
        gpu.fr_inv(encode([3, 4, 0, 5]))


# ---------------------------------------------------------------------------------------------
# MLE and sumcheck primitives
# ---------------------------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(st.integers(1, 7), ints, st.randoms(use_true_random=False))
def test_fold_matches_reference(k, c, rnd):
    table = [rnd.randrange(R) for _ in range(1 << k)]
    assert decode(gpu.fold(encode(table), encode([c])[0])) == fold_ref(table, c)


@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_eq_table_matches_product_formula(k):
    rng = random.Random(k)
    point = [rng.randrange(R) for _ in range(k)]
    table = gpu.eq_table(encode(point) if k else np.zeros((0, 4), dtype=np.uint64))
    assert table.shape == (1 << k, 4)
    assert decode(table) == eq_ref(point)
    assert sum(decode(table)) % R == 1


def test_folding_every_variable_evaluates_the_mle_through_the_eq_table():
    rng = random.Random(5)
    k = 6
    table = [rng.randrange(R) for _ in range(1 << k)]
    point = [rng.randrange(R) for _ in range(k)]
    t = encode(table)
    for c in point:
        t = gpu.fold(t, encode([c])[0])
    expected = sum(a * e for a, e in zip(table, eq_ref(point))) % R
    assert decode(t) == [expected]


@pytest.mark.parametrize("ntables,degree", [(1, 1), (1, 3), (2, 2), (2, 4), (3, 3), (3, 8)])
@pytest.mark.parametrize("size", [2, 16, 256])
def test_round_poly_matches_reference(ntables, degree, size):
    rng = random.Random(size * 10 + ntables)
    tables = [[rng.randrange(R) for _ in range(size)] for _ in range(ntables)]
    got = decode(gpu.round_poly([encode(t) for t in tables], degree))
    assert got == round_ref(tables, degree)
    full = sum(np.prod([t[i] for t in tables], dtype=object) for i in range(size)) % R
    assert (got[0] + got[1]) % R == full  # the sumcheck identity g(0) + g(1) = claim


def test_round_poly_and_fold_reject_bad_shapes():
    t = encode(list(range(8)))
    with pytest.raises(ValueError, match="degree"):
        gpu.round_poly([t, t], 1)
    with pytest.raises(ValueError, match="1 to 3 tables"):
        gpu.round_poly([t] * 4, 4)
    with pytest.raises(ValueError, match="share one size"):
        gpu.round_poly([t, t[:4]], 2)
    with pytest.raises(ValueError, match="2\\^k"):
        gpu.fold(encode([1, 2, 3]), encode([1])[0])


# ---------------------------------------------------------------------------------------------
# Fp and G1
# ---------------------------------------------------------------------------------------------
def test_fp_ops_match_python_ints():
    rng = random.Random(7)
    xs = [rng.randrange(P) for _ in range(40)] + [0, 1, P - 1, P // 2, MASK, 1 << 320]
    ys = [rng.randrange(P) for _ in range(40)] + [P - 1, 0, P - 1, 3, 1 << 64, 5]
    a, b = encode(xs, P, 6), encode(ys, P, 6)
    assert decode(gpu.fp_op("add", a, b), P) == [(x + y) % P for x, y in zip(xs, ys)]
    assert decode(gpu.fp_op("sub", a, b), P) == [(x - y) % P for x, y in zip(xs, ys)]
    assert decode(gpu.fp_op("mul", a, b), P) == [x * y % P for x, y in zip(xs, ys)]
    assert decode(gpu.fp_op("inv", a), P) == [pow(x, -1, P) if x % P else 0 for x in xs]
    raw = raw_limbs([x % P for x in xs], 6)
    assert np.array_equal(gpu.fp_op("to_mont", raw), a)
    assert np.array_equal(gpu.fp_op("from_mont", a), raw)


ark = pytest.importorskip("py_arkworks_bls12381")


def ark_points(n, seed, extra=()):
    rng = random.Random(seed)
    g = ark.G1Point()
    return [g * ark.Scalar(rng.randrange(1, R)) for _ in range(n)] + list(extra)


def limbs_of(points):
    return gpu.g1_from_compressed(b"".join(p.to_compressed_bytes() for p in points))


def compressed(points):
    return gpu.g1_to_compressed(points)


def test_compressed_round_trip_matches_arkworks():
    pts = ark_points(20, 1, [ark.G1Point(), ark.G1Point.identity(), -ark.G1Point()])
    data = b"".join(p.to_compressed_bytes() for p in pts)
    limbs = gpu.g1_from_compressed(data)
    assert limbs.shape == (len(pts), 12)
    assert compressed(limbs) == data
    # the limbs are the Montgomery forms of arkworks' affine coordinates
    for p, row in zip(pts, limbs):
        xy = p.to_xy_bytes_le()
        assert decode(row[:6], P) == [int.from_bytes(xy[:48], "little")]
        assert decode(row[6:], P) == [int.from_bytes(xy[48:], "little")]
    assert not limbs[-2].any()  # identity is (0, 0)


def test_decompression_rejects_invalid_encodings():
    good = bytearray(ark.G1Point().to_compressed_bytes())
    with pytest.raises(ValueError, match="point 1: not a compressed"):
        gpu.g1_from_compressed(bytes(good) + bytes([good[0] & 0x7F]) + bytes(good[1:]))
    with pytest.raises(ValueError, match="malformed infinity"):
        gpu.g1_from_compressed(bytes([0xC0]) + bytes(46) + b"\x01")
    with pytest.raises(ValueError, match="not below p"):
        gpu.g1_from_compressed(bytes([0x9F]) + b"\xff" * 47)
    x_off_curve = next(x for x in range(1, 100) if pow((x**3 + 4) % P, (P - 1) // 2, P) != 1)
    with pytest.raises(ValueError, match="not on the curve"):
        gpu.g1_from_compressed(bytes([0x80]) + x_off_curve.to_bytes(47, "big"))
    with pytest.raises(ValueError, match="multiple of 48"):
        gpu.g1_from_compressed(b"\x00" * 47)


def test_g1_add_matches_arkworks_and_py_ecc_including_exceptional_cases():
    from py_ecc.optimized_bls12_381 import G1, add, multiply, normalize

    p, q = ark_points(2, 9)
    o = ark.G1Point.identity()
    lhs = [p, p, p, o, p, o]
    rhs = [q, p, -p, p, o, o]
    got = compressed(gpu.g1_add(limbs_of(lhs), limbs_of(rhs)))
    assert got == b"".join((a + b).to_compressed_bytes() for a, b in zip(lhs, rhs))
    # an independent implementation: 5G + 7G = 12G, 3G + 3G = 6G
    pts = gpu.g1_add(limbs_of([ark.G1Point() * ark.Scalar(5), ark.G1Point() * ark.Scalar(3)]),
                     limbs_of([ark.G1Point() * ark.Scalar(7), ark.G1Point() * ark.Scalar(3)]))
    for row, k in zip(pts, (12, 6)):
        x, y = normalize(multiply(G1, k))
        assert decode(row[:6], P) == [x.n] and decode(row[6:], P) == [y.n]
    assert normalize(add(multiply(G1, 5), multiply(G1, 7))) == normalize(multiply(G1, 12))


# ---------------------------------------------------------------------------------------------
# MSM
# ---------------------------------------------------------------------------------------------
def scalars_of(kind, n, rng):
    if kind == "random":
        return [rng.randrange(R) for _ in range(n)]
    if kind == "bits":
        return [rng.randrange(2) for _ in range(n)]
    if kind == "small-signed":
        return [rng.randrange(-3000, 3000) % R for _ in range(n)]
    if kind == "negative-40bit":
        return [-rng.randrange(1 << 40) % R for _ in range(n)]
    if kind == "all-equal":
        return [123456789] * n
    if kind == "sparse":
        return [rng.choice([0, 0, 1, R - 1, 2, rng.randrange(R)]) for _ in range(n)]
    if kind == "zero":
        return [0] * n
    raise AssertionError(kind)


def ark_msm(points, scalars):
    return ark.G1Point.multiexp_unchecked(points, [ark.Scalar(s) for s in scalars]).to_compressed_bytes()


@pytest.fixture(scope="module")
def msm_points():
    base = ark_points(12, 11)
    # duplicates, a point and its negation, the identity: exercise every exceptional addition
    pts = (base + [base[0], -base[0], ark.G1Point.identity(), base[1] * ark.Scalar(2)]) * 3
    return pts, limbs_of(pts)


@pytest.mark.parametrize("kind", ["random", "bits", "small-signed", "negative-40bit", "all-equal", "sparse", "zero"])
def test_msm_matches_arkworks_for_every_window(kind, msm_points):
    pts, limbs = msm_points
    rng = random.Random(kind)
    s = scalars_of(kind, len(pts), rng)
    expected = ark_msm(pts, s)
    for window in (None, 1, 2, 3, 7, 13):
        assert compressed(gpu.msm(limbs, encode(s), window=window)) == expected, window


def test_msm_matches_py_ecc():
    from py_ecc.optimized_bls12_381 import G1, add, multiply, normalize, Z1

    rng = random.Random(4)
    ks = [rng.randrange(1, 1000) for _ in range(4)]
    s = [rng.randrange(R) for _ in range(4)]
    pts = [ark.G1Point() * ark.Scalar(k) for k in ks]
    acc = Z1
    for k, x in zip(ks, s):
        acc = add(acc, multiply(G1, k * x % R))
    x, y = normalize(acc)
    got = gpu.msm(limbs_of(pts), encode(s))
    assert decode(got[:6], P) == [x.n] and decode(got[6:], P) == [y.n]


def test_msm_big_bucket_takes_several_levels():
    # 1100 equal scalars fill one bucket: 1100 > 32^2 entries need three levels of task sums
    pts = ark_points(50, 12) * 22
    s = [5] * len(pts)
    assert compressed(gpu.msm(limbs_of(pts), encode(s))) == ark_msm(pts, s)


def test_msm_of_nothing_and_of_one_point():
    pts = ark_points(1, 13)
    assert compressed(gpu.msm(limbs_of(pts), encode([0]))) == ark.G1Point.identity().to_compressed_bytes()
    assert compressed(gpu.msm(limbs_of(pts), encode([R - 1]))) == (-pts[0]).to_compressed_bytes()
    empty = gpu.commit_rows(np.zeros((0, 12), dtype=np.uint64), np.zeros((3, 0, 4), dtype=np.uint64))
    assert empty.shape == (3, 12) and not empty.any()


@pytest.mark.parametrize("c", [1, 2, 5, 13, 20])
def test_signed_digits_recompose_the_centered_scalars(c):
    rng = random.Random(c)
    rows, m = 2, 9
    s = [rng.randrange(R) for _ in range(rows * m - 4)] + [0, 1, R - 1, R // 2 + 1]
    bits = 254
    W = -(-(bits + 1) // c)
    B = 1 << (c - 1)
    keys, vals = ops.signed_digits(encode(s).reshape(rows, m, 4), c, W)
    keys, vals = keys.reshape(rows * m, W), vals.reshape(rows * m, W)
    for idx, x in enumerate(s):
        row, col = divmod(idx, m)
        centered = x - R if x > R // 2 else x
        total = 0
        for j in range(W):
            key, val = int(keys[idx, j]), int(vals[idx, j])
            if key == rows * W * B:  # zero digit
                continue
            assert key // B == row * W + j and val & 0x7FFFFFFF == col
            magnitude = key % B + 1
            assert 1 <= magnitude <= B
            total += (-magnitude if val >> 31 else magnitude) << (c * j)
        assert total == centered


def test_window_choice_gives_small_scalars_one_window():
    assert ops.window_size(1, 1 << 20) == 2  # bits: one window, buckets {1, 2}
    for bits in (8, 16):
        c = ops.window_size(bits, 1 << 20)
        assert -(-(bits + 1) // c) == 1
    assert 8 <= ops.window_size(254, 1 << 16) <= 16


def test_commit_rows_matches_one_arkworks_msm_per_row():
    rng = random.Random(14)
    m = 24
    pts = ark_points(m, 15)
    rows = [scalars_of(kind, m, rng) for kind in ("random", "bits", "zero", "small-signed", "sparse")]
    got = gpu.commit_rows(limbs_of(pts), np.stack([encode(r) for r in rows]))
    assert got.shape == (len(rows), 12)
    assert compressed(got) == b"".join(ark_msm(pts, r) for r in rows)
    small = [scalars_of("small-signed", m, rng) for _ in range(6)]
    got = gpu.commit_rows(limbs_of(pts), np.stack([encode(r) for r in small]), window=3)
    assert compressed(got) == b"".join(ark_msm(pts, r) for r in small)
    with pytest.raises(ValueError, match="do not match"):
        gpu.commit_rows(limbs_of(pts), np.stack([encode(r[:5]) for r in rows]))


def test_blinded_row_commitments_compose_from_commit_rows_and_g1_add():
    # Hyrax with blinding: C_i = sum_j T[i, j] G_j + r_i H
    rng = random.Random(16)
    m, rows = 8, 5
    pts = ark_points(m + 1, 17)
    gens, h = pts[:m], pts[m]
    table = [scalars_of("small-signed", m, rng) for _ in range(rows)]
    blind = [rng.randrange(R) for _ in range(rows)]
    body = gpu.commit_rows(limbs_of(gens), np.stack([encode(r) for r in table]))
    masks = gpu.commit_rows(limbs_of([h]), encode(blind).reshape(rows, 1, 4))
    expected = b"".join(ark_msm(pts, r + [b]) for r, b in zip(table, blind))
    assert compressed(gpu.g1_add(body, masks)) == expected


# ---------------------------------------------------------------------------------------------
# GPU: the same operations on cupy arrays are bit-identical to the host build
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def cuda():
    if not gpu.available():
        pytest.skip("no CUDA device visible to cupy (gpu.available() is False)")
    return runtime.cuda_backend()


@pytest.mark.gpu
def test_gpu_field_and_sumcheck_ops_match_host(cuda):
    rng = random.Random(21)
    n = 1 << 14
    a, b = encode([rng.randrange(R) for _ in range(n)]), encode([rng.randrange(R) for _ in range(n)])
    c = encode([rng.randrange(R)])[0]
    da, db, dc = gpu.to_device(a), gpu.to_device(b), gpu.to_device(c)
    for op in (gpu.fr_add, gpu.fr_sub, gpu.fr_mul):
        assert np.array_equal(gpu.to_host(op(da, db)), op(a, b))
    assert np.array_equal(gpu.to_host(gpu.fr_mul(da, dc)), gpu.fr_mul(a, c))
    assert np.array_equal(gpu.to_host(gpu.fr_inv(da)), gpu.fr_inv(a))
    assert np.array_equal(gpu.to_host(gpu.fold(da, dc)), gpu.fold(a, c))
    point = encode([rng.randrange(R) for _ in range(12)])
    assert np.array_equal(gpu.to_host(gpu.eq_table(gpu.to_device(point))), gpu.eq_table(point))
    for k in (1, 2, 3):
        assert np.array_equal(gpu.to_host(gpu.round_poly([da, db, da][:k], 4)), gpu.round_poly([a, b, a][:k], 4))
    ints = np.array([rng.randrange(-(1 << 63), 1 << 63) for _ in range(1000)], dtype=np.int64)
    assert np.array_equal(gpu.to_host(gpu.fr_from_int64(gpu.to_device(ints))), gpu.fr_from_int64(ints))
    m = a.reshape(128, 128, 4)  # 128 rows: two vecmat chunks
    assert np.array_equal(gpu.to_host(gpu.vecmat(db[:128], gpu.to_device(m))), gpu.vecmat(b[:128], m))


@pytest.mark.gpu
def test_gpu_msm_and_commitments_match_host_and_arkworks(cuda):
    rng = random.Random(22)
    pts = ark_points(64, 23) * 32  # 2048 points
    data = b"".join(p.to_compressed_bytes() for p in pts)
    host_pts = gpu.g1_from_compressed(data)
    dev_pts = gpu.g1_from_compressed(data, device="cuda")
    assert np.array_equal(gpu.to_host(dev_pts), host_pts)
    for kind in ("random", "bits", "small-signed", "all-equal", "sparse"):
        s = encode(scalars_of(kind, len(pts), rng))
        got = gpu.msm(dev_pts, gpu.to_device(s))
        assert compressed(gpu.to_host(got)) == compressed(gpu.msm(host_pts, s)) == ark_msm(pts, decode(s)), kind
    rows = np.stack([encode(scalars_of("small-signed", 64, rng)) for _ in range(16)])
    got = gpu.commit_rows(dev_pts[:64], gpu.to_device(rows))
    assert np.array_equal(gpu.to_host(got), gpu.commit_rows(host_pts[:64], rows))
