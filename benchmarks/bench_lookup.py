"""logUp lookups (``zk.lookup``) against the bit planes they are meant to replace.

For a range check of ``n`` committed values in ``[0, 2^bits)``: the lookup of the values in the
range table ``0 .. 2^bits - 1`` (prove, verify, proof size), beside what the bit-plane method
commits for the same check (``bits`` planes of ``n`` entries each, their booleanity sumcheck:
``zk.bits``), measured in the same run. One run each (CPU only).

    python benchmarks/bench_lookup.py [--quick] [--no-write]
"""
from __future__ import annotations

import argparse
from datetime import date

import numpy as np

from _doc import machine, publish, timed
from zk import bits, commit, lookup, openings, stack, wire
from zk.transcript import Transcript


def lookup_row(values: np.ndarray, table_bits: int) -> list[str]:
    """One column (the committed values) looked up in ``0 .. 2^table_bits - 1``; the verifier
    parses the proof bytes against the commitment only."""
    c, o = commit.commit(values)

    def prove():  # the lookup proof's bytes and its openings' (the claims it leaves to the caller)
        t, evals = Transcript("bench"), openings.Openings()
        proof = lookup.prove([lookup.Column(stack.stack([c], [o]))], table_bits, t, evals)
        return proof.to_bytes(), b"".join(wire.section(s) for s in evals.prove(t).sections())
    (data, opened), prove_s = timed(prove)
    columns = [lookup.Column(stack.stack([c]))]

    def verify():
        t, evals, reader = Transcript("bench"), openings.Claims(), wire.Reader(opened)
        lookup.verify(columns, table_bits, lookup.LookupProof.from_bytes(data, columns, table_bits), t, evals)
        evals.verify(openings.OpeningsProof.read(reader), t)
        reader.end()
    _, verify_s = timed(verify)
    return [f"lookup in 0..2^{table_bits}-1", f"{values.size}", f"{prove_s:.2f}", f"{verify_s:.2f}",
            f"{(len(data) + len(opened)) / 1024:.1f}"]


def planes_row(values: np.ndarray, width: int) -> list[str]:
    """Commit the ``width`` bit planes and prove their booleanity (the recomposition is a linear
    relation of commitments: no proof bytes)."""
    planes = bits.unsigned(values, width, "bench")

    def prove():
        coms = [commit.commit(p) for p in planes]
        s = stack.stack([c for c, _ in coms], [o for _, o in coms])
        t = Transcript("bench")
        return bits.prove_booleanity(s, t.challenge_scalars("b", s.commitment.num_vars), t)
    proof, prove_s = timed(prove)
    size = len(b"".join(proof.sections()))
    return [f"{width} bit planes + booleanity", f"{values.size}", f"{prove_s:.2f}", "-",
            f"{size / 1024:.1f} (+ {width} plane commitments)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sizes = (1 << 12,) if args.quick else (1 << 14, 1 << 16, 1 << 18)
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        values = rng.integers(0, 1 << 16, n)
        rows.append(lookup_row(values, 16))
        rows.append(planes_row(values, 16))
        print(rows[-2], rows[-1], flush=True)
    head = "| range check | values | prove (s) | verify (s) | proof (kB) |\n|---|---:|---:|---:|---:|"
    table = "\n".join([head] + ["| " + " | ".join(r) + " |" for r in rows])
    body = (f"## Lookups (`benchmarks/bench_lookup.py`)\n\nDate {date.today()}; machine: {machine()}; "
            f"configuration: 16-bit range checks of random values, {'quick' if args.quick else 'full'}, "
            f"one run each (CPU); the lookup's verify time includes parsing its bytes. The bit-plane row "
            f"proves booleanity only (recomposition is linear in the commitments); its plane commitments "
            f"are part of what a proof carries.\n\n" + table)
    publish("bench_lookup", body, not args.no_write)


if __name__ == "__main__":
    main()
