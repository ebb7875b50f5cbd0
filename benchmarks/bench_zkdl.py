"""zkDL-scale proofs on the GPU (or, scaled down, on the CPU), against the issue's targets.

Configurations (issue 7):

* zkDL's demo network, MLP 784-1000-1773-1773-1773-1773-1773-1124-1000 (no bias, 18.2M parameters),
  batch 256: inference proof (target <= 1 s on an H100; zkDL's CUDA code: 4.97 s) and one full
  training step, forward, backward and update (target <= 5 s, with verification);
* zkDL paper's training setting: 8 layers, ~10M parameters (784-1200x7-10: 9.6M), batch 64, one
  step (target <= 0.5 s).

Each row gives the prover's stages (witness in exact fixed point, committing, the aggregated
sumchecks and openings), verification and proof size. ``--scale k`` divides every width and the
batch by ``k`` (the CPU default is 16, where a full-size run would take hours); targets apply at
scale 1 only. Updates the ``bench_zkdl`` section of docs/benchmarks.md.

    python benchmarks/bench_zkdl.py                         # device auto: full size on a GPU, 1/16 on a CPU
    python benchmarks/bench_zkdl.py --device cuda --scale 1
    python benchmarks/bench_zkdl.py --device cpu --scale 32 --no-write
"""
from __future__ import annotations

import argparse
import time
from datetime import date

import zk
from zk import device as zk_device
from zk.training import synthetic_batches, synthetic_mlp
from _doc import machine, msm_unit, peak_mb, publish, reset_peak

SECTION = "bench_zkdl"
DEMO = (784, 1000, 1773, 1773, 1773, 1773, 1773, 1124, 1000)
PAPER = (784,) + (1200,) * 7 + (10,)
#: (name, widths, batch, training, target seconds at scale 1)
CONFIGS = [
    ("zkDL demo MLP, inference", DEMO, 256, False, 1.0),
    ("zkDL demo MLP, training step", DEMO, 256, True, 5.0),
    ("zkDL paper setting (8 layers), training step", PAPER, 64, True, 0.5),
]


def scaled(widths, batch: int, k: int):
    return tuple(max(2, -(-w // k)) for w in widths), max(1, batch // k)


class Stages:
    """A progress callback that records when each prover stage ends."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.ends: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.ends[stage] = time.perf_counter() - self.t0

    def durations(self, total: float) -> dict[str, float]:
        out, last = {}, 0.0
        for stage, end in self.ends.items():
            out[stage], last = end - last, end
        out["other"] = total - last
        return out


def run(widths, batch: int, training: bool, device) -> dict:
    model = synthetic_mlp(widths)
    batches = synthetic_batches(widths, batch, 1)
    stages = Stages()
    t0 = time.perf_counter()
    if training:
        proof = zk.prove_training(model, batches, 0.01, progress=stages, device=device).proof
    else:
        proof = zk.prove_inference(model, batches[0][0], progress=stages, device=device)
    prove = time.perf_counter() - t0
    t0 = time.perf_counter()
    (zk.verify_training if training else zk.verify_inference)(proof)
    return {"prove": prove, "verify": time.perf_counter() - t0, "size": len(proof.to_bytes()),
            "stages": stages.durations(prove)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--scale", type=int, help="divide widths and batch by this (default: 1 on cuda, 16 on cpu)")
    ap.add_argument("--only", metavar="TEXT", help="run only the configurations whose name contains TEXT "
                                                   "(e.g. 'paper')")
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = ap.parse_args()
    device = zk_device.resolve(args.device)
    scale = args.scale or (1 if device.name == "cuda" else 16)
    if scale < 1:
        ap.error("--scale must be at least 1")
    run((4, 3, 2), 2, True, device)  # warm the JIT caches and the kernels
    gpu_name = ""
    if device.name == "cuda":
        import cupy

        gpu_name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    unit = msm_unit()
    rows = []
    for name, widths, batch, training, target in CONFIGS:
        if args.only and args.only not in name:
            continue
        w, b = scaled(widths, batch, scale)
        params = sum(x * y for x, y in zip(w, w[1:]))
        label = f"{name}: {'-'.join(map(str, w))}, batch {b} ({params / 1e6:.2f}M params)"
        try:
            reset_peak()
            r = run(w, b, training, device)
            peak = peak_mb()
        except (MemoryError, RuntimeError, ValueError) as exc:  # e.g. out of device memory
            rows.append(f"| {label} | failed: {type(exc).__name__}: {str(exc)[:80]} | | | | | | |")
            print(rows[-1], flush=True)
            continue
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        goal = f"<= {target} s: {'met' if r['prove'] <= target else 'not met'}" if scale == 1 else "n/a (scaled)"
        rows.append(f"| {label} | {r['prove']:.2f} | {r['prove'] / unit:.0f} | {stages} | {r['verify']:.2f} | "
                    f"{r['size'] / 1e3:.0f} | {peak / 1e3:.2f} | {goal} |")
        print(rows[-1], flush=True)
    table = "\n".join(["| proof | prove (s) | prove / MSM 2^16 | prover stages (s) | verify (s) | size (kB) | "
                       "peak RSS (GB) | target |", "|---|---:|---:|---|---:|---:|---:|---|", *rows])
    where = f"device {device.name}" + (f" ({gpu_name})" if gpu_name else "")
    body = (f"## zkDL-scale proofs (`benchmarks/bench_zkdl.py`)\n\n"
            f"Date {date.today()}; machine: {machine()}; {where}; widths and batch divided by {scale}; "
            f"scale 2^16, lr 0.01, one step, one run each. Verification runs on the CPU. *prove / MSM 2^16*: the "
            f"prove time in units of one 2^16-point MSM measured in the same run ({unit * 1e3:.0f} ms); peak RSS: "
            f"this process's peak during the row (prover and verifier).\n\n" + table)
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
