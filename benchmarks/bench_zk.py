"""zk proof benchmarks: einsum proofs and zkDL training / inference proofs.

Prints a table and updates the ``bench_zk`` section of docs/benchmarks.md.

    python benchmarks/bench_zk.py            # full: issue targets (784x256 einsum, 784-256-256-10 step)
    python benchmarks/bench_zk.py --quick    # small sizes, a few seconds
    python benchmarks/bench_zk.py --only "784 step"   # one row, printed only
"""
from __future__ import annotations

import argparse
from datetime import date

import numpy as np
import zk
from zk.training import synthetic_batches, synthetic_mlp
from _doc import machine, msm_unit, peak_mb, publish, reset_peak, timed


def measured(run):
    """``run()``'s row with this process's peak RSS during it (MB)."""
    reset_peak()
    row = run()
    return (*row, peak_mb())


def bench_einsum(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a = rng.integers(-2**16, 2**16, shape_a)
    b = rng.integers(-2**16, 2**16, shape_b)
    zk.prove_einsum("ij,jk->ik", a[:2, :2], b[:2, :2])  # warm the JIT caches
    proof, tp = timed(lambda: zk.prove_einsum("ij,jk->ik", a, b))
    _, tv = timed(lambda: zk.verify_einsum(proof))
    return (f"einsum ij,jk->ik {shape_a[0]}x{shape_a[1]} . {shape_b[0]}x{shape_b[1]}", tp, tv,
            len(proof.to_bytes()))


def bench_training(widths, batch, steps, inference=False, bias=False, loss="mse"):
    model = synthetic_mlp(widths, bias=bias)
    batches = synthetic_batches(widths, batch, steps)
    if loss != "mse":  # classes: one-hot rows of the random targets' argmax
        batches = [(x, np.eye(y.shape[1], dtype=np.float32)[np.argmax(y, axis=1)]) for x, y in batches]
    arch = "-".join(map(str, widths)) + (" with biases" if bias else "") + \
        (", softmax cross-entropy" if loss != "mse" else "")
    if inference:
        proof, tp = timed(lambda: zk.prove_inference(model, batches[0][0]))
        _, tv = timed(lambda: zk.verify_inference(proof))
        return f"inference MLP {arch}, batch {batch}", tp, tv, len(proof.to_bytes())
    (proof, _, _), tp = timed(lambda: zk.prove_training(model, batches, 0.01, loss=loss))
    _, tv = timed(lambda: zk.verify_training(proof))
    return f"training MLP {arch}, batch {batch}, {steps} step(s)", tp, tv, len(proof.to_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    ap.add_argument("--only", metavar="TEXT", help="run only the rows whose label contains TEXT (e.g. '784 step'; "
                                                  "implies --no-write)")
    args = ap.parse_args()
    bench_training((4, 3, 2), 2, 1)  # warm the JIT caches
    if args.quick:
        runs = [("einsum", lambda: bench_einsum((16, 64), (64, 32))),
                ("step", lambda: bench_training((16, 8, 4), 8, 1)),
                ("2 steps", lambda: bench_training((16, 8, 4), 8, 2)),
                ("biases", lambda: bench_training((16, 8, 4), 8, 1, bias=True)),
                ("cross-entropy", lambda: bench_training((16, 8, 4), 8, 1, loss="cross_entropy")),
                ("inference", lambda: bench_training((16, 8, 4), 8, 1, inference=True))]
    else:
        runs = [("einsum", lambda: bench_einsum((64, 784), (784, 256))),
                ("784 step", lambda: bench_training((784, 256, 256, 10), 64, 1)),
                ("784 biases", lambda: bench_training((784, 256, 256, 10), 64, 1, bias=True)),
                ("784 cross-entropy", lambda: bench_training((784, 256, 256, 10), 64, 1, loss="cross_entropy")),
                ("784 inference", lambda: bench_training((784, 256, 256, 10), 64, 1, inference=True))]
        runs += [(f"64 {s} steps", lambda s=s: bench_training((64, 32, 32, 10), 16, s)) for s in (1, 2, 4, 8)]
        runs += [(f"64 width {w}", lambda w=w: bench_training((64, w, w, 10), 16, 1)) for w in (32, 64, 128)]
    if args.only:
        runs = [(label, run) for label, run in runs if args.only in label]
    unit = msm_unit()
    rows = []
    for _, run in runs:
        name, tp, tv, size, peak = measured(run)
        rows.append(f"| {name} | {tp:.2f} | {tp / unit:.1f} | {tv:.3f} | {size / 1e3:.1f} | {peak:.0f} |")
        print(rows[-1], flush=True)
    table = "\n".join(["| proof | prove (s) | prove / MSM 2^16 | verify (s) | size (kB) | peak RSS (MB) |",
                       "|---|---:|---:|---:|---:|---:|", *rows])
    body = (f"## zk proofs (`benchmarks/bench_zk.py`)\n\n"
            f"Date {date.today()}; machine: {machine()}; configuration: "
            f"{'quick' if args.quick else 'full'}, scale 2^16, lr 0.01, one run each (CPU only). "
            f"*prove / MSM 2^16*: prove time in units of one 2^16-point MSM of random scalars measured in the same "
            f"run ({unit * 1e3:.0f} ms here), to compare across machines; peak RSS: this process's peak during "
            f"the row (prover and verifier).\n\n"
            + table)
    publish("bench_zk", body, not (args.no_write or args.only))


if __name__ == "__main__":
    main()
