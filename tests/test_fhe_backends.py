"""The real CKKS backends (SEAL via TenSEAL, desilofhe) against numpy, and their parameters."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from fhe.backends.params import (
    DESILO_ENGINES,
    HE_STANDARD_MAX_LOG_QP,
    check_security,
    desilo_params,
    seal_params,
    security_bits,
)
from fhe.errors import (
    InsecureParameters,
    MissingRotationKey,
    OutOfLevels,
    ShapeMismatch,
)

LEVELS = 3
TOL = 1e-4  # data of magnitude ~1


def make_backend(name: str, **kwargs):
    if name == "seal":
        pytest.importorskip("tenseal")
        from fhe.backends.seal import SealBackend

        # 2^13 ring: 3 levels need 240 bits > 218, fine for testing arithmetic
        kwargs = {"ring_degree": 8192, "allow_insecure": True, **kwargs}
        return SealBackend(levels=LEVELS, **kwargs)
    pytest.importorskip("desilofhe")
    from fhe.backends.desilo import DesiloBackend

    return DesiloBackend(levels=LEVELS, **kwargs)


@pytest.fixture(scope="module", params=["seal", "desilo"])
def backend(request):
    return make_backend(request.param)


@pytest.fixture
def fresh(backend):
    backend.counters.clear()
    return backend


def vectors(backend, count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, backend.slots) for _ in range(count)]


def close(backend, ct, expected):
    got = backend.decrypt(ct)
    assert got.shape == (backend.slots,)
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


# ------------------------------------------------------------------------------ arithmetic
def test_round_trip_and_padding(fresh):
    x, = vectors(fresh, 1)
    close(fresh, fresh.encrypt(x), x)
    short = np.arange(5.0) / 5
    close(fresh, fresh.encrypt(short), np.concatenate([short, np.zeros(fresh.slots - 5)]))
    with pytest.raises(ShapeMismatch):
        fresh.encrypt(np.zeros(fresh.slots + 1))
    assert fresh.level(fresh.encrypt(x)) == fresh.max_level == LEVELS


def test_add_sub_plain(fresh):
    x, y = vectors(fresh, 2, seed=1)
    cx, cy = fresh.encrypt(x), fresh.encrypt(y)
    close(fresh, fresh.add(cx, cy), x + y)
    close(fresh, fresh.sub(cx, cy), x - y)
    close(fresh, fresh.add_plain(cx, y), x + y)
    close(fresh, fresh.sub(cx, cx), np.zeros(fresh.slots))  # SEAL calls this 'transparent'
    assert fresh.counters["add"] == 4


def test_mul_and_mul_plain(fresh):
    x, y = vectors(fresh, 2, seed=2)
    cx, cy = fresh.encrypt(x), fresh.encrypt(y)
    prod = fresh.mul(cx, cy)
    assert fresh.level(prod) == LEVELS - 1
    close(fresh, prod, x * y)
    prod_plain = fresh.mul_plain(cx, y)
    assert fresh.level(prod_plain) == LEVELS - 1
    close(fresh, prod_plain, x * y)
    close(fresh, fresh.mul_plain(cx, np.zeros(fresh.slots)), np.zeros(fresh.slots))
    # a pre-encoded plaintext serves mul_plain and add_plain at its level
    pt = fresh.encode(y, level=LEVELS - 1)
    close(fresh, fresh.mul_plain(prod, pt), x * y * y)
    close(fresh, fresh.add_plain(prod, pt), x * y + y)


def test_rotate_left_and_negative(fresh):
    x, = vectors(fresh, 1, seed=3)
    steps = [1, 5, -3, fresh.slots - 1, fresh.slots + 2]
    fresh.ensure_rotation_keys(steps)
    cx = fresh.encrypt(x)
    for k in steps:
        assert fresh.has_rotation_key(k)
        close(fresh, fresh.rotate(cx, k), np.roll(x, -k))
    # -1 and slots-1 are the same slot shift: one key, and rotating by 0 needs none
    assert fresh.has_rotation_key(-1) and fresh.has_rotation_key(0)
    close(fresh, fresh.rotate(cx, 0), x)
    assert fresh.counters["rotate"] == len(steps)
    # a rotation after a multiplication (lower level) uses the same key
    prod = fresh.mul_plain(cx, x)
    close(fresh, fresh.rotate(prod, 5), np.roll(x * x, -5))


def test_missing_rotation_key(fresh):
    cx = fresh.encrypt(np.ones(4))
    step = 77
    assert not fresh.has_rotation_key(step)
    with pytest.raises(MissingRotationKey, match="77"):
        fresh.rotate(cx, step)


def test_level_accounting(fresh):
    x, y = vectors(fresh, 2, seed=4)
    y = np.sign(y) * (0.5 + np.abs(y) / 2)  # keep the product away from underflow
    ct, expected = fresh.encrypt(x), x.copy()
    for level in range(LEVELS - 1, -1, -1):
        ct, expected = fresh.mul(ct, fresh.encrypt(y)), expected * y
        assert fresh.level(ct) == level
    close(fresh, ct, expected)
    with pytest.raises(OutOfLevels):
        fresh.mul(ct, fresh.encrypt(y))
    with pytest.raises(OutOfLevels):
        fresh.mul_plain(ct, y)
    assert fresh.counters["mul"] == LEVELS and fresh.counters["rescale"] == LEVELS


def test_mixed_levels(fresh):
    x, y, z = vectors(fresh, 3, seed=5)
    cx, cy, cz = (fresh.encrypt(v) for v in (x, y, z))
    low = fresh.mul(fresh.mul(cx, cy), cz)  # level LEVELS - 2
    mixed = fresh.add(low, cx)
    assert fresh.level(mixed) == LEVELS - 2
    close(fresh, mixed, x * y * z + x)
    close(fresh, fresh.sub(cx, low), x - x * y * z)
    deeper = fresh.mul(cx, low)
    assert fresh.level(deeper) == LEVELS - 3
    close(fresh, deeper, x * x * y * z)


def test_counters(fresh):
    x, = vectors(fresh, 1, seed=6)
    fresh.ensure_rotation_keys([2])
    cx = fresh.encrypt(x)
    s = fresh.add(cx, fresh.rotate(cx, 2))
    s = fresh.mul_plain(s, x)
    s = fresh.mul(s, s)
    fresh.add_plain(s, x)
    assert dict(fresh.counters) == {"rotate": 1, "add": 2, "mul_plain": 1, "mul": 1, "rescale": 2,
                                   "relinearize": 1}


def test_secret_key_not_serialisable(backend):
    with pytest.raises(TypeError):
        pickle.dumps(backend)
    assert "secret" not in repr(backend).lower()


# ------------------------------------------------------------------------------ parameters
def test_he_standard_security_table():
    assert security_bits(16384, 438) == 128
    assert security_bits(16384, 300) == 192
    assert security_bits(32768, 400) == 256
    assert security_bits(8192, 240) < 128
    assert check_security(8192, 240, allow_insecure=True) < 128
    with pytest.raises(InsecureParameters, match=r"8192.*240.*218"):
        check_security(8192, 240, allow_insecure=False)


def test_seal_parameter_choice():
    p = seal_params(None, 3, 40, allow_insecure=False)
    # 240 bits: too many for 2^13 (218), within 2^14's 192-bit bound (305)
    assert (p.ring_degree, p.prime_bits, p.security_bits) == (16384, (60, 40, 40, 40, 60), 192)
    assert seal_params(None, 2, 40, False).ring_degree == 8192
    assert seal_params(None, 10, 40, False).ring_degree == 32768
    with pytest.raises(InsecureParameters, match="8192"):
        seal_params(8192, 3, 40, allow_insecure=False)
    with pytest.raises(InsecureParameters, match="881"):
        seal_params(None, 25, 40, allow_insecure=False)
    assert seal_params(8192, 3, 40, allow_insecure=True).security_bits < 128
    with pytest.raises(ValueError, match="scale_bits"):
        seal_params(None, 3, 55, allow_insecure=False)


def test_desilo_parameter_choice():
    p = desilo_params(None, 3, 40, allow_insecure=False)
    assert (p.engine_max_level, p.ring_degree, p.security_bits) == (3, 16384, 128)
    # 4..7 levels on N = 2^14 exceed 438 bits: the next secure engine has N = 2^15
    p = desilo_params(None, 4, 40, allow_insecure=False)
    assert (p.engine_max_level, p.ring_degree, p.levels) == (8, 32768, 4)
    assert desilo_params(32768, 3, 40, False).engine_max_level == 8
    with pytest.raises(InsecureParameters, match="16384"):
        desilo_params(16384, 4, 40, allow_insecure=False)
    for n, log_qp in DESILO_ENGINES.values():
        secure = log_qp <= HE_STANDARD_MAX_LOG_QP[128][n]
        assert (security_bits(n, log_qp) >= 128) == secure
    with pytest.raises(ValueError, match="2\\^40"):
        desilo_params(None, 3, 30, False)


def test_desilo_two_levels_multiplies():
    """desilofhe 2.0's max_level-2 engine cannot make a relinearisation key at its top level;
    levels=2 must pick an engine that can."""
    pytest.importorskip("desilofhe")
    from fhe.backends.desilo import DesiloBackend

    be = DesiloBackend(levels=2)
    x = np.linspace(-1, 1, 8)
    ct = be.mul(be.encrypt(x), be.encrypt(x))
    np.testing.assert_allclose(be.decrypt(ct)[:8], x * x, atol=1e-4)


@pytest.mark.parametrize("name", ["seal", "desilo"])
def test_backend_refuses_insecure(name):
    if name == "seal":
        pytest.importorskip("tenseal")
        from fhe.backends.seal import SealBackend as cls

        kwargs = {"ring_degree": 8192, "levels": 3}
    else:
        pytest.importorskip("desilofhe")
        from fhe.backends.desilo import DesiloBackend as cls

        kwargs = {"ring_degree": 16384, "levels": 4}
    with pytest.raises(InsecureParameters, match=str(kwargs["ring_degree"])):
        cls(**kwargs)


@pytest.mark.parametrize("name", ["seal", "desilo"])
def test_default_parameters_are_secure(name):
    backend = make_backend(name, **({"ring_degree": None, "allow_insecure": False} if name == "seal" else {}))
    assert backend.security_bits >= 128
    assert backend.slots == 8192 and backend.max_level == LEVELS


# ------------------------------------------------------------------- fhe.einsum on real backends
EINSUMS = [
    ("ij,jk->ik", [(8, 8), (8, 8)]),
    ("i,i->", [(100,), (100,)]),
    ("bij,bjk->bik", [(2, 4, 8), (2, 8, 4)]),
    ("ij,ij,ij->ij", [(8, 8)] * 3),
    ("ii->i", [(8, 8)]),
    ("...i,i->...", [(3, 8), (8,)]),
    ("ij,j->i", [(128, 128), (128,)]),  # several ciphertexts on either backend
]


def make_context(name: str):
    import fhe

    pytest.importorskip("tenseal" if name == "seal" else "desilofhe")
    if name == "seal":
        return fhe.Context(backend="seal", ring_degree=8192, levels=LEVELS, allow_insecure=True)
    return fhe.Context(backend="desilo", levels=LEVELS)


@pytest.fixture(scope="module", params=["seal", "desilo"])
def context(request):
    return make_context(request.param)


def einsum_error(ctx, spec, operands, encrypted=None):
    """Run ``fhe.einsum`` (operands encrypted where flagged); return (max error relative to
    the result's magnitude, executed counters, the plan)."""
    import fhe

    encrypted = encrypted or [True] * len(operands)
    args = [ctx.encrypt(x) if e else x for x, e in zip(operands, encrypted)]
    ctx.backend.counters.clear()
    out = fhe.einsum(spec, *args)
    exact = np.einsum(spec, *operands)
    err = np.max(np.abs(ctx.decrypt(out) - exact)) / max(1.0, np.max(np.abs(exact)))
    return err, dict(ctx.backend.counters), ctx.plan(spec, *args), out


@pytest.mark.parametrize("spec,shapes", EINSUMS, ids=[s for s, _ in EINSUMS])
def test_einsum_matches_numpy_and_plan(context, spec, shapes):
    rng = np.random.default_rng(7)
    operands = [rng.uniform(-1, 1, s) for s in shapes]
    err, counters, plan, _ = einsum_error(context, spec, operands)
    assert err < 1e-4
    cost = plan.cost()
    executed = (counters.get("rotate", 0), counters.get("mul", 0), counters.get("mul_plain", 0))
    assert executed == (cost.rotations, cost.ct_ct_mults, cost.ct_pt_mults)


def test_einsum_plaintext_operand_and_chaining(context):
    """A plaintext weight matrix costs no rotations of its own; the multi-ciphertext output
    feeds the next einsum without decrypting."""
    import fhe

    rng = np.random.default_rng(8)
    w, x, v = rng.uniform(-1, 1, (128, 128)), rng.uniform(-1, 1, 128), rng.uniform(-1, 1, 128)
    err, _, plan, y = einsum_error(context, "ij,j->i", [w, x], encrypted=[False, True])
    assert err < 1e-4 and plan.encrypted == (False, True)
    z = fhe.einsum("i,i->i", y, v)
    np.testing.assert_allclose(context.decrypt(z), (w @ x) * v, atol=1e-3)


# ------------------------------------------------------------- the EinHops suite (slow)
SUITE = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "einhops_cases.json"


def suite_cases():
    if not SUITE.exists():
        return []
    cases = json.loads(SUITE.read_text())["cases"]
    cases.append({"id": "mm64", "spec": "ij,jk->ik", "shapes": [[64, 64], [64, 64]], "level": 3})
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seal", "desilo"])
@pytest.mark.parametrize("case", suite_cases(), ids=lambda c: f"{c['id']}:{c['spec']}")
def test_einhops_suite(name, case):
    """Every EinHops workload, fully encrypted on EinHops' ring (2^15) at its listed level."""
    import fhe

    pytest.importorskip("tenseal" if name == "seal" else "desilofhe")
    ctx = fhe.Context(backend=name, ring_degree=32768, levels=case["level"])
    rng = np.random.default_rng(int(case["id"]) if case["id"].isdigit() else 0)
    operands = [rng.uniform(-1, 1, s) for s in case["shapes"]]
    err, counters, plan, out = einsum_error(ctx, case["spec"], operands)
    assert err < 1e-3
    assert counters.get("rotate", 0) == plan.cost().rotations
    assert case["level"] - out.level == plan.levels
