"""Encrypted attention scores: ``scores[b,h,t,T] = sum_d Q[b,t,h,d] K[b,T,h,d]``.

The client encrypts the (pre-scaled) queries and keys; the server runs one einsum on the
ciphertexts without seeing them; the client decrypts the scores and finishes the softmax.

    .venv/bin/python examples/encrypted_attention.py [--backend seal|desilo|sim]
"""
from __future__ import annotations

import argparse
import time

import torch

import fhe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="seal", choices=["seal", "desilo", "sim"])
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    batch, t, h, d = 1, args.tokens, args.heads, args.head_dim
    q = torch.randn(batch, t, h, d) / d ** 0.5          # the 1/sqrt(d) scale, in the clear
    k = torch.randn(batch, t, h, d)

    ctx = fhe.Context(args.backend, levels=3)
    eq, ek = ctx.encrypt(q), ctx.encrypt(k)             # client side
    plan = ctx.plan("bthd,bThd->bhtT", eq, ek)
    print(plan, end="\n\n")
    ctx.generate_rotation_keys(plan.rotation_keys)      # evaluation keys, made by the client

    start = time.perf_counter()
    scores = fhe.einsum("bthd,bThd->bhtT", eq, ek)      # server side: ciphertexts only
    elapsed = time.perf_counter() - start

    got = ctx.decrypt(scores)                           # client side
    want = torch.einsum("bthd,bThd->bhtT", q, k)
    attention = torch.softmax(got, dim=-1)
    print(f"{ctx!r}")
    print(f"encrypted scores {tuple(got.shape)} in {elapsed:.3f} s, level left {scores.level}")
    print(f"max |error| of the scores: {(got - want).abs().max().item():.2e}")
    print(f"max |error| after softmax: "
          f"{(attention - torch.softmax(want, dim=-1)).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
