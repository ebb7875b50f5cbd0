"""zkfhe proving a training step next to ezkl proving inference of the same MLP, in one run.

Usage: ``python benchmarks/bench_ezkl.py [--quick] [--arch 784,256,256,10] [--batch 64]
[--ezkl-batches 1,64] [--ezkl-max-logrows 20] [--visibility polycommit] [--work DIR] [--no-write]``

ezkl is not a zkfhe dependency; install it into the benchmark environment with
``pip install ezkl onnx``. Without it (or if it fails) the script says exactly why and still
reports the zkfhe figures.

Both sides get the same seeded bias-free ``Linear, ReLU, ..., Linear`` model:

* zkfhe: ``zk.prove_training`` of one SGD step (MSE loss) on a batch of ``--batch`` rows, and
  ``zk.prove_inference`` at the ezkl batch sizes (same task as ezkl, for reference);
* ezkl (its Python API, Halo2 + KZG): ONNX export, ``gen_settings``, ``calibrate_settings``
  (target "resources"), ``compile_circuit``, a local test SRS from ``gen_srs`` (never
  downloaded), ``setup``, then the timed ``gen_witness`` + ``prove`` and ``verify``. Input and
  weights are ``polycommit`` by default (KZG-committed and hidden, output public): the
  counterpart of zkfhe's committed data and weights. SRS generation and key setup are one-time
  costs per circuit and are reported apart from proving. Each ezkl proof runs in a child process,
  so that an out-of-memory kill is reported instead of ending the run: at batch 64 the MLP
  784-256-256-10 needs 2^21 rows, an 18 GB proving key, and more than the 24 GiB of a 2-core
  development machine; ``--ezkl-max-logrows`` (default 20) skips such circuits after calibration.

Prints a table and rewrites this script's section of ``docs/benchmarks.md`` (between the
``bench_ezkl`` markers). Each figure is one run (the proofs take seconds to minutes), after a
warm-up proof on a tiny model that compiles zkfhe's numba kernels.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import inspect
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _doc import machine, publish, timed

import zk
from zk.training import synthetic_mlp

SECTION = "bench_ezkl"
LR = 0.01


@dataclasses.dataclass
class Result:
    """One proof: who proved what, its times (s) and sizes (bytes); ``error`` when it failed."""

    system: str
    task: str
    batch: int
    prove_s: float = float("nan")
    verify_s: float = float("nan")
    proof_bytes: int = 0
    setup_s: float = float("nan")  # one-time (ezkl: SRS generation + key setup)
    note: str = ""
    error: str = ""


# ----------------------------------------------------------------------------------------
# zkfhe
# ----------------------------------------------------------------------------------------
def warm_up() -> None:
    """Compile the numba kernels outside the timings (a tiny training and inference proof)."""
    model, rng = synthetic_mlp([4, 3, 2]), np.random.default_rng(1)
    x, y = rng.standard_normal((2, 4)), rng.standard_normal((2, 2))
    zk.verify_training(zk.prove_training(model, [(x, y)], LR)[0])
    zk.verify_inference(zk.prove_inference(model, x))


def zkfhe_training(model, x, y) -> Result:
    (proof, _, _), t_prove = timed(lambda: zk.prove_training(model, [(x, y)], LR, steps=1))
    _, t_verify = timed(lambda: zk.verify_training(proof))
    return Result("zkfhe", "training step", len(x), t_prove, t_verify, len(proof.to_bytes()),
                  note=f"SGD lr {LR}, MSE, scale 2^16; no setup (transparent)")


def zkfhe_inference(model, x) -> Result:
    proof, t_prove = timed(lambda: zk.prove_inference(model, x))
    _, t_verify = timed(lambda: zk.verify_inference(proof))
    return Result("zkfhe", "inference", len(x), t_prove, t_verify, len(proof.to_bytes()),
                  note="scale 2^16; no setup (transparent)")


# ----------------------------------------------------------------------------------------
# ezkl
# ----------------------------------------------------------------------------------------
def ezkl_version() -> str | None:
    """The installed ezkl's version, or None when it is not installed."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("ezkl") is None:
        return None
    try:
        return importlib.metadata.version("ezkl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def call(fn, *args, **kwargs):
    """Call an ezkl API function; some ezkl versions return awaitables, others plain values."""
    out = fn(*args, **kwargs)
    return asyncio.run(out) if inspect.isawaitable(out) else out


def ezkl_inference(model, x: np.ndarray, visibility: str, work: Path, max_logrows: int) -> Result:
    """Prove inference of ``model`` on ``x`` with ezkl in a child process (so that running out of
    memory is a reported failure, not the end of the benchmark); the failing stage is named."""
    d = work / f"batch{len(x)}"
    d.mkdir(parents=True, exist_ok=True)
    try:
        sample = torch.as_tensor(x, dtype=torch.float32)
        with warnings.catch_warnings():  # the TorchScript exporter needs no onnxscript; torch calls it legacy
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (sample,), d / "model.onnx", input_names=["input"],
                              output_names=["output"], dynamo=False, opset_version=18)
    except Exception as exc:  # noqa: BLE001 - report why and keep going
        return Result("ezkl", "inference", len(x), error=f"ONNX export failed: {type(exc).__name__}: {exc}")
    (d / "input.json").write_text(json.dumps({"input_data": [sample.reshape(-1).tolist()]}))
    (d / "job.json").write_text(json.dumps({"batch": len(x), "visibility": visibility,
                                            "max_logrows": max_logrows, "srs_dir": str(work)}))
    (d / "result.json").unlink(missing_ok=True)
    with open(d / "ezkl.log", "w") as log:
        rc = subprocess.run([sys.executable, __file__, "--ezkl-child", str(d)], stdout=log,
                            stderr=subprocess.STDOUT).returncode
    if not (d / "result.json").exists():
        tail = (d / "ezkl.log").read_text(errors="replace").strip().splitlines()[-1:]
        return Result("ezkl", "inference", len(x), error=f"ezkl process exited with status {rc}: {' '.join(tail)}")
    fields = json.loads((d / "result.json").read_text())
    stage = fields.pop("stage")
    res = Result(**fields)
    if rc != 0 and not res.error:
        how = (f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with status {rc}")
        if rc == -signal.SIGKILL:
            how += " (most likely the kernel's out-of-memory killer)"
        res.error = f"{stage}: the ezkl process was {how}; {res.note}"
    return res


def ezkl_child(d: Path) -> None:
    """The child process of :func:`ezkl_inference`: every ezkl stage on the files in ``d``; the
    result so far is saved to ``d/result.json`` before each stage."""
    job = json.loads((d / "job.json").read_text())
    res = Result("ezkl", "inference", job["batch"])
    files = {n: str(d / n) for n in ("model.onnx", "input.json", "settings.json", "model.compiled",
                                     "witness.json", "vk.key", "pk.key", "proof.json")}

    def stage(name: str) -> str:
        (d / "result.json").write_text(json.dumps({**dataclasses.asdict(res), "stage": name}))
        return name

    name = stage("import ezkl")
    try:
        import ezkl

        name = stage("gen_settings")
        run_args = ezkl.PyRunArgs()
        run_args.input_visibility = job["visibility"]
        run_args.param_visibility = job["visibility"]
        run_args.output_visibility = "public"
        call(ezkl.gen_settings, files["model.onnx"], files["settings.json"], py_run_args=run_args)
        name = stage("calibrate_settings")
        call(ezkl.calibrate_settings, files["input.json"], files["model.onnx"], files["settings.json"], "resources")
        settings = json.loads(Path(files["settings.json"]).read_text())
        logrows = settings["run_args"]["logrows"]
        res.note = (f"2^{logrows} rows ({settings['num_rows']} used), scale 2^{settings['run_args']['input_scale']}, "
                    f"{job['visibility']} input and weights")
        if logrows > job["max_logrows"]:
            res.error = (f"not run: the circuit needs 2^{logrows} rows, over --ezkl-max-logrows {job['max_logrows']} "
                         "(on a 24 GiB machine, 2^21 rows meant an 18 GB proving key and an out-of-memory kill)")
            stage("done")
            return
        name = stage("compile_circuit")
        call(ezkl.compile_circuit, files["model.onnx"], files["model.compiled"], files["settings.json"])
        name = stage("gen_srs")
        srs = Path(job["srs_dir"]) / f"kzg{logrows}.srs"  # one test SRS per size, reused
        t_srs = 0.0
        if not srs.exists():
            _, t_srs = timed(lambda: call(ezkl.gen_srs, f"{srs}.tmp", logrows))
            os.replace(f"{srs}.tmp", srs)
        name = stage("setup")
        _, t_setup = timed(lambda: call(ezkl.setup, files["model.compiled"], files["vk.key"], files["pk.key"],
                                        str(srs)))
        res.setup_s = t_srs + t_setup
        pk_mib = os.path.getsize(files["pk.key"]) / 2**20
        res.note += f"; SRS {t_srs:.0f} s + setup {t_setup:.0f} s, proving key {pk_mib:,.0f} MiB"
        name = stage("gen_witness + prove")
        t0 = time.perf_counter()
        call(ezkl.gen_witness, files["input.json"], files["model.compiled"], files["witness.json"])
        call(ezkl.prove, files["witness.json"], files["model.compiled"], files["pk.key"], files["proof.json"], str(srs))
        res.prove_s = time.perf_counter() - t0
        name = stage("verify")
        ok, res.verify_s = timed(lambda: call(ezkl.verify, files["proof.json"], files["settings.json"],
                                              files["vk.key"], str(srs)))
        if ok is not True:
            raise RuntimeError(f"ezkl.verify returned {ok!r}")
        proof = json.loads(Path(files["proof.json"]).read_text())
        res.proof_bytes = len(bytes.fromhex(proof["hex_proof"].removeprefix("0x")))
        res.note += f", peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
    except Exception as exc:  # noqa: BLE001 - report any ezkl failure and keep going
        res.error = f"{name} failed: {type(exc).__name__}: {exc}".strip()
    stage("done")


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------
def fmt(v: float, unit: str = "s") -> str:
    return "—" if v != v else f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}"


def render(rows: list[Result], arch: list[int], batch: int, config: str, ezkl_status: str) -> str:
    lines = [
        "## zkfhe training step vs ezkl inference (`benchmarks/bench_ezkl.py`)",
        "",
        (f"Date {datetime.date.today().isoformat()}; machine: {machine()}, torch {torch.__version__}; "
         f"{ezkl_status}; configuration: {config}."),
        "",
        (f"Model: MLP {'-'.join(map(str, arch))}, bias-free Linear + ReLU, the same seeded weights on "
         f"both sides. zkfhe proves one SGD step (forward, MSE gradient, backward, update) on a batch of "
         f"{batch}; ezkl proves the forward pass only (Halo2 + KZG, ezkl's own calibrated settings). "
         "Proof size: zkfhe `proof.to_bytes()`, ezkl the raw proof bytes (`hex_proof`; the JSON file "
         "is larger). Prove time of ezkl = `gen_witness` + `prove`; its one-time SRS generation and key "
         "setup are listed apart. Single runs on a CPU shared with other jobs: noisy."),
        "",
        "| system | task | batch | prove | verify | proof size | one-time setup | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.error:
            lines.append(f"| {r.system} | {r.task} | {r.batch} | — | — | — | — | {r.error} |")
        else:
            size = f"{r.proof_bytes / 1024:.1f} KiB"
            lines.append(f"| {r.system} | {r.task} | {r.batch} | {fmt(r.prove_s)} | {fmt(r.verify_s)} | "
                         f"{size} | {fmt(r.setup_s) if r.system == 'ezkl' else 'none'} | {r.note} |")
    train = next((r for r in rows if r.task == "training step" and not r.error), None)
    ratios = []
    for e in (r for r in rows if r.system == "ezkl" and not r.error):
        if train:
            ratios.append(f"ezkl inference (batch {e.batch}) / zkfhe training step (batch {train.batch}), "
                          f"prove time: **{e.prove_s / train.prove_s:.2f}x**")
        same = next((r for r in rows if r.system == "zkfhe" and r.task == "inference"
                     and r.batch == e.batch and not r.error), None)
        if same:
            ratios.append(f"ezkl / zkfhe, inference at batch {e.batch}, prove time: "
                          f"**{e.prove_s / same.prove_s:.2f}x**")
    if ratios:
        lines += ["", "Ratios (above 1: zkfhe is faster):", ""] + [f"- {r}" for r in ratios]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small MLP 64-32-32-10, batch 8 (a smoke test)")
    parser.add_argument("--arch", help="MLP widths, comma separated (default 784,256,256,10)")
    parser.add_argument("--batch", type=int, help="zkfhe training batch size (default 64; --quick 8)")
    parser.add_argument("--ezkl-batches", help="comma-separated ezkl inference batch sizes (default 1,64; --quick 1)")
    parser.add_argument("--visibility", default="polycommit", choices=["polycommit", "private", "hashed"],
                        help="ezkl visibility of the input and weights (output is public)")
    parser.add_argument("--ezkl-max-logrows", type=int, default=20,
                        help="skip ezkl circuits of more than 2^N rows (default 20: 2^21 ran out of 24 GiB)")
    parser.add_argument("--work", type=Path, help="keep ezkl files (and its cached SRS) in this folder")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--ezkl-child", type=Path, help=argparse.SUPPRESS)  # internal: one ezkl proof
    args = parser.parse_args()
    if args.ezkl_child:
        ezkl_child(args.ezkl_child)
        return
    arch = [int(w) for w in (args.arch or ("64,32,32,10" if args.quick else "784,256,256,10")).split(",")]
    batch = args.batch or (8 if args.quick else 64)
    ezkl_batches = [int(b) for b in (args.ezkl_batches or ("1" if args.quick else "1,64")).split(",")]
    if len(arch) < 2 or min(arch) < 1 or batch < 1 or min(ezkl_batches) < 1:
        parser.error("--arch needs at least two positive widths; batch sizes must be positive")
    config = (f"{'--quick, ' if args.quick else ''}MLP {'-'.join(map(str, arch))}, zkfhe training batch {batch}, "
              f"ezkl inference batch {', '.join(map(str, ezkl_batches))}, ezkl {args.visibility}")

    model = synthetic_mlp(arch)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, arch[0])), rng.standard_normal((batch, arch[-1]))
    inputs = {b: rng.standard_normal((b, arch[0])) if b > batch else x[:b] for b in ezkl_batches}

    print("warm-up (numba compilation) ...", flush=True)
    warm_up()
    rows = []
    print(f"zkfhe: training step, batch {batch} ...", flush=True)
    rows.append(zkfhe_training(model, x, y))
    for b in ezkl_batches:
        print(f"zkfhe: inference, batch {b} ...", flush=True)
        rows.append(zkfhe_inference(model, inputs[b]))
    version = ezkl_version()
    if version is None:
        ezkl_status = "ezkl not run: it is not installed in this environment (`pip install ezkl onnx`)"
        print(ezkl_status, flush=True)
        rows += [Result("ezkl", "inference", b, error="not run: ezkl is not installed") for b in ezkl_batches]
    else:
        ezkl_status = f"ezkl {version}"
        with tempfile.TemporaryDirectory(prefix="bench_ezkl_") as tmp:
            work = args.work or Path(tmp)
            for b in ezkl_batches:
                print(f"ezkl: inference, batch {b} (files and log in {work}/batch{b}) ...", flush=True)
                res = ezkl_inference(model, inputs[b], args.visibility, work, args.ezkl_max_logrows)
                if res.error:
                    print(f"ezkl: {res.error}", flush=True)
                rows.append(res)

    body = render(rows, arch, batch, config, ezkl_status)
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
