"""Long training runs proved as chained segments (``zk.prove_run``) on each executor.

Workloads: the digits MLP 64-32-10 of bench_fidelity (one epoch, batch 32: 57 steps) and the
MLP 784-256-256-10 on synthetic batches of 64 (issue target 256 steps; by default a few steps,
with the wall time of 256 modelled from the measured per-segment cost). Executors: inline,
process with 1 and 2 workers, Ray with 1 and 2 workers (when Ray is installed).

Prints a table and updates the ``bench_run`` section of docs/benchmarks.md.

    python benchmarks/bench_run.py                    # digits epoch + 784-256-256-10 (4 steps, modelled to 256)
    python benchmarks/bench_run.py --big-steps 256    # the real 256 steps (hours on 2 cores)
    python benchmarks/bench_run.py --quick --no-write # tiny sizes, to check the script
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from datetime import date
from typing import NamedTuple

import numpy as np
import zk
from zk.training import synthetic_batches, synthetic_mlp
from _doc import machine, peak_mb, publish, reset_peak

LR = 0.01
EXECUTORS = (("inline", 1), ("process", 1), ("process", 2), ("ray", 1), ("ray", 2))
BIG_WIDTHS, BIG_BATCH, BIG_TARGET = (784, 256, 256, 10), 64, 256
MACHINES = (1, 2, 4, 8, 16, 32)


class Workload(NamedTuple):
    name: str
    model: object
    data: zk.DatasetOpening
    steps: int
    segment_steps: int
    model_steps: int  # the steps the wall-time model is for


class Row(NamedTuple):
    executor: str
    workers: int
    segments: int
    steps: int
    wall: float
    proving: float  # sum of the segments' seconds
    worker_mb: float
    driver_mb: float
    verify: float
    kb: float
    retries: int


def progress(stage, done, total):
    if stage == "segments" and sys.stderr.isatty():
        print(f"\r  segment {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def synthetic(widths, batch, steps, segment_steps, target=0) -> Workload:
    X, Y = (np.concatenate(a) for a in zip(*synthetic_batches(widths, batch, steps)))
    _, data = zk.commit_dataset(X, Y, batch)
    name = f"MLP {'-'.join(map(str, widths))}, batch {batch}, synthetic"
    return Workload(name, synthetic_mlp(widths), data, steps, segment_steps, max(steps, target))


def digits(segment_steps) -> Workload:
    from bench_fidelity import BATCH, SCALE, WIDTHS, digits as load

    _, data = zk.commit_dataset(*load(), BATCH, SCALE)
    steps = data.commitment.batches
    name = f"digits MLP {'-'.join(map(str, WIDTHS))} with biases, one epoch, batch {BATCH}"
    return Workload(name, synthetic_mlp(WIDTHS, seed=0, bias=True), data, steps, segment_steps, steps)


def run_row(w: Workload, executor: str, workers: int):
    """One ``prove_run`` of ``w``: its :class:`Row` and the trained integer parameters."""
    reset_peak()
    t0 = time.perf_counter()
    result = zk.prove_run(w.model, w.data, LR, w.steps, segment_steps=w.segment_steps, executor=executor,
                          workers=workers, progress=progress)
    wall = time.perf_counter() - t0
    driver = peak_mb()
    t0 = time.perf_counter()
    report = zk.verify_chain(result.chain, dataset=w.data.commitment)
    verify = time.perf_counter() - t0
    segs = result.segments
    assert report.steps == w.steps and report.proofs == len(segs) == -(-w.steps // w.segment_steps)
    row = Row(executor, workers, len(segs), report.steps, wall, sum(s.seconds for s in segs),
              max(s.peak_rss for s in segs) / 1e6, driver, verify, len(result.chain.to_bytes()) / 1e3,
              sum(s.attempts - 1 for s in segs))
    return row, result.opening.integers()


def bench_workload(w: Workload, executors) -> list[Row]:
    """Every executor on ``w``; asserts they all train the same integer parameters."""
    rows, reference = [], None
    for executor, workers in executors:
        row, final = run_row(w, executor, workers)
        if reference is None:
            reference = final
        assert final.keys() == reference.keys() and all(np.array_equal(final[k], reference[k]) for k in final), \
            f"{w.name}: {executor} x{workers} trained other parameters"
        rows.append(row)
        print(format_row(w, row), flush=True)
    return rows


def format_row(w: Workload, r: Row) -> str:
    return (f"| {w.name} | {r.executor} | {r.workers} | {r.segments} | {r.steps} | {r.wall:.2f} "
            f"| {r.proving / r.segments:.2f} | {r.worker_mb:.0f} | {r.driver_mb:.0f} | {r.verify:.2f} "
            f"| {r.kb:.1f} | {r.retries} |")


def wall_model(w: Workload, rows: list[Row]):
    """``(S, c, d, {N: T(N)})`` from the first one-worker row (inline where measured):
    ``T(N) = ceil(S/N) c + S d`` for the ``S`` segments of ``w.model_steps`` steps."""
    base = next(r for r in rows if r.workers == 1)
    c, d = base.proving / base.segments, (base.wall - base.proving) / base.segments
    S = -(-w.model_steps // w.segment_steps)
    return S, c, d, {n: math.ceil(S / n) * c + S * d for n in MACHINES}


def model_section(measured) -> str:
    models = [(w, wall_model(w, rows)) for w, rows in measured]
    lines = [f"- {w.name}: S = {S} segments of {w.segment_steps} steps ({w.model_steps} steps"
             f"{', modelled' if w.model_steps != w.steps else ''}), c = {c:.2f} s, d = {d:.3f} s"
             for w, (S, c, d, _) in models]
    head = "| N machines | " + " | ".join(f"{w.name}, {w.model_steps} steps (s)" for w, _ in models) + " |"
    table = [head, "|---:|" + "---:|" * len(models)]
    table += [f"| {n} | " + " | ".join(f"{m[3][n]:.1f}" for _, m in models) + " |" for n in MACHINES]
    return ("**Model of wall time on N machines.** From each workload's one-worker run (inline where "
            "measured): c, the mean seconds a worker takes per segment, and d = (wall − Σ segment seconds) / S, "
            "the driver's per-segment overhead (the fixed-point planning, committing the boundary models, "
            "checking each segment proof as it arrives). S segments on N single-worker machines like this one "
            "take about T(N) = ⌈S/N⌉·c + S·d: the driver checks the proofs one at a time, so S·d does not "
            "shrink with N unless checking overlaps with proving (then T(N) ≈ max(⌈S/N⌉·c, S·d)). Transfers "
            "(a model opening and a proof per segment, the dataset once per worker) and worker start-up are "
            "left out.\n\n" + "\n".join(lines) + "\n\n" + "\n".join(table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (8-4-3, batch 4, 4 steps in segments of 2) only")
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    ap.add_argument("--segment-steps", type=int, default=8, help="steps per segment of the digits run")
    ap.add_argument("--big-steps", type=int, default=4, help="steps of the 784-256-256-10 run actually proved")
    ap.add_argument("--big-segment-steps", type=int, default=2, help="steps per segment of the 784-256-256-10 run")
    ap.add_argument("--skip-big", action="store_true", help="skip the 784-256-256-10 workload")
    ap.add_argument("--executors", default=",".join(dict.fromkeys(e for e, _ in EXECUTORS)),
                    help="comma-separated executors to run (default: %(default)s)")
    args = ap.parse_args()
    chosen = args.executors.split(",")
    if unknown := set(chosen) - {e for e, _ in EXECUTORS}:
        ap.error(f"unknown executors: {', '.join(sorted(unknown))}")
    notes = []
    if "ray" in chosen:
        try:
            importlib.import_module("ray")
        except ImportError:
            chosen.remove("ray")
            notes.append("ray not installed: its rows are skipped.")
            print(notes[-1], flush=True)
    executors = [(e, n) for e, n in EXECUTORS if e in chosen]
    if not executors:
        ap.error("no executor left to run")

    zk.prove_run(synthetic_mlp((4, 3, 2)), synthetic_batches((4, 3, 2), 2, 2), LR, segment_steps=1)  # warm the JIT
    if args.quick:
        workloads = [lambda: synthetic((8, 4, 3), 4, 4, 2)]
    else:
        workloads = [lambda: digits(args.segment_steps)]
        if not args.skip_big:
            workloads.append(lambda: synthetic(BIG_WIDTHS, BIG_BATCH, args.big_steps, args.big_segment_steps,
                                               BIG_TARGET))
    peak_reset = reset_peak()
    measured = []
    for make in workloads:
        w = make()
        measured.append((w, bench_workload(w, executors)))

    table = "\n".join([
        "| workload | executor | workers | segments | steps | wall (s) | mean segment prove (s) "
        "| worker peak RSS (MB) | driver peak RSS (MB) | verify_chain (s) | chain (kB) | retries |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(format_row(w, r) for w, rows in measured for r in rows)])
    driver_note = ("the driver process's peak during the run (reset before each run through "
                   "/proc/self/clear_refs)" if peak_reset else "the driver process's lifetime peak so far")
    body = (f"## Long runs in segments (`benchmarks/bench_run.py`)\n\n"
            f"Date {date.today()}; machine: {machine()}; configuration: {'quick' if args.quick else 'full'}, "
            f"scale 2^16, lr {LR}, `zk.prove_run` from a committed dataset, one run per row (CPU only).\n\n"
            + (" ".join(notes) + "\n\n" if notes else "") + table + "\n\n"
            "Wall: `zk.prove_run` from the torch model and the dataset opening to the checked chain (planning "
            "in fixed point, proving, the driver's check of each segment proof; process and Ray rows include "
            "starting their workers, Ray its local cluster). Mean segment prove: a worker's seconds per segment "
            "(regenerating the witness, proving); with 2 workers each has half the cores. Worker peak RSS: the "
            "largest peak a worker reported (inline: the driver itself). Driver peak RSS: " + driver_note + ". "
            "verify_chain: the whole chain against the dataset commitment. Retries: attempts beyond the first "
            "(a worker that died). Every chain verifies and every executor trains the same "
            "integer parameters (asserted).\n\n" + model_section(measured))
    publish("bench_run", body, not args.no_write)


if __name__ == "__main__":
    main()
