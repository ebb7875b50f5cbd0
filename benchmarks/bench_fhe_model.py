"""Encrypted inference of a whole model compiled from the circuits Graph (``fhe.compile``).

The digits MLP 64-32-10 (bias; bench_fidelity's data, trained here in torch float32: 40 epochs
of SGD, MSE on one-hot targets, on the first 1500 images) is compiled with its ReLU replaced by
a Chebyshev approximation on a range calibrated on the training images (x 1.25), then run
encrypted on SEAL in batches of 16 over the 297 held-out images. Reports the program (levels,
ring, keys), key generation, encryption, the encrypted forward pass per batch, decryption, the
largest error against the program's own float64 reference, and the argmax agreement with the
plaintext torch model (the issue's target: a batch of 16 in <= 2 s, >= 99 % agreement).

    python benchmarks/bench_fhe_model.py [--degree 15] [--batches 19] [--no-write]
"""
from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np
import torch

from _doc import machine, publish
from bench_fidelity import WIDTHS, digits

TRAIN, BATCH = 1500, 16


def trained_model():
    torch.manual_seed(0)
    from zk.training import synthetic_mlp

    X, Y = digits()
    model = synthetic_mlp(WIDTHS, seed=0, bias=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.from_numpy(X[:TRAIN]), torch.from_numpy(Y[:TRAIN])
    for _ in range(40):
        for s in range(0, TRAIN, 50):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[s:s + 50]), y[s:s + 50]).backward()
            opt.step()
    return model, X


def matmul64() -> list[tuple[str, str]]:
    """64x64 . 64x64, both encrypted, on the default context and on the context sized for it."""
    import fhe

    a, b = np.random.default_rng(0).random((2, 64, 64))
    rows = []
    for name, make in (("fhe.Context() (default, sized by the einsum)", lambda: fhe.Context()),
                       ("fhe.Context(levels=2)", lambda: fhe.Context(levels=2))):
        ctx = make()
        x, y = ctx.encrypt(a), ctx.encrypt(b)
        fhe.einsum("ij,jk->ik", x, y)  # keys and masks
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fhe.einsum("ij,jk->ik", x, y)
            times.append(time.perf_counter() - t0)
        rows.append((f"64x64 . 64x64 both encrypted, {name}: N = {ctx.backend.slots * 2}, {ctx.levels} levels (s)",
                     f"{min(times):.3f}"))
    return rows


def evaluate(model, X, act, batches: int, scale_bits: int, backend: str = "seal") -> dict:
    """Compile ``model`` with ``act``, make its context on ``backend``, and run ``batches``
    held-out batches of 16 encrypted: times per batch, the largest error against the program's
    float64 reference, and the argmax agreement with the plaintext torch model."""
    import fhe.compiler as fc

    program = fc.compile(model, (BATCH, WIDTHS[0]), act, scale_bits=scale_bits)
    t0 = time.perf_counter()
    ctx = program.context(backend)
    keygen = time.perf_counter() - t0
    test = X[TRAIN:TRAIN + BATCH * batches]
    n = len(test) // BATCH * BATCH
    enc = run = dec = 0.0
    agree, error = [], 0.0
    for s in range(0, n, BATCH):
        x = test[s:s + BATCH].astype(np.float64)
        t0 = time.perf_counter()
        c = ctx.encrypt(x, program.input_layout)
        t1 = time.perf_counter()
        out = program.run(c)
        t2 = time.perf_counter()
        y = ctx.decrypt(out)
        t3 = time.perf_counter()
        enc, run, dec = enc + t1 - t0, run + t2 - t1, dec + t3 - t2
        error = max(error, float(np.abs(y - program.reference(x)).max()))
        with torch.no_grad():
            plain = model(torch.from_numpy(test[s:s + BATCH])).numpy()
        agree += list(y.argmax(1) == plain.argmax(1))
    b = n // BATCH
    return {"program": program, "act": act, "keygen": keygen, "encrypt": enc / b, "run": run / b,
            "decrypt": dec / b, "error": error, "agree": float(np.mean(agree)), "images": n}


def activations(model, X, degree: int = 15) -> dict:
    """The ReLU approximations benchmarked, on 1.25 x the largest training pre-activation: the
    single minimax polynomial of ``degree`` and the composite (7, 7, 7)."""
    import fhe.compiler as fc

    with torch.no_grad():
        pre = model[0](torch.from_numpy(X[:TRAIN])).abs().max().item()
    return {"single": fc.relu_approx(1.25 * pre, degree),
            "composite": fc.relu_approx(1.25 * pre, stages=(7, 7, 7))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--degree", type=int, default=15, help="degree of the ReLU approximation")
    ap.add_argument("--batches", type=int, default=19, help="encrypted batches of 16 held-out images")
    ap.add_argument("--scale-bits", type=int, default=38, help="CKKS scale (38: 8 levels fit the 2^14 ring)")
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = ap.parse_args()

    model, X = trained_model()
    act = activations(model, X, args.degree)["single"]
    r = evaluate(model, X, act, args.batches, args.scale_bits)
    program, n = r["program"], r["images"]
    rows = [("levels / ring degree / rotation keys", f"{program.levels} / {2 * program.slots} / "
             f"{len(program.rotation_keys)}"),
            ("ReLU approximation", act.describe()),
            ("key generation (s)", f"{r['keygen']:.2f}"),
            ("encrypt, per batch of 16 (s)", f"{r['encrypt']:.3f}"),
            ("encrypted forward pass, per batch of 16 (s)", f"{r['run']:.3f}"),
            ("decrypt, per batch (s)", f"{r['decrypt']:.3f}"),
            ("max |decrypted - float64 program|", f"{r['error']:.2e}"),
            (f"argmax = plaintext torch model ({n} held-out images)", f"{100 * r['agree']:.1f} %"),
            *matmul64()]
    table = "\n".join(["| digits MLP 64-32-10, SEAL, batch 16 | |", "|---|---:|",
                       *(f"| {k} | {v} |" for k, v in rows)])
    print(table)
    body = (f"## Encrypted inference of a compiled model (`benchmarks/bench_fhe_model.py`)\n\n"
            f"Date {date.today()}; machine: {machine()}; configuration: `fhe.compile` of the digits MLP "
            f"64-32-10 (trained in torch on 1500 images), ReLU by a degree-{args.degree} minimax polynomial "
            f"on ±{act.bound:.2f} (1.25 x the largest training pre-activation), SEAL at the program's "
            f"128-bit secure ring with a {args.scale_bits}-bit scale, {n // BATCH} batches of 16 held-out images; "
            f"the last rows: the 64x64 product of the issue's target on the default context (sized by its "
            f"first einsum) and on fhe.Context(levels=2), best of 3 after a warm-up.\n\n" + table)
    publish("bench_fhe_model", body, not args.no_write)


if __name__ == "__main__":
    main()
