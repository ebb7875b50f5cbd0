"""Proving an ordinary torch training loop: record what it does, then prove it.

::

    recorder = zk.Recorder(model, optimizer)
    for x, y in recorder.watch(loader):         # each batch the loop trains on is recorded
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()                         # each step is counted (a step hook)
    result = recorder.prove(segment_steps=32, executor="process")
    zk.verify_chain(result.chain)

What the proof covers is checked up front: the model is a ReLU MLP (:func:`zk.training.mlp_layout`)
and the optimizer a plain ``torch.optim.SGD`` over exactly its parameters (one learning rate; no
momentum, dampening, weight decay, Nesterov or ``maximize``); anything else raises
:class:`circuits.UnsupportedOp` naming it. While the loop runs, every ``optimizer.step()`` must
follow exactly one recorded batch and the learning rate must stay put (a scheduler that changes
it cannot be proved as one run). :meth:`Recorder.prove` commits the recorded batches as a dataset
(a batch seen again, e.g. by a later epoch over an unshuffled loader, is committed once), runs
the schedule in fixed point, and refuses to prove unless that run agrees with the torch model
the loop trained within :data:`FIDELITY` (so a loss other than mean MSE, gradient clipping or
parameters changed outside ``optimizer.step()`` are named before any proving).
"""
from __future__ import annotations

import copy
import hashlib

import numpy as np

from circuits import FixedPoint, UnsupportedOp

from . import commit, dataset as _dataset, model as _model, training as _training
from .segments import MAX_RUN_STEPS, RunResult, prove_schedule

__all__ = ["Recorder", "FIDELITY"]

#: Largest relative difference between the proved and the torch update ``final - initial``
#: (its norm, over all parameters) that :meth:`Recorder.prove` accepts; fixed point at 2^16
#: differs from float32 torch by about 1e-4 (docs/benchmarks.md, bench_fidelity).
FIDELITY = 1e-2

_SGD_DEFAULTS = {"momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False}


def _check_optimizer(model, optimizer) -> float:
    """The learning rate of a plain SGD optimizer over exactly ``model``'s parameters;
    UnsupportedOp naming what the proof cannot express."""
    import torch

    cls = type(optimizer)
    kind = f"torch.optim.{cls.__name__}" if cls.__module__.startswith("torch.optim") else \
        f"{cls.__module__}.{cls.__name__}"
    if type(optimizer) is not torch.optim.SGD:
        raise UnsupportedOp(f"{kind} is not supported: training proofs cover torch.optim.SGD (without momentum "
                            "or weight decay)")
    lrs = {float(g["lr"]) for g in optimizer.param_groups}
    if len(lrs) != 1:
        raise UnsupportedOp(f"the optimizer's parameter groups have learning rates {sorted(lrs)}: a training proof "
                            "has one")
    for group in optimizer.param_groups:
        for option, default in _SGD_DEFAULTS.items():
            if group.get(option, default) != default:
                raise UnsupportedOp(f"torch.optim.SGD with {option}={group[option]!r} is not supported: training "
                                    f"proofs cover plain SGD ({option}={default!r})")
    ours = {id(p) for p in model.parameters()}
    theirs = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if ours != theirs:
        raise ValueError("the optimizer does not update exactly the model's parameters")
    return lrs.pop()


def _as_float(a, what: str) -> np.ndarray:
    from circuits.interpret import as_array

    return np.array(as_array(a, what), dtype=np.float64)


class Recorder:
    """Records an ordinary torch training loop of ``model`` with ``optimizer`` so that it can be
    proved (:meth:`prove`). ``scale_bits``: the activations' fixed point; ``param_scale``: the
    parameters' (default :func:`circuits.param_scale_for` of the learning rate)."""

    def __init__(self, model, optimizer, *, scale_bits: int = 16, param_scale: int | None = None) -> None:
        self.widths = _training.mlp_layout(model)[0]
        self.lr = _check_optimizer(model, optimizer)
        self.model, self.optimizer = model, optimizer
        self.scale_bits, self.param_scale = scale_bits, param_scale
        self.initial = copy.deepcopy(model)  # the parameters training starts from
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []
        self._index: dict[bytes, int] = {}  # batch content -> dataset index
        self.schedule: list[int] = []  # the dataset index of every recorded batch
        self.steps = 0  # optimizer steps taken since recording began
        self._problem: str | None = None
        self._hook = optimizer.register_step_post_hook(self._after_step)

    def __repr__(self) -> str:
        return f"Recorder(MLP {'-'.join(map(str, self.widths))}, lr {self.lr}, {self.steps} steps recorded)"

    def record(self, x, y) -> None:
        """Record the batch ``(x, y)`` the next ``optimizer.step()`` trains on."""
        x, y = _as_float(x, "x"), _as_float(y, "y")
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or (x.shape[1], y.shape[1]) != \
                (self.widths[0], self.widths[-1]):
            raise ValueError(f"a batch of this model is x (rows, {self.widths[0]}) and y (rows, {self.widths[-1]}), "
                             f"got {x.shape} and {y.shape}")
        if len(self.schedule) > self.steps:
            self._fail(f"batch {len(self.schedule) + 1} was recorded before optimizer.step() trained on batch "
                       f"{len(self.schedule)}")
        key = hashlib.sha256(x.tobytes() + y.tobytes() + repr((x.shape, y.shape)).encode()).digest()
        if key not in self._index:
            self._index[key] = len(self._batches)
            self._batches.append((x, y))
        self.schedule.append(self._index[key])

    def watch(self, loader):
        """Iterate ``loader`` (``(x, y)`` batches, e.g. a DataLoader), recording each batch."""
        for i, batch in enumerate(loader):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ValueError(f"batch {i}: expected an (x, y) pair, got {type(batch).__name__}")
            self.record(*batch)
            yield batch

    def _fail(self, problem: str) -> None:
        self._problem = self._problem or problem

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.steps += 1
        if self.steps > len(self.schedule):
            self._fail(f"optimizer.step() number {self.steps} had no recorded batch (record(x, y) or watch(loader))")
        lrs = {float(g["lr"]) for g in optimizer.param_groups}
        if lrs != {self.lr}:
            self._fail(f"the learning rate changed to {sorted(lrs)} at step {self.steps}: a proved run has one "
                       f"learning rate ({self.lr})")

    def close(self) -> None:
        """Stop counting optimizer steps."""
        self._hook.remove()

    def _check_recording(self) -> None:
        if self._problem:
            raise ValueError(f"cannot prove the recorded training: {self._problem}")
        if not self.steps:
            raise ValueError("cannot prove the recorded training: no optimizer step was recorded")
        if self.steps != len(self.schedule):
            raise ValueError(f"cannot prove the recorded training: {len(self.schedule)} batches were recorded but "
                             f"optimizer.step() ran {self.steps} times")
        if self.steps > MAX_RUN_STEPS:
            raise ValueError(f"cannot prove the recorded training: {self.steps} steps (at most {MAX_RUN_STEPS})")

    def _check_fidelity(self, opening, dataset, lr: float) -> None:
        """The fixed-point run of the schedule ends within :data:`FIDELITY` of the torch model."""
        mc = opening.commitment
        state = opening.integers()
        for step in _training.fixed_steps(opening, dataset, self.schedule, lr):
            state = step.state
        fp, names = FixedPoint(mc.scale_bits), _training.mlp_layout(self.model)[2]
        live, start = self.model.state_dict(), self.initial.state_dict()
        proved = np.concatenate([fp.decode(state[n], mc.param_scale).ravel() for n in names])
        trained = np.concatenate([_as_float(live[names[n]], n).ravel() for n in names])
        initial = np.concatenate([_as_float(start[names[n]], n).ravel() for n in names])
        update = np.linalg.norm(trained - initial)
        error = np.linalg.norm(proved - trained)
        if error > FIDELITY * update + np.sqrt(proved.size) * 2.0 ** -mc.scale_bits:
            raise ValueError(f"the recorded torch training and its fixed-point run disagree: the parameters differ by "
                             f"{error:.3g}, {error / max(update, 1e-30):.1%} of the update (at most {FIDELITY:.0%}); "
                             "did the loop use a loss other than mean MSE, clip gradients or change parameters "
                             "outside optimizer.step()?")

    def prove(self, segment_steps: int | None = None, executor: str = "inline", workers: int | None = None,
              ray_address: str | None = None, retries: int = 2, key: commit.CommitKey = commit.DEFAULT_KEY,
              device: str = "auto", progress=None) -> RunResult:
        """Prove the recorded steps as a chain of segments of ``segment_steps`` steps (default:
        one proof, up to 4096 steps) on ``executor`` (:func:`zk.prove_run`): a
        :class:`zk.RunResult` whose model holds the proved parameters. The recorded batches are
        committed as a dataset now (their :class:`zk.DatasetCommitment` is
        ``result.chain.proof(0).statement.dataset``'s), and the initial model too."""
        from .executors import executor_for

        self._check_recording()
        segment_steps = min(self.steps, _training.MAX_STEPS) if segment_steps is None else segment_steps
        if not isinstance(segment_steps, int) or not 1 <= segment_steps <= _training.MAX_STEPS:
            raise ValueError(f"segment_steps must be an integer in [1, {_training.MAX_STEPS}], got {segment_steps!r}")
        runner = executor_for(executor, workers, ray_address, retries)
        param_scale = self.param_scale
        if param_scale is None:
            from circuits import param_scale_for

            param_scale = param_scale_for(self.lr, self.scale_bits)
        opening = _model.commit_model(self.initial, self.scale_bits, param_scale, key=key)[1]
        data = _dataset.from_batches(self._batches, self.scale_bits, key, progress)[1]
        self._check_fidelity(opening, data, self.lr)
        return prove_schedule(opening, data, list(self.schedule), self.lr, segment_steps, runner, key, device,
                              progress, self.initial)
