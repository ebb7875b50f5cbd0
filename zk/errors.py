"""Exceptions raised by the zk package."""
from contextlib import contextmanager


class ZKError(Exception):
    """Base class of every error the zk package raises on purpose."""


class VerificationError(ZKError):
    """A proof does not verify; the message names the check that failed."""


class ProofFormatError(ZKError, ValueError):
    """Proof bytes (or a proof object) are malformed: wrong version, length, or a non-canonical value."""


class StatementError(ZKError, ValueError):
    """A statement no sound proof can be made for (e.g. parameters whose equations could wrap
    modulo the field order); the message names the parameter."""


@contextmanager
def malformed_as_verification_error(what: str):
    """Turn what arithmetic raises on a proof object of the wrong structure (a missing field, a
    wrongly shaped array) into :class:`VerificationError`; ZKErrors pass unchanged."""
    try:
        yield
    except ZKError:
        raise
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
        raise VerificationError(f"malformed {what} object: {exc}") from None
