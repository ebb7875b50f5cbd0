"""zkfhe audit pipeline: commit-and-prove with three parties and the files they exchange.

    data owner ──data.zkc (public)──────────────────────────────────────────────┐
        └──────data.zko (secret, to the trainer only)──► trainer                 │
                                                          ├─ model0.zkc (public) ┤
                                                          ├─ epoch1.zkp (public) ┤
                                                          ├─ epoch2.zkp (public) ┼──► auditor
                                                          ├─ model2.zkc (public) ┤
                                                          └─ infer.zkp  (public) ┘

(a) The data owner commits to the first 256 rows of sklearn's digits in batches of 32 and
    publishes the commitment; the opening (integers and blinds) goes to the trainer only.
(b) The trainer commits to an MLP 64-16-10 (with biases), proves two epochs of SGD (8 steps
    each, softmax cross-entropy on the digit classes) on the committed batches, publishes the final model's commitment and proves one
    inference of the final model on 8 held-out digits.
(c) The auditor reads only the public files and checks the whole story: every step used a
    published batch, epoch 2 continues epoch 1, the chain starts at model0.zkc and ends at
    model2.zkc, and the inference is of model2.zkc.
(d) What a cheater gets: training on data with one changed entry is rejected against data.zkc
    (and an edited opening under the published commitments cannot be proved at all).

Run: ``.venv/bin/python examples/audit_pipeline.py [--out DIR]`` (default: a temporary directory).
See docs/auditing.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

import zk
from zk.training import synthetic_mlp

ROWS, BATCH, LR, WIDTHS = 256, 32, 0.05, (64, 16, 10)
#: the training loss: softmax cross-entropy on the one-hot digit classes (torch.nn.functional.cross_entropy)
LOSS = "cross_entropy"
HELD_OUT = 8


def banner(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


def write(out: Path, name: str, data: bytes, what: str) -> None:
    (out / name).write_bytes(data)
    print(f"  writes {name:12s} {len(data):>10,} bytes  {what}")


def read(out: Path, name: str) -> bytes:
    data = (out / name).read_bytes()
    print(f"  reads  {name:12s} {len(data):>10,} bytes")
    return data


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[d.target]
    return X, Y


def data_owner(out: Path, X, Y) -> None:
    banner("(a) DATA OWNER: commit to the training set, publish the commitment")
    t0 = time.perf_counter()
    commitment, opening = zk.commit_dataset(X[:ROWS], Y[:ROWS], BATCH)
    print(f"  sklearn digits, first {ROWS} rows (X/16 float32, one-hot Y), batches of {BATCH}: "
          f"committed in {time.perf_counter() - t0:.2f} s")
    print("  " + commitment.describe().replace("\n", "\n  "))
    write(out, "data.zkc", commitment.to_bytes(), "PUBLIC: dataset commitment (for everyone)")
    write(out, "data.zko", opening.to_bytes(), "SECRET: dataset opening (for the trainer only)")


def trainer(out: Path, X_held_out) -> None:
    banner("(b) TRAINER: commit to the model, prove two epochs and one inference")
    dataset = zk.DatasetOpening.from_bytes(read(out, "data.zko"))
    model = synthetic_mlp(WIDTHS, seed=0, bias=True)
    model0, opening0 = zk.commit_model(model, lr=LR)
    print(f"  initial model: MLP {'-'.join(map(str, WIDTHS))} with biases, committed for lr {LR} "
          f"(parameters at 2^{model0.param_scale})")
    write(out, "model0.zkc", model0.to_bytes(), "PUBLIC: initial model commitment")

    opening = opening0
    for epoch in (1, 2):
        t0 = time.perf_counter()
        result = zk.prove_training(opening, dataset, LR, progress=None, loss=LOSS)  # one epoch: every batch once
        st = result.proof.statement
        print(f"  epoch {epoch}: {st.steps} SGD steps on batches {list(st.batch_indices)}, "
              f"proved in {time.perf_counter() - t0:.1f} s")
        write(out, f"epoch{epoch}.zkp", result.proof.to_bytes(), f"PUBLIC: training proof of epoch {epoch}")
        opening = result.opening                                         # epoch 2 starts from here
    write(out, "model2.zkc", result.proof.final_model.to_bytes(), "PUBLIC: final model commitment")

    t0 = time.perf_counter()
    inference = zk.prove_inference(opening, X_held_out)
    print(f"  inference of the final model on {len(X_held_out)} held-out digits, proved in "
          f"{time.perf_counter() - t0:.1f} s")
    write(out, "infer.zkp", inference.to_bytes(), "PUBLIC: inference proof (output stays committed)")
    print("  keeps secret: data.zko, the model openings (weights), the inference outputs")


def auditor(out: Path) -> None:
    banner("(c) AUDITOR: check everything from the public files alone")
    dataset = zk.DatasetCommitment.from_bytes(read(out, "data.zkc"))
    model0 = zk.ModelCommitment.from_bytes(read(out, "model0.zkc"))
    epochs = [zk.TrainingProof.from_bytes(read(out, f"epoch{e}.zkp")) for e in (1, 2)]
    model2 = zk.ModelCommitment.from_bytes(read(out, "model2.zkc"))
    inference = zk.InferenceProof.from_bytes(read(out, "infer.zkp"))

    t0 = time.perf_counter()
    report = zk.verify_chain(epochs, dataset=dataset, initial_model=model0)
    print(f"  verify_chain(epoch1, epoch2, dataset=data.zkc, initial_model=model0.zkc): "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"  {report.describe()}")
    if report.final_model.digest != model2.digest:
        raise SystemExit("  the chain does not end at model2.zkc: REJECT")
    print(f"  the chain ends at model2.zkc (digest {model2.digest.hex()[:16]}…)")
    t0 = time.perf_counter()
    zk.verify_inference(inference, model=model2)
    print(f"  verify_inference(infer.zkp, model=model2.zkc): valid ({time.perf_counter() - t0:.1f} s)")

    st = epochs[0].statement
    print("  what the auditor learned (and nothing about data, weights, gradients or outputs):")
    print(f"    architecture {st.architecture.describe()}")
    print(f"    {report.steps} SGD steps, batch size {st.batch_size}, lr {st.lr}, loss {report.loss}")
    print(f"    batch indices used, in order: {list(report.batches)} "
          f"({report.distinct_batches} distinct of the {dataset.batches} published)")
    print(f"    fixed point: activations 2^{st.scale_bits}, parameters 2^{st.param_scale}; "
          f"data in [-2^{st.data_bits - 1}, 2^{st.data_bits - 1}), initial parameters in "
          f"[-2^{st.param_bits - 1}, 2^{st.param_bits - 1}) (integers, scale included)")
    print(f"    dataset {dataset.digest.hex()[:16]}…  model {model0.digest.hex()[:16]}… -> "
          f"{model2.digest.hex()[:16]}…")
    print(f"    inference on {inference.statement.batch_size} rows of model {inference.model.digest.hex()[:16]}…")


def cheater(out: Path, X, Y) -> None:
    banner("(d) WHAT A CHEATER GETS: training on data that is not the published data")
    dataset = zk.DatasetCommitment.from_bytes(read(out, "data.zkc"))
    model0 = zk.ModelCommitment.from_bytes(read(out, "model0.zkc"))
    Xc = X[:ROWS].copy()
    Xc[5, 20] = 1.0 - Xc[5, 20]                      # one entry of one image changed
    _, forged = zk.commit_dataset(Xc, Y[:ROWS], BATCH)
    _, opening0 = zk.commit_model(synthetic_mlp(WIDTHS, seed=0, bias=True), lr=LR)
    proof = zk.prove_training(opening0, forged, LR, steps=1, progress=None, loss=LOSS).proof   # one step is enough
    zk.verify_training(proof)                       # a valid proof ... about another dataset
    print("  the cheater's proof is valid on its own (it proves training on *some* data)")
    try:
        zk.verify_training(proof, dataset=dataset, initial_model=model0)
        raise SystemExit("  accepted against data.zkc: THIS IS A BUG")
    except zk.VerificationError as exc:
        print(f"  against data.zkc it is rejected: VerificationError: {exc}")
    # keeping data.zkc's commitments but editing the integers in data.zko does not even prove
    opening = zk.DatasetOpening.from_bytes(read(out, "data.zko"))
    x = list(opening.x)
    x[0] = x[0].copy()
    x[0][5, 20] += 1                                 # one integer of batch 0
    try:
        zk.prove_training(opening0, dataclasses.replace(opening, x=tuple(x)), LR, steps=1, progress=None, loss=LOSS)
        raise SystemExit("  an edited opening was proved: THIS IS A BUG")
    except ValueError as exc:
        print(f"  an edited data.zko under data.zkc's commitments is refused by the prover: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="directory for the files (default: a temporary one)")
    args = parser.parse_args()
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="zkfhe-audit-")
        out = Path(tmp.name)
    else:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
    print(f"files go to {out}")
    t0 = time.perf_counter()
    X, Y = digits()
    data_owner(out, X, Y)
    trainer(out, X[ROWS:ROWS + HELD_OUT])
    auditor(out)
    cheater(out, X, Y)
    print(f"\naudit pipeline done in {time.perf_counter() - t0:.1f} s")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
