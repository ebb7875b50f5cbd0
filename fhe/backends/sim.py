"""``sim``: a CKKS *simulator* on numpy slot vectors — a debugging aid, not encryption.

A ciphertext here is a plain float64 vector with a level. Everything else behaves like the
real backends (``seal``, ``desilo``) so plans can be checked quickly and exactly:

* the same slot count for the same parameters (``ring_degree=None`` picks the ring the
  ``seal`` backend would pick for ``levels`` and ``scale_bits``),
* levels: ``mul``/``mul_plain`` consume one, at level 0 they raise :class:`OutOfLevels`;
  mixed-level operands meet at the lower level,
* keys: rotating by a step whose key was never generated raises :class:`MissingRotationKey`,
* ciphertexts of another backend instance (another key set) are refused,
* ``counters`` count exactly what the real backends count.

Values are exact unless ``noise`` > 0: then Gaussian noise of that standard deviation is
added to every fresh encryption, product and rotation (a crude stand-in for CKKS noise).
It provides NO confidentiality: never use it for data that needs protection.
"""
from __future__ import annotations

import struct

import numpy as np

from ..errors import ContextMismatch, FHEError, OutOfLevels
from .base import Backend, SerializationError, field, key_id_field, shifts_field

_CT_HEADER = struct.Struct("<16sH")  # key id, level; then ``slots`` little-endian float64


class SimCiphertext:
    """A slot vector with a level, owned by one :class:`SimBackend`."""

    __slots__ = ("values", "level", "owner")

    def __init__(self, values: np.ndarray, level: int, owner: "SimBackend") -> None:
        self.values = values
        self.level = level
        self.owner = owner


class SimPlaintext:
    """An encoded vector for ciphertexts at one level."""

    __slots__ = ("values", "level")

    def __init__(self, values: np.ndarray, level: int) -> None:
        self.values = values
        self.level = level


class SimBackend(Backend):
    """Numpy slots with real-backend bookkeeping (levels, keys, counters)."""

    name = "sim"

    def __init__(
        self,
        ring_degree: int | None = None,
        levels: int = 3,
        scale_bits: int = 40,
        allow_insecure: bool = False,
        noise: float = 0.0,
        seed: int | None = None,
        bootstrap: bool = False,
    ) -> None:
        super().__init__()
        self._bootstrap = bool(bootstrap)
        if ring_degree is None:
            from .params import seal_params

            ring_degree = seal_params(None, levels, scale_bits, allow_insecure=True).ring_degree
        if ring_degree < 2 or ring_degree & (ring_degree - 1):
            raise ValueError(f"ring_degree must be a power of two, got {ring_degree}")
        if levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        self.ring_degree = int(ring_degree)
        self.scale_bits = scale_bits
        self.noise = float(noise)
        self._levels = int(levels)
        self._rng = np.random.default_rng(seed)
        self._secret = True

    def __repr__(self) -> str:
        public = ", public (no secret key)" if not self._secret else ""
        return (f"SimBackend(ring_degree={self.ring_degree}, levels={self._levels}, "
                f"noise={self.noise}{public}) -- simulator, no encryption")

    # -- client / server -----------------------------------------------------------------
    @property
    def has_secret_key(self) -> bool:
        return self._secret

    # -- bootstrapping (as desilo's preset: needs the secret key's bootstrap keys) ----------
    @property
    def can_bootstrap(self) -> bool:
        return self._bootstrap and self._secret

    @property
    def levels_after_bootstrap(self) -> int | None:
        return self._levels if self._bootstrap else None

    def bootstrap(self, a):
        """The same values at :attr:`levels_after_bootstrap`; like desilofhe's bootstrap, only
        for values in [-1, 1] (FHEError otherwise: a real bootstrap would return garbage)."""
        if not self.can_bootstrap:
            return super().bootstrap(a)
        a = self._own(a)
        peak = float(np.max(np.abs(a.values)))
        if peak > 1.0 + 1e-6:
            raise FHEError(f"bootstrap of values up to {peak:.6g} in magnitude: bootstrapping "
                           f"(desilofhe's modular reduction) needs values in [-1, 1]")
        self.counters["bootstrap"] += 1
        return SimCiphertext(self._noisy(a.values.copy()), self._levels, self)

    def public(self) -> "SimBackend":
        pub = SimBackend(self.ring_degree, self._levels, self.scale_bits, noise=self.noise)
        pub.key_id = self.key_id
        pub._rotation_keys = dict(self._rotation_keys)
        pub._secret = False
        return pub

    def public_parts(self):
        meta = {"backend": self.name, "ring_degree": self.ring_degree, "levels": self._levels,
                "scale_bits": self.scale_bits, "noise": self.noise, "key_id": self.key_id.hex(),
                "rotation_shifts": sorted(self._rotation_keys)}
        return meta, []

    @classmethod
    def from_public_parts(cls, meta, blobs, allow_insecure: bool = False, **options) -> "SimBackend":
        what = "sim public context"
        if options:
            raise TypeError(f"unexpected options for the sim backend: {sorted(options)}")
        n = field(meta, "ring_degree", int, what,
                  lambda v: 2 <= v <= 1 << 17 and not v & (v - 1))
        levels = field(meta, "levels", int, what, lambda v: 0 <= v <= 64)
        scale_bits = field(meta, "scale_bits", int, what, lambda v: 1 <= v <= 64)
        noise = field(meta, "noise", float, what, lambda v: 0.0 <= v < float("inf"))
        if blobs:
            raise SerializationError(f"{what}: unexpected key data")
        pub = cls(n, levels, scale_bits, noise=noise)
        pub.key_id = key_id_field(meta, what)
        pub._rotation_keys = {s: s for s in shifts_field(meta, pub.slots, what)}
        pub._secret = False
        return pub

    def ciphertext_bytes(self, ct) -> bytes:
        ct = self._own(ct)
        return _CT_HEADER.pack(self.key_id, ct.level) + ct.values.astype("<f8").tobytes()

    def ciphertext_from_bytes(self, data) -> SimCiphertext:
        data = memoryview(data).cast("B")
        if len(data) != _CT_HEADER.size + 8 * self.slots:
            raise SerializationError(f"sim ciphertext: {len(data)} bytes, expected "
                                     f"{_CT_HEADER.size + 8 * self.slots} for {self.slots} slots")
        key_id, level = _CT_HEADER.unpack_from(data)
        if key_id != self.key_id:
            raise ContextMismatch("this ciphertext was encrypted under another key set")
        if level > self.max_level:
            raise SerializationError(f"sim ciphertext: level {level} above {self.max_level}")
        values = np.frombuffer(data[_CT_HEADER.size:], dtype="<f8").astype(np.float64)
        if not np.isfinite(values).all():
            raise SerializationError("sim ciphertext: non-finite slot values")
        return SimCiphertext(values, level, self)

    # -- parameters -----------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.ring_degree // 2

    @property
    def max_level(self) -> int:
        return self._levels

    # -- keys ---------------------------------------------------------------------------
    def _make_rotation_key(self, shift: int):
        return shift  # the simulator needs no key material, only the bookkeeping

    # -- encoding and encryption ------------------------------------------------------------
    def _noisy(self, v: np.ndarray) -> np.ndarray:
        return v + self._rng.normal(0.0, self.noise, v.shape) if self.noise else v

    def _own(self, ct) -> SimCiphertext:
        if not isinstance(ct, SimCiphertext) or (ct.owner is not self
                                                 and ct.owner.key_id != self.key_id):
            raise ContextMismatch("ciphertext does not belong to this sim backend (other keys)")
        return ct

    def _plain(self, values, level: int) -> np.ndarray:
        if isinstance(values, SimPlaintext):
            return values.values
        return self._vector(values)

    def encode(self, values, level: int | None = None) -> SimPlaintext:
        level = self.max_level if level is None else level
        if not 0 <= level <= self.max_level:
            raise OutOfLevels(f"level {level} is outside 0..{self.max_level}")
        return SimPlaintext(self._vector(values), level)

    def encrypt(self, values) -> SimCiphertext:
        return SimCiphertext(self._noisy(self._vector(values)), self.max_level, self)

    def decrypt(self, ct) -> np.ndarray:
        if not self._secret:
            raise self._no_secret_key("decrypt")
        return self._own(ct).values.copy()

    def level(self, ct) -> int:
        return self._own(ct).level

    # -- arithmetic -------------------------------------------------------------------------
    def _pair(self, a, b) -> tuple[np.ndarray, np.ndarray, int]:
        a, b = self._own(a), self._own(b)
        return a.values, b.values, min(a.level, b.level)

    @staticmethod
    def _need_level(level: int, what: str) -> None:
        if level < 1:
            raise OutOfLevels(f"{what} needs a level but the ciphertext is at level 0")

    def add(self, a, b):
        x, y, level = self._pair(a, b)
        self.counters["add"] += 1
        return SimCiphertext(x + y, level, self)

    def sub(self, a, b):
        x, y, level = self._pair(a, b)
        self.counters["add"] += 1
        return SimCiphertext(x - y, level, self)

    def add_plain(self, a, values):
        a = self._own(a)
        self.counters["add"] += 1
        return SimCiphertext(a.values + self._plain(values, a.level), a.level, self)

    def mul(self, a, b):
        x, y, level = self._pair(a, b)
        self._need_level(level, "mul")
        self.counters["mul"] += 1
        self.counters["relinearize"] += 1
        self.counters["rescale"] += 1
        return SimCiphertext(self._noisy(x * y), level - 1, self)

    def mul_plain(self, a, values):
        a = self._own(a)
        self._need_level(a.level, "mul_plain")
        self.counters["mul_plain"] += 1
        self.counters["rescale"] += 1
        product = a.values * self._plain(values, a.level)
        return SimCiphertext(self._noisy(product), a.level - 1, self)

    def rotate(self, a, step: int):
        a = self._own(a)
        shift, _ = self._rotation_key(step)
        if shift == 0:
            return a
        self.counters["rotate"] += 1
        return SimCiphertext(self._noisy(np.roll(a.values, -shift)), a.level, self)
