"""zkfhe demo: one model description (circuits), checked against torch.

Trains a small MLP for a few SGD steps through circuits, in float64 and in exact fixed
point, and prints how both agree with torch autograd + torch.optim.SGD.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

import circuits


def torch_steps(model, batches, lr):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for X, Y in batches:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    return model


def circuits_steps(model, batches, lr, mode):
    model = copy.deepcopy(model)
    for X, Y in batches:
        new = circuits.train_step(model, X, Y, lr, mode=mode)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()})
    return model


def main() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4)).double()
    batches = [(torch.randn(12, 16, dtype=torch.float64), torch.randn(12, 4, dtype=torch.float64))
               for _ in range(3)]
    lr = 0.05
    print("== circuits: one description of a training step ==")
    print(circuits.trace_training(model, 12, lr))
    ref = torch_steps(model, batches, lr).state_dict()
    print(f"\n3 SGD steps of MLP 16-32-32-4, batch 12, lr {lr}: max |difference| vs torch")
    for mode in ("float", "fixed"):
        t0 = time.perf_counter()
        ours = circuits_steps(model, batches, lr, mode).state_dict()
        dt = time.perf_counter() - t0
        err = max(float(np.max(np.abs(ours[k].numpy() - ref[k].numpy()))) for k in ref)
        print(f"  {mode:5s}: {err:.2e}   ({dt * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
