"""zk: zero-knowledge proofs over BLS12-381 (zkDL: einsum sumchecks, zkReLU, FAC4DNN).

Modules, one concept each: ``field`` (Fr vectors), ``group`` (G1, MSM), ``transcript``
(Fiat–Shamir), ``mle`` (multilinear extensions), ``sumcheck`` / ``zksumcheck`` (plain and
committed sumcheck), ``commit`` (Hyrax/Pedersen), ``sigma`` (product and zero proofs),
``einsum`` (einsum relation proofs).
"""
from .errors import ProofFormatError, VerificationError, ZKError
from .einsum import EinsumProof, prove_einsum, verify_einsum

__all__ = ["EinsumProof", "ProofFormatError", "VerificationError", "ZKError", "prove_einsum",
           "verify_einsum"]
