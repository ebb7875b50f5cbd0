"""An encrypted linear layer inside a torch inference loop.

A small classifier ``Linear(16, 32) -> ReLU -> Linear(32, 4)``: for every batch the client
encrypts its inputs, the server applies the first layer to the ciphertexts with its plaintext
weights (the bias rides along as an extra input column of ones), the client decrypts and
finishes the network in the clear. The encrypted layer's plan is made once and reused.

    .venv/bin/python examples/encrypted_linear.py [--backend seal|desilo|sim]
"""
from __future__ import annotations

import argparse
import time

import torch

import fhe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="seal", choices=["seal", "desilo", "sim"])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    model.eval()
    first, rest = model[0], model[1:]
    # server side: weights with the bias as an extra column, kept in the clear
    weights = torch.cat([first.weight, first.bias[:, None]], dim=1).detach()   # (32, 17)

    ctx = fhe.Context(args.backend, levels=2)
    data = torch.randn(args.batches, args.batch_size, 16)
    worst, agree, seconds = 0.0, 0, 0.0
    with torch.no_grad():
        for i, x in enumerate(data):
            ones = torch.ones(len(x), 1)
            enc = ctx.encrypt(torch.cat([x, ones], dim=1))                 # client
            start = time.perf_counter()
            hidden = fhe.einsum("bi,oi->bo", enc, weights)                  # server
            seconds += time.perf_counter() - start
            logits = rest(ctx.decrypt(hidden))                              # client
            expected = model(x)
            worst = max(worst, (logits - expected).abs().max().item())
            agree += int((logits.argmax(1) == expected.argmax(1)).sum())
            if i == 0:
                print(ctx.plan("bi,oi->bo", enc, weights), end="\n\n")
    n = args.batches * args.batch_size
    print(f"{ctx!r}")
    print(f"{args.batches} batches: encrypted layer {seconds / args.batches:.3f} s per batch "
          f"(the first one includes rotation-key generation)")
    print(f"max |logit error| {worst:.2e}; predictions agree on {agree}/{n} inputs")


if __name__ == "__main__":
    main()
