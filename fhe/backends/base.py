"""The small interface every CKKS backend implements.

A backend owns one key set (secret key, public key, relinearisation key, and the rotation
keys asked for so far) and a slot vector length ``slots``. Ciphertexts and plaintexts are
backend-native objects; the planner and executor only ever call the methods below.

Conventions shared by all backends:

* Values are real float64 vectors of length ``slots`` (shorter inputs are zero-padded).
* ``rotate(ct, k)`` is a *left* cyclic rotation: slot ``i`` of the result holds slot
  ``(i + k) % slots`` of the input (numpy: ``np.roll(v, -k)``). ``k`` may be negative.
* Levels count the multiplications a ciphertext can still absorb: a fresh ciphertext
  is at ``level == max_level``; ``mul`` and ``mul_plain`` rescale and consume one level.
  ``add``/``sub``/``mul`` on operands at different levels first bring the higher one
  down (mod-switch); that costs no level beyond the lower operand's.
* Multiplying at level 0 raises :class:`fhe.errors.OutOfLevels`; rotating by an amount
  whose key was never generated raises :class:`fhe.errors.MissingRotationKey`.
* Every method counts what it does in ``self.counters`` (``rotate``, ``mul``,
  ``mul_plain``, ``add``, ``rescale``, ``relinearize``) so tests can compare a plan's
  predicted cost with what ran.
* Lazy products (:attr:`Backend.lazy_products`): ``product``/``product_plain`` skip the
  relinearisation and rescale, ``add`` sums such unfinished products (same kind, same
  level), and ``finish`` relinearises and rescales the sum once. The executor uses them for
  every sum of products in a plan (a gather's masked diagonals, a diagonal method's terms).

Client/server (:mod:`fhe.serial`): :meth:`Backend.public` is the same key set without the
secret key (encrypts and evaluates, cannot decrypt or make keys); :meth:`public_bytes` /
:meth:`from_public_bytes` serialise that public part (parameters, public key,
relinearisation key, the rotation keys generated so far, a random key-set id), and
:meth:`ciphertext_bytes` / :meth:`ciphertext_from_bytes` one ciphertext. The byte container
(:func:`pack_container` / :func:`unpack_container`) is versioned, checksummed and checked
before anything is allocated; it never uses pickle.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import struct
from abc import ABC, abstractmethod
from collections import Counter

import numpy as np

from ..errors import BootstrapUnavailable, MissingRotationKey, NoSecretKey, SerializationError, ShapeMismatch

#: container format version written and read by this build
FORMAT_VERSION = 1
#: largest JSON header accepted (the rotation-key list of the largest ring fits easily)
MAX_HEADER_BYTES = 1 << 20
#: most blobs (keys, ciphertexts) one container may hold
MAX_BLOBS = 1 << 16
#: magic bytes of a serialised public context and of a serialised CipherTensor
PUBLIC_MAGIC = b"FHEPUBC\x00"
TENSOR_MAGIC = b"FHETENS\x00"
_DIGEST = 32  # blake2b-256 of everything before it
_PREFIX = struct.Struct("<8sHI")  # magic, version, header length


def pack_container(magic: bytes, meta: dict, blobs) -> bytes:
    """``magic | version | header length | JSON header (meta + blob sizes) | blobs | digest``.

    The digest (BLAKE2b-256) detects corruption and truncation; it is not a signature."""
    blobs = [bytes(b) for b in blobs]
    header = json.dumps({**meta, "blobs": [len(b) for b in blobs]}, sort_keys=True,
                        separators=(",", ":")).encode()
    if len(header) > MAX_HEADER_BYTES or len(blobs) > MAX_BLOBS:
        raise SerializationError("object too large to serialise (header or blob count)")
    body = b"".join([_PREFIX.pack(magic, FORMAT_VERSION, len(header)), header, *blobs])
    return body + hashlib.blake2b(body, digest_size=_DIGEST).digest()


def unpack_container(magic: bytes, data, what: str) -> tuple[dict, list[memoryview]]:
    """Check and split a :func:`pack_container` result: ``(meta, blobs)``; every size is
    checked against the bytes actually present before anything is read."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"{what}: expected bytes, got {type(data).__name__}")
    data = memoryview(data).cast("B")
    if len(data) < _PREFIX.size + _DIGEST:
        raise SerializationError(f"{what}: {len(data)} bytes is too short (truncated?)")
    got_magic, version, header_len = _PREFIX.unpack_from(data)
    if got_magic != magic:
        raise SerializationError(f"not a serialised {what} (bad magic bytes {bytes(got_magic)!r})")
    if version != FORMAT_VERSION:
        raise SerializationError(f"{what}: format version {version}; this build reads version "
                                 f"{FORMAT_VERSION}")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != digest:
        raise SerializationError(f"{what}: checksum mismatch (corrupted or truncated data)")
    if header_len > MAX_HEADER_BYTES or _PREFIX.size + header_len > len(body):
        raise SerializationError(f"{what}: bad header length {header_len}")
    try:
        meta = json.loads(bytes(body[_PREFIX.size:_PREFIX.size + header_len]))
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"{what}: unreadable header ({exc})") from None
    if not isinstance(meta, dict):
        raise SerializationError(f"{what}: header is not an object")
    sizes = meta.pop("blobs", None)
    if (not isinstance(sizes, list) or len(sizes) > MAX_BLOBS
            or not all(type(n) is int and n >= 0 for n in sizes)):
        raise SerializationError(f"{what}: bad blob table")
    start = _PREFIX.size + header_len
    if sum(sizes) != len(body) - start:
        raise SerializationError(f"{what}: blob sizes {sum(sizes)} do not match the "
                                 f"{len(body) - start} bytes present")
    blobs = []
    for n in sizes:
        blobs.append(body[start:start + n])
        start += n
    return meta, blobs


def field(meta: dict, name: str, kind, what: str, check=None):
    """``meta[name]``, which must be of exact type ``kind`` (and pass ``check``)."""
    value = meta.get(name)
    ok = (type(value) is kind if kind is not list
          else isinstance(value, list))
    if not ok or (check is not None and not check(value)):
        raise SerializationError(f"{what}: missing or bad field {name!r}: {value!r}"[:300])
    return value


def shifts_field(meta: dict, slots: int, what: str) -> list[int]:
    """The sorted, distinct rotation shifts in ``(0, slots)`` a header lists."""
    shifts = field(meta, "rotation_shifts", list, what)
    if (len(shifts) >= slots or not all(type(s) is int and 0 < s < slots for s in shifts)
            or shifts != sorted(set(shifts))):
        raise SerializationError(f"{what}: bad rotation-shift list")
    return shifts


def key_id_field(meta: dict, what: str) -> bytes:
    kid = field(meta, "key_id", str, what, lambda v: len(v) == 32)
    try:
        return bytes.fromhex(kid)
    except ValueError:
        raise SerializationError(f"{what}: bad key id") from None


class Backend(ABC):
    """A CKKS engine with its keys. Subclasses: ``sim``, ``seal``, ``desilo``."""

    #: registry name (``fhe.Context(backend=name)``)
    name: str = ""

    def __init__(self) -> None:
        self.counters: Counter = Counter()
        self._rotation_keys: dict[int, object] = {}  # slot shift in [1, slots) -> backend key
        #: random id of the key set, shared by its public copies and stamped on serialised
        #: ciphertexts so that one encrypted under other keys is refused
        self.key_id: bytes = secrets.token_bytes(16)

    # -- client / server ----------------------------------------------------------------
    @property
    def has_secret_key(self) -> bool:
        """False for a public backend (:meth:`public`, :meth:`from_public_bytes`)."""
        return True

    def _no_secret_key(self, what: str):
        return NoSecretKey(f"this context has no secret key (it is a public context): cannot "
                           f"{what}; only the client that holds the full context can")

    def public(self) -> "Backend":
        """The same keys without the secret key: encrypts and evaluates, cannot decrypt."""
        raise SerializationError(f"{self.name} backends cannot be made public yet")

    def public_parts(self) -> tuple[dict, list[bytes]]:
        """``(meta, blobs)`` of :meth:`public_bytes` (``meta["backend"]`` is the name)."""
        raise SerializationError(
            f"{self.name} contexts cannot be exported yet (no key serialisation)")

    @classmethod
    def from_public_parts(cls, meta: dict, blobs, allow_insecure: bool = False,
                          **options) -> "Backend":
        """Inverse of :meth:`public_parts` (already unpacked and checksum-checked)."""
        raise SerializationError(f"{cls.name} contexts cannot be imported yet")

    def public_bytes(self) -> bytes:
        """Parameters, public key, relinearisation key and the rotation keys generated so far
        (never the secret key), as bytes for :meth:`from_public_bytes`."""
        meta, blobs = self.public_parts()
        return pack_container(PUBLIC_MAGIC, {"kind": "public_context", **meta}, blobs)

    @classmethod
    def from_public_bytes(cls, data, allow_insecure: bool = False, **options) -> "Backend":
        """A public backend (no secret key) from :meth:`public_bytes`; insecure parameters
        are refused unless ``allow_insecure``. ``options``: where to run (desilo ``device``)."""
        meta, blobs = unpack_container(PUBLIC_MAGIC, data, "public context")
        if meta.get("kind") != "public_context" or meta.get("backend") != cls.name:
            raise SerializationError(f"not a public context of the {cls.name} backend "
                                     f"(backend {meta.get('backend')!r})")
        return cls.from_public_parts(meta, blobs, allow_insecure, **options)

    def ciphertext_bytes(self, ct) -> bytes:
        """One ciphertext as bytes (the backend's own format)."""
        raise SerializationError(f"{self.name} ciphertexts cannot be serialised yet")

    def ciphertext_from_bytes(self, data):
        """A ciphertext from :meth:`ciphertext_bytes`, checked against these parameters."""
        raise SerializationError(f"{self.name} ciphertexts cannot be deserialised yet")

    # -- parameters ---------------------------------------------------------------
    @property
    @abstractmethod
    def slots(self) -> int:
        """Number of real slots per ciphertext (ring degree / 2)."""

    @property
    @abstractmethod
    def max_level(self) -> int:
        """Multiplicative depth of a fresh ciphertext."""

    @property
    def security_bits(self) -> int | None:
        """Claimed security level of the parameters (None for the insecure ``sim``)."""
        return None

    # -- keys --------------------------------------------------------------------------
    def _shift(self, step: int) -> int:
        """A rotation amount as the left shift in ``[0, slots)`` it performs (the key's index)."""
        return int(step) % self.slots

    @abstractmethod
    def _make_rotation_key(self, shift: int):
        """The backend's key for a left shift by ``shift`` slots (``0 < shift < slots``)."""

    def ensure_rotation_keys(self, steps) -> None:
        """Generate the keys for the given left-rotation amounts (idempotent): only those asked
        for. Without the secret key (a public backend) missing keys raise MissingRotationKey."""
        steps = [int(s) for s in steps]
        missing = sorted({self._shift(s) for s in steps} - {0} - self._rotation_keys.keys())
        if missing and not self.has_secret_key:
            named = sorted({s for s in steps if self._shift(s) in missing})
            raise MissingRotationKey(
                f"no rotation keys for steps {named} and this context has no secret key to make "
                f"them: the client must call ctx.generate_rotation_keys(plan.rotation_keys) for "
                f"this computation before exporting the public context")
        for shift in missing:
            self._rotation_keys[shift] = self._make_rotation_key(shift)

    def has_rotation_key(self, step: int) -> bool:
        """Whether ``rotate(ct, step)`` can run without generating a key."""
        shift = self._shift(step)
        return shift == 0 or shift in self._rotation_keys

    def _rotation_key(self, step: int):
        """``(shift, key)`` for a rotation by ``step``; key None for shift 0; MissingRotationKey
        when it was never generated."""
        shift = self._shift(step)
        if shift == 0:
            return 0, None
        if shift not in self._rotation_keys:
            raise MissingRotationKey(
                f"no rotation key for a rotation by {step} (slot shift {shift}); "
                f"call ensure_rotation_keys([{step}]) first")
        return shift, self._rotation_keys[shift]

    # -- encoding and encryption ------------------------------------------------------
    def _vector(self, values) -> np.ndarray:
        """A real vector zero-padded to ``slots`` (ShapeMismatch if it does not fit)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size > self.slots:
            raise ShapeMismatch(f"{v.size} values do not fit in {self.slots} slots")
        return np.concatenate([v, np.zeros(self.slots - v.size)]) if v.size < self.slots else v

    @abstractmethod
    def encode(self, values: np.ndarray, level: int | None = None):
        """Encode a real vector as a plaintext usable with ciphertexts at ``level``."""

    @abstractmethod
    def encrypt(self, values: np.ndarray):
        """Encrypt a real vector (length <= slots) at ``max_level``."""

    @abstractmethod
    def decrypt(self, ct) -> np.ndarray:
        """Decrypt and decode to a float64 vector of length ``slots``."""

    @abstractmethod
    def level(self, ct) -> int:
        """Remaining multiplicative levels of a ciphertext."""

    # -- arithmetic ---------------------------------------------------------------------
    @abstractmethod
    def add(self, a, b):
        """Ciphertext + ciphertext."""

    @abstractmethod
    def sub(self, a, b):
        """Ciphertext - ciphertext."""

    @abstractmethod
    def add_plain(self, a, values: np.ndarray):
        """Ciphertext + real vector."""

    @abstractmethod
    def mul(self, a, b):
        """Ciphertext * ciphertext, relinearised and rescaled (one level)."""

    @abstractmethod
    def mul_plain(self, a, values: np.ndarray):
        """Ciphertext * real vector, rescaled (one level)."""

    # -- lazy products (the executor sums products before rescaling them) -----------------
    #: whether :meth:`product`/:meth:`product_plain` leave work for :meth:`finish`: then a
    #: sum of products at one level is relinearised and rescaled once, not once per product
    lazy_products: bool = False

    def product(self, a, b):
        """``mul`` without its relinearisation and rescale (done by :meth:`finish`); only
        :meth:`add` (with another unfinished product of the same kind, at the same level)
        and :meth:`finish` may take the result."""
        return self.mul(a, b)

    def product_plain(self, a, values):
        """``mul_plain`` without its rescale (done by :meth:`finish`); see :meth:`product`."""
        return self.mul_plain(a, values)

    def finish(self, a):
        """Relinearise and rescale an unfinished product (or a sum of them): the ciphertext
        ``mul``/``mul_plain`` would have given, one level down."""
        return a

    @abstractmethod
    def rotate(self, a, step: int):
        """Left cyclic rotation by ``step`` slots."""

    def rotate_many(self, a, steps) -> list:
        """``[rotate(a, s) for s in steps]``; a backend may share the key-switching
        decomposition of ``a`` between them (hoisting: desilo)."""
        return [self.rotate(a, s) for s in steps]

    # -- bootstrapping (desilo only) -------------------------------------------------------------
    @property
    def can_bootstrap(self) -> bool:
        """Whether :meth:`bootstrap` can refresh a ciphertext's levels here."""
        return False

    @property
    def levels_after_bootstrap(self) -> int | None:
        """The levels a bootstrapped ciphertext has (None: this backend cannot bootstrap)."""
        return None

    def bootstrap(self, a):
        """The same values at :attr:`levels_after_bootstrap` levels."""
        raise BootstrapUnavailable(f"the {self.name} backend cannot bootstrap; use fhe.Context('desilo', levels=L, "
                                   "bootstrap=True, allow_insecure=True)")
