"""The EinHops benchmark suite on the real CKKS backends (``seal``, ``desilo``).

Usage: ``python benchmarks/bench_einhops.py [--quick] [--backend seal|desilo|all]
[--device cpu|cuda] [--runs N] [--ring-degree N] [--cases PATH] [--no-write]``

``--device cuda`` runs desilofhe in its GPU mode (a CUDA build of desilofhe, e.g.
``desilofhe-cu130``, and a visible device); SEAL is CPU-only, so it runs desilo alone and
writes its own section (``bench_einhops_cuda``).

Runs the 15 workloads of ``../shared/bench/einhops_cases.json`` plus ``ij,jk->ik`` on
64×64 · 64×64, every operand encrypted, each at the level the suite lists. Ring degree
(``--ring-degree auto``, the default): the smallest 128-bit-secure ring for the level whose
slots hold every operand and the result in one ciphertext each (so 2^15, EinHops' ring, for
the 128×128 and 16384-element workloads); ``--ring-degree 32768`` runs everything on
EinHops' ring. As EinHops
does, only the ``fhe.einsum`` call is timed, averaged over ``--runs`` runs after one warm-up
run (which generates the rotation keys and encodes the plan's masks). Errors are against
``numpy.einsum`` in float64: max absolute error and the L2 norm of (decrypted − exact).
Rotations, multiplications and levels are what the backend executed; the EinHops columns
are the counts of the EinHops recipe planned for the same einsum on EinHops' own ring of
16384 slots ("-" where EinHops cannot run it in one ciphertext).

Model rows (``--no-models`` skips them): the digits MLP 64-32-10 compiled with ``fhe.compile``
(``bench_fhe_model.py``'s trained model and loop), its ReLU by the degree-15 minimax polynomial
and by the composite (7, 7, 7), run encrypted on SEAL in batches of 16 over held-out images.

Prints the tables and rewrites this script's section of ``docs/benchmarks.md`` (between the
``bench_einhops`` markers; other scripts own other sections).
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
from _doc import DOC, machine, publish

import fhe
from fhe.backends.params import desilo_params, seal_params
from fhe.layout import pow2
from fhe.plan import parse

SECTION = "bench_einhops"
ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT.parent / "shared" / "bench" / "einhops_cases.json"
#: beyond the suite: the Jiang–Kim–Lauter–Song matrix product (target <= 0.6 s on 2 cores)
# the Jiang–Kim–Lauter–Song comparison: its plan needs 2 levels, so it starts at 2 (N = 2^13)
EXTRA = [{"id": "mm64", "spec": "ij,jk->ik", "shapes": [[64, 64], [64, 64]], "level": 2}]
QUICK = ("02", "05", "06", "09", "13", "mm64")
BACKENDS = ("seal", "desilo")
EINHOPS_SLOTS = 16384


def auto_ring(backend: str, case: dict) -> int:
    """Smallest secure ring for the case's level with one ciphertext per operand and result."""
    shapes = [tuple(s) for s in case["shapes"]]
    shapes.append(parse(case["spec"], shapes).output_shape)
    need = 2 * max(int(np.prod([pow2(d) for d in s])) for s in shapes)
    choose = seal_params if backend == "seal" else desilo_params
    secure = choose(None, case["level"], 40, False).ring_degree
    return max(secure, need)


def load_cases(path: Path, quick: bool) -> list[dict]:
    cases = json.loads(path.read_text())["cases"] + EXTRA
    return [c for c in cases if c["id"] in QUICK] if quick else cases


def einhops_cost(spec: str, shapes) -> fhe.Cost | None:
    """The EinHops recipe's counts on its own ring (2^15: 16384 slots), None if it cannot
    run the einsum in one ciphertext there."""
    try:
        return fhe.plan(spec, *shapes, slots=EINHOPS_SLOTS, strategy="einhops").cost()
    except fhe.FHEError:
        return None


def run_case(backend: str, case: dict, ring_degree: int, runs: int, seed: int = 0,
             device: str = "cpu") -> dict:
    """Encrypt the operands, run the einsum once to warm up, then time ``runs`` calls."""
    rng = np.random.default_rng(seed)
    spec, shapes, level = case["spec"], [tuple(s) for s in case["shapes"]], case["level"]
    operands = [rng.uniform(-1, 1, s) for s in shapes]
    exact = np.einsum(spec, *operands)

    t0 = time.perf_counter()
    kwargs = {"device": device} if backend == "desilo" else {}
    ctx = fhe.Context(backend=backend, ring_degree=ring_degree, levels=level, **kwargs)
    cts = [ctx.encrypt(x) for x in operands]
    fhe.einsum(spec, *cts)  # warm-up: rotation keys, encoded masks
    setup = time.perf_counter() - t0

    counters = ctx.backend.counters
    times = []
    for _ in range(runs):
        counters.clear()
        t = time.perf_counter()
        out = fhe.einsum(spec, *cts)
        times.append(time.perf_counter() - t)
    got = ctx.decrypt(out)
    plan = ctx.plan(spec, *cts)
    base = einhops_cost(spec, shapes)
    return {
        "id": case["id"], "spec": spec, "shapes": shapes,
        "backend": backend if device == "cpu" else f"{backend} ({device})",
        "ring": ring_degree, "level": level, "security": ctx.backend.security_bits,
        "time": float(np.mean(times)), "setup": setup,
        "max_err": float(np.max(np.abs(got - exact))),
        "l2_err": float(np.linalg.norm(np.ravel(got - exact))),
        "rotations": counters["rotate"], "mults": counters["mul"],
        "pt_mults": counters["mul_plain"], "levels": level - out.level,
        "keys": len(plan.rotation_keys), "strategy": plan.strategy,
        "plan": plan.cost(), "einhops": base,
    }


def render(rows: list[dict], config: str) -> str:
    head = ("| # | einsum | shapes | backend | ring | time (ms) | max err | L2 err | rotations | "
            "ct·ct / ct·pt mults | levels | EinHops rotations | EinHops levels | strategy |")
    lines = [
        "## Encrypted einsum: EinHops workloads on SEAL and desilofhe (`benchmarks/bench_einhops.py`)",
        "",
        (f"Date {datetime.date.today().isoformat()}; machine: {machine()}, numpy {np.__version__}; "
         f"configuration: {config}."),
        ("All operands encrypted; time = mean of the einsum call alone after a warm-up call "
         "(keys, masks), like EinHops; errors against float64 numpy (L2 = norm of decrypted − "
         "exact); rotations/mults/levels as executed; EinHops columns: the EinHops recipe planned "
         "for the same einsum on its 16384-slot ring (\"-\": more than one ciphertext, which "
         "EinHops does not support)."),
        "",
        head,
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        shapes = " · ".join("×".join(map(str, s)) for s in r["shapes"])
        base = r["einhops"]
        lines.append(
            f"| {r['id']} | `{r['spec']}` | {shapes} | {r['backend']} | 2^{r['ring'].bit_length() - 1} | "
            f"{r['time'] * 1e3:.1f} | "
            f"{r['max_err']:.1e} | {r['l2_err']:.1e} | {r['rotations']} | "
            f"{r['mults']} / {r['pt_mults']} | {r['levels']} of {r['level']} | "
            f"{base.rotations if base else '-'} | {base.levels if base else '-'} | {r['strategy']} |")
    return "\n".join(lines)


def model_rows(batches: int) -> str:
    """The model table (module docstring)."""
    from bench_fhe_model import activations, evaluate, trained_model

    model, X = trained_model()
    lines = ["| model | ReLU approximation | backend | ring | levels | encrypted forward pass, "
             "batch of 16 (ms) | max err vs float64 program | argmax = torch |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for act in activations(model, X).values():
        r = evaluate(model, X, act, batches, scale_bits=38)
        p = r["program"]
        lines.append(f"| digits MLP 64-32-10 | {act.describe()} | seal | 2^{(2 * p.slots).bit_length() - 1} | "
                     f"{p.levels} | {r['run'] * 1e3:.0f} | {r['error']:.1e} | "
                     f"{100 * r['agree']:.1f} % of {r['images']} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only cases {', '.join(QUICK)}, one run")
    ap.add_argument("--backend", choices=BACKENDS + ("all",), default="all")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where desilofhe runs (cuda: desilo only)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per case (default 3; quick 1)")
    ap.add_argument("--ring-degree", default="auto",
                    help="'auto' (default: smallest secure ring that fits) or a power of two")
    ap.add_argument("--cases", type=Path, default=CASES)
    ap.add_argument("--no-models", action="store_true", help="skip the compiled-model rows")
    ap.add_argument("--model-batches", type=int, default=6, help="encrypted batches of 16 per model row")
    ap.add_argument("--no-write", action="store_true", help=f"do not touch {DOC.name}")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    if args.device == "cuda":
        if args.backend == "seal":
            ap.error("--device cuda: the seal backend runs on the CPU only")
        backends = ("desilo",)

    rows = []
    cases, models = load_cases(args.cases, args.quick), None
    # backend by backend: desilofhe's worker threads (and its large engines in memory) slowed the
    # SEAL runs interleaved with them by up to 40 % (mm64: 0.61 s against 0.43 s alone)
    for backend in backends:
        for case in cases:
            ring = auto_ring(backend, case) if args.ring_degree == "auto" else int(args.ring_degree)
            r = run_case(backend, case, ring, runs, device=args.device)
            rows.append(r)
            print(f"{r['id']:>4} {r['spec']:<20} {backend:<6} N=2^{ring.bit_length() - 1} "
                  f"{r['time']:8.3f} s  "
                  f"max err {r['max_err']:.1e}  L2 {r['l2_err']:.1e}  rot {r['rotations']:4d}  "
                  f"levels {r['levels']}/{r['level']}  EinHops rot "
                  f"{r['einhops'].rotations if r['einhops'] else '-'}  (setup {r['setup']:.1f} s)",
                  flush=True)
        if backend == "seal" and not args.no_models and args.device == "cpu":
            models = model_rows(args.model_batches)  # before desilo has run in this process
    ring = ("smallest 128-bit-secure ring holding each operand in one ciphertext"
            if args.ring_degree == "auto" else f"{args.ring_degree}")
    config = (f"{'quick' if args.quick else 'full'}; desilofhe on {args.device}; ring degree: {ring}; "
              f"{runs} timed run(s) "
              f"per case; security "
              + ", ".join(sorted({f"{r['backend']} {r['security']}-bit" for r in rows})))
    order = {c["id"]: k for k, c in enumerate(cases)}
    rows.sort(key=lambda r: (order[r["id"]], backends.index(r["backend"].split()[0])))
    body = render(rows, config)
    if models:
        body += ("\n\nCompiled models (`fhe.compile`, 38-bit scale; time: `program.run` alone, mean over the "
                 "batches):\n\n" + models)
    print()
    publish(SECTION if args.device == "cpu" else f"{SECTION}_{args.device}", body, not args.no_write)


if __name__ == "__main__":
    try:
        main()
    except fhe.errors.UnsupportedBackend as exc:  # e.g. --device cuda without a CUDA desilofhe
        raise SystemExit(f"bench_einhops: {exc}") from None
