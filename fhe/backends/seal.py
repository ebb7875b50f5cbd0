"""CKKS backend on Microsoft SEAL through TenSEAL's ``tenseal.sealapi`` bindings.

Parameters (see :mod:`fhe.backends.params`): prime chain ``[60, scale_bits × levels, 60]``
bits, the last prime special (key switching only), on the smallest ring that is 128-bit
secure for it. The ``levels`` scale primes are the primes ``≡ 1 (mod 2N)`` closest to
``2^scale_bits`` on either side.

Scale bookkeeping: every ciphertext carries exactly the nominal scale ``Δ = 2^scale_bits``,
so additions always match.

* ``mul_plain`` encodes the plaintext at scale ``q_l`` (the prime the rescale drops), so
  ``Δ · q_l / q_l = Δ`` exactly;
* ``mul`` gives ``Δ² / q_l`` after rescaling, which is relabelled ``Δ``: a relative error
  ``|Δ/q_l − 1|`` (below 1e-6 for the chosen primes) — the standard CKKS trick;
* mixed-level operands: the higher one is mod-switched down, which keeps its scale.

Rotations are SEAL Galois automorphisms (``Evaluator.rotate_vector``) with one Galois key
per requested step, generated on demand by :meth:`SealBackend.ensure_rotation_keys`.
"""
from __future__ import annotations

import os
import struct
import tempfile

import numpy as np

from ..errors import (
    FHEError,
    OutOfLevels,
    UnsupportedBackend,
)
from .base import Backend, SerializationError, field, key_id_field, shifts_field
from .params import EDGE_PRIME_BITS, SEAL_RING_DEGREES, SealParams, seal_params

try:
    from tenseal import sealapi as _seal
except ImportError:  # pragma: no cover - exercised only without tenseal
    _seal = None


def closest_primes(count: int, bits: int, ring_degree: int, exclude=()) -> list[int]:
    """The ``count`` primes ``p ≡ 1 (mod 2N)`` closest to ``2^bits`` (NTT-friendly, at most
    60 bits as SEAL requires), other than ``exclude``."""
    step = 2 * ring_degree
    centre = (1 << bits) // step * step + 1
    found: list[int] = []
    k = 0
    while len(found) < count:
        for cand in {centre + k * step, centre - k * step}:
            if (step < cand < 1 << EDGE_PRIME_BITS and cand not in exclude
                    and _seal.Modulus(cand).is_prime()):
                found.append(cand)
        k += 1
    found.sort(key=lambda p: abs(p - (1 << bits)))
    return found[:count]


#: SEAL's serialisation header: magic 0xA15E, header size 16, version major/minor,
#: compression mode, reserved, total size
_SEAL_HEADER = struct.Struct("<HBBBBHQ")
_SEAL_MAGIC = 0xA15E
_COMPR_NONE, _COMPR_ZSTD = 0, 2
#: slack on top of an object's polynomial data (SEAL's own headers and size fields)
_SEAL_SLACK = 1 << 20


def zstd_content_bound(data) -> int:
    """An upper bound on what a zstd stream decompresses to, read from its frame and block
    headers alone (RFC 8878): raw and RLE blocks give their size, compressed blocks at most
    128 KiB. Lets a loader refuse a decompression bomb before SEAL inflates it."""
    data = memoryview(data).cast("B")
    pos, total = 0, 0
    while pos < len(data):
        if len(data) - pos < 6 or bytes(data[pos:pos + 4]) != b"\x28\xb5\x2f\xfd":
            raise SerializationError("seal data: not a zstd frame")
        fhd = data[pos + 4]
        single, dict_flag, fcs_flag = fhd >> 5 & 1, fhd & 3, fhd >> 6
        if fhd & 0x08:
            raise SerializationError("seal data: zstd reserved bit set")
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
        pos += (1 if single else 0, 2, 4, 8)[fcs_flag]
        while True:
            if len(data) - pos < 3:
                raise SerializationError("seal data: truncated zstd block")
            head = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            last, kind, size = head & 1, head >> 1 & 3, head >> 3
            pos += 3
            if kind == 3:
                raise SerializationError("seal data: reserved zstd block type")
            stored = 1 if kind == 1 else size
            if kind == 2 and size > 1 << 17:
                raise SerializationError("seal data: zstd block larger than 128 KiB")
            if len(data) - pos < stored:
                raise SerializationError("seal data: truncated zstd block")
            total += (1 << 17) if kind == 2 else size
            pos += stored
            if last:
                break
        pos += 4 if fhd & 0x04 else 0  # content checksum
        if pos > len(data):
            raise SerializationError("seal data: truncated zstd checksum")
    return total


def _save(obj, tmp: str) -> bytes:
    """SEAL's ``save`` (the bindings write files only) through a file in ``tmp``."""
    path = os.path.join(tmp, "obj")
    obj.save(path)
    with open(path, "rb") as f:
        return f.read()


def _load(obj, data, context, tmp: str, bound: int, what: str):
    """SEAL's ``load`` (which validates the object against ``context``: parms_id, sizes,
    coefficients below their moduli) after checking SEAL's header and that the data cannot
    inflate past ``bound`` bytes (+ slack)."""
    data = memoryview(data).cast("B")
    if len(data) < _SEAL_HEADER.size:
        raise SerializationError(f"{what}: {len(data)} bytes is too short")
    magic, hsize, major, _minor, compr, reserved, size = _SEAL_HEADER.unpack_from(data)
    if magic != _SEAL_MAGIC or hsize != _SEAL_HEADER.size or reserved or major not in (3, 4):
        raise SerializationError(f"{what}: not SEAL data (bad SEAL header)")
    if size != len(data):
        raise SerializationError(f"{what}: SEAL header says {size} bytes, {len(data)} present")
    if compr == _COMPR_NONE:
        inflated = len(data) - _SEAL_HEADER.size
    elif compr == _COMPR_ZSTD:
        inflated = zstd_content_bound(data[_SEAL_HEADER.size:])
    else:
        raise SerializationError(f"{what}: unsupported SEAL compression mode {compr}")
    if inflated > 2 * bound + _SEAL_SLACK:
        raise SerializationError(f"{what}: would inflate to {inflated} bytes, more than the "
                                 f"{bound} its parameters allow")
    path = os.path.join(tmp, "obj")
    with open(path, "wb") as f:
        f.write(data)
    try:
        obj.load(context, path)
    except (ValueError, RuntimeError, TypeError, MemoryError) as exc:
        raise SerializationError(f"{what}: SEAL rejected the data ({exc})") from None
    return obj


class SealPlaintext:
    """A vector encoded for ciphertexts at one level (lazily, per use: SEAL needs the
    plaintext scale ``Δ`` for additions and ``q_l`` for multiplications)."""

    __slots__ = ("_encoded", "level", "values")

    def __init__(self, values: np.ndarray, level: int) -> None:
        self.values = values
        self.level = level
        self._encoded: dict[str, object] = {}


class SealBackend(Backend):
    """SEAL CKKS with TenSEAL's low-level bindings; keys never leave this object."""

    name = "seal"

    def __init__(
        self,
        ring_degree: int | None = None,
        levels: int = 3,
        scale_bits: int = 40,
        allow_insecure: bool = False,
    ) -> None:
        super().__init__()
        self._setup(seal_params(ring_degree, levels, scale_bits, allow_insecure))
        self._keygen = _seal.KeyGenerator(self._context)
        self._public_key = _seal.PublicKey()
        self._keygen.create_public_key(self._public_key)
        self._relin_keys = _seal.RelinKeys()
        self._keygen.create_relin_keys(self._relin_keys)
        self._encryptor = _seal.Encryptor(self._context, self._public_key)
        self._decryptor = _seal.Decryptor(self._context, self._keygen.secret_key())

    def _setup(self, params: SealParams) -> None:
        """The SEAL context and the keyless tools for ``params`` (deterministic: the same
        parameters always give the same prime chain)."""
        if _seal is None:
            raise UnsupportedBackend("the 'seal' backend needs TenSEAL: pip install tenseal")
        self.params = params
        n, levels, scale_bits = params.ring_degree, params.levels, params.scale_bits
        edges = _seal.CoeffModulus.Create(n, [EDGE_PRIME_BITS, EDGE_PRIME_BITS])
        middle = closest_primes(levels, scale_bits, n, exclude={q.value() for q in edges})
        chain = [edges[0], *map(_seal.Modulus, middle), edges[1]]
        self._primes = [q.value() for q in chain]
        parms = _seal.EncryptionParameters(_seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(chain)
        sec = _seal.SEC_LEVEL_TYPE.TC128 if self.params.security_bits >= 128 else _seal.SEC_LEVEL_TYPE.NONE
        self._context = _seal.SEALContext(parms, True, sec)
        if not self._context.parameters_set():
            raise FHEError(f"SEAL rejected the parameters: {self._context.parameters_error_message()}")
        self._evaluator = _seal.Evaluator(self._context)
        self._encoder = _seal.CKKSEncoder(self._context)
        self._galois_tool = self._context.key_context_data().galois_tool()

        self._scale = float(2**scale_bits)
        # level l -> parms_id, and the prime a rescale at level l drops (q_l, exact in a double)
        self._parms_ids: dict[int, list[int]] = {}
        self._drop_prime: dict[int, float] = {}
        data = self._context.first_context_data()
        while data is not None:
            level = data.chain_index()
            self._parms_ids[level] = data.parms_id()
            self._drop_prime[level] = float(data.parms().coeff_modulus()[-1].value())
            data = data.next_context_data()

    def __getstate__(self):
        if self.has_secret_key:
            raise TypeError("a SealBackend holds a secret key and cannot be pickled; export its "
                            "public part with fhe.serial (public_bytes)")
        raise TypeError("a public SealBackend is not pickled: use public_bytes() / "
                        "from_public_bytes()")

    def __repr__(self) -> str:
        p = self.params
        public = ", public (no secret key)" if not self.has_secret_key else ""
        return (f"SealBackend(ring_degree={p.ring_degree}, levels={p.levels}, "
                f"scale_bits={p.scale_bits}, security_bits={p.security_bits}{public})")

    # -- client / server -----------------------------------------------------------------
    @property
    def has_secret_key(self) -> bool:
        return self._decryptor is not None

    @staticmethod
    def _public_shell() -> "SealBackend":
        pub = SealBackend.__new__(SealBackend)
        Backend.__init__(pub)
        pub._keygen = pub._decryptor = None
        return pub

    def public(self) -> "SealBackend":
        pub = self._public_shell()
        pub.__dict__.update({k: v for k, v in self.__dict__.items()
                             if k not in ("counters", "_keygen", "_decryptor", "_rotation_keys")})
        pub._rotation_keys = dict(self._rotation_keys)
        return pub

    def public_parts(self):
        p = self.params
        shifts = sorted(self._rotation_keys)
        meta = {"backend": self.name, "ring_degree": p.ring_degree, "levels": p.levels,
                "scale_bits": p.scale_bits, "primes": [str(q) for q in self._primes],
                "security_bits": p.security_bits, "key_id": self.key_id.hex(),
                "rotation_shifts": shifts, "seal": "public_key,relin_keys,galois_keys*"}
        with tempfile.TemporaryDirectory(prefix="fhe-seal-") as tmp:
            blobs = [_save(self._public_key, tmp), _save(self._relin_keys, tmp)]
            blobs += [_save(self._rotation_keys[s], tmp) for s in shifts]
        return meta, blobs

    @classmethod
    def from_public_parts(cls, meta, blobs, allow_insecure: bool = False, **options) -> "SealBackend":
        what = "seal public context"
        if options:
            raise TypeError(f"unexpected options for the seal backend: {sorted(options)}")
        if _seal is None:
            raise UnsupportedBackend("the 'seal' backend needs TenSEAL: pip install tenseal")
        n = field(meta, "ring_degree", int, what, lambda v: v in SEAL_RING_DEGREES)
        levels = field(meta, "levels", int, what, lambda v: 0 <= v <= 64)
        scale_bits = field(meta, "scale_bits", int, what)
        try:
            params = seal_params(n, levels, scale_bits, allow_insecure)
        except ValueError as exc:  # InsecureParameters passes through: it is an FHEError
            raise SerializationError(f"{what}: {exc}") from None
        pub = cls._public_shell()
        pub._setup(params)
        if field(meta, "primes", list, what) != [str(q) for q in pub._primes]:
            raise SerializationError(f"{what}: prime chain differs from the one this build "
                                     f"derives for N={n}, {levels} levels, {scale_bits}-bit scale")
        pub.key_id = key_id_field(meta, what)
        shifts = shifts_field(meta, pub.slots, what)
        if len(blobs) != 2 + len(shifts):
            raise SerializationError(f"{what}: {len(blobs)} key blobs for {len(shifts)} "
                                     f"rotation keys (expected {2 + len(shifts)})")
        top = levels + 1  # primes of the key level (data primes + special)
        key_bytes = 2 * n * top * 8
        with tempfile.TemporaryDirectory(prefix="fhe-seal-") as tmp:
            pub._public_key = _load(_seal.PublicKey(), blobs[0], pub._context, tmp, key_bytes,
                                    "public key")
            pub._relin_keys = _load(_seal.RelinKeys(), blobs[1], pub._context, tmp,
                                    (levels + 1) * key_bytes, "relinearisation key")
            if pub._relin_keys.size() != 1:
                raise SerializationError(f"{what}: relinearisation key of size "
                                         f"{pub._relin_keys.size()}")
            for shift, blob in zip(shifts, blobs[2:]):
                keys = _load(_seal.GaloisKeys(), blob, pub._context, tmp,
                             (levels + 1) * key_bytes, f"rotation key {shift}")
                elt = pub._galois_tool.get_elt_from_step(shift)
                if keys.size() != 1 or not keys.has_key(elt):
                    raise SerializationError(f"{what}: blob for rotation {shift} does not hold "
                                             f"its Galois key")
                pub._rotation_keys[shift] = keys
        pub._encryptor = _seal.Encryptor(pub._context, pub._public_key)
        return pub

    def ciphertext_bytes(self, ct) -> bytes:
        with tempfile.TemporaryDirectory(prefix="fhe-seal-") as tmp:
            return _save(ct, tmp)

    def ciphertext_from_bytes(self, data):
        what = "seal ciphertext"
        bound = 2 * self.slots * 2 * (self.max_level + 1) * 8
        with tempfile.TemporaryDirectory(prefix="fhe-seal-") as tmp:
            ct = _load(_seal.Ciphertext(), data, self._context, tmp, bound, what)
        if ct.size() != 2 or not ct.is_ntt_form():
            raise SerializationError(f"{what}: size {ct.size()} (expected a relinearised "
                                     f"ciphertext of size 2 in NTT form)")
        level_data = self._context.get_context_data(ct.parms_id())
        if (level_data is None or level_data.chain_index() > self.max_level
                or ct.parms_id() != self._parms_ids.get(level_data.chain_index())):
            raise SerializationError(f"{what}: its parameters (parms_id) are not this context's "
                                     f"data levels")
        if ct.scale != self._scale:
            raise SerializationError(f"{what}: scale {ct.scale!r}, this context keeps every "
                                     f"ciphertext at 2^{self.params.scale_bits}")
        return ct

    # -- parameters -------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.params.ring_degree // 2

    @property
    def max_level(self) -> int:
        return self.params.levels

    @property
    def security_bits(self) -> int:
        return self.params.security_bits

    # -- keys ---------------------------------------------------------------------------
    def _make_rotation_key(self, shift: int):
        if self._keygen is None:
            raise self._no_secret_key("generate rotation keys")
        keys = _seal.GaloisKeys()
        # pass the Galois element: the binding resolves a list of positive ints to
        # SEAL's galois-elements overload, not the steps one
        self._keygen.create_galois_keys([self._galois_tool.get_elt_from_step(shift)], keys)
        return keys

    # -- encoding and encryption -----------------------------------------------------------
    def _check_level(self, level: int) -> int:
        if level not in self._parms_ids:
            raise OutOfLevels(f"level {level} is outside 0..{self.max_level}")
        return level

    def encode(self, values, level: int | None = None) -> SealPlaintext:
        level = self.max_level if level is None else self._check_level(level)
        return SealPlaintext(self._vector(values), level)

    def _plain(self, values, level: int, purpose: str):
        """A SEAL plaintext at ``level``: scale Δ for ``"add"``, ``q_level`` for ``"mul"``."""
        if isinstance(values, SealPlaintext):
            if values.level == level and purpose in values._encoded:
                return values._encoded[purpose]
            vec = values.values
        else:
            vec = self._vector(values)
        pt = _seal.Plaintext()
        scale = self._scale if purpose == "add" else self._drop_prime[level]
        self._encoder.encode(vec, self._parms_ids[level], scale, pt)
        if isinstance(values, SealPlaintext) and values.level == level:
            values._encoded[purpose] = pt
        return pt

    def encrypt(self, values):
        pt = _seal.Plaintext()
        self._encoder.encode(self._vector(values), self._parms_ids[self.max_level], self._scale, pt)
        ct = _seal.Ciphertext()
        self._encryptor.encrypt(pt, ct)
        return ct

    def _zero(self, level: int):
        """A fresh encryption of zero at ``level`` (SEAL refuses 'transparent' results)."""
        ct = self.encrypt(np.zeros(self.slots))
        if level < self.max_level:
            out = _seal.Ciphertext()
            self._evaluator.mod_switch_to(ct, self._parms_ids[level], out)
            ct = out
        return ct

    def decrypt(self, ct) -> np.ndarray:
        if self._decryptor is None:
            raise self._no_secret_key("decrypt")
        pt = _seal.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return np.asarray(self._encoder.decode_double(pt), dtype=np.float64)

    def level(self, ct) -> int:
        return self._context.get_context_data(ct.parms_id()).chain_index()

    # -- arithmetic ---------------------------------------------------------------------------
    def _at_level(self, ct, level: int):
        if self.level(ct) == level:
            return ct
        out = _seal.Ciphertext()
        self._evaluator.mod_switch_to(ct, self._parms_ids[level], out)
        return out

    def _aligned(self, a, b):
        level = min(self.level(a), self.level(b))
        return self._at_level(a, level), self._at_level(b, level), level

    def _run(self, op, level: int, *args):
        """``op(*args, out)``; a result SEAL calls transparent (exactly zero) becomes a
        fresh encryption of zero at ``level``."""
        out = _seal.Ciphertext()
        try:
            op(*args, out)
        except (ValueError, RuntimeError) as exc:  # the binding uses both
            if "transparent" not in str(exc):
                raise
            return self._zero(level)
        return out

    def add(self, a, b):
        a, b, level = self._aligned(a, b)
        self.counters["add"] += 1
        return self._run(self._evaluator.add, level, a, b)

    def sub(self, a, b):
        a, b, level = self._aligned(a, b)
        self.counters["add"] += 1
        return self._run(self._evaluator.sub, level, a, b)

    def add_plain(self, a, values):
        level = self.level(a)
        self.counters["add"] += 1
        return self._run(self._evaluator.add_plain, level, a, self._plain(values, level, "add"))

    def _rescaled(self, ct):
        self._evaluator.rescale_to_next_inplace(ct)
        ct.scale = self._scale
        self.counters["rescale"] += 1
        return ct

    def _need_level(self, level: int, what: str) -> None:
        if level < 1:
            raise OutOfLevels(f"{what} needs a level but the ciphertext is at level 0; "
                              f"use more levels (max_level={self.max_level})")

    def mul(self, a, b):
        return self.finish(self.product(a, b))

    def mul_plain(self, a, values):
        return self.finish(self.product_plain(a, values))

    # lazy products: a ct x ct product is a size-3 ciphertext at scale Δ², a ct x pt one is at
    # scale Δ·q_l (the plaintext is encoded at q_l); sums of one kind at one level share the
    # scale, so ``finish`` relinearises (size 3) and rescales a whole sum once
    lazy_products = True

    def product(self, a, b):
        a, b, level = self._aligned(a, b)
        self._need_level(level, "mul")
        out = _seal.Ciphertext()
        self._evaluator.multiply(a, b, out)
        self.counters["mul"] += 1
        return out

    def product_plain(self, a, values):
        level = self.level(a)
        self._need_level(level, "mul_plain")
        self.counters["mul_plain"] += 1
        return self._run(self._evaluator.multiply_plain, level, a, self._plain(values, level, "mul"))

    def finish(self, a):
        if a.size() > 2:
            self._evaluator.relinearize_inplace(a, self._relin_keys)
            self.counters["relinearize"] += 1
        return self._rescaled(a)

    def rotate(self, a, step: int):
        shift, keys = self._rotation_key(step)
        if shift == 0:
            return a
        out = _seal.Ciphertext()
        self._evaluator.rotate_vector(a, shift, keys, out)
        self.counters["rotate"] += 1
        return out
