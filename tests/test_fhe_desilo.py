"""The desilo backend's own features: light plaintexts at the ciphertext's level, ``square``,
hoisted rotations (``rotate_many``), thread count, and bootstrapping (``bootstrap=True``)."""
from __future__ import annotations

import numpy as np
import pytest

import fhe
from fhe.errors import FHEError, InsecureParameters, MissingRotationKey, OutOfLevels

pytest.importorskip("desilofhe")
import desilofhe  # noqa: E402

from fhe.backends.base import SerializationError  # noqa: E402
from fhe.backends.desilo import (  # noqa: E402
    BOOTSTRAP_MAX_LEVEL,
    BOOTSTRAP_RING_DEGREE,
    BootstrapUnavailable,
    DesiloBackend,
    bootstrap_params,
)

TOL = 1e-5


@pytest.fixture(scope="module")
def be():
    b = DesiloBackend(levels=3)
    b.ensure_rotation_keys([1, 2, 5, -3])
    return b


@pytest.fixture(scope="module")
def vals(be):
    rng = np.random.default_rng(7)
    return rng.uniform(-1, 1, be.slots), rng.uniform(-1, 1, be.slots)


def test_encode_is_light_except_at_level_zero(be, vals):
    _, w = vals
    for level in (1, 2, 3):
        pt = be.encode(w, level)
        assert isinstance(pt, desilofhe.LightPlaintext) and pt.level == level
    assert isinstance(be.encode(w, 0), desilofhe.Plaintext)
    with pytest.raises(OutOfLevels):
        be.encode(w, 4)


def test_plaintexts_meet_ciphertexts_at_their_level(be, vals):
    v, w = vals
    ct = be.encrypt(v)
    top = be.encode(w)  # level 3, used at levels 3, 2, 1 (change_level)
    c, expect = ct, v
    for _ in range(3):
        c, expect = be.mul_plain(c, top), expect * w
        np.testing.assert_allclose(be.decrypt(c), expect, atol=TOL)
    assert be.level(c) == 0
    # level 0: add_plain of a vector (a regular plaintext) and of a level-0 encoding
    np.testing.assert_allclose(be.decrypt(be.add_plain(c, w)), expect + w, atol=TOL)
    np.testing.assert_allclose(be.decrypt(be.add_plain(c, be.encode(w, 0))), expect + w, atol=TOL)
    with pytest.raises(OutOfLevels, match="level 0"):
        be.add_plain(c, top)  # a light plaintext cannot go down to level 0
    with pytest.raises(OutOfLevels):
        be.mul_plain(be.encrypt(v), be.encode(w, 1))  # plaintext below the ciphertext
    # a regular desilofhe plaintext is still accepted (levelled down)
    reg = be._engine.encode(w, 3)
    low = be.mul_plain(ct, w)
    np.testing.assert_allclose(be.decrypt(be.mul_plain(low, reg)), v * w * w, atol=TOL)
    np.testing.assert_allclose(be.decrypt(be.add_plain(ct, w)), v + w, atol=TOL)


def test_square_and_mul(be, vals):
    v, w = vals
    x, y = be.encrypt(v), be.encrypt(w)
    before = be.counters["mul"]
    np.testing.assert_allclose(be.decrypt(be.mul(x, x)), v * v, atol=TOL)
    np.testing.assert_allclose(be.decrypt(be.mul(x, y)), v * w, atol=TOL)
    assert be.counters["mul"] == before + 2
    with pytest.raises(OutOfLevels):
        z = x
        for _ in range(4):
            z = be.mul(z, z)


def test_rotate_many_matches_rotate(be, vals):
    v, _ = vals
    ct = be.encrypt(v)
    steps = [1, 2, 0, 5, -3, 1, be.slots + 2]
    before = be.counters["rotate"]
    outs = be.rotate_many(ct, steps)
    assert be.counters["rotate"] == before + 4  # distinct non-zero shifts: 1, 2, 5, -3
    assert outs[2] is ct
    for s, out in zip(steps, outs):
        np.testing.assert_allclose(be.decrypt(out), np.roll(v, -s), atol=TOL)
    assert be.rotate_many(ct, []) == []
    np.testing.assert_allclose(be.decrypt(be.rotate_many(ct, [5])[0]), np.roll(v, -5), atol=TOL)
    with pytest.raises(MissingRotationKey):
        be.rotate_many(ct, [1, 7])


def test_einsum_runs_on_light_plaintexts():
    ctx = fhe.Context("desilo", levels=2)
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4, 4))
    y = fhe.einsum("ij,jk->ik", ctx.encrypt(a), b)  # plaintext operand: packed, encoded per run
    np.testing.assert_allclose(ctx.decrypt(y), a @ b, atol=1e-4)
    y = fhe.einsum("ij,ij->i", ctx.encrypt(a), ctx.encrypt(b))  # a mask, cached per level
    np.testing.assert_allclose(ctx.decrypt(y), (a * b).sum(1), atol=1e-4)
    np.testing.assert_allclose(ctx.decrypt(ctx.encrypt(a) * 0.5 + b), a * 0.5 + b, atol=1e-4)


def test_threads_option():
    b = DesiloBackend(levels=1, threads=1)
    v = np.arange(8.0) / 8
    np.testing.assert_allclose(b.decrypt(b.encrypt(v))[:8], v, atol=TOL)
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="threads"):
            DesiloBackend(levels=1, threads=bad)


# ------------------------------------------------------------------------- bootstrapping
def test_bootstrap_refused_on_a_regular_engine(be, vals):
    assert be.can_bootstrap is False
    assert be.levels_after_bootstrap is None
    ct = be.encrypt(vals[0])
    for call in (lambda: be.bootstrap(ct), be.ensure_bootstrap_key):
        with pytest.raises(BootstrapUnavailable, match="bootstrap=True") as info:
            call()
        assert isinstance(info.value, FHEError)
        assert "16384" in str(info.value)


def test_bootstrap_parameters():
    p = bootstrap_params(None, 5, 40, allow_insecure=True)
    assert (p.ring_degree, p.engine_max_level, p.levels) == (BOOTSTRAP_RING_DEGREE, 17, 5)
    assert p.security_bits < 128  # above the HE standard's 1747-bit bound for N = 2^16
    with pytest.raises(InsecureParameters, match="allow_insecure=True"):
        bootstrap_params(None, 5, 40, allow_insecure=False)
    with pytest.raises(InsecureParameters, match="bootstrap preset"):
        fhe.Context("desilo", levels=3, bootstrap=True)
    with pytest.raises(ValueError, match="ring degree 65536"):
        bootstrap_params(16384, 3, 40, allow_insecure=True)
    with pytest.raises(ValueError, match="1..17"):
        bootstrap_params(None, BOOTSTRAP_MAX_LEVEL + 1, 40, allow_insecure=True)
    with pytest.raises(ValueError, match="scale"):
        bootstrap_params(None, 3, 30, allow_insecure=True)


def test_bootstrap_engine_surface():
    """The bootstrap preset without making its (several GB) bootstrap keys."""
    b = DesiloBackend(levels=2, bootstrap=True, allow_insecure=True)
    assert b.slots == BOOTSTRAP_RING_DEGREE // 2 and b.max_level == 2
    assert b.can_bootstrap and b.levels_after_bootstrap == 2
    assert "bootstrap=True" in repr(b)
    v = np.linspace(-1, 1, b.slots)
    ct = b.encrypt(v)
    assert b.level(ct) == 2
    np.testing.assert_allclose(b.decrypt(b.mul(ct, ct)), v * v, atol=TOL)
    with pytest.raises(SerializationError, match="bootstrap"):
        b.public_bytes()
    pub = b.public()
    assert not pub.can_bootstrap  # no secret key to make the bootstrap keys with
    with pytest.raises(FHEError, match="secret key"):
        pub.bootstrap(ct)


@pytest.mark.slow
def test_bootstrap_refreshes_levels():
    """desilofhe's small bootstrap key: ~4.6 GB of keys, minutes on 2 CPU cores."""
    b = DesiloBackend(levels=2, bootstrap=True, allow_insecure=True)
    v = np.random.default_rng(5).uniform(-1, 1, b.slots)
    ct = b.mul_plain(b.mul_plain(b.encrypt(v), np.full(b.slots, 0.5)), np.full(b.slots, 2.0))
    assert b.level(ct) == 0
    with pytest.raises(OutOfLevels):
        b.mul_plain(ct, v)
    fresh = b.bootstrap(ct)
    assert b.level(fresh) == b.levels_after_bootstrap == 2
    assert b.counters["bootstrap"] == 1
    err = np.max(np.abs(b.decrypt(fresh) - v))
    assert err < 1e-3, err
    np.testing.assert_allclose(b.decrypt(b.mul(fresh, fresh)), v * v, atol=5e-3)
