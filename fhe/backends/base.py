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
  ``mul_plain``, ``add``, ``rescale``) so tests can compare a plan's predicted cost with
  what ran.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter

import numpy as np

from ..errors import MissingRotationKey, ShapeMismatch


class Backend(ABC):
    """A CKKS engine with its keys. Subclasses: ``sim``, ``seal``, ``desilo``."""

    #: registry name (``fhe.Context(backend=name)``)
    name: str = ""

    def __init__(self) -> None:
        self.counters: Counter = Counter()
        self._rotation_keys: dict[int, object] = {}  # slot shift in [1, slots) -> backend key

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
        """Generate the keys for the given left-rotation amounts (idempotent): only those asked for."""
        for shift in sorted({self._shift(s) for s in steps} - {0} - self._rotation_keys.keys()):
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

    @abstractmethod
    def rotate(self, a, step: int):
        """Left cyclic rotation by ``step`` slots."""
