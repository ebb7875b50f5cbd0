"""Kernel-level throughput: Fr multiplications per second and MSM points per second, GPU vs CPU.

With a CUDA device (cupy sees one): Fr mul and MSM at 2^16 .. 2^24 on the GPU, against the CPU path
(zk.field's numba kernels for Fr, arkworks' multiexp for MSM) and the host build of the kernels at the
sizes a CPU finishes in reasonable time. Without one it says so and runs the CPU figures only, smaller.
Writes its section of docs/benchmarks.md (between the bench_gpu markers).

    python benchmarks/bench_gpu.py [--max-log N] [--no-write]
"""
from __future__ import annotations

import argparse
import random

import numpy as np
from _doc import best_time, machine, publish
from py_arkworks_bls12381 import G1Point, Scalar

import gpu
from gpu import ops
from zk import field

SECTION = "bench_gpu"


def random_fr(n: int, seed: int) -> np.ndarray:
    """Uniform Fr elements in the zk.field layout (seeded: benchmark data only)."""
    return field.random_seeded(n, np.random.default_rng(seed))


def base_points(count: int, seed: int):
    """``count`` distinct random points, compressed (arkworks) and as limbs (host)."""
    rng = random.Random(seed)
    pts = [G1Point() * Scalar(rng.randrange(1, ops.R)) for _ in range(count)]
    return pts, gpu.g1_from_compressed(b"".join(p.to_compressed_bytes() for p in pts))


def bench(max_log_gpu: int, max_log_cpu_mul: int, max_log_cpu_msm: int) -> list[tuple]:
    rows = []  # (operation, n, backend, seconds, throughput per second)

    def record(op: str, n: int, backend: str, seconds: float) -> None:
        rows.append((op, n, backend, seconds, n / seconds))
        print(f"{op:10s} n=2^{n.bit_length() - 1:<2d} {backend:28s} {seconds:9.4f} s  {n / seconds:.3g}/s", flush=True)

    have_gpu = gpu.available()
    if have_gpu:
        import cupy

        def on_gpu(fn):  # time kernels to completion
            return lambda: (fn(), cupy.cuda.Device().synchronize())

        gpu_name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        print(f"GPU: {gpu_name}")
    else:
        print("no GPU: cupy sees no CUDA device; running the CPU and host-build figures only, at small sizes")

    # Fr multiplication -------------------------------------------------------------------------
    for log in range(16, max(max_log_gpu if have_gpu else 0, max_log_cpu_mul) + 1, 2):
        n = 1 << log
        a, b = random_fr(n, 1), random_fr(n, 2)
        if log <= max_log_cpu_mul:
            t = best_time(lambda: field.mul(a, b), 3)
            record("Fr mul", n, "CPU zk.field (numba)", t)
            t = best_time(lambda: gpu.fr_mul(a, b), 3)
            record("Fr mul", n, "host build of kernels", t)
        if have_gpu and log <= max_log_gpu:
            da, db = gpu.to_device(a), gpu.to_device(b)
            t = best_time(on_gpu(lambda: gpu.fr_mul(da, db)), 10)
            record("Fr mul", n, f"GPU {gpu_name}", t)

    # MSM ---------------------------------------------------------------------------------------
    distinct = 1 << 10
    pts, limbs = base_points(distinct, 3)
    start_log = 10 if not have_gpu else 16
    for log in range(start_log, max(max_log_gpu if have_gpu else 0, max_log_cpu_msm) + 1, 2):
        n = 1 << log
        reps = n // distinct if n >= distinct else 1
        p_limbs = np.ascontiguousarray(np.tile(limbs, (reps, 1))[:n])
        s = random_fr(n, 4)
        if log <= max_log_cpu_msm:
            ark_pts = (pts * reps)[:n]
            ark_s = [Scalar(int(x)) for x in field.to_int(s)]
            t = best_time(lambda: G1Point.multiexp_unchecked(ark_pts, ark_s), 1)
            record("MSM random", n, "CPU arkworks", t)
            t = best_time(lambda: gpu.msm(p_limbs, s), 1)
            record("MSM random", n, "host build of kernels", t)
        if have_gpu and log <= max_log_gpu:
            dp, ds = gpu.to_device(p_limbs), gpu.to_device(s)
            t = best_time(on_gpu(lambda: gpu.msm(dp, ds)), 3)
            record("MSM random", n, f"GPU {gpu_name}", t)
            bits = gpu.to_device(field.from_int(np.random.default_rng(5).integers(0, 2, n)))
            t = best_time(on_gpu(lambda: gpu.msm(dp, bits)), 3)
            record("MSM bits", n, f"GPU {gpu_name}", t)
    return rows


def fmt_rate(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.1f}"


def section(rows: list[tuple]) -> str:
    lines = [
        "## GPU kernels (`benchmarks/bench_gpu.py`)",
        "",
        f"Machine: {machine()}; GPU: {rows_gpu(rows) or 'none (CPU and host-build figures only, small sizes)'}. "
        "Best of several runs after a warm-up, wall time. MSM points are 1024 distinct random points tiled; "
        "scalars uniform in Fr ('random') or 0/1 ('bits', the single-window fast path). "
        "'host build of kernels' is the CUDA source compiled for the CPU (g++ -O2, OpenMP): the "
        "correctness vehicle of the tests, not a tuned CPU path.",
        "",
        "| operation | n | backend | time (s) | per second |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    lines += [f"| {op} | 2^{n.bit_length() - 1} | {backend} | {t:.4f} | {fmt_rate(rate)} |" for op, n, backend, t, rate in rows]
    return "\n".join(lines)


def rows_gpu(rows: list[tuple]) -> str:
    return next((backend[4:] for _, _, backend, _, _ in rows if backend.startswith("GPU ")), "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-log", type=int, default=24, help="largest GPU size 2^N (default 24)")
    parser.add_argument("--quick", action="store_true", help="GPU sizes up to 2^16 only (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    max_log = min(args.max_log, 16) if args.quick else args.max_log
    rows = bench(max_log, max_log_cpu_mul=20, max_log_cpu_msm=16 if gpu.available() else 14)
    text = section(rows)
    publish(SECTION, text, not args.no_write)


if __name__ == "__main__":
    main()
