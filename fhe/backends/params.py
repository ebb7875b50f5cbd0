"""CKKS parameter selection shared by the ``seal`` and ``desilo`` backends.

Security follows the Homomorphic Encryption Standard (Albrecht et al., 2018), table for
uniform ternary secrets and classical attacks: a ring of degree ``N`` is rated at a
security level when the bit size of the *largest* modulus used with the secret key
(``Q·P``: ciphertext modulus times the key-switching special primes) stays at or below
the table entry. Parameters below 128 bits are refused unless the caller passes
``allow_insecure=True``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InsecureParameters

#: HE standard, ternary secret: ring degree -> max log2(Q·P) for 128/192/256-bit security.
#: N = 2^16 is not in the 2018 tables; 1747 is the conservative value later estimates
#: (and desilofhe's own presets) use for 128 bits.
HE_STANDARD_MAX_LOG_QP: dict[int, dict[int, int]] = {
    128: {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881, 65536: 1747},
    192: {1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611},
    256: {1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476},
}

#: Bits of the first (base) and last (special, key-switching) prime of a SEAL chain.
EDGE_PRIME_BITS = 60
#: Largest SEAL scale: results must stay below 2^(60 - scale_bits - 1) in magnitude.
MAX_SCALE_BITS = 50


def security_bits(ring_degree: int, log_qp: int) -> int:
    """Security level of ``(N, log2 Q·P)`` per the HE standard table.

    Returns 256, 192 or 128 when a table row covers the modulus. Below 128 bits the
    standard gives no number; we return ``floor(128 · maxlogQP_128(N) / log_qp)``, the
    usual first-order estimate (security grows roughly like ``N / log q``) — a rough
    figure for reporting, not a guarantee.
    """
    for level in (256, 192, 128):
        bound = HE_STANDARD_MAX_LOG_QP[level].get(ring_degree)
        if bound is not None and log_qp <= bound:
            return level
    bound = HE_STANDARD_MAX_LOG_QP[128].get(ring_degree)
    if bound is None:
        raise InsecureParameters(f"ring degree {ring_degree} is not in the HE standard table")
    return (128 * bound) // log_qp


def check_security(ring_degree: int, log_qp: int, allow_insecure: bool) -> int:
    """Return :func:`security_bits`; raise :class:`InsecureParameters` below 128 unless allowed."""
    bits = security_bits(ring_degree, log_qp)
    if bits < 128 and not allow_insecure:
        bound = HE_STANDARD_MAX_LOG_QP[128][ring_degree]
        raise InsecureParameters(
            f"ring degree {ring_degree} with a {log_qp}-bit modulus Q·P gives about {bits}-bit "
            f"security; 128-bit security allows at most {bound} bits at this ring degree "
            f"(HE standard, ternary secret). Use a larger ring degree, fewer levels, or pass "
            f"allow_insecure=True"
        )
    return bits


def smallest_secure_ring(log_qp: int, min_ring_degree: int = 1024) -> int | None:
    """Smallest ring degree ``>= min_ring_degree`` rated 128-bit for ``log_qp``, or None."""
    for n, bound in sorted(HE_STANDARD_MAX_LOG_QP[128].items()):
        if n >= min_ring_degree and log_qp <= bound:
            return n
    return None


# --------------------------------------------------------------------------------- SEAL
#: Ring degrees SEAL (as built into TenSEAL) accepts for CKKS.
SEAL_RING_DEGREES = (4096, 8192, 16384, 32768)


@dataclass(frozen=True)
class SealParams:
    """A SEAL CKKS parameter set: ring degree and the bit sizes of the prime chain."""

    ring_degree: int
    prime_bits: tuple[int, ...]  # base prime, ``levels`` scale primes, special prime
    scale_bits: int
    security_bits: int

    @property
    def levels(self) -> int:
        return len(self.prime_bits) - 2

    @property
    def log_qp(self) -> int:
        return sum(self.prime_bits)


def seal_params(
    ring_degree: int | None, levels: int, scale_bits: int, allow_insecure: bool
) -> SealParams:
    """Choose the SEAL chain ``[60, scale_bits × levels, 60]`` and the smallest ring that is
    128-bit secure for it (or check the ring the caller gave)."""
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    if not 20 <= scale_bits <= MAX_SCALE_BITS:
        raise ValueError(f"scale_bits must be in [20, {MAX_SCALE_BITS}] (the {EDGE_PRIME_BITS}-bit "
                         f"base prime must leave room for the integer part), got {scale_bits}")
    bits = (EDGE_PRIME_BITS,) + (scale_bits,) * levels + (EDGE_PRIME_BITS,)
    log_qp = sum(bits)
    if ring_degree is None:
        ring_degree = smallest_secure_ring(log_qp, min_ring_degree=SEAL_RING_DEGREES[0])
        if ring_degree is None or ring_degree not in SEAL_RING_DEGREES:
            if not allow_insecure:
                raise InsecureParameters(
                    f"{levels} levels at {scale_bits}-bit scale need a {log_qp}-bit modulus Q·P; "
                    f"no SEAL ring degree up to {SEAL_RING_DEGREES[-1]} is 128-bit secure for it "
                    f"(max {HE_STANDARD_MAX_LOG_QP[128][SEAL_RING_DEGREES[-1]]} bits). Lower "
                    f"levels or scale_bits, or pass allow_insecure=True"
                )
            ring_degree = SEAL_RING_DEGREES[-1]
    elif ring_degree not in SEAL_RING_DEGREES:
        raise ValueError(f"SEAL ring degree must be one of {SEAL_RING_DEGREES}, got {ring_degree}")
    sec = check_security(ring_degree, log_qp, allow_insecure)
    return SealParams(ring_degree, bits, scale_bits, sec)


# ------------------------------------------------------------------------------ desilofhe
#: desilofhe picks its own moduli from ``Engine(max_level=L)``; measured for desilofhe 2.0
#: (word count of a relinearisation key, bit size of each word read from the uniform part
#: of a public key): engine max_level -> (ring degree, log2 Q·P). Rows with log2 Q·P above
#: the 128-bit bound (e.g. L = 4..7 at N = 2^14) exist in desilofhe but are insecure by the
#: HE standard, so the backend skips them unless ``allow_insecure``.
DESILO_ENGINES: dict[int, tuple[int, int]] = {
    # max_level 2 (8192, 180) is left out: desilofhe 2.0 cannot create a relinearisation key at
    # that engine's top level, so levels=2 takes the max_level 3 engine.
    1: (8192, 200),
    3: (16384, 420), 4: (16384, 480), 5: (16384, 540), 6: (16384, 540), 7: (16384, 520),
    8: (32768, 720), 9: (32768, 720), 10: (32768, 780), 11: (32768, 840), 12: (32768, 840),
    13: (32768, 900), 14: (32768, 960), 15: (32768, 960), 16: (32768, 1000), 17: (32768, 980),
    18: (65536, 1200), 20: (65536, 1320), 24: (65536, 1440), 28: (65536, 1620),
}

#: desilofhe's CKKS preset fixes the scale at 2^40.
DESILO_SCALE_BITS = 40


@dataclass(frozen=True)
class DesiloParams:
    """A desilofhe engine choice: the engine's own max level and ring, and the level
    fresh ciphertexts are encrypted at (``levels`` <= ``engine_max_level``)."""

    engine_max_level: int
    ring_degree: int
    log_qp: int
    levels: int
    security_bits: int


def desilo_params(
    ring_degree: int | None, levels: int, scale_bits: int, allow_insecure: bool
) -> DesiloParams:
    """Smallest desilofhe engine (ring first, then max level) with ``max_level >= levels``
    that is 128-bit secure and has the requested ring degree, if one was given."""
    if scale_bits != DESILO_SCALE_BITS:
        raise ValueError(f"desilofhe fixes the CKKS scale at 2^{DESILO_SCALE_BITS}; got scale_bits={scale_bits}")
    if levels < 1:
        raise ValueError(f"desilofhe engines have at least one level; got levels={levels}")
    candidates = sorted(
        (n, lvl, logqp)
        for lvl, (n, logqp) in DESILO_ENGINES.items()
        if lvl >= levels and (ring_degree is None or n == ring_degree)
    )
    if not candidates:
        raise ValueError(
            f"no desilofhe engine has ring degree {ring_degree} and at least {levels} levels "
            f"(known engines: {DESILO_ENGINES})"
        )
    secure = [c for c in candidates if security_bits(c[0], c[2]) >= 128]
    n, lvl, logqp = secure[0] if secure else candidates[0]
    sec = check_security(n, logqp, allow_insecure)
    return DesiloParams(lvl, n, logqp, levels, sec)
