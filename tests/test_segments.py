"""Long runs proved as chained segments (zk.prove_run, zk.Chain, zk.executors, zk.Recorder).

A chain must verify for any number of segments and be rejected when a segment is missing,
reordered, duplicated, foreign or proved from other weights; workers that die are retried; the
memory of a run does not grow with its number of segments (beyond the proofs it returns).
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch

import zk
from circuits import UnsupportedOp
from zk import executors, segments
from zk.training import synthetic_batches, synthetic_mlp

WIDTHS, BATCH, LR = (6, 4, 3), 4, 0.05


@pytest.fixture(scope="module")
def published():
    """A published dataset of 5 batches (the last one smaller) and a published model."""
    x, y = synthetic_batches(WIDTHS, 19, 1, seed=3)[0]
    dc, do = zk.commit_dataset(x, y, BATCH)
    mc, mo = zk.commit_model(synthetic_mlp(WIDTHS, seed=1, bias=True), lr=LR)
    return dc, do, mc, mo


@pytest.fixture(scope="module")
def five(published):
    """The 5 steps proved as 5 one-step segments."""
    _, do, _, mo = published
    return zk.prove_run(mo, do, LR, segment_steps=1)


def test_chains_of_1_2_and_5_segments_verify_and_end_where_one_proof_does(published, five):
    dc, do, mc, mo = published
    single = zk.prove_training(mo, do, LR)
    for result in (zk.prove_run(mo, do, LR, segment_steps=5), zk.prove_run(mo, do, LR, segment_steps=3), five):
        report = zk.verify_chain(result.chain, dataset=dc, initial_model=mc)
        assert (report.proofs, report.steps, report.batches) == (len(result.chain), 5, (0, 1, 2, 3, 4))
        assert report.final_model.digest == result.opening.commitment.digest
        for name, v in single.opening.integers().items():
            np.testing.assert_array_equal(result.opening.integers()[name], v)
        assert [s.index for s in result.segments] == list(range(len(result.chain)))
        assert all(s.seconds > 0 and s.peak_rss > 0 and s.attempts == 1 and not s.proof for s in result.segments)
    assert len(five.chain) == 5
    for a, b in zip(five.model.state_dict().values(), single.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_chain_file_round_trip_and_malformed_files(five):
    data = five.chain.to_bytes()
    again = zk.Chain.from_bytes(data)
    assert again.segments == five.chain.segments
    assert zk.verify_chain(again).steps == 5
    assert "5 (" in again.describe() and five.opening.commitment.digest.hex() in again.describe()
    for bad, message in ((data[:-1], "truncated"), (data[:9] + b"\0\0\0\0" + data[13:], "0 proofs"),
                         (data[:8] + b"\x09" + data[9:], "version"), (b"ZKTRAIN\0" + data[8:], "training chain"),
                         (data[:17] + b"X" + data[18:], "segment 1 is not")):
        with pytest.raises(zk.ProofFormatError, match=message):
            zk.Chain.from_bytes(bad)
    # a segment that frames well but does not parse is named when verified
    broken = zk.Chain(five.chain.segments[:2] + (five.chain.segments[2][:200],) + five.chain.segments[3:])
    with pytest.raises(zk.VerificationError, match="proof 3 of 5"):
        zk.verify_chain(broken)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s[:2] + s[3:], "proof 3 of 4: it does not start from proof 2's final model"),
    (lambda s: (s[1], s[0]) + s[2:], "proof 1 of 5: .*initial parameters are not the published model"),
    (lambda s: s[:3] + s[2:], "proof 4 of 6: it does not start from proof 3's final model"),
    (lambda s: s[:4], None),  # a prefix is a valid (shorter) run
])
def test_missing_reordered_duplicated_segments_are_rejected(published, five, edit, message):
    dc, _, mc, _ = published
    chain = zk.Chain(edit(five.chain.segments))
    if message is None:
        assert zk.verify_chain(chain, dataset=dc, initial_model=mc).steps == 4
        return
    with pytest.raises(zk.VerificationError, match=message):
        zk.verify_chain(chain, dataset=dc, initial_model=mc)


def test_foreign_segment_and_segment_from_other_weights_break_the_chain(published, five):
    dc, do, mc, mo = published
    # a cheating prover proves segment 3 (batch 2) honestly, but from other weights
    values = dict(mo.integers())
    values["0.weight"] = values["0.weight"].copy()
    values["0.weight"][0, 0] += 1 << 10
    c = mo.commitment
    other = zk.model.from_integers(c.architecture, values, zk.commit.DEFAULT_KEY)
    forged = zk.prove_run(other, do, LR, steps=1, start_batch=2, segment_steps=1)
    assert zk.verify_chain(forged.chain, dataset=dc)  # a valid proof on its own
    chain = zk.Chain(five.chain.segments[:2] + forged.chain.segments + five.chain.segments[3:])
    with pytest.raises(zk.VerificationError, match="proof 3 of 5: it does not start from proof 2's final model"):
        zk.verify_chain(chain, dataset=dc, initial_model=mc)
    # a segment of another run (same model, another dataset)
    x, y = synthetic_batches(WIDTHS, 19, 1, seed=4)[0]
    foreign = zk.prove_run(mo, zk.commit_dataset(x, y, BATCH)[1], LR, steps=1, segment_steps=1)
    with pytest.raises(zk.VerificationError, match="proof 1 of 5: .*dataset"):
        zk.verify_chain(zk.Chain(foreign.chain.segments + five.chain.segments[1:]), dataset=dc)


class _Swapping(executors.InlineExecutor):
    """A faulty worker pool: hands back segment 1's proof for segment 2."""

    def run(self, job, tasks):
        first = None
        for result in super().run(job, tasks):
            first = first or result
            yield result if result.index != 1 else segments.SegmentResult(1, first.proof, 0.0, 0, "bad")


def test_the_driver_checks_every_segment_proof_before_it_joins_the_chain(published):
    _, do, _, mo = published
    with pytest.raises(zk.VerificationError, match="segment 2: the worker's proof does not check"):
        zk.prove_run(mo, do, LR, steps=3, segment_steps=1, executor=_Swapping())


def test_bad_arguments_are_named_before_any_work(published):
    _, do, _, mo = published
    for kwargs, message in (({"segment_steps": 0}, "segment_steps"), ({"segment_steps": 1, "executor": "gpu"},
                            "executor must be one of inline, process, ray"),
                            ({"segment_steps": 1, "executor": "process", "workers": 0}, "workers"),
                            ({"segment_steps": 1, "executor": "inline", "workers": 2}, "one worker"),
                            ({"segment_steps": 1, "ray_address": "auto"}, "ray_address"),
                            ({"segment_steps": 1, "retries": -1}, "retries"),
                            ({"segment_steps": 1, "steps": (1 << 24) + 1}, "steps must be")):
        with pytest.raises(ValueError, match=message):
            zk.prove_run(mo, do, LR, **kwargs)


def test_an_update_that_underflows_is_named_with_its_step(published):
    _, do, _, mo = published
    with pytest.raises(ValueError, match="at step 0 underflow"):
        zk.prove_run(mo, do, 1e-9, segment_steps=2)


def test_a_killed_worker_is_replaced_and_its_segment_retried(published):
    dc, do, mc, mo = published
    killed = []

    def kill_first_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            children = [p for p in multiprocessing.active_children() if p.pid]
            if children:
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(children[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    try:
        result = zk.prove_run(mo, do, LR, segment_steps=2, executor="process", workers=2)
    finally:
        killer.join()
    assert killed
    assert sum(s.attempts for s in result.segments) > len(result.segments)
    assert zk.verify_chain(result.chain, dataset=dc, initial_model=mc).steps == 5
    assert len({s.worker for s in result.segments}) >= 1


def _fail_first_then_sleep(task):
    if task.index == 0:
        time.sleep(0.5)
        raise ValueError("boom")
    time.sleep(60)


class _FailingWorkers(executors.ProcessExecutor):
    work = staticmethod(_fail_first_then_sleep)


def test_an_error_in_one_segment_stops_the_other_workers():
    tasks = [segments.SegmentTask(i, i, (0,), b"", b"") for i in range(4)]
    with pytest.raises(ValueError, match=r"segment 1 \(steps 1-1\): boom"):
        list(_FailingWorkers(workers=2).run(None, iter(tasks)))
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()  # the sleeping worker was stopped, not waited for


def test_memory_does_not_grow_with_the_number_of_segments(published):
    _, do, _, mo = published
    zk.prove_run(mo, do, LR, steps=5, segment_steps=1)  # warm caches (the short last batch's circuit too)
    peaks = {}
    for n in (2, 5):
        gc.collect()  # garbage of earlier work must not be freed (or not) inside the window
        tracemalloc.start()
        try:
            result = zk.prove_run(mo, do, LR, steps=n, segment_steps=1)
            peaks[n] = tracemalloc.get_traced_memory()[1], len(result.chain.to_bytes())
        finally:
            tracemalloc.stop()
    (peak2, chain2), (peak5, chain5) = peaks[2], peaks[5]
    # what grows is the proofs returned, not the witness held (one segment's at a time)
    assert peak5 - peak2 <= (chain5 - chain2) + 0.1 * peak2, peaks


def test_ray_two_worker_local_cluster_end_to_end(published):
    pytest.importorskip("ray", reason="Ray is not installed here (pip install -e '.[ray]')")
    dc, do, mc, mo = published
    result = zk.prove_run(mo, do, LR, segment_steps=2, executor="ray", workers=2)
    assert zk.verify_chain(result.chain, dataset=dc, initial_model=mc).steps == 5
    honest = zk.prove_training(mo, do, LR).opening.integers()
    for name, v in honest.items():
        np.testing.assert_array_equal(result.opening.integers()[name], v)


# ----------------------------------------------------------------------------------------
# zk.Recorder: an ordinary torch loop
# ----------------------------------------------------------------------------------------
def _loader(seed=0, rows=22, batch=8):
    g = torch.Generator().manual_seed(seed)
    data = torch.utils.data.TensorDataset(torch.randn(rows, WIDTHS[0], generator=g),
                                          torch.randn(rows, WIDTHS[-1], generator=g))
    return torch.utils.data.DataLoader(data, batch_size=batch)


def _train(model, optimizer, recorder, loader, epochs=1, loss=torch.nn.functional.mse_loss):
    for _ in range(epochs):
        for x, y in recorder.watch(loader):
            optimizer.zero_grad()
            loss(model(x), y).backward()
            optimizer.step()


def test_recorder_proves_a_torch_loop_in_segments_and_matches_torch():
    model = synthetic_mlp(WIDTHS, seed=2, bias=True)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    recorder = zk.Recorder(model, optimizer)
    _train(model, optimizer, recorder, _loader(), epochs=2)
    assert recorder.steps == 6 and recorder.schedule == [0, 1, 2, 0, 1, 2]  # the epochs' batches committed once
    result = recorder.prove(segment_steps=4)
    report = zk.verify_chain(result.chain, dataset=result.dataset, initial_model=result.initial_model)
    assert (report.proofs, report.steps, report.distinct_batches) == (2, 6, 3)
    for name, v in model.state_dict().items():
        update = (v - initial[name]).abs().max()
        assert (result.model.state_dict()[name] - v).abs().max() <= 1e-3 * update + 2.0 ** -15


def test_recorder_proves_sgd_with_momentum_and_weight_decay_in_segments():
    """Each segment boundary's model carries the momentum buffers: the next segment resumes from
    exactly them, and the chain checks it."""
    model = synthetic_mlp(WIDTHS, seed=4, bias=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, dampening=0.1, weight_decay=1e-3)
    recorder = zk.Recorder(model, optimizer)
    _train(model, optimizer, recorder, _loader())
    result = recorder.prove(segment_steps=2)
    report = zk.verify_chain(result.chain, dataset=result.dataset, initial_model=result.initial_model)
    assert report.proofs == 2 and report.sgd == (0.9, 0.1, 1e-3)
    first, second = result.chain.proof(0).statement, result.chain.proof(1).statement
    assert (first.resumed, second.resumed) == (False, True)
    assert first.final_model.state and first.final_model.to_bytes() == second.initial_model.to_bytes()
    assert "momentum buffers of" in first.final_model.describe()
    for name, v in model.state_dict().items():
        assert (result.model.state_dict()[name] - v).abs().max() <= 1e-3 * v.abs().max() + 2.0 ** -15


def test_a_dropped_recorder_is_not_kept_alive_by_its_hook():
    import gc
    import weakref

    model = synthetic_mlp(WIDTHS)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    gone = weakref.ref(zk.Recorder(model, optimizer))
    gc.collect()
    assert gone() is None
    with zk.Recorder(model, optimizer) as recorder:
        _train(model, optimizer, recorder, _loader())
    optimizer.step()  # after close(): not counted
    assert recorder.steps == 3


def test_recorder_refuses_what_the_proof_cannot_express():
    model = synthetic_mlp(WIDTHS)
    with pytest.raises(UnsupportedOp, match="torch.optim.Adam is not supported"):
        zk.Recorder(model, torch.optim.Adam(model.parameters()))
    with pytest.raises(UnsupportedOp, match="nesterov=True is not supported"):
        zk.Recorder(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True))
    used = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.zeros(1, WIDTHS[0])).sum().backward()
    used.step()
    with pytest.raises(UnsupportedOp, match="already holds momentum buffers"):
        zk.Recorder(model, used)
    with pytest.raises(UnsupportedOp, match="learning rates"):
        zk.Recorder(model, torch.optim.SGD([{"params": [model[0].weight], "lr": 0.1},
                                            {"params": [model[2].weight], "lr": 0.2}]))
    with pytest.raises(ValueError, match="exactly the model's parameters"):
        zk.Recorder(model, torch.optim.SGD([model[0].weight], lr=0.1))
    sigmoid = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 3))
    with pytest.raises(UnsupportedOp, match="Sigmoid"):
        zk.Recorder(sigmoid, torch.optim.SGD(sigmoid.parameters(), lr=0.1))


@pytest.mark.parametrize("loop, message", [
    ("scheduler", "learning rate changed to 0.025 at step 2"),
    ("unrecorded", "had no recorded batch"),
    ("l1", "not SGD with mean MSE"),
    ("nothing", "no optimizer step"),
    ("weight decay later", "weight decay changed at step 2"),
    ("batch changed in place", "not SGD with mean MSE.*change a batch after it was recorded"),
    ("parameter edited", "not SGD with mean MSE"),
])
def test_recorder_refuses_loops_it_cannot_prove(loop, message):
    model = synthetic_mlp(WIDTHS, seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    recorder = zk.Recorder(model, optimizer)
    if loop == "scheduler":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
        for x, y in recorder.watch(_loader()):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    elif loop == "unrecorded":
        _train(model, optimizer, recorder, _loader())
        optimizer.step()
    elif loop == "l1":
        _train(model, optimizer, recorder, _loader(), loss=torch.nn.functional.l1_loss)
    elif loop in ("weight decay later", "batch changed in place", "parameter edited"):
        for t, (x, y) in enumerate(recorder.watch(_loader())):
            if t == 1 and loop == "batch changed in place":
                x.mul_(1.01)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            if t == 0 and loop == "weight decay later":
                optimizer.param_groups[0]["weight_decay"] = 1e-3
            if t == 0 and loop == "parameter edited":
                with torch.no_grad():
                    model[0].weight[0, 0] += 1e-3
    with pytest.raises(ValueError, match=message):
        recorder.prove()


def test_a_chain_has_one_learning_rate(published):
    dc, do, mc, mo = published
    first = zk.prove_training(mo, do, LR, steps=1)
    second = zk.prove_training(first.opening, do, 2 * LR, steps=1, start_batch=1)
    with pytest.raises(zk.VerificationError, match="proof 2 of 2: it trains with learning rate 0.1"):
        zk.verify_chain([first.proof, second.proof], dataset=dc, initial_model=mc)
    assert zk.verify_chain([first.proof]).lr == LR
