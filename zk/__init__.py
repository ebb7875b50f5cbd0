"""zk: zero-knowledge proofs over BLS12-381 (zkDL: einsum sumchecks, zkReLU, FAC4DNN).

Modules, one concept each: ``field`` (Fr vectors), ``group`` (G1, MSM), ``transcript``
(Fiat–Shamir), ``mle`` (multilinear extensions), ``sumcheck`` / ``zksumcheck`` (plain and
committed sumcheck), ``commit`` (Hyrax/Pedersen), ``sigma`` (product and zero proofs),
``einsum`` (einsum relation proofs), ``padding`` (zero padding), ``magnitudes`` (the integer
bounds that make every equation hold over the integers), ``architecture`` (a model's forward
graph as published), ``keys`` and ``lower`` (a graph's ops lowered to relations), ``bits``,
``stack`` and ``fac4dnn`` (the aggregated training circuit), ``witness`` (its fixed-point witness), ``statement`` and
``proof_format`` (what a proof is about, and its file), ``training`` (the public API), ``dataset``
and ``model`` (published commitments), ``chain`` (proofs linked through model commitments),
``segments`` and ``executors`` (long runs proved as chained segments, in-process, in local processes
or on Ray), ``device`` (where the prover's loops run).
"""
from .errors import ProofFormatError, StatementError, VerificationError, ZKError
from .architecture import Architecture
from .einsum import EinsumProof, prove_einsum, verify_einsum
from .dataset import DatasetCommitment, DatasetOpening, commit_dataset
from .model import ModelCommitment, ModelOpening, commit_model
from .training import (InferenceProof, TrainingProof, TrainingResult, TrainingStatement, inference_witness,
                       prove_inference, prove_training, training_witness, verify_inference,
                       verify_training)
from .chain import Chain, ChainReport, verify_chain
from .segments import RunResult, prove_run
from .recorder import Recorder

__all__ = ["Architecture", "Chain", "ChainReport", "Recorder", "RunResult", "prove_run", "DatasetCommitment", "DatasetOpening", "ModelCommitment", "ModelOpening",
           "TrainingResult", "commit_dataset", "commit_model", "verify_chain", "EinsumProof", "InferenceProof", "ProofFormatError", "StatementError", "TrainingProof",
           "TrainingStatement", "VerificationError", "ZKError", "inference_witness", "prove_einsum",
           "prove_inference", "prove_training", "training_witness", "verify_einsum",
           "verify_inference", "verify_training"]
