"""zk.group against the py_ecc oracle: generators, MSM, serialisation, parsing of hostile bytes."""
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.bls.point_compression import compress_G1, decompress_G1
import py_ecc.optimized_bls12_381 as ecc

from zk import field, group
from zk.errors import ProofFormatError

LABEL = b"zkfhe/test/group"

P = ecc.field_modulus  # base-field modulus


def to_ecc(p):
    return decompress_G1(int.from_bytes(group.point_to_bytes(p), "big"))


def ecc_bytes(q) -> bytes:
    return compress_G1(q).to_bytes(48, "big")


def ecc_msm(points, ints):
    acc = ecc.Z1
    for p, k in zip(points, ints):
        acc = ecc.add(acc, ecc.multiply(to_ecc(p), int(k) % ecc.curve_order))
    return acc


@pytest.fixture(scope="module")
def gens():
    return group.generators(64, LABEL)


def test_generators_are_rfc9380_hash_to_curve():
    label = LABEL
    for i in (0, 1, 7):
        msg = len(label).to_bytes(8, "little") + label + i.to_bytes(8, "little")
        ref = hash_to_G1(msg, group.GENERATOR_DST, hashlib.sha256)
        assert ecc.is_on_curve(ref, ecc.b) and ecc.is_inf(ecc.multiply(ref, ecc.curve_order))
        assert group.point_to_bytes(group.generators(i + 1, LABEL)[i]) == ecc_bytes(ref)


def test_shipped_generators_are_the_derived_ones():
    """The package's generator file is exactly the hash-to-curve derivation of the commitment key's
    family (every point re-derived), its points are what generators() returns, and the family
    continues by derivation past the file."""
    from zk import commit
    label = commit.DEFAULT_KEY.label
    assert group.GENERATOR_FILE.read_bytes() == group.generator_file_bytes(label, group.SHIPPED_COUNT)
    shipped = group.generators(group.SHIPPED_COUNT + 2, label)
    for i in (0, 1, group.SHIPPED_COUNT - 1, group.SHIPPED_COUNT, group.SHIPPED_COUNT + 1):
        msg = len(label).to_bytes(8, "little") + label + i.to_bytes(8, "little")
        assert group.point_to_bytes(shipped[i]) == ecc_bytes(hash_to_G1(msg, group.GENERATOR_DST, hashlib.sha256))
    assert group._shipped(LABEL) == []  # another family is derived


def test_a_damaged_generator_file_is_refused(tmp_path, monkeypatch):
    data = group.GENERATOR_FILE.read_bytes()
    for bad, match in ((b"ZKGENX" + data[6:], "not a version 1 generator file"), (data[:-1], "the package is damaged")):
        path = tmp_path / "generators.bin"
        path.write_bytes(bad)
        monkeypatch.setattr(group, "GENERATOR_FILE", path)
        with pytest.raises(RuntimeError, match=match):
            group._shipped(b"zkfhe/hyrax/v1")


def test_generators_cached_prefix_and_distinct():
    a = group.generators(5, LABEL)
    b = group.generators(12, LABEL)
    assert b[:5] == a
    assert group.generators(12, LABEL)[11] is b[11]  # derived once
    other = group.generators(5, b"another/label")
    assert len({group.point_to_bytes(p) for p in a + other}) == 10


def test_msm_matches_py_ecc(gens):
    rng = np.random.default_rng(1)
    s = field.random_seeded(6, rng)
    assert group.point_to_bytes(group.msm(gens[:6], s)) == ecc_bytes(ecc_msm(gens[:6], field.to_int(s)))
    assert group.msm([], field.zeros(0)) == group.identity()
    with pytest.raises(ValueError):
        group.msm(gens[:3], s)


def test_msm_small_matches_py_ecc(gens):
    rng = np.random.default_rng(2)
    for values in (rng.integers(0, 2, 8), rng.integers(-2**20, 2**20, 8), np.array([-2**63, 2**63 - 1, 0, 5]),
                   np.array([True, False, True]), np.zeros(4, dtype=np.int64), rng.integers(0, 2**16, 8).astype(np.uint16)):
        pts = gens[:len(values)]
        assert group.point_to_bytes(group.msm_small(pts, values)) == ecc_bytes(ecc_msm(pts, values.tolist()))
    with pytest.raises(TypeError):
        group.msm_small(gens[:2], np.array([0.5, 1.0]))


def test_msm_small_agrees_with_msm(gens):
    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 2, 64), rng.integers(-300, 300, 64), rng.integers(0, 2**40, 64)):
        assert group.msm_small(gens, values) == group.msm(gens, field.from_int(values))


def test_msm_parallel_chunks_and_rows(gens, monkeypatch):
    rng = np.random.default_rng(4)
    s = field.random_seeded(64, rng)
    whole = group.msm(gens, s)
    monkeypatch.setattr(group, "PARALLEL_MIN", 8)
    monkeypatch.setattr(group, "_THREADS", 3)  # uneven chunks
    assert group.msm(gens, s) == whole
    rows = field.random_seeded((5, 64), rng)
    assert group.msm_rows(gens, rows) == [group.msm(gens, r) for r in rows]
    ints = rng.integers(-5, 5, (4, 64))
    ints[0] = rng.integers(0, 2, 64)
    assert group.msm_rows(gens, ints) == [group.msm_small(gens, r) for r in ints]


def test_fixed_base(gens):
    rng = np.random.default_rng(5)
    fb = group.FixedBase(gens[3])
    s = np.concatenate([field.random_seeded(5, rng), field.from_int([0, 1, field.R - 1, 2**255 % field.R])])
    assert fb.mul(s) == [group.msm([gens[3]], x[None]) for x in s]


def test_serialisation_round_trip_and_py_ecc_encoding(gens):
    for p in gens[:4] + [group.identity(), -gens[0]]:
        b = group.point_to_bytes(p)
        assert len(b) == 48 and b == ecc_bytes(to_ecc(p))
        assert group.point_from_bytes(b) == p
    blob = group.points_to_bytes(gens[:5])
    assert group.points_from_bytes(blob, 5) == gens[:5]
    for bad_count in (4, 6, -1):
        with pytest.raises(ProofFormatError):
            group.points_from_bytes(blob, bad_count)


def _x_on_curve(start: int, in_subgroup: bool) -> tuple[int, bool]:
    """An x >= start whose point is on the curve, in or outside the subgroup as asked."""
    x = start
    while True:
        y2 = (x ** 3 + 4) % P
        if pow(y2, (P - 1) // 2, P) == 1:
            y = pow(y2, (P + 1) // 4, P)
            q = (ecc.FQ(x), ecc.FQ(y), ecc.FQ(1))
            if ecc.is_inf(ecc.multiply(q, ecc.curve_order)) == in_subgroup:
                return x, y > (P - 1) // 2
        x += 1


def _encode_x(x: int, y_flag: bool = False) -> bytes:
    b = bytearray(x.to_bytes(48, "big"))
    b[0] |= 0x80 | (0x20 if y_flag else 0)
    return bytes(b)


def test_point_from_bytes_rejects_invalid_encodings(gens):
    good = group.point_to_bytes(gens[0])
    x_out, _ = _x_on_curve(1, in_subgroup=False)  # on the curve, outside the prime-order subgroup
    x_off = next(x for x in range(1, 100) if pow((x ** 3 + 4) % P, (P - 1) // 2, P) != 1)  # not on the curve
    x_g = int.from_bytes(good, "big") & ((1 << 381) - 1)
    bad = [
        b"", good[:-1], good + b"\0", bytes(48),          # lengths; no compression flag
        good[:1] + bytes([good[1] ^ 1]) + good[2:],       # another x (probably off the curve)
        bytes([good[0] & 0x7F]) + good[1:],               # compression flag cleared
        _encode_x(x_out), _encode_x(x_off),
        _encode_x(x_g + P) if x_g + P < 2 ** 381 else _encode_x(P),  # x not reduced
        b"\xff" * 48, bytes([0xE0]) + bytes(47),          # infinity with the sign flag
        bytes([0xC0]) + bytes(46) + b"\x01",              # infinity with stray bits
        bytes([0xC1]) + bytes(47),
    ]
    for b in bad:
        with pytest.raises(ProofFormatError):
            group.point_from_bytes(b)
    for wrong_type in ("ab" * 24, None, 3):
        with pytest.raises(ProofFormatError):
            group.point_from_bytes(wrong_type)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=60))
def test_point_from_bytes_fuzz(data):
    try:
        p = group.point_from_bytes(data)
    except ProofFormatError:
        return
    assert group.point_to_bytes(p) == data and p.is_in_subgroup()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 63), st.integers(0, 47), st.integers(1, 255))
def test_point_from_bytes_mutations(gen_index, pos, xor):
    good = bytearray(group.point_to_bytes(group.generators(64, LABEL)[gen_index]))
    good[pos] ^= xor
    try:
        p = group.point_from_bytes(bytes(good))
    except ProofFormatError:
        return
    assert group.point_to_bytes(p) == bytes(good) and p.is_in_subgroup()


def test_bit_rows_use_subset_sums_and_match_msm_small():
    points = group.generators(40, LABEL)
    bits = np.random.default_rng(5).integers(0, 2, (6, 40)).astype(np.uint8)
    assert group.msm_rows(points, bits) == [group.msm_small(points, row) for row in bits]
