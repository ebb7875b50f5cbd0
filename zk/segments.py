"""Long training runs proved as chained segments (:func:`prove_run`).

A run of ``N`` SGD steps is split into segments of ``k`` steps, each proved by one training
proof; consecutive proofs share the commitment to the model between them, so they chain
(:mod:`zk.chain`) and :func:`zk.verify_chain` checks the run as a whole.

1. **Plan** (the driver). Run the whole schedule once in exact fixed point, one step at a time
   and without a witness (cheap next to proving), and commit the model at every segment
   boundary. Each segment becomes a :class:`SegmentTask`: its batch indices and the openings of
   the models it starts and ends at.
2. **Prove** (a worker, :func:`prove_segment`). Regenerate the segment's witness from its
   starting model and its batches of the dataset opening, check that it ends at the planned
   model, and prove it reusing both model commitments as they are.
3. **Check and chain** (the driver). Every segment proof is verified against the dataset, its
   planned start and end models and its batches before it joins the :class:`zk.Chain`.

Workers run in-process, in local processes or as Ray tasks (:mod:`zk.executors`); only model
openings, batch indices and proofs travel (the dataset opening once per worker). Memory: the
driver holds one fixed-point step and the boundary models of the tasks in flight, a worker one
segment's witness; the chain keeps each proof's bytes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import socket
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import commit, device as _device, group, model as _model, training as _training, witness
from .chain import Chain
from .dataset import DatasetCommitment, DatasetOpening
from .errors import VerificationError
from .model import ModelCommitment, ModelOpening
from .proof_format import TrainingProof
from .statement import MAX_STEPS

__all__ = ["MAX_RUN_STEPS", "RunResult", "SegmentJob", "SegmentResult", "SegmentTask", "prove_run", "prove_segment"]

#: Most SGD steps one run may have (each segment at most :data:`zk.statement.MAX_STEPS`).
MAX_RUN_STEPS = 1 << 24


@dataclass(frozen=True)
class SegmentJob:
    """What every segment of a run shares (sent once per worker): the dataset opening's file,
    the learning rate and SGD options, the commitment key, the prover's device and MSM threads
    per worker."""

    dataset: bytes  # empty where the workers share the driver's process (its opening is used as it is)
    dataset_digest: bytes  # the dataset commitment's digest (names the dataset in worker caches)
    lr: float
    key: commit.CommitKey
    device: str = "auto"
    threads: int | None = None
    refuse_underflow: bool = True
    sgd: witness.SGDOptions = witness.SGDOptions()


@dataclass(frozen=True)
class SegmentTask:
    """One segment: its position (``index``, 0-based; ``first_step`` of the run), the dataset
    batch of each of its steps, and the files of the model openings it starts and ends at."""

    index: int
    first_step: int
    batches: tuple[int, ...]
    start: bytes
    end: bytes


@dataclass(frozen=True)
class SegmentResult:
    """A proved segment: the proof file, how long the worker took, the worker's peak resident
    memory so far (bytes), which worker, and how many attempts the executor needed."""

    index: int
    proof: bytes
    seconds: float
    peak_rss: int
    worker: str
    attempts: int = 1


class RunResult(NamedTuple):
    """What :func:`prove_run` returns: the chain of segment proofs, the trained float32 torch
    model, the final model's secret opening, a :class:`SegmentResult` per segment (proof bytes
    left out), the dataset batch of every step, and the public commitments the chain is checked
    against (``zk.verify_chain(r.chain, dataset=r.dataset, initial_model=r.initial_model)``)."""

    chain: Chain
    model: object
    opening: ModelOpening
    segments: tuple[SegmentResult, ...]
    batch_indices: tuple[int, ...]
    dataset: DatasetCommitment
    initial_model: ModelCommitment


# ----------------------------------------------------------------------------------------
# worker
# ----------------------------------------------------------------------------------------
_DATASETS: dict[bytes, DatasetOpening] = {}  # a worker's parsed dataset openings, by digest


def _dataset(job: SegmentJob) -> DatasetOpening:
    if job.dataset_digest not in _DATASETS:
        _DATASETS.clear()
        _DATASETS[job.dataset_digest] = DatasetOpening.from_bytes(job.dataset)
    return _DATASETS[job.dataset_digest]


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def prove_segment(job: SegmentJob, task: SegmentTask) -> SegmentResult:
    """Prove one segment: the SGD steps on ``task.batches`` from the model opening ``task.start``
    end at exactly the parameters of ``task.end``. The statement reuses both models'
    commitments, so the proof chains with its neighbours."""
    t0 = time.perf_counter()
    if job.threads:
        group.set_threads(job.threads)
    dataset = _dataset(job)
    start, end = ModelOpening.from_bytes(task.start), ModelOpening.from_bytes(task.end)
    run = witness.training_run(start, dataset, list(task.batches), job.lr, job.key,
                               refuse_underflow=job.refuse_underflow, first_step=task.first_step, sgd=job.sgd)
    planned, got = {**end.integers(), **end.state_integers()}, {**run.final, **run.final_buffers}
    if any(not np.array_equal(got[name], v) for name, v in planned.items()):
        raise ValueError(f"segment {task.index + 1}: the fixed-point run ends at other parameters than planned")
    circuit = run.circuit
    circuit.check_sound()
    reused = {**run.reused, **witness.model_openings(circuit, circuit.steps, end, job.key)}
    proof, _ = _training.commit_and_prove(circuit, run.values, job.lr, job.key, None, reused,
                                          dataset.commitment.digest, task.batches,
                                          device=_device.resolve(job.device))
    return SegmentResult(task.index, proof.to_bytes(), time.perf_counter() - t0, _peak_rss(),
                         f"pid {os.getpid()} on {socket.gethostname()}")


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Planned:
    task: SegmentTask
    start: ModelCommitment
    end: ModelCommitment


def _plan(opening: ModelOpening, dataset: DatasetOpening, indices: list[int], job: SegmentJob, segment_steps: int,
          progress, final: list):
    """Step 1: the run in fixed point, one :class:`_Planned` segment at a time; ``final``
    receives the last boundary's opening."""
    mc, key = opening.commitment, job.key
    steps = witness.fixed_steps(opening, dataset, indices, job.lr, job.refuse_underflow, sgd=job.sgd)
    start = opening
    for index, first in enumerate(range(0, len(indices), segment_steps)):
        batches = tuple(indices[first:first + segment_steps])
        for step in (next(steps) for _ in batches):
            state, buffers = step.state, step.buffers
            if progress:
                progress("fixed point", step.t + 1, len(indices))
        end = _model.from_integers(mc.architecture, state, key, state=buffers)
        yield _Planned(SegmentTask(index, first, batches, start.to_bytes(), end.to_bytes()), start.commitment,
                       end.commitment)
        start = end
    final.append(start)


def _check_segment(result: SegmentResult, planned: _Planned, dataset, job: SegmentJob):
    """Step 3: the segment proof verifies, on ``dataset``, from and to the planned models, with
    the planned batches, learning rate and SGD options (VerificationError naming the segment
    otherwise)."""
    lr, key = job.lr, job.key
    where = f"segment {planned.task.index + 1}"
    try:
        proof = TrainingProof.from_bytes(result.proof)
        _training.verify_training(proof, key, dataset=dataset, initial_model=planned.start)
        st = proof.statement
        _model.check_statement(st.final_model, planned.end, "final")
        if st.batch_indices != planned.task.batches:
            raise VerificationError("it used other batches than planned")
        if st.lr != lr:
            raise VerificationError(f"it trained with learning rate {st.lr}, not {lr}")
        if (st.momentum, st.dampening, st.weight_decay, st.loss) != tuple(job.sgd):
            raise VerificationError("it trained with other SGD options or another loss than planned")
    except Exception as exc:  # noqa: BLE001 - whatever a worker sent, it does not join the chain
        raise VerificationError(f"{where}: the worker's proof does not check ({exc})") from None


def prove_schedule(opening: ModelOpening, dataset: DatasetOpening, indices: list[int], lr: float,
                   segment_steps: int, executor, key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto",
                   progress=None, torch_model=None, refuse_underflow: bool = True,
                   sgd: witness.SGDOptions | None = None) -> RunResult:
    """Prove SGD (``sgd``: its momentum, dampening and weight decay) on ``dataset``'s batches
    ``indices`` from ``opening`` in segments of ``segment_steps`` on ``executor``
    (:mod:`zk.executors`); ``torch_model``: the user's module the trained model copies (else
    :meth:`ModelOpening.to_torch`). With momentum, every segment boundary's model carries the
    buffers, so the next segment starts from exactly them."""
    _device.resolve(device)  # a device that cannot be used is refused before any work
    sgd = sgd or witness.SGDOptions()
    digest = dataset.commitment.digest
    job = SegmentJob(dataset.to_bytes() if executor.remote else b"", digest, lr, key, device,
                     executor.threads_per_worker(), refuse_underflow, sgd)
    planned: dict[int, _Planned] = {}
    final: list[ModelOpening] = []

    def tasks():
        for p in _plan(opening, dataset, indices, job, segment_steps, progress, final):
            planned[p.task.index] = p
            yield p.task

    total = -(-len(indices) // segment_steps)
    results: dict[int, SegmentResult] = {}
    if not executor.remote:  # the workers are this process: they use the opening as it is
        _DATASETS.clear()
        _DATASETS[digest] = dataset
    try:
        with contextlib.closing(executor.run(job, tasks())) as finished:
            for result in finished:
                if result.index not in planned:
                    raise RuntimeError(f"the executor returned segment {result.index + 1} "
                                       f"{'twice' if result.index in results else 'which was never planned'}")
                _check_segment(result, planned.pop(result.index), dataset.commitment, job)
                results[result.index] = result
                if progress:
                    progress("segments", len(results), total)
    finally:
        _DATASETS.clear()  # this process keeps no copy of the secret dataset beyond the caller's
    if len(results) != total:
        missing = sorted(set(range(total)) - set(results))
        raise RuntimeError(f"the executor returned no proof for segment(s) {', '.join(str(i + 1) for i in missing)}")
    chain = Chain(tuple(results[i].proof for i in range(total)))
    reports = tuple(dataclasses.replace(results[i], proof=b"") for i in range(total))
    trained = _training.trained_model(opening if torch_model is None else torch_model, final[0])
    return RunResult(chain, trained, final[0], reports, tuple(indices), dataset.commitment, opening.commitment)


def prove_run(model, data, lr: float, steps: int | None = None, *, segment_steps: int, epochs: int | None = None,
              executor: str = "inline", workers: int | None = None, ray_address: str | None = None,
              retries: int = 2, scale_bits: int | None = None, param_scale: int | None = None,
              start_batch: int = 0, key: commit.CommitKey = commit.DEFAULT_KEY, device: str = "auto",
              progress=None, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
              loss: str = "mse") -> RunResult:
    """Prove a training run as chained segments of ``segment_steps`` SGD steps: a
    :class:`RunResult` (the :class:`zk.Chain`, the trained torch model, the final model's
    opening, per-segment figures). Verify it with :func:`zk.verify_chain`.

    ``model``, ``data``, ``lr``, ``steps``, ``epochs``, ``scale_bits``, ``param_scale``,
    ``start_batch``, ``momentum``, ``dampening``, ``weight_decay`` and ``loss`` are those of
    :func:`zk.prove_training`, except that a run may have up to
    :data:`MAX_RUN_STEPS` steps. ``executor``: ``"inline"`` (this process, one segment at a
    time), ``"process"`` (``workers`` local processes, default one per core) or ``"ray"`` (Ray
    tasks; on the cluster at ``ray_address``, else a local Ray with ``workers`` CPUs started and
    stopped here). A worker that dies is replaced and its segment retried up to ``retries``
    times. ``progress(stage, done, total)``: stages ``"fixed point"`` and ``"segments"``.
    """
    from .executors import executor_for

    if not isinstance(segment_steps, int) or not 1 <= segment_steps <= MAX_STEPS:
        raise ValueError(f"segment_steps must be an integer in [1, {MAX_STEPS}], got {segment_steps!r}")
    runner = executor_for(executor, workers, ray_address, retries)
    lr = float(lr)
    opening, dataset, indices = _training.prepare_run(model, data, lr, steps, scale_bits, progress, epochs,
                                                      param_scale, start_batch, key, MAX_RUN_STEPS)
    sgd = witness.SGDOptions(float(momentum), float(dampening), float(weight_decay), loss)
    return prove_schedule(opening, dataset, indices, lr, segment_steps, runner, key, device, progress,
                          None if isinstance(model, ModelOpening) else model, sgd=sgd)

