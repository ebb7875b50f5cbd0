"""Throughput of the CPU field kernels: Fr arithmetic, MLE folding, sumcheck rounds.

Usage: ``python benchmarks/bench_field.py [--quick] [--no-write]``

Prints a table and rewrites this script's section of ``docs/benchmarks.md`` (between the
``bench_field`` markers; other scripts own other sections). Every figure is the best of a few
repetitions after a warm-up call (which also compiles or loads the numba kernels).
"""
from __future__ import annotations

import argparse
import datetime

import numba
import numpy as np
from _doc import best_time, machine, publish

from zk import field as F
from zk import mle, sumcheck
from zk.transcript import Transcript

SECTION = "bench_field"


def measure(log2_field: int, log2_tables: list[int], repeat: int) -> list[tuple]:
    """Rows ``(benchmark, size, threads, seconds, throughput text)``."""
    rng = np.random.default_rng(0)
    all_threads = numba.config.NUMBA_NUM_THREADS
    n = 1 << log2_field
    a, b = F.random_seeded(n, rng), F.random_seeded(n, rng)
    rows = []

    def row(name, size, threads, seconds, count, unit="elements"):
        rows.append((name, size, threads, seconds, f"{count / seconds / 1e6:.1f} M {unit}/s"))

    for threads in sorted({1, all_threads}):
        numba.set_num_threads(threads)
        row("Fr mul", n, threads, best_time(lambda: F.mul(a, b), repeat), n, "mul")
        row("Fr add", n, threads, best_time(lambda: F.add(a, b), repeat), n, "add")
        row("Fr batch inversion", n, threads, best_time(lambda: F.inv(a), repeat), n, "inv")
    numba.set_num_threads(all_threads)
    for k in log2_tables:
        size = 1 << k
        tables = [F.random_seeded(size, rng) for _ in range(2)]
        r = F.random_seeded((), rng)
        work = tables[0].copy()  # folded in place again and again: same work every time
        row("MLE fold (one variable)", size, all_threads, best_time(lambda: mle.fold(work, r), repeat), size)
        prover = sumcheck.SumcheckProver(tables, [(1, (0, 1))])
        row("sumcheck round, P*Q (degree 2)", size, all_threads, best_time(prover.round_polynomial, repeat), size)
        row("sumcheck prove, P*Q (all rounds)", size, all_threads,
            best_time(lambda: sumcheck.prove(tables, [(1, (0, 1))], Transcript(b"bench")), repeat), size)
        # booleanity, sum_x eq(u, x) (b - b^2): eq as a table vs Gruen's factoring (same messages)
        bits = F.from_int(rng.integers(0, 2, size).astype(np.uint8))
        u = F.random_seeded(k, rng)
        with_table = sumcheck.SumcheckProver([bits, mle.eq_table(u)], [(1, (0, 1)), (-1, (0, 0, 1))])
        factored = sumcheck.EqSumcheckProver(u, [bits], [(1, (0,)), (-1, (0, 0))])
        row("booleanity round, eq table", size, all_threads, best_time(with_table.round_polynomial, repeat), size)
        row("booleanity round, eq factored", size, all_threads, best_time(factored.round_polynomial, repeat), size)
    return rows


def render(rows: list[tuple], config: str) -> str:
    lines = [
        "## Field arithmetic, MLE folding, sumcheck (`benchmarks/bench_field.py`)",
        "",
        f"Date {datetime.date.today().isoformat()}; machine: {machine()}, numpy {np.__version__}, "
        f"numba {numba.__version__} (threading layer {numba.threading_layer()}); configuration: {config}.",
        "Throughput counts field elements of the input (for a fold or a sumcheck round: table entries).",
        "",
        "| benchmark | size | threads | time (ms) | throughput |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {name} | 2^{size.bit_length() - 1} | {threads} | {sec * 1e3:.2f} | {thr} |"
              for name, size, threads, sec, thr in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.quick:
        rows, config = measure(14, [12, 14], repeat=2), "--quick (Fr ops on 2^14 elements, tables 2^12..2^14, best of 2)"
    else:
        rows, config = measure(20, [16, 18, 20], repeat=5), "full (Fr ops on 2^20 elements, tables 2^16..2^20, best of 5)"
    body = render(rows, config)
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
