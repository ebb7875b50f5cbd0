"""Where the segments of a run are proved (:func:`zk.prove_run`): in this process, in local
processes, or as Ray tasks.

An :class:`Executor` takes the run's :class:`zk.segments.SegmentJob` and an iterator of
:class:`zk.segments.SegmentTask` and yields a :class:`zk.segments.SegmentResult` per task as
it completes, in any order. It pulls tasks lazily, at most ``workers + 1`` in flight, so the
driver holds few boundary models at once. A worker that dies (killed, out of memory) is
replaced and its segment retried, up to ``retries`` more times; an error the proof itself
raises (an underflow, an unusable device) is not retried: it is raised, naming the segment.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import replace

from .segments import SegmentJob, SegmentResult, SegmentTask, prove_segment

__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "RayExecutor", "executor_for", "EXECUTORS"]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _named(exc: BaseException, task: SegmentTask) -> BaseException:
    """``exc`` with the segment in its message (same class where it takes one message)."""
    message = f"segment {task.index + 1} (steps {task.first_step + 1}-{task.first_step + len(task.batches)}): {exc}"
    try:
        return type(exc)(message)
    except Exception:  # noqa: BLE001 - a class with another constructor
        return RuntimeError(message)


class Executor(ABC):
    """Proves segments; ``workers`` run side by side, each on its share of the cores."""

    name: str
    #: whether workers run in other processes (the job then carries the dataset opening's file)
    remote = True

    def __init__(self, workers: int | None = None, retries: int = 2) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
        self.workers = workers or _cores()
        self.retries = retries

    def threads_per_worker(self) -> int | None:
        """MSM threads of each worker (``None``: all the cores it sees)."""
        return max(1, _cores() // self.workers)

    @abstractmethod
    def run(self, job: SegmentJob, tasks):
        """Yield a :class:`SegmentResult` per task of the iterator ``tasks``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers}, retries={self.retries})"


class InlineExecutor(Executor):
    """One segment at a time in this process (the default: no extra processes, one witness in memory)."""

    name = "inline"
    remote = False

    def __init__(self, workers: int | None = None, retries: int = 2) -> None:
        if workers not in (None, 1):
            raise ValueError("the inline executor runs one worker (this process); use executor='process' or 'ray'")
        super().__init__(1, retries)

    def threads_per_worker(self) -> int | None:
        return None

    def run(self, job: SegmentJob, tasks):
        for task in tasks:
            try:
                result = prove_segment(job, task)
            except Exception as exc:  # noqa: BLE001 - named and raised
                raise _named(exc, task) from None
            yield replace(result, index=task.index)


class _Lost(Exception):
    """The worker running a task died (the task may be retried)."""


class _PoolExecutor(Executor):
    """An executor whose workers run elsewhere: at most ``workers + 1`` tasks in flight, a task
    whose worker died submitted again (up to ``retries`` times)."""

    @abstractmethod
    def _submit(self, task: SegmentTask):
        """Start ``task``; a handle for :meth:`_collect`."""

    @abstractmethod
    def _collect(self, handles):
        """Wait until one of ``handles`` is done; ``(handle, SegmentResult or exception)`` for each
        done one, :class:`_Lost` when its worker died."""

    def _drive(self, tasks):
        tasks, retry = iter(tasks), deque()
        attempts: dict[int, int] = {}
        pending: dict = {}  # handle -> task
        try:
            while True:
                while len(pending) <= self.workers:
                    task = retry.popleft() if retry else next(tasks, None)
                    if task is None:
                        break
                    attempts[task.index] = attempts.get(task.index, 0) + 1
                    pending[self._submit(task)] = task
                if not pending:
                    return
                for handle, outcome in self._collect(list(pending)):
                    task = pending.pop(handle)
                    if isinstance(outcome, _Lost):
                        if attempts[task.index] > self.retries:
                            raise RuntimeError(f"segment {task.index + 1}: its worker died {attempts[task.index]} "
                                               f"times ({outcome}; out of memory? try fewer workers or shorter "
                                               "segments)")
                        retry.append(task)
                    elif isinstance(outcome, BaseException):
                        raise _named(outcome, task)
                    else:  # the task's own index: a worker's result cannot claim another segment
                        yield replace(outcome, index=task.index, attempts=attempts[task.index])
        finally:
            self._abandon(list(pending))

    def _abandon(self, handles) -> None:
        """Stop what is still running (the run ended early)."""


_JOB: SegmentJob | None = None  # the run a process worker serves (set by its initializer)


def _init_process(job: SegmentJob) -> None:
    global _JOB
    _JOB = job


def _prove_in_process(task: SegmentTask) -> SegmentResult:
    return prove_segment(_JOB, task)


class ProcessExecutor(_PoolExecutor):
    """``workers`` local processes (started with ``spawn``; guard a script's entry point with
    ``if __name__ == "__main__":``). The dataset opening is sent once per worker; a pool that
    lost a worker is replaced and every task it held submitted again."""

    name = "process"
    #: what a worker runs per task (a module-level function: it travels by name)
    work = staticmethod(_prove_in_process)

    def run(self, job: SegmentJob, tasks):
        self._job, self._pool = job, None
        try:
            yield from self._drive(tasks)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _abandon(self, handles) -> None:
        """The run ended early (an error): stop the workers now rather than let them finish
        segments nobody will use (``ProcessPoolExecutor`` has no public way before Python 3.14)."""
        if handles and self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_process, initargs=(self._job,))

    def _submit(self, task: SegmentTask):
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._new_pool()
        try:
            return self._pool.submit(self.work, task)
        except BrokenProcessPool:  # a worker died: the tasks still on this pool come back as lost
            self._new_pool()
            return self._pool.submit(self.work, task)

    def _collect(self, handles):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        for future in done:
            if future.cancelled():  # still queued on a pool that was replaced
                yield future, _Lost("its pool was replaced")
                continue
            exc = future.exception()
            yield future, (_Lost(str(exc)) if isinstance(exc, BrokenProcessPool) else exc or future.result())


def _prove_on_ray(job: SegmentJob, task: SegmentTask) -> SegmentResult:
    return prove_segment(job, task)


class RayExecutor(_PoolExecutor):
    """Ray tasks, one CPU each: on the cluster at ``address``, else on a local Ray with
    ``workers`` CPUs started for the run and stopped after it (a Ray already initialised in this
    process is used as it is). A task whose worker or node died is submitted again; only model
    openings, batch indices and proofs travel, the job once through the object store."""

    name = "ray"

    def __init__(self, workers: int | None = None, retries: int = 2, address: str | None = None) -> None:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ValueError("executor='ray' needs Ray: pip install 'zkfhe[ray]' (or use executor='process')")
        super().__init__(workers, retries)
        self.address = address

        self._sized = workers is not None

    def threads_per_worker(self) -> int | None:
        # on a cluster each task holds one CPU of its node, so its MSMs take one thread
        return 1 if self.address else super().threads_per_worker()

    def run(self, job: SegmentJob, tasks):
        import logging

        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, num_cpus=None if self.address else self.workers,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        if self.address and not self._sized:  # as many tasks in flight as the cluster has CPUs
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        try:
            self._remote = ray.remote(num_cpus=1, max_retries=0)(_prove_on_ray)
            self._job_ref = ray.put(job)
            yield from self._drive(tasks)
        finally:
            if started:
                ray.shutdown()

    def _submit(self, task: SegmentTask):
        return self._remote.remote(self._job_ref, task)

    def _collect(self, handles):
        import ray
        from ray.exceptions import RayError, RayTaskError

        ready, _ = ray.wait(handles, num_returns=1)
        for ref in ready:
            try:
                yield ref, ray.get(ref)
            except RayTaskError as exc:  # the proof raised: named, not retried
                yield ref, exc.cause if exc.cause is not None else exc
            except RayError as exc:  # the worker or its node died
                yield ref, _Lost(f"{type(exc).__name__}: {exc}")

    def _abandon(self, handles) -> None:
        import ray

        for ref in handles:
            ray.cancel(ref, force=True)


#: The executors by name (``prove_run(executor=...)``, ``zkfhe prove --executor``).
EXECUTORS = {"inline": InlineExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def executor_for(executor, workers: int | None = None, ray_address: str | None = None, retries: int = 2) -> Executor:
    """An :class:`Executor` from its name (or the executor itself); ValueError naming the problem."""
    if isinstance(executor, Executor):
        return executor
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise ValueError("ray_address applies to executor='ray'")
    if executor == "ray":
        return RayExecutor(workers, retries, ray_address)
    return EXECUTORS[executor](workers, retries)
