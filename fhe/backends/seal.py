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

import numpy as np

from ..errors import (
    FHEError,
    OutOfLevels,
    UnsupportedBackend,
)
from .base import Backend
from .params import EDGE_PRIME_BITS, SealParams, seal_params

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
        if _seal is None:
            raise UnsupportedBackend("the 'seal' backend needs TenSEAL: pip install tenseal")
        self.params: SealParams = seal_params(ring_degree, levels, scale_bits, allow_insecure)
        n = self.params.ring_degree
        edges = _seal.CoeffModulus.Create(n, [EDGE_PRIME_BITS, EDGE_PRIME_BITS])
        middle = closest_primes(levels, scale_bits, n, exclude={q.value() for q in edges})
        chain = [edges[0], *map(_seal.Modulus, middle), edges[1]]
        parms = _seal.EncryptionParameters(_seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(chain)
        sec = _seal.SEC_LEVEL_TYPE.TC128 if self.params.security_bits >= 128 else _seal.SEC_LEVEL_TYPE.NONE
        self._context = _seal.SEALContext(parms, True, sec)
        if not self._context.parameters_set():
            raise FHEError(f"SEAL rejected the parameters: {self._context.parameters_error_message()}")

        self._keygen = _seal.KeyGenerator(self._context)
        public_key = _seal.PublicKey()
        self._keygen.create_public_key(public_key)
        self._relin_keys = _seal.RelinKeys()
        self._keygen.create_relin_keys(self._relin_keys)
        self._encryptor = _seal.Encryptor(self._context, public_key)
        self._decryptor = _seal.Decryptor(self._context, self._keygen.secret_key())
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
        raise TypeError("a SealBackend holds a secret key and cannot be serialised")

    def __repr__(self) -> str:
        p = self.params
        return (f"SealBackend(ring_degree={p.ring_degree}, levels={p.levels}, "
                f"scale_bits={p.scale_bits}, security_bits={p.security_bits})")

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
        a, b, level = self._aligned(a, b)
        self._need_level(level, "mul")
        out = _seal.Ciphertext()
        self._evaluator.multiply(a, b, out)
        self._evaluator.relinearize_inplace(out, self._relin_keys)
        self.counters["mul"] += 1
        return self._rescaled(out)

    def mul_plain(self, a, values):
        level = self.level(a)
        self._need_level(level, "mul_plain")
        self.counters["mul_plain"] += 1
        out = self._run(self._evaluator.multiply_plain, level, a, self._plain(values, level, "mul"))
        return self._rescaled(out)

    def rotate(self, a, step: int):
        shift, keys = self._rotation_key(step)
        if shift == 0:
            return a
        out = _seal.Ciphertext()
        self._evaluator.rotate_vector(a, shift, keys, out)
        self.counters["rotate"] += 1
        return out
