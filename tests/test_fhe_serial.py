"""Client/server (fhe/serial.py): public contexts and ciphertext tensors as bytes."""
from __future__ import annotations

import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fhe
from fhe.backends.base import (
    PUBLIC_MAGIC,
    TENSOR_MAGIC,
    NoSecretKey,
    SerializationError,
    pack_container,
    unpack_container,
)
from fhe.serial import (
    PublicContext,
    context_to_bytes,
    public_context,
    rotation_keys_for,
    tensor_from_bytes,
    tensor_to_bytes,
)

sealapi = pytest.importorskip("tenseal.sealapi")

ROOT = Path(__file__).resolve().parents[1]
SPEC = "bi,io->bo"
X = np.random.default_rng(0).uniform(-1, 1, (4, 16))
W = np.random.default_rng(1).normal(size=(16, 8))
#: small rings for speed (insecure: allowed explicitly); one test runs the secure defaults
SMALL = {"sim": dict(ring_degree=4096, levels=2, allow_insecure=True),
         "seal": dict(ring_degree=4096, levels=2, allow_insecure=True)}


def make(backend: str, **kw) -> fhe.Context:
    return fhe.Context(backend, rotation_keys="manual", **{**SMALL[backend], **kw})


def client(backend: str):
    """A client context with the keys for ``SPEC``, its input, and the exported bytes."""
    ctx = make(backend)
    x = ctx.encrypt(X)
    ctx.generate_rotation_keys(ctx.plan(SPEC, x, W).rotation_keys)
    return ctx, x, public_context(ctx).to_bytes(), tensor_to_bytes(x)


@pytest.fixture(scope="module", params=["sim", "seal"])
def exchange(request):
    return (request.param, *client(request.param))


@pytest.fixture(scope="module")
def seal_exchange():
    return client("seal")


def repack(data: bytes, magic: bytes, edit) -> bytes:
    """Re-serialise after ``edit(meta, blobs)`` with a valid checksum (a well-formed container
    with bad content: what a careless or hostile sender could produce)."""
    meta, blobs = unpack_container(magic, data, "test")
    blobs = [bytes(b) for b in blobs]
    edit(meta, blobs)
    return pack_container(magic, meta, blobs)


# ------------------------------------------------------------------------- round trips
def test_public_context_and_tensor_round_trip(exchange):
    backend, ctx, x, ctx_bytes, x_bytes = exchange
    pub = PublicContext.from_bytes(ctx_bytes, allow_insecure=True)
    assert isinstance(pub, fhe.Context) and not pub.backend.has_secret_key
    assert (pub.slots, pub.levels, pub.backend.name) == (ctx.slots, ctx.levels, backend)
    assert pub.backend.key_id == ctx.backend.key_id
    assert sorted(pub.backend._rotation_keys) == sorted(ctx.backend._rotation_keys)
    assert "no secret key" in repr(pub)
    assert PublicContext.from_bytes(pub.to_bytes(), allow_insecure=True).backend.key_id == pub.backend.key_id

    xs = tensor_from_bytes(x_bytes, pub)                       # server side
    assert (xs.shape, xs.layout, xs.level) == (x.shape, x.layout, x.level)
    y = fhe.einsum(SPEC, xs, W)
    back = tensor_from_bytes(tensor_to_bytes(y), ctx)           # client side
    assert back.layout == y.layout and back.level == y.level
    np.testing.assert_allclose(ctx.decrypt(back), X @ W, atol=1e-3)
    # the client's own tensor survives the trip unchanged
    np.testing.assert_allclose(ctx.decrypt(tensor_from_bytes(x_bytes, ctx)), X, atol=1e-4)


def test_context_to_bytes_and_public_are_the_same_export(seal_exchange):
    ctx, _, ctx_bytes, _ = seal_exchange
    a = PublicContext.from_bytes(context_to_bytes(ctx), allow_insecure=True)
    assert a.backend.key_id == ctx.backend.key_id
    assert public_context(a) is a and a.public() is a


def test_torch_tensors_come_back_as_torch():
    torch = pytest.importorskip("torch")
    ctx = make("sim")
    t = torch.tensor(X, dtype=torch.float32)
    data = tensor_to_bytes(ctx.encrypt(t))
    out = ctx.decrypt(tensor_from_bytes(data, ctx))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def test_rotation_keys_for_matches_the_plan():
    ctx = make("seal")
    x = ctx.encrypt(X)
    steps = rotation_keys_for(lambda a: fhe.einsum(SPEC, a, np.zeros(W.shape)), ctx, X.shape)
    shifts = sorted({s % ctx.slots for s in ctx.plan(SPEC, x, W).rotation_keys} - {0})
    assert steps == shifts


# ------------------------------------------------------------------ no secret key on the server
def test_server_holds_no_secret_key(seal_exchange):
    ctx, x, ctx_bytes, x_bytes = seal_exchange
    pub = PublicContext.from_bytes(ctx_bytes, allow_insecure=True)
    b = pub.backend
    assert b._decryptor is None and b._keygen is None
    secret_types = (sealapi.SecretKey, sealapi.KeyGenerator, sealapi.Decryptor)
    assert not any(isinstance(v, secret_types) for v in vars(b).values())
    # the exported bytes do not contain the secret key
    sk = ctx.backend._keygen.secret_key()
    from fhe.backends.seal import _save
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        sk_bytes = _save(sk, tmp)
    assert sk_bytes[16:2016] not in ctx_bytes
    xs = tensor_from_bytes(x_bytes, pub)
    with pytest.raises(NoSecretKey, match="no secret key"):
        pub.decrypt(xs)
    with pytest.raises(NoSecretKey, match="no secret key"):
        b.decrypt(xs.ciphertexts[0])
    with pytest.raises(fhe.FHEError):
        xs.decrypt()
    with pytest.raises(TypeError):
        pickle.dumps(ctx.backend)
    # ctx.public(): the same, without a round trip
    assert not public_context(ctx).backend.has_secret_key
    assert ctx.backend.has_secret_key


def test_missing_rotation_keys_are_named_not_generated(exchange):
    backend, ctx, x, ctx_bytes, x_bytes = exchange
    pub = PublicContext.from_bytes(ctx_bytes, allow_insecure=True)
    xs = tensor_from_bytes(x_bytes, pub)
    before = dict(pub.backend._rotation_keys)
    with pytest.raises(fhe.MissingRotationKey, match=r"steps \[.*\].*no secret key"):
        fhe.einsum("bi->", xs)                 # needs rotations the client did not make
    with pytest.raises(fhe.MissingRotationKey):
        pub.generate_rotation_keys([3])
    assert pub.backend._rotation_keys == before


# ----------------------------------------------------------------- other keys, other parameters
def test_ciphertext_of_another_key_set_is_refused(exchange):
    backend, ctx, x, ctx_bytes, x_bytes = exchange
    other = make(backend)                        # same parameters, other keys
    with pytest.raises(fhe.ContextMismatch, match="another key set"):
        tensor_from_bytes(x_bytes, other)
    with pytest.raises(fhe.ContextMismatch):
        tensor_from_bytes(x_bytes, public_context(other))


def test_other_parameters_are_refused(seal_exchange):
    ctx, x, ctx_bytes, x_bytes = seal_exchange
    fewer = make("seal", levels=1)                         # same ring, other chain
    with pytest.raises(SerializationError, match="parms_id|SEAL rejected"):
        fewer.backend.ciphertext_from_bytes(ctx.backend.ciphertext_bytes(x.ciphertexts[0]))
    bigger = make("seal", ring_degree=8192)                 # other slot count
    forged = repack(x_bytes, TENSOR_MAGIC, lambda m, b: m.update(key_id=bigger.backend.key_id.hex()))
    with pytest.raises(SerializationError, match="slots"):
        tensor_from_bytes(forged, bigger)
    with pytest.raises(SerializationError, match="backend"):
        tensor_from_bytes(x_bytes, make("sim"))
    # a key id forged to match, ciphertexts from another chain: SEAL's parms_id check
    forged = repack(x_bytes, TENSOR_MAGIC, lambda m, b: m.update(key_id=fewer.backend.key_id.hex()))
    with pytest.raises(SerializationError):
        tensor_from_bytes(forged, fewer)


def test_insecure_parameters_need_consent(seal_exchange):
    _, _, ctx_bytes, _ = seal_exchange
    with pytest.raises(fhe.InsecureParameters):
        PublicContext.from_bytes(ctx_bytes)


def test_secure_defaults_round_trip():
    ctx = fhe.Context("seal", levels=2, rotation_keys="manual")       # N = 8192, 128-bit
    x = ctx.encrypt(X)
    ctx.generate_rotation_keys(ctx.plan(SPEC, x, W).rotation_keys)
    pub = PublicContext.from_bytes(public_context(ctx).to_bytes())     # no allow_insecure
    assert pub.backend.security_bits >= 128 and pub.slots == 4096
    y = fhe.einsum(SPEC, tensor_from_bytes(tensor_to_bytes(x), pub), W)
    out = ctx.decrypt(tensor_from_bytes(tensor_to_bytes(y), ctx))
    np.testing.assert_allclose(out, X @ W, atol=1e-3)


# -------------------------------------------------------------------------- bad bytes
@pytest.mark.parametrize("kind", ["context", "tensor"])
def test_malformed_bytes_raise_fhe_errors(exchange, kind):
    backend, ctx, x, ctx_bytes, x_bytes = exchange
    data = ctx_bytes if kind == "context" else x_bytes

    def load(d):
        if kind == "context":
            return PublicContext.from_bytes(d, allow_insecure=True)
        return tensor_from_bytes(d, ctx)

    with pytest.raises(SerializationError, match="magic"):
        load(b"NOTMAGIC" + data[8:])
    with pytest.raises(SerializationError, match="magic"):     # the other kind of object
        load(x_bytes if kind == "context" else ctx_bytes)
    with pytest.raises(SerializationError, match="version 7"):
        load(data[:8] + struct.pack("<H", 7) + data[10:])
    for cut in (0, 5, 13, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(SerializationError):
            load(data[:cut])
    with pytest.raises(SerializationError, match="checksum"):
        load(data + b"\0")
    with pytest.raises(SerializationError):
        load("not bytes")
    load(bytearray(data))                                      # any bytes-like object is fine


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_byte_flips_are_detected(data):
    ctx = make("sim")
    x = ctx.encrypt(X)
    which = data.draw(st.integers(0, 1))            # an index: hypothesis prints draws
    blob = bytearray(tensor_to_bytes(x) if which == 0 else context_to_bytes(ctx))
    for i in data.draw(st.sets(st.integers(0, len(blob) - 1), min_size=1, max_size=3)):
        blob[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SerializationError):
        if blob[:8] == TENSOR_MAGIC:
            tensor_from_bytes(bytes(blob), ctx)
        else:
            PublicContext.from_bytes(bytes(blob), allow_insecure=True)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10**9), st.integers(1, 255))
def test_seal_byte_flips_are_detected(position, flip):
    ctx, x, ctx_bytes, x_bytes = _SEAL_CACHE.get() or _SEAL_CACHE.set(client("seal"))
    for data, load in ((x_bytes, lambda d: tensor_from_bytes(d, ctx)),
                       (ctx_bytes, lambda d: PublicContext.from_bytes(d, allow_insecure=True))):
        blob = bytearray(data)
        blob[position % len(blob)] ^= flip
        with pytest.raises(SerializationError):
            load(bytes(blob))


class _Cache:
    value = None

    def get(self):
        return self.value

    def set(self, v):
        self.value = v
        return v


_SEAL_CACHE = _Cache()


def _edit_layout(**changes):
    return lambda m, b: m["layout"].update(changes)


@pytest.mark.parametrize("edit, match", [
    (_edit_layout(slots=1024), "slots"),
    (_edit_layout(shape=[4, 2**40]), "ciphertexts"),
    (_edit_layout(blocks=[4096, 4096]), "blocks"),
    (_edit_layout(strides=[0, 0]), "share a slot|bad layout"),
    (_edit_layout(shape=[4, 16, 1]), "length"),
    (_edit_layout(shape="big"), "bad layout"),
    (lambda m, b: m.update(like={"kind": "torch", "dtype": "os.system"}), "output kind"),
    (lambda m, b: m.update(kind="public_context"), "not a ciphertext tensor"),
    (lambda m, b: b.append(b[0]), "ciphertexts"),
    (lambda m, b: b.__setitem__(0, b[0][:-10]), "bytes|short|SEAL"),
    (lambda m, b: b.__setitem__(0, b"\0" * 64), "SEAL header|bytes"),
])
def test_well_formed_containers_with_bad_content(seal_exchange, edit, match):
    ctx, x, _, x_bytes = seal_exchange
    with pytest.raises(SerializationError, match=match):
        tensor_from_bytes(repack(x_bytes, TENSOR_MAGIC, edit), ctx)


def _seal_blob(payload: bytes, compr: int = 2) -> bytes:
    return struct.pack("<HBBBBHQ", 0xA15E, 16, 4, 3, compr, 0, 16 + len(payload)) + payload


@pytest.mark.parametrize("edit, match", [
    (lambda m, b: m.update(backend="nope"), "unknown backend"),
    (lambda m, b: m.update(ring_degree=3), "ring_degree"),
    (lambda m, b: m.update(primes=m["primes"][::-1]), "prime chain"),
    (lambda m, b: m.update(rotation_shifts=[5, 1]), "rotation-shift"),
    (lambda m, b: m.update(rotation_shifts=m["rotation_shifts"][:-1]), "key blobs"),
    (lambda m, b: m.update(key_id="zz" * 16), "key id"),
    (lambda m, b: b.__setitem__(0, b[1]), "SEAL rejected|inflate"),   # relin key as public key
    (lambda m, b: b.__setitem__(2, b[1]), "Galois|SEAL rejected"),    # relin key as rotation key
    # a zstd 'bomb': 4000 RLE blocks of 2 MiB each, in 16 kB
    (lambda m, b: b.__setitem__(0, _seal_blob(b"\x28\xb5\x2f\xfd\x00\x00"
                                              + b"\xfa\xff\xff\x00" * 3999 + b"\xfb\xff\xff\x00")),
     "inflate"),
    (lambda m, b: b.__setitem__(0, _seal_blob(b"\x00" * 32, compr=1)), "compression"),
])
def test_bad_public_contexts(seal_exchange, edit, match):
    _, _, ctx_bytes, _ = seal_exchange
    with pytest.raises(fhe.FHEError, match=match):
        PublicContext.from_bytes(repack(ctx_bytes, PUBLIC_MAGIC, edit), allow_insecure=True)


# --------------------------------------------------------------------------- desilo, example
def test_desilo_round_trip():
    pytest.importorskip("desilofhe")
    ctx = fhe.Context("desilo", levels=2, rotation_keys="manual")
    x = ctx.encrypt(X)
    ctx.generate_rotation_keys(ctx.plan(SPEC, x, W).rotation_keys)
    pub = PublicContext.from_bytes(public_context(ctx).to_bytes())
    assert pub.backend._secret_key is None and not pub.backend.has_secret_key
    xs = tensor_from_bytes(tensor_to_bytes(x), pub)
    with pytest.raises(NoSecretKey):
        pub.decrypt(xs)
    y = fhe.einsum(SPEC, xs, W)
    out = ctx.decrypt(tensor_from_bytes(tensor_to_bytes(y), ctx))
    np.testing.assert_allclose(out, X @ W, atol=1e-4)
    with pytest.raises(fhe.ContextMismatch):
        tensor_from_bytes(tensor_to_bytes(x), fhe.Context("desilo", levels=2))
    with pytest.raises(SerializationError, match="fit these parameters"):   # other engine
        fhe.Context("desilo", levels=1).backend.ciphertext_from_bytes(
            ctx.backend.ciphertext_bytes(x.ciphertexts[0]))


def _example():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import fhe_client_server
    finally:
        sys.path.pop(0)
    return fhe_client_server


def test_example_in_process(tmp_path):
    ex = _example()
    err = ex.run(tmp_path, "seal", in_process=True, ring_degree=8192, allow_insecure=True)
    assert err < 1e-3
    assert {p.name for p in tmp_path.iterdir()} >= {ex.CONTEXT_FILE, ex.INPUT_FILE, ex.RESULT_FILE}


def test_example_two_processes(tmp_path):
    ex = _example()
    assert ex.run(tmp_path, "sim") < 1e-9                      # server: a subprocess


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_seal_blob_damage_behind_a_valid_checksum_never_crashes(data):
    """Damage inside a SEAL object (checksum recomputed): SEAL's own checks or ours reject it
    with an fhe error, or it loads (a changed coefficient is still a valid ciphertext)."""
    ctx, x, ctx_bytes, x_bytes = _SEAL_CACHE.get() or _SEAL_CACHE.set(client("seal"))
    data_, magic, load = [
        (x_bytes, TENSOR_MAGIC, lambda d: tensor_from_bytes(d, ctx)),
        (ctx_bytes, PUBLIC_MAGIC, lambda d: PublicContext.from_bytes(d, allow_insecure=True)),
    ][data.draw(st.integers(0, 1))]
    region = data.draw(st.sampled_from([32, 512, None]))

    def damage(meta, blobs):
        k = data.draw(st.integers(0, len(blobs) - 1))
        b = bytearray(blobs[k])
        for _ in range(data.draw(st.integers(1, 3))):
            b[data.draw(st.integers(0, min(len(b), region or len(b)) - 1))] ^= data.draw(
                st.integers(1, 255))
        blobs[k] = bytes(b)

    try:
        load(repack(data_, magic, damage))
    except SerializationError:
        pass


def test_public_contexts_are_not_pickled(seal_exchange):
    ctx = seal_exchange[0]
    pub = public_context(ctx)
    with pytest.raises(TypeError, match="to_bytes"):
        pickle.dumps(pub)
    with pytest.raises(TypeError, match="public_bytes"):
        pickle.dumps(pub.backend)
