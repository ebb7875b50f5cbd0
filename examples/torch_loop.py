"""Prove an ordinary torch training loop, in segments proved side by side.

(a) A plain torch loop trains an MLP 64-16-10 on 256 rows of sklearn's digits (DataLoader,
    batch 32, shuffled, 2 epochs: 16 SGD steps, MSE on one-hot targets) while a
    ``zk.Recorder`` records each batch and counts each optimizer step.
(b) ``recorder.prove`` checks that the fixed-point run of the recorded schedule agrees with the
    torch model, then proves it as 4 chained segments of 4 steps on 2 local worker processes.
(c) The auditor verifies the chain file against the published dataset and initial model.
(d) What the recorder refuses: Adam, SGD with momentum, a loop with another loss.

Run: ``.venv/bin/python examples/torch_loop.py [--executor inline|process|ray] [--workers N]``.
See docs/long_runs.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import zk
from circuits import UnsupportedOp
from zk.training import synthetic_mlp

ROWS, BATCH, LR, EPOCHS, SEGMENT = 256, 32, 0.05, 2, 4


def loader(seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data[:ROWS] / 16.0, dtype=torch.float32)
    y = torch.nn.functional.one_hot(torch.tensor(d.target[:ROWS]), 10).float()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))


def train(model, optimizer, recorder, data, loss=torch.nn.functional.mse_loss, epochs=EPOCHS):
    """The user's loop, unchanged but for ``recorder.watch``."""
    for _ in range(epochs):
        for x, y in recorder.watch(data):
            optimizer.zero_grad()
            loss(model(x), y).backward()
            optimizer.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", default="process", choices=["inline", "process", "ray"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    workers = 1 if args.executor == "inline" else args.workers

    print("(a) a torch loop, recorded")
    model = synthetic_mlp((64, 16, 10), seed=0, bias=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    recorder = zk.Recorder(model, optimizer)
    train(model, optimizer, recorder, loader())
    print(f"  {recorder}: {len(set(recorder.schedule))} distinct batches")

    print(f"(b) proved as segments of {SEGMENT} steps, executor {args.executor} x{workers}")
    t0 = time.perf_counter()
    run = recorder.prove(segment_steps=SEGMENT, executor=args.executor, workers=workers)
    print(f"  {len(run.chain)} segment proofs in {time.perf_counter() - t0:.1f} s "
          f"({len(run.chain.to_bytes()):,} bytes); per segment: "
          + ", ".join(f"{s.seconds:.1f} s" for s in run.segments))
    gap = max(float((a - b).abs().max()) for a, b in zip(run.model.state_dict().values(),
                                                         model.state_dict().values()))
    print(f"  proved model vs the torch model: largest parameter difference {gap:.2e}")

    print("(c) the auditor: the chain file against the published dataset and initial model")
    chain = zk.Chain.from_bytes(run.chain.to_bytes())
    report = zk.verify_chain(chain, dataset=run.dataset, initial_model=run.initial_model)
    print(f"  {report.describe()}")
    assert report.steps == recorder.steps and report.final_model.digest == run.opening.commitment.digest

    print("(d) refused, with the reason")
    for make in (lambda m: torch.optim.Adam(m.parameters()),
                 lambda m: torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9)):
        other = synthetic_mlp((64, 16, 10), seed=1)
        try:
            zk.Recorder(other, make(other))
        except UnsupportedOp as exc:
            print(f"  {exc}")
    other = synthetic_mlp((64, 16, 10), seed=1)
    opt = torch.optim.SGD(other.parameters(), lr=LR)
    rec = zk.Recorder(other, opt)
    train(other, opt, rec, loader(), loss=torch.nn.functional.l1_loss, epochs=1)
    try:
        rec.prove()
    except ValueError as exc:
        print(f"  {exc}")
    else:
        raise AssertionError("an L1 loop was proved as MSE")
    assert np.isfinite(gap) and gap < 1e-3


if __name__ == "__main__":
    main()
