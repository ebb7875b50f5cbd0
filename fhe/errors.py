"""Errors raised by the fhe package; all derive from :class:`FHEError`."""


class FHEError(Exception):
    """Base class of every error the fhe package raises on bad input or state."""


class ShapeMismatch(FHEError, ValueError):
    """Operand shapes do not fit the einsum spec or the plan."""


class InvalidSpec(FHEError, ValueError):
    """The einsum string is malformed or does not match the operands' number of axes."""


class UnsupportedInput(FHEError, TypeError):
    """An operand's type or values cannot be encrypted (complex, non-numeric, non-finite)."""


class ValueTooLarge(UnsupportedInput, ValueError):
    """Values beyond what the context's scale and modulus chain can represent (``bound``):
    encrypting them would decrypt wrong after the computation, so they are refused."""

    def __init__(self, message: str, bound: float | None = None) -> None:
        super().__init__(message)
        self.bound = bound


class ScaleOverflowWarning(UserWarning):
    """Decrypted values reach the magnitude bound of their level: the result may have
    wrapped around the modulus and be wrong."""


class OutOfLevels(FHEError):
    """A multiplication needs a level the ciphertext no longer has.

    ``needed``: the multiplicative levels the computation needs (None when unknown);
    ``have``: the levels the ciphertexts (or the context) have. The message says both and
    what to do (a context with more levels: ``fhe.Context(levels=needed)`` or
    ``fhe.Context.for_einsum(spec, *shapes)``)."""

    def __init__(self, message: str, needed: int | None = None, have: int | None = None) -> None:
        super().__init__(message)
        self.needed = needed
        self.have = have


class MissingRotationKey(FHEError):
    """A rotation was requested whose Galois key was not generated."""


class ContextMismatch(FHEError):
    """Operands were encrypted under different contexts (keys)."""


class InsecureParameters(FHEError):
    """Parameters below 128-bit security were requested without ``allow_insecure=True``."""


class UnsupportedBackend(FHEError):
    """The backend name is unknown or its library is not installed."""


class NoSecretKey(FHEError):
    """The operation needs the secret key, which this (public) context does not hold."""


class SerializationError(FHEError, ValueError):
    """Bytes that are not a valid serialised fhe object (bad magic, version, checksum, sizes,
    parameters, or data the backend library rejects)."""


class BootstrapUnavailable(FHEError):
    """This backend or engine cannot bootstrap (refresh a ciphertext's levels)."""
