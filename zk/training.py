"""zkDL training and inference proofs: the public API.

``prove_training(model, data, lr)`` runs the SGD steps in exact fixed point through
:mod:`circuits` (the witness, :mod:`zk.witness`), commits to every tensor, and proves the
aggregated FAC4DNN circuit (:mod:`zk.fac4dnn`). The statement (:mod:`zk.statement`) —
architecture, hyperparameters, number of steps, commitments to the initial weights, to every
step's data batch and to the final weights, and which batch of which published dataset each step
used — is all the verifier needs besides the proof (:mod:`zk.proof_format`: the file). Published
commitments (:mod:`zk.dataset`, :mod:`zk.model`) are reused as they are, so a verifier ties a
proof to a dataset and to the models before and after it by comparing bytes, and proofs chain
(:mod:`zk.chain`).
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

import circuits

from . import commit, committed, dataset as _dataset, fac4dnn, model as _model
from . import device as _device
from .commit import Commitment
from .dataset import DatasetCommitment, DatasetOpening
from .device import CPU, Device
from .errors import StatementError, VerificationError, malformed_as_verification_error
from .fac4dnn import Circuit
from .model import ModelCommitment, ModelOpening
from .proof_format import InferenceProof, TrainingProof
from .statement import MAX_STEPS, TrainingStatement
from .transcript import Transcript
from .witness import Run, SGDOptions, inference_run, model_keys, training_run

__all__ = ["TrainingStatement", "TrainingProof", "InferenceProof", "prove_training",
           "verify_training", "prove_inference", "verify_inference", "synthetic_mlp",
           "synthetic_batches", "TrainingResult", "training_witness", "inference_witness"]


# ----------------------------------------------------------------------------------------
# proving
# ----------------------------------------------------------------------------------------
class TrainingResult(NamedTuple):
    """What :func:`prove_training` returns: the proof, the trained float32 torch model and the
    final model's secret opening (the start of a next proof or of an inference proof)."""

    proof: "TrainingProof"
    model: object
    opening: ModelOpening


def prove_training(model, data, lr: float, steps: int | None = None, scale_bits: int | None = None,
                   progress=None, key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto", *,
                   epochs: int | None = None, param_scale: int | None = None,
                   start_batch: int = 0, momentum: float = 0.0, dampening: float = 0.0,
                   weight_decay: float = 0.0, loss: str = "mse") -> TrainingResult:
    """Run SGD steps (``loss``: ``"mse"``, or ``"cross_entropy"`` — softmax cross-entropy with
    targets as rows of probabilities, class indices one-hot; mean over each batch's real rows) of
    a model in exact fixed point and prove them: a :class:`TrainingResult` ``(proof, trained torch
    model, final model's opening)``.

    ``model``: a torch module :func:`circuits.trace` accepts (Linear with or without bias, ReLU,
    residual adds, average pooling; e.g. a ``torch.nn.Sequential`` MLP), or a
    :class:`zk.ModelOpening` (a committed model, e.g. a previous proof's final model: the proof
    then starts from exactly its committed integers). ``data``: a :class:`zk.DatasetOpening`
    (a published dataset: the proof reuses its commitments and records the batch of every step),
    or any iterable of ``(X, Y)`` batches such as a torch DataLoader (committed now; the last
    batch may be smaller). Steps visit batches ``start_batch, start_batch + 1, ...`` cyclically:
    ``steps`` of them, or ``epochs`` passes (one by default); an iterable is read once per epoch.
    ``scale_bits``: activations' fixed point (default: the dataset's, else 16); ``param_scale``:
    the parameters' when ``model`` is a torch module (default
    :func:`circuits.param_scale_for`). ``progress(stage, done, total)`` is called as work
    proceeds. ``device``: ``"auto"``, ``"cpu"`` or ``"cuda"``; the proof does not depend on it.
    ``momentum``, ``dampening``, ``weight_decay``: ``torch.optim.SGD``'s, from a fresh optimizer
    (no momentum buffers yet; they are committed from step to step inside the proof).
    Inputs or updates that underflow the fixed point are refused (ValueError).
    """
    dev = _device.resolve(device)
    sgd = SGDOptions(float(momentum), float(dampening), float(weight_decay), loss)
    run, dataset, indices = _prepare_training(model, data, float(lr), steps, scale_bits, progress, epochs,
                                              param_scale, start_batch, key, sgd=sgd)
    run.circuit.check_sound()
    proof, stmt_com = commit_and_prove(run.circuit, run.values, float(lr), key, progress, run.reused,
                                       dataset.commitment.digest, indices, device=dev)
    c = run.circuit
    final = {name: stmt_com[k] for k, name in model_keys(c, c.steps)}
    opening = _model.from_integers(c.architecture, run.final, key, final, run.final_buffers)
    return TrainingResult(proof, trained_model(model, opening), opening)


def prove_inference(model, X, scale_bits: int | None = None, progress=None,
                    key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto") -> InferenceProof:
    """Prove that the committed output is ``model(X)`` in exact fixed point (statement:
    architecture, commitments to ``X``, the parameters and the output). ``model``: a torch MLP,
    or a :class:`zk.ModelOpening` (e.g. a training proof's final model: the statement then holds
    that model's published commitments, :func:`verify_inference` with ``model=``)."""
    dev = _device.resolve(device)
    run = _inference_run(model, X, scale_bits, key)
    run.circuit.check_sound()
    return commit_and_prove(run.circuit, run.values, 0.0, key, progress, run.reused, device=dev)[0]


def prove_witness(circuit: Circuit, values: dict, lr: float, key: commit.CommitKey = commit.DEFAULT_KEY,
                  progress=None, device="auto"):
    """Commit to a witness (``{key: integer tensor}`` for every key of ``circuit``) and prove the
    circuit on ``device`` (:mod:`zk.device`). An invalid witness yields a proof that does not verify;
    a statement whose equations could wrap modulo ``r`` is refused (:class:`zk.StatementError`)."""
    circuit.check_sound()
    return commit_and_prove(circuit, values, lr, key, progress, device=_device.resolve(device))[0]


def commit_and_prove(circuit: Circuit, values: dict, lr: float, key: commit.CommitKey, progress, reused=None,
                     dataset: bytes = committed.NO_DIGEST, batch_indices=None, *, device: Device = CPU):
    """Commit to the witness ``values`` and prove ``circuit`` on ``device``, without checking
    soundness (the callers do): ``(proof, statement tensors {key: (Commitment, Opening)})``;
    ``reused``: published statement tensors, used as they are."""
    reused = reused or {}
    fresh = [(k, s) for k, s in circuit.statement_keys if k not in reused]
    stmt_com = {**reused, **fac4dnn.commit_tensors(circuit, values, fresh, key, device,
                                                   _stage(progress, "commit statement"))}
    stmt_com = {k: stmt_com[k] for k, _ in circuit.statement_keys}
    derived = circuit.derived
    proof_com = fac4dnn.commit_tensors(circuit, values, [(k, s) for k, s in circuit.proof_keys if k not in derived],
                                       key, device, _stage(progress, "commit witness"))
    proof_com.update(fac4dnn.derive_tensors(circuit, values, {**stmt_com, **proof_com}, key, device))
    proof_com = {k: proof_com[k] for k, _ in circuit.proof_keys}
    indices = tuple(range(circuit.steps)) if batch_indices is None else tuple(batch_indices)
    statement = TrainingStatement(circuit.architecture, circuit.batch, circuit.steps, lr, circuit.training,
                                  {k: c for k, (c, _) in stmt_com.items()}, circuit.data_bits,
                                  circuit.param_bits, circuit.rows,
                                  indices if circuit.training else (0,), dataset, circuit.momentum,
                                  circuit.dampening, circuit.weight_decay, circuit.resumed, circuit.loss)
    commitments = {k: c for k, (c, _) in proof_com.items()}
    t = _transcript(statement, commitments)
    aggregated = fac4dnn.prove(circuit, {**stmt_com, **proof_com}, t, key, device, _stage(progress, "prove"))
    cls = TrainingProof if circuit.training else InferenceProof
    return cls(statement, commitments, aggregated), stmt_com


def _stage(progress, name):
    """``progress`` reporting under the stage name ``name`` (None stays None)."""
    if progress is None:
        return None
    return lambda _stage, done, total: progress(name, done, total)


def _transcript(statement: TrainingStatement, commitments: dict) -> Transcript:
    """The proof's Fiat–Shamir transcript, as prover and verifier start it: the kind's domain,
    the statement, then the proof's commitments."""
    t = Transcript(b"zkfhe/training/v2" if statement.training else b"zkfhe/inference/v2")
    statement.absorb(t)
    for key, c in commitments.items():
        t.absorb(f"commitment/{key}", c.to_bytes())
    return t


# ----------------------------------------------------------------------------------------
# verifying
# ----------------------------------------------------------------------------------------
def verify_training(proof: TrainingProof, key: commit.CommitKey = commit.DEFAULT_KEY, *,
                    dataset: DatasetCommitment | None = None, initial_model: ModelCommitment | None = None) -> bool:
    """Verify a training proof: True, or VerificationError naming the failing check. With
    ``dataset`` (a published :class:`zk.DatasetCommitment`), every step must have used one of its
    batches as committed; with ``initial_model``, training must start from that model."""
    return _verify_training(proof, key, dataset, initial_model)


def verify_inference(proof: InferenceProof, key: commit.CommitKey = commit.DEFAULT_KEY, *,
                     model: ModelCommitment | None = None) -> bool:
    """Verify an inference proof: True, or VerificationError naming the failing check. With
    ``model`` (a published :class:`zk.ModelCommitment`, e.g. ``training_proof.final_model``),
    the inference must be of exactly that model."""
    def published(statement):
        if model is not None:
            _model.check_statement(statement.initial_model, model, "inference", optimizer_state=False)
    return _verify(proof, InferenceProof, key, published)


def _verify_training(proof, key, dataset=None, initial_model=None, checks=None) -> bool:
    """:func:`verify_training`, its multi-scalar equations added to ``checks`` when given."""
    def published(statement):
        if dataset is not None:
            _dataset.check_statement(statement, dataset)
        if initial_model is not None:
            _model.check_statement(statement.initial_model, initial_model, "initial")
    return _verify(proof, TrainingProof, key, published, checks)


def _verify(proof, cls, key, published=None, checks: commit.DeferredChecks | None = None) -> bool:
    """Type checks, then ``published()`` (the checks against published files, cheap and the most
    specific), then the proof itself (its multi-scalar equations added to ``checks`` when given)."""
    if not isinstance(proof, cls) or (cls is TrainingProof and isinstance(proof, InferenceProof)):
        raise VerificationError(f"expected a {cls.__name__}, got {type(proof).__name__}")
    statement = proof.statement
    if not isinstance(statement, TrainingStatement):
        raise VerificationError(f"the proof's statement is a {type(statement).__name__}, not a TrainingStatement")
    if statement.training is not cls.training:
        raise VerificationError(f"a {cls.__name__} cannot hold {'a training' if statement.training else 'an inference'} "
                                "statement")
    with malformed_as_verification_error(cls.__name__):
        if published is not None:
            published(statement)
        return _check(proof, key, checks)


def _check(proof, key, checks=None) -> bool:
    """The proof against its statement: a sound circuit, the commitments' keys and layouts, then
    the aggregated proof (its multi-scalar equations added to ``checks`` when given)."""
    circuit = proof.statement.circuit
    try:
        circuit.check_sound()
    except StatementError as exc:
        raise VerificationError(f"statement: {exc}") from None
    expected = [k for k, _ in circuit.proof_keys]
    if list(proof.commitments) != expected or \
            list(proof.statement.commitments) != [k for k, _ in circuit.statement_keys]:
        raise VerificationError("the proof's commitments do not match its statement")
    commitments = {**proof.statement.commitments, **proof.commitments}
    for k, shape in circuit.statement_keys + circuit.proof_keys:
        if not isinstance(commitments[k], Commitment) or \
                (commitments[k].num_vars, commitments[k].col_vars) != committed.layout(shape):
            raise VerificationError(f"commitment {k} does not have the layout of shape {shape}")
    t = _transcript(proof.statement, proof.commitments)
    fac4dnn.verify(circuit, commitments, proof.aggregated, t, key, checks)
    return True


# ----------------------------------------------------------------------------------------
# the prover's inputs and witness
# ----------------------------------------------------------------------------------------
def training_witness(model, data, lr: float, steps: int | None = None, scale_bits: int = 16, progress=None, *,
                     epochs: int | None = None, param_scale: int | None = None, start_batch: int = 0,
                     key: commit.CommitKey = commit.DEFAULT_KEY, refuse_underflow: bool = True,
                     sgd: SGDOptions | None = None):
    """Run the SGD steps in exact fixed point: ``(circuit, tensors, final integer parameters)``,
    ``tensors`` mapping every key of the circuit to its integer tensor (the prover's witness) and
    the parameters keyed by their standard state_dict names (arguments as :func:`prove_training`)."""
    run, _, _ = _prepare_training(model, data, lr, steps, scale_bits, progress, epochs, param_scale,
                                  start_batch, key, refuse_underflow, sgd)
    return run.circuit, run.values, run.final


def inference_witness(model, X, scale_bits: int | None = None, key: commit.CommitKey = commit.DEFAULT_KEY):
    """Run ``model`` (torch or :class:`zk.ModelOpening`) on ``X`` in exact fixed point:
    ``(circuit, tensors)`` as in :func:`training_witness`."""
    run = _inference_run(model, X, scale_bits, key)
    return run.circuit, run.values


def prepare_run(model, data, lr, steps, scale_bits, progress, epochs, param_scale, start_batch, key,
                limit: int = MAX_STEPS) -> tuple[ModelOpening, DatasetOpening, list[int]]:
    """The model and dataset openings (committed now if given as torch module and batches) and
    the batch index of every step, from :func:`prove_training`'s arguments."""
    if scale_bits is None:
        scale_bits = data.commitment.scale_bits if isinstance(data, DatasetOpening) else \
            model.commitment.scale_bits if isinstance(model, ModelOpening) else 16
    read_epochs = not isinstance(data, DatasetOpening) and epochs is not None
    opening = _model_opening(model, scale_bits, circuits.param_scale_for(lr, scale_bits) if param_scale is None
                             else param_scale, key)
    dataset = _data_opening(data, scale_bits, epochs, key, progress)
    indices = _schedule(dataset.commitment.batches, steps, epochs, start_batch, read_epochs, limit)
    return opening, dataset, indices


def _prepare_training(model, data, lr, steps, scale_bits, progress, epochs, param_scale, start_batch, key,
                      refuse_underflow=True, sgd: SGDOptions | None = None):
    """``(witness run, dataset opening, batch indices)`` from :func:`prove_training`'s arguments."""
    opening, dataset, indices = prepare_run(model, data, lr, steps, scale_bits, progress, epochs, param_scale,
                                            start_batch, key)
    return training_run(opening, dataset, indices, lr, key, progress, refuse_underflow, sgd=sgd), dataset, indices


def _inference_run(model, X, scale_bits, key) -> Run:
    """:func:`zk.witness.inference_run` of ``model`` (a torch model is committed now, at the
    activations' scale: inference needs no master weights) on the float inputs ``X``."""
    if scale_bits is None:
        scale_bits = model.commitment.scale_bits if isinstance(model, ModelOpening) else 16
    opening = _model_opening(model, scale_bits, scale_bits, key)
    x = _float_inputs(X, "X")
    features = opening.commitment.architecture.features
    if x.ndim != 2 or x.shape[1] != features or not len(x):
        raise ValueError(f"X must be (batch, {features}), got shape {x.shape}")
    return inference_run(opening, x, key)


def _model_opening(model, scale_bits: int, param_scale: int, key) -> ModelOpening:
    """``model`` as a :class:`ModelOpening` (committed now if it is a torch module)."""
    if isinstance(model, ModelOpening):
        if model.commitment.scale_bits != scale_bits:
            raise ValueError(f"the model is committed at scale 2^{model.commitment.scale_bits}, the data at "
                             f"2^{scale_bits}")
        return model
    return _model.commit_model(model, scale_bits, param_scale, key=key)[1]


def _data_opening(data, scale_bits: int, epochs: int | None, key, progress) -> DatasetOpening:
    """``data`` as a :class:`DatasetOpening`: as it is, or an iterable of ``(X, Y)`` batches (a
    DataLoader) read once per epoch and committed now."""
    if isinstance(data, DatasetOpening):
        if scale_bits != data.commitment.scale_bits:
            raise ValueError(f"the dataset is committed at scale 2^{data.commitment.scale_bits}, not 2^{scale_bits}")
        return data
    if isinstance(data, DatasetCommitment):
        raise TypeError("prove_training needs the dataset's opening (DatasetOpening), not its public commitment")
    passes = 1 if epochs is None or iter(data) is data else epochs
    batches = []
    for _ in range(passes):
        for i, batch in enumerate(data):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ValueError(f"batch {i}: expected an (X, Y) pair, got {type(batch).__name__}")
            batches.append((_float_inputs(batch[0], f"X of batch {i}"), _float_inputs(batch[1], f"Y of batch {i}")))
    if not batches:
        raise ValueError("prove_training needs at least one (X, Y) batch")
    for i, (x, y) in enumerate(batches):
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) > len(batches[0][0]):
            raise ValueError(f"batch {i}: expected X (B, features) and Y (B, outputs) with at most the first "
                             f"batch's {len(batches[0][0])} rows, got {x.shape} and {y.shape}")
    return _dataset.from_batches(batches, scale_bits, key, progress)[1]


def _schedule(batches: int, steps: int | None, epochs: int | None, start_batch: int, read_epochs: bool,
              limit: int = MAX_STEPS) -> list[int]:
    """The batch index of every step: ``start_batch``, the next, ... cycling through the dataset
    (at most ``limit`` steps: one proof's, or a run's of :func:`zk.prove_run`)."""
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if steps is None:
        steps = batches * (1 if epochs is None or read_epochs else epochs)
    if not isinstance(steps, int) or not 1 <= steps <= limit:
        hint = "; prove longer runs in segments (zk.prove_run)" if limit == MAX_STEPS else ""
        raise ValueError(f"steps must be an integer in [1, {limit}], got {steps!r}{hint}")
    if not isinstance(start_batch, int) or not 0 <= start_batch < batches:
        raise ValueError(f"start_batch must be in [0, {batches}), got {start_batch!r}")
    return [(start_batch + t) % batches for t in range(steps)]


def _float_inputs(x, what: str) -> np.ndarray:
    from circuits.interpret import as_array

    return as_array(x, what).astype(np.float64)


def trained_model(model, opening: ModelOpening):
    """The torch model holding ``opening``'s parameters: a copy of ``model`` when it is a torch
    module (its own dtypes), else :meth:`ModelOpening.to_torch` (None for an architecture that is
    no MLP: its parameters are ``opening.state_dict()``)."""
    if isinstance(model, ModelOpening):
        return opening.to_torch() if opening.commitment.architecture.widths else None
    trained = copy.deepcopy(model)
    state = trained.state_dict()
    for name, v in opening.state_dict().items():
        state[name] = v.to(state[name].dtype)
    trained.load_state_dict(state)
    return trained


# ----------------------------------------------------------------------------------------
# demo models and data
# ----------------------------------------------------------------------------------------
def synthetic_mlp(widths, seed: int = 0, bias: bool = False):
    """A seeded ReLU MLP ``Linear, ReLU, ..., Linear`` of the given widths (bias-free unless
    ``bias``), float32 parameters uniform in torch's default range ``±1/sqrt(fan_in)`` (for demos,
    the CLI's ``--arch``, tests and benchmarks)."""
    import torch

    rng = np.random.default_rng(seed)
    layers: list = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        linear = torch.nn.Linear(a, b, bias=bias)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (b, a)) / np.sqrt(a)))
            if bias:
                linear.bias.copy_(torch.from_numpy(rng.uniform(-1, 1, b) / np.sqrt(a)))
        layers += [linear, torch.nn.ReLU()] if i < len(widths) - 2 else [linear]
    return torch.nn.Sequential(*layers)


def synthetic_batches(widths, batch: int, steps: int, seed: int = 0) -> list:
    """``steps`` seeded ``(X, Y)`` batches, standard normal, float32."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, widths[0]), dtype=np.float32),
             rng.standard_normal((batch, widths[-1]), dtype=np.float32)) for _ in range(steps)]
