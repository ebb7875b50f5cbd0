"""Why the desilo backend is slower than SEAL: op-by-op costs at the same ring and levels.

Usage: ``python benchmarks/bench_desilo.py [--ring-degree 16384] [--levels 3] [--repeat 5]
[--threads N] [--no-einsum] [--bootstrap] [--write]``

Three tables, every figure the best of ``--repeat`` runs after a warm-up (milliseconds):

1. *Backend ops*: what ``fhe.backends`` calls cost on ``seal`` and ``desilo`` (rotations,
   products, plaintext products, additions, encodings, encryption), per level where it matters.
   The "desilo before" column is the path the desilo backend took before it used light
   plaintexts and ``square`` (a regular ``encode`` per plaintext, ``multiply(x, x)``).
2. *desilofhe engine*: the engine's own variants — regular vs light plaintexts, hoisted
   ``rotate_many`` vs single rotations, thread mode (``cpu`` vs ``parallel``, thread count).
3. *einsum*: ``fhe.einsum`` end to end on both backends (rotation keys made and masks encoded
   in the warm-up run), and on desilo with and without the rotations of one register hoisted
   (``fhe.execute`` hoists them where the backend has ``rotate_many``).

``--bootstrap`` adds a fourth: desilofhe's bootstrap preset (``DesiloBackend(bootstrap=True)``),
its key sizes, the time to make them and to bootstrap one ciphertext at level 0, and the error
(about 4.6 GB of keys and minutes of CPU).

Prints the tables; ``--write`` also stores them in ``docs/benchmarks.md`` (section
``bench_desilo``).
"""
from __future__ import annotations

import argparse
import datetime

import numpy as np
from _doc import best_time, machine, publish

import fhe
from fhe.backends.base import Backend
from fhe.backends.desilo import DesiloBackend
from fhe.backends.seal import SealBackend

SECTION = "bench_desilo"
STEPS = (1, 2, 4, 8)
EINSUMS = [  # (id, spec, shapes, encrypted)
    ("mm64", "ij,jk->ik", [(64, 64), (64, 64)], [True, True]),
    ("06", "ik,kj->ij", [(32, 64), (64, 32)], [True, True]),
    ("10", "i,j->ij", [(64,), (64,)], [True, True]),
    ("02", "ij->", [(128, 128)], [True]),
    ("linear", "bi,io->bo", [(16, 64), (64, 64)], [True, False]),
]


class DesiloSingleRotations(DesiloBackend):
    """The desilo backend without ``rotate_many``: ``fhe.execute`` then rotates one op at a time."""

    rotate_many = Backend.rotate_many


class DesiloBefore(DesiloSingleRotations):
    """The desilo backend as it was: a regular ``encode`` per plaintext, ``multiply(x, x)``,
    single rotations."""

    def _encode(self, vector, level):
        return self._engine.encode(vector, level)

    def mul(self, a, b):
        self._need_level(min(a.level, b.level), "mul")
        self.counters["mul"] += 1
        return self._engine.multiply(a, b, self._relin_key)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def backend_ops(seal: SealBackend, desilo: DesiloBackend, repeat: int) -> list[list[str]]:
    """Rows: op, seal, desilo before, desilo now, desilo now / seal."""
    top = seal.max_level
    low = top - 1
    rng = np.random.default_rng(0)
    v, w = rng.uniform(-1, 1, seal.slots), rng.uniform(-1, 1, seal.slots)
    for b in (seal, desilo):
        b.ensure_rotation_keys(STEPS)
    e = desilo._engine
    sc, dc = seal.encrypt(v), desilo.encrypt(v)
    sc_low, dc_low = seal.mul_plain(sc, w), desilo.mul_plain(dc, w)
    s_pt, d_pt = seal.encode(w, top), desilo.encode(w, top)
    seal.mul_plain(sc, s_pt)  # SEAL encodes lazily: fill its cache before timing
    d_regular = e.encode(w, top)
    keys = [desilo._rotation_keys[s] for s in STEPS]

    def t(fn):
        return best_time(fn, repeat)

    rows = []

    def row(name, s_fn, before_fn, now_fn):
        s, now = t(s_fn), t(now_fn)
        before = t(before_fn) if before_fn is not None else now
        rows.append([name, ms(s), ms(before), ms(now), f"{now / s:.2f}"])

    row(f"encode (level {top})", lambda: seal._plain(w, top, "mul"),
        lambda: e.encode(w, top), lambda: desilo.encode(w, top))
    row(f"mul_plain, plaintext encoded (level {top})", lambda: seal.mul_plain(sc, s_pt),
        lambda: e.multiply(dc, d_regular), lambda: desilo.mul_plain(dc, d_pt))
    row(f"mul_plain, vector (encode + mul, level {top})", lambda: seal.mul_plain(sc, w),
        lambda: e.multiply(dc, e.encode(w, top)), lambda: desilo.mul_plain(dc, w))
    row(f"mul_plain, vector (level {low})", lambda: seal.mul_plain(sc_low, w),
        lambda: e.multiply(dc_low, e.encode(w, low)), lambda: desilo.mul_plain(dc_low, w))
    row(f"add_plain, vector (level {top})", lambda: seal.add_plain(sc, w),
        lambda: e.add(dc, e.encode(w, top)), lambda: desilo.add_plain(dc, w))
    row(f"mul ct·ct (level {top})", lambda: seal.mul(sc, sc_low), None,
        lambda: desilo.mul(dc, dc_low))
    row(f"mul x·x (level {top})", lambda: seal.mul(sc, sc),
        lambda: e.multiply(dc, dc, desilo._relin_key), lambda: desilo.mul(dc, dc))
    row(f"rotate (level {top})", lambda: seal.rotate(sc, 1), None, lambda: desilo.rotate(dc, 1))
    row(f"rotate (level {low})", lambda: seal.rotate(sc_low, 1), None,
        lambda: desilo.rotate(dc_low, 1))
    row(f"{len(STEPS)} rotations of one ct (level {top}; desilo now: rotate_many)",
        lambda: [seal.rotate(sc, s) for s in STEPS],
        lambda: [e.rotate(dc, k) for k in keys], lambda: desilo.rotate_many(dc, STEPS))
    row(f"add (level {top})", lambda: seal.add(sc, sc), None, lambda: desilo.add(dc, dc))
    row(f"add, levels {top} + {low}", lambda: seal.add(sc, sc_low), None,
        lambda: desilo.add(dc, dc_low))
    row("encrypt", lambda: seal.encrypt(v), None, lambda: desilo.encrypt(v))
    row("decrypt", lambda: seal.decrypt(sc), None, lambda: desilo.decrypt(dc))
    return rows


def engine_variants(desilo: DesiloBackend, ring_degree: int, levels: int,
                    repeat: int) -> list[list[str]]:
    import desilofhe

    rows = []
    e, top = desilo._engine, desilo.max_level
    w = np.random.default_rng(1).uniform(-1, 1, desilo.slots)
    ct = desilo.encrypt(w)
    pt, lpt = e.encode(w, top), e.encode_to_light_plaintext(w, top)
    rows.append(["encode (regular)", ms(best_time(lambda: e.encode(w, top), repeat)),
                 f"{pt.nbytes / 1e6:.2f} MB"])
    rows.append(["encode_to_light_plaintext", ms(best_time(
        lambda: e.encode_to_light_plaintext(w, top), repeat)), f"{lpt.nbytes / 1e6:.2f} MB"])
    rows.append(["encode (regular) at level 0", ms(best_time(lambda: e.encode(w, 0), repeat)), ""])
    rows.append(["multiply(ct, plaintext)", ms(best_time(lambda: e.multiply(ct, pt), repeat)), ""])
    rows.append(["multiply(ct, light plaintext)",
                 ms(best_time(lambda: e.multiply(ct, lpt), repeat)), ""])
    rows.append(["multiply(ct, numpy array)", ms(best_time(lambda: e.multiply(ct, w), repeat)), ""])
    rows.append(["multiply(ct, 0.5) (constant)", ms(best_time(lambda: e.multiply(ct, 0.5), repeat)), ""])
    rows.append(["multiply(ct, ct) without relinearisation",
                 ms(best_time(lambda: e.multiply(ct, ct), repeat)), ""])
    three = e.multiply(ct, ct)
    rows.append(["relinearize", ms(best_time(lambda: e.relinearize(three, desilo._relin_key),
                                             repeat)), ""])
    rows.append(["rescale", ms(best_time(lambda: e.rescale(e.relinearize(three, desilo._relin_key)),
                                         repeat) - best_time(lambda: e.relinearize(
                                             three, desilo._relin_key), repeat)), ""])
    for lvl in range(top, -1, -1):
        c = ct if lvl == top else e.level_down(ct, lvl)
        rows.append([f"rotate at level {lvl}", ms(best_time(
            lambda: desilo.rotate(c, 1), repeat)), f"ct {c.nbytes / 1e6:.2f} MB"])
    keys = [desilo._rotation_keys[s] for s in STEPS]
    single = best_time(lambda: [e.rotate(ct, k) for k in keys], repeat)
    many = best_time(lambda: e.rotate_many(ct, keys), repeat)
    rows.append([f"{len(STEPS)} x rotate", ms(single), ""])
    rows.append([f"rotate_many ({len(STEPS)} keys)", ms(many), f"{many / single:.2f} x"])
    for mode, threads in (("parallel", None), ("parallel", 1), ("parallel", 2), ("cpu", None)):
        opts = {"max_level": desilo.params.engine_max_level, "mode": mode}
        if threads:
            opts["thread_count"] = threads
        eng = desilofhe.Engine(**opts)
        sk = eng.create_secret_key()
        pk = eng.create_public_key(sk)
        rk = eng.create_relinearization_key(sk, top)
        fk = eng.create_fixed_rotation_key(sk, 1, top)
        c = eng.encrypt(w, pk, top)
        p = eng.encode_to_light_plaintext(w, top)
        rot = best_time(lambda: eng.rotate(c, fk), repeat)
        mul = best_time(lambda: eng.multiply(c, c, rk), repeat)
        mp = best_time(lambda: eng.multiply(c, p), repeat)
        rows.append([f"mode={mode!r}, thread_count={threads}: rotate / mul / mul_plain",
                     f"{ms(rot)} / {ms(mul)} / {ms(mp)}", ""])
    return rows


def einsums(seal: SealBackend, desilo: DesiloBackend, levels: int,
            repeat: int) -> list[list[str]]:
    """Rows: id, einsum, rotations, ct·pt, seal, desilo before, desilo now, desilo now with
    hoisted rotations, (now, hoisted) / seal."""
    rows = []
    for cid, spec, shapes, encrypted in EINSUMS:
        rng = np.random.default_rng(2)
        arrays = [rng.uniform(-1, 1, s) for s in shapes]
        exact = np.einsum(spec, *arrays)
        plan = fhe.plan(spec, *shapes, slots=seal.slots, encrypted=encrypted, levels=levels)
        plains = [None if e else a for a, e in zip(arrays, encrypted)]
        cells = [cid, spec, str(plan.cost().rotations), str(plan.cost().ct_pt_mults)]
        for b in (seal, desilo):
            cts = [[b.encrypt(vec) for vec in lay.pack(a)] if e else None
                   for lay, a, e in zip(plan.input_layouts, arrays, encrypted)]
            b.ensure_rotation_keys(plan.rotation_keys)
            run = lambda c={}: fhe.execute(plan, b, cts, plains, cache=c)  # noqa: E731
            variants = ("before", "single", "hoisted") if b is desilo else ("now",)
            for variant in variants:
                if b is desilo:  # the same keys, the old or the new code path (fhe.execute hoists
                    # the rotations of a register where the backend has rotate_many)
                    b.__class__ = {"before": DesiloBefore, "single": DesiloSingleRotations,
                                   "hoisted": DesiloBackend}[variant]
                cells.append(f"{best_time(run, repeat):.3f}")
                out = plan.output_layout.unpack(np.stack([b.decrypt(c) for c in run()]))
                err = float(np.max(np.abs(out - exact)))
                assert err < 1e-3, (cid, b.name, variant, err)
        cells.append(f"{float(cells[-2]) / float(cells[4]):.2f}, {float(cells[-1]) / float(cells[4]):.2f}")
        rows.append(cells)
    return rows


def bootstrapping(levels: int, threads: int | None) -> list[list[str]]:
    import time

    t0 = time.perf_counter()
    b = DesiloBackend(levels=levels, bootstrap=True, allow_insecure=True, threads=threads)
    rows = [["engine + secret, public, relinearisation keys", f"{time.perf_counter() - t0:.1f} s",
             repr(b)]]
    t0 = time.perf_counter()
    b.ensure_bootstrap_key()
    names = ("relinearisation key (top level)", "conjugation key", "roll key", "small bootstrap key")
    sizes = ", ".join(f"{n} {k.nbytes / 1e9:.2f} GB" for n, k in zip(names, b._bootstrap_keys))
    total = sum(k.nbytes for k in b._bootstrap_keys) / 1e9
    rows.append(["bootstrap keys", f"{time.perf_counter() - t0:.1f} s", f"{total:.2f} GB: {sizes}"])
    v = np.random.default_rng(5).uniform(-1, 1, b.slots)
    ct = b.encrypt(v)
    for _ in range(levels):
        ct = b.mul_plain(ct, np.ones(b.slots))
    t0 = time.perf_counter()
    fresh = b.bootstrap(ct)
    err = np.abs(b.decrypt(fresh) - v)
    rows.append([f"bootstrap (level 0 -> {b.level(fresh)})", f"{time.perf_counter() - t0:.1f} s",
                 f"values in [-1, 1]: max error {err.max():.1e}, mean {err.mean():.1e} "
                 f"(~{-np.log2(err.max()):.1f} bits)"])
    return rows


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ring-degree", type=int, default=16384)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-einsum", action="store_true")
    ap.add_argument("--no-ops", action="store_true", help="skip the op and engine tables")
    ap.add_argument("--bootstrap", action="store_true", help="also time bootstrapping (GBs, minutes)")
    ap.add_argument("--write", action="store_true", help="store the tables in docs/benchmarks.md")
    args = ap.parse_args()
    n, lv = args.ring_degree, args.levels
    seal = SealBackend(n, lv)
    desilo = DesiloBackend(n, lv, threads=args.threads)
    parts = [
        "## desilo vs SEAL, op by op (`benchmarks/bench_desilo.py`)\n",
        f"{datetime.date.today()}, {machine()}. N = {n}, {lv} levels, both backends; "
        f"desilo: {desilo!r}; milliseconds, best of {args.repeat}.\n",
    ]
    if not args.no_ops:
        parts += [table(["op", "seal", "desilo before", "desilo now", "now / seal"],
                        backend_ops(seal, desilo, args.repeat)),
                  "\n### desilofhe engine variants\n",
                  table(["what", "ms", "note"], engine_variants(desilo, n, lv, args.repeat))]
    if not args.no_einsum:
        parts += ["\n### fhe.execute, all operands encrypted (seconds)\n",
                  table(["id", "einsum", "rotations", "ct·pt", "seal", "desilo before",
                         "desilo now", "desilo now, hoisted rotations",
                         "now / seal, hoisted / seal"],
                        einsums(seal, desilo, lv, args.repeat))]
    if args.bootstrap:
        parts += ["\n### Bootstrapping (desilofhe's bootstrap preset, small bootstrap key)\n",
                  table(["step", "time", "note"], bootstrapping(lv, args.threads))]
    publish(SECTION, "\n".join(parts), args.write)


if __name__ == "__main__":
    main()
