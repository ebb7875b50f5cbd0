"""Proving an ordinary torch training loop: record what it does, then prove it.

::

    recorder = zk.Recorder(model, optimizer)
    for x, y in recorder.watch(loader):         # each batch the loop trains on is recorded
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()                         # each step is counted (a step hook)
    result = recorder.prove(segment_steps=32, executor="process")
    zk.verify_chain(result.chain, dataset=result.dataset, initial_model=result.initial_model)

What the proof covers is checked up front: the model is one :func:`circuits.trace` accepts
(:class:`zk.architecture.Architecture`) and the optimizer a fresh ``torch.optim.SGD`` over exactly its parameters (one learning rate,
momentum, dampening and weight decay; no Nesterov or ``maximize``; no momentum buffers from
earlier steps); anything else raises :class:`circuits.UnsupportedOp` naming it. The same holds before every ``optimizer.step()`` (a
step pre-hook: options changed later, or a learning rate moved by a scheduler, are named), and
every step must follow exactly one recorded batch. :meth:`Recorder.prove` then checks, before
any proving, that the loop is what the proof states:

1. **Replay.** SGD with the optimizer's options and the mean loss (the recorder's ``loss``) on the recorded batches, in float64
   torch from the recorded initial model, ends where the loop's model is, within float32 rounding
   (:data:`REPLAY_TOLERANCE`). A loop with another loss, gradient clipping that bites, parameters
   changed outside ``optimizer.step()`` or a batch changed in place after it
   was recorded is refused here.
2. **Fidelity.** The fixed-point run of the schedule (what is proved) agrees with the loop's
   model within :data:`FIDELITY` of the update.

The recorded batches are committed as a dataset (a batch seen again, e.g. by a later epoch over
an unshuffled loader, is committed once), and the schedule is proved in segments.
"""
from __future__ import annotations

import copy
import hashlib
import weakref

import numpy as np

from circuits import FixedPoint, UnsupportedOp

from . import commit, dataset as _dataset, model as _model, witness
from .architecture import Architecture
from .segments import MAX_RUN_STEPS, RunResult, prove_schedule
from .statement import MAX_STEPS

__all__ = ["Recorder", "FIDELITY", "REPLAY_TOLERANCE"]

#: Largest relative difference between the proved and the torch update ``final - initial``
#: (its norm, over all parameters) that :meth:`Recorder.prove` accepts; fixed point at 2^16
#: differs from float32 torch by about 1e-4 (docs/benchmarks.md, bench_fidelity).
FIDELITY = 1e-2
#: The float64 replay may differ from the loop's model by ``REPLAY_TOLERANCE`` of the update
#: plus ``2^-20 ||w|| sqrt(steps)`` (float32 rounding of the weights, measured at ~1e-7 ||w||;
#: weight decay 1e-4 or one batch scaled by 1.01 give 10-100x more).
REPLAY_TOLERANCE = 1e-3

_SGD_DEFAULTS = {"nesterov": False, "maximize": False}
_SGD_OPTIONS = ("momentum", "dampening", "weight_decay")


def _check_optimizer(model, optimizer) -> tuple[float, witness.SGDOptions]:
    """The learning rate and options of an SGD optimizer over exactly ``model``'s parameters;
    UnsupportedOp naming what the proof cannot express."""
    import torch

    cls = type(optimizer)
    kind = f"torch.optim.{cls.__name__}" if cls.__module__.startswith("torch.optim") else \
        f"{cls.__module__}.{cls.__name__}"
    if type(optimizer) is not torch.optim.SGD:
        raise UnsupportedOp(f"{kind} is not supported: training proofs cover torch.optim.SGD (with momentum, "
                            "dampening and weight decay)")
    lrs = {float(g["lr"]) for g in optimizer.param_groups}
    if len(lrs) != 1:
        raise UnsupportedOp(f"the optimizer's parameter groups have learning rates {sorted(lrs)}: a training proof "
                            "has one")
    for group in optimizer.param_groups:
        for option, default in _SGD_DEFAULTS.items():
            if group.get(option, default) != default:
                raise UnsupportedOp(f"torch.optim.SGD with {option}={group[option]!r} is not supported: training "
                                    f"proofs cover {option}={default!r}")
    options = {tuple(float(g.get(o, 0)) for o in _SGD_OPTIONS) for g in optimizer.param_groups}
    if len(options) != 1:
        raise UnsupportedOp("the optimizer's parameter groups have different momentum, dampening or weight decay: "
                            "a training proof has one of each")
    ours = {id(p) for p in model.parameters()}
    theirs = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if ours != theirs:
        raise ValueError("the optimizer does not update exactly the model's parameters")
    return lrs.pop(), witness.SGDOptions(*options.pop())


def _as_float(a, what: str) -> np.ndarray:
    from circuits.interpret import as_array

    return np.array(as_array(a, what), dtype=np.float64)


class Recorder:
    """Records an ordinary torch training loop of ``model`` with ``optimizer`` so that it can be
    proved (:meth:`prove`). ``scale_bits``: the activations' fixed point; ``param_scale``: the
    parameters' (default :func:`circuits.param_scale_for` of the learning rate); ``loss``: the
    loop's loss, ``"mse"`` (``F.mse_loss``) or ``"cross_entropy"`` (``F.cross_entropy`` with the
    targets as rows of probabilities: one-hot classes), mean reduction."""

    def __init__(self, model, optimizer, *, scale_bits: int = 16, param_scale: int | None = None,
                 loss: str = "mse") -> None:
        from circuits.graph import LOSSES

        if loss not in LOSSES:
            raise ValueError(f"loss {loss!r}: one of {', '.join(LOSSES)}")
        self.lr, self.sgd = _check_optimizer(model, optimizer)
        self.sgd = self.sgd._replace(loss=loss)
        if param_scale is None:
            from circuits import param_scale_for

            param_scale = param_scale_for(self.lr, scale_bits)
        self.architecture = Architecture.of_torch(model, scale_bits, param_scale)
        if any(optimizer.state.get(p, {}).get("momentum_buffer") is not None for p in model.parameters()):
            raise UnsupportedOp("the optimizer already holds momentum buffers: a proved run starts from a fresh "
                                "torch.optim.SGD (record before its first step)")
        self.model, self.optimizer = model, optimizer
        self.scale_bits, self.param_scale = scale_bits, param_scale
        self.initial = copy.deepcopy(model)  # the parameters training starts from
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []
        self._index: dict[bytes, int] = {}  # batch content -> dataset index
        self.schedule: list[int] = []  # the dataset index of every recorded batch
        self.steps = 0  # optimizer steps taken since recording began
        self._problem: str | None = None
        me = weakref.ref(self)  # the optimizer's hook does not keep a dropped recorder alive

        def before_step(optimizer, args, kwargs):
            recorder = me()
            if recorder is not None:
                recorder._before_step(optimizer)
        self._hook = optimizer.register_step_pre_hook(before_step)

    def __repr__(self) -> str:
        return f"Recorder({self.architecture.describe()}, lr {self.lr}, {self.steps} steps recorded)"

    def record(self, x, y) -> None:
        """Record the batch ``(x, y)`` the next ``optimizer.step()`` trains on."""
        x, y = _as_float(x, "x"), _as_float(y, "y")
        a = self.architecture
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or (x.shape[1], y.shape[1]) != (a.features, a.outputs):
            raise ValueError(f"a batch of this model is x (rows, {a.features}) and y (rows, {a.outputs}), "
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

    def _before_step(self, optimizer) -> None:
        self.steps += 1
        if self.steps > len(self.schedule):
            self._fail(f"optimizer.step() number {self.steps} had no recorded batch (record(x, y) or watch(loader))")
        try:
            lr, sgd = _check_optimizer(self.model, optimizer)
        except (UnsupportedOp, ValueError) as exc:
            self._fail(f"at step {self.steps}: {exc}")
            return
        if lr != self.lr:
            self._fail(f"the learning rate changed to {lr} at step {self.steps}: a proved run has one "
                       f"learning rate ({self.lr})")
        if sgd != self.sgd:
            self._fail(f"the momentum, dampening or weight decay changed at step {self.steps}: a proved run has one "
                       "of each")

    def close(self) -> None:
        """Stop counting optimizer steps."""
        self._hook.remove()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

    def _flat(self, state: dict) -> np.ndarray:
        """The parameters of a state_dict of the model as one float64 vector (the graph's order)."""
        return np.concatenate([_as_float(state[n], n).ravel() for n, _ in self.architecture.params])

    def _check_replay(self) -> None:
        """SGD with the mean loss on the recorded batches, in float64, ends at the loop's model."""
        import torch

        loss = torch.nn.functional.mse_loss if self.sgd.loss == "mse" else torch.nn.functional.cross_entropy
        replay = copy.deepcopy(self.initial).double()
        sgd = torch.optim.SGD(replay.parameters(), lr=self.lr, **self.sgd.optimizer)
        for i in self.schedule:
            x, y = (torch.from_numpy(a) for a in self._batches[i])
            sgd.zero_grad()
            loss(replay(x), y).backward()
            sgd.step()
        trained, initial = self._flat(self.model.state_dict()), self._flat(self.initial.state_dict())
        error = np.linalg.norm(trained - self._flat(replay.state_dict()))
        update = np.linalg.norm(trained - initial)
        if error > REPLAY_TOLERANCE * update + 2.0 ** -20 * np.linalg.norm(trained) * np.sqrt(self.steps):
            loss_name = "MSE" if self.sgd.loss == "mse" else "cross-entropy"
            raise ValueError(f"the recorded loop is not SGD with mean {loss_name} on the recorded batches: replayed so, "
                             f"it ends {error:.3g} away from the loop's model ({error / max(update, 1e-30):.2%} of the "
                             "update); did the loop use another loss, clip gradients, decay weights, change "
                             "parameters outside optimizer.step() or change a batch after it was recorded?")

    def _check_fixed_point(self, opening, dataset) -> None:
        """The fixed-point run of the schedule (what is proved) ends within :data:`FIDELITY`."""
        mc = opening.commitment
        state = opening.integers()
        for step in witness.fixed_steps(opening, dataset, self.schedule, self.lr, sgd=self.sgd):
            state = step.state
        fp = FixedPoint(mc.scale_bits)
        proved = np.concatenate([fp.decode(state[n], mc.param_scale).ravel() for n, _ in self.architecture.params])
        trained, initial = self._flat(self.model.state_dict()), self._flat(self.initial.state_dict())
        update = np.linalg.norm(trained - initial)
        error = np.linalg.norm(proved - trained)
        if error > FIDELITY * update + np.sqrt(proved.size) * 2.0 ** -mc.scale_bits:
            raise ValueError(f"the fixed-point run of the recorded training ends {error:.3g} away from the torch model, "
                             f"{error / max(update, 1e-30):.1%} of the update (at most {FIDELITY:.0%}): raise "
                             "scale_bits or param_scale")

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
        segment_steps = min(self.steps, MAX_STEPS) if segment_steps is None else segment_steps
        if not isinstance(segment_steps, int) or not 1 <= segment_steps <= MAX_STEPS:
            raise ValueError(f"segment_steps must be an integer in [1, {MAX_STEPS}], got {segment_steps!r}")
        runner = executor_for(executor, workers, ray_address, retries)
        self._check_replay()
        opening = _model.commit_model(self.initial, self.scale_bits, self.param_scale, key=key)[1]
        data = _dataset.from_batches(self._batches, self.scale_bits, key, progress)[1]
        self._check_fixed_point(opening, data)
        return prove_schedule(opening, data, list(self.schedule), self.lr, segment_steps, runner, key, device,
                              progress, self.initial, sgd=self.sgd)
