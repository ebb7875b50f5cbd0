"""G1 multi-scalar multiplication and Hyrax commitments: throughput and proof sizes.

Usage: ``python benchmarks/bench_msm.py [--quick] [--no-write]``

Prints tables and rewrites this script's section of ``docs/benchmarks.md`` (between the
``bench_msm`` markers; other scripts own other sections). Every figure is the best of a few
repetitions after a warm-up call.
"""
from __future__ import annotations

import argparse
import datetime

import numpy as np
from _doc import best_time, machine, publish
from py_arkworks_bls12381 import G1Point

from zk import commit as cm
from zk import field, group
from zk.transcript import Transcript

SECTION = "bench_msm"


def bench_points(n: int) -> list[G1Point]:
    """``n`` distinct subgroup points, cheaply (MSM cost does not depend on which points)."""
    step, p, out = group.generators(2, b"bench/msm"), group.identity(), []
    for _ in range(n):
        p = p + step[0]
        out.append(p)
    return out


def measure_msm(log2_sizes: list[int], repeat: int) -> list[tuple]:
    """Rows ``(size, ours s, ours 1-core s, conversion s, raw arkworks s, bits s)``."""
    rng = np.random.default_rng(0)
    points = bench_points(1 << max(log2_sizes))
    rows = []
    for k in log2_sizes:
        n = 1 << k
        pts, s = points[:n], field.random_seeded(n, rng)
        bits = rng.integers(0, 2, n)
        ark_scalars = group.to_scalars(s)
        ours = best_time(lambda: group.msm(pts, s), repeat)
        threads = group._THREADS
        group._THREADS = 1
        ours_1 = best_time(lambda: group.msm(pts, s), repeat)
        group._THREADS = threads
        conv = best_time(lambda: group.to_scalars(s), repeat)
        raw = best_time(lambda: G1Point.multiexp_unchecked(pts, ark_scalars), repeat)
        small = best_time(lambda: group.msm_small(pts, bits), repeat)
        rows.append((n, ours, ours_1, conv, raw, small))
    return rows


def measure_hyrax(cases: list[tuple[str, tuple]], repeat: int) -> list[tuple]:
    """Rows ``(case, m, commit field s, commit int16 s, the same through arkworks s, commit bits s, prove s,
    verify s, proof bytes, commitment bytes)``."""
    rng = np.random.default_rng(1)
    rows = []
    for name, shape in cases:
        size = int(np.prod(shape))
        values = field.random_seeded(shape, rng)
        ints = rng.integers(-2**15, 2**15, shape)
        bits = rng.integers(0, 2, shape)
        com, opening = cm.commit(values)
        cm.commit(ints)
        t_field = best_time(lambda: cm.commit(values), repeat)
        t_int = best_time(lambda: cm.commit(ints), repeat)
        t_int_ark = best_time(lambda: _through_arkworks(lambda: cm.commit(ints)), repeat)
        t_bits = best_time(lambda: cm.commit(bits), repeat)
        m = com.num_vars
        x = field.random_seeded(m, rng)
        v = cm.evaluate(opening, x)
        proof = cm.prove_eval(opening, com, x, Transcript(b"bench"))
        t_prove = best_time(lambda: cm.prove_eval(opening, com, x, Transcript(b"bench")), repeat)
        t_verify = best_time(lambda: cm.verify_eval(com, x, v, proof, Transcript(b"bench")), repeat)
        rows.append((name, size, m, t_field, t_int, t_int_ark, t_bits, t_prove, t_verify,
                     len(proof.to_bytes()), len(com.to_bytes())))
    return rows


def _through_arkworks(run):
    """``run()`` with integer rows committed by arkworks' MSM (``zk.group``'s fallback) instead of
    ``zk.curve``: the peer of the int16 column."""
    saved = group._row_bases
    group._row_bases = lambda points: None
    group._POINT_CACHE.clear()
    try:
        return run()
    finally:
        group._row_bases = saved
        group._POINT_CACHE.clear()


def render(msm_rows, hyrax_rows, config: str) -> str:
    lines = [
        "## G1 MSM and Hyrax commitments (`benchmarks/bench_msm.py`)",
        "",
        f"Date {datetime.date.today().isoformat()}; machine: {machine()}; {group._THREADS} MSM threads, "
        f"py_arkworks_bls12381 (arkworks Pippenger); configuration: {config}.",
        "",
        "MSM over BLS12-381 G1 with random Fr scalars. *ours* = `zk.group.msm` from a `zk.field` array "
        "(Montgomery limbs -> canonical bytes -> arkworks `Scalar`s, then arkworks' MSM, split into one chunk "
        "per core); *raw* = one `G1Point.multiexp_unchecked` call on pre-made `Scalar`s (one core); "
        "*bits* = `zk.group.msm_small` on a random 0/1 vector (additions only).",
        "",
        "| points | ours (ms) | ours, points/s | ours 1 core, points/s | conversion (ms) | raw arkworks, points/s | bits, points/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| 2^{n.bit_length() - 1} | {ours * 1e3:.1f} | {n / ours / 1e3:.1f} k | {n / ours_1 / 1e3:.1f} k | "
              f"{conv * 1e3:.1f} | {n / raw / 1e3:.1f} k | {n / small / 1e6:.2f} M |"
              for n, ours, ours_1, conv, raw, small in msm_rows]
    lines += [
        "",
        "Hyrax commitments (`zk.commit`): commit a tensor (random Fr elements; random int16 values, by `zk.curve`'s "
        "bucket method on the integers and, the peer, by arkworks' MSM on the same scalars; random bits), "
        "prove and verify one evaluation with a public value. Shapes are padded to powers of two; "
        "`m` = number of MLE variables (rows 2^floor(m/2), columns 2^ceil(m/2)).",
        "",
        "| tensor | entries | m | commit Fr (ms) | commit int16 (ms) | int16 by arkworks (ms) | commit bits (ms) | "
        "prove eval (ms) | verify eval (ms) | proof (bytes) | commitment (bytes) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {name} | {size} | {m} | {tf * 1e3:.0f} | {ti * 1e3:.0f} | {ta * 1e3:.0f} | {tb * 1e3:.0f} | "
              f"{tp * 1e3:.0f} | {tv * 1e3:.1f} | {pb} | {cb} |"
              for name, size, m, tf, ti, ta, tb, tp, tv, pb, cb in hyrax_rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.quick:
        msm_sizes, repeat = [10, 12], 2
        cases = [("2^10", (1 << 10,)), ("2^12", (1 << 12,)), ("16x49", (16, 49))]
        config = "--quick (MSM 2^10..2^12, tensors up to 2^12, best of 2)"
    else:
        msm_sizes, repeat = list(range(12, 19)), 3
        cases = [("2^14", (1 << 14,)), ("2^16", (1 << 16,)), ("2^18", (1 << 18,)),
                 ("64x784", (64, 784)), ("784x256", (784, 256))]
        config = "full (MSM 2^12..2^18, tensors 2^14..2^18 and 64x784, 784x256, best of 3)"
    cm.DEFAULT_KEY.g(1 << 10)  # derive the generators outside the timings
    body = render(measure_msm(msm_sizes, repeat), measure_hyrax(cases, repeat), config)
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
