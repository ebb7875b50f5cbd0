"""zkfhe demo: one model description (circuits), a zero-knowledge training proof (zk).

1. Trains a small MLP for a few SGD steps through circuits, in float64 and in exact fixed
   point, and prints how both agree with torch autograd + torch.optim.SGD.
2. Proves 2 training steps of an MLP (Linear layers with biases) in zero knowledge, verifies
   the proof, and shows its statement, size and timings.
3. Runs an einsum on CKKS ciphertexts (SEAL) and shows the packing plan's cost and the error.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

import circuits
import fhe
import zk


def torch_steps(model, batches, lr):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for X, Y in batches:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    return model


def circuits_steps(model, batches, lr, mode):
    model = copy.deepcopy(model).double()  # float64 carries the fixed-point parameters exactly between steps
    for X, Y in batches:
        new = circuits.train_step(model, X, Y, lr, mode=mode)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()})
    return model


def main() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4)).double()
    batches = [(torch.randn(12, 16, dtype=torch.float64), torch.randn(12, 4, dtype=torch.float64))
               for _ in range(3)]
    lr = 0.05
    print("== circuits: one description of a training step ==")
    print(circuits.trace_training(model, 12, lr))
    ref = torch_steps(model, batches, lr).state_dict()
    print(f"\n3 SGD steps of MLP 16-32-32-4, batch 12, lr {lr}: max |difference| vs torch")
    for mode in ("float", "fixed"):
        t0 = time.perf_counter()
        ours = circuits_steps(model, batches, lr, mode).state_dict()
        dt = time.perf_counter() - t0
        err = max(float(np.max(np.abs(ours[k].numpy() - ref[k].numpy()))) for k in ref)
        print(f"  {mode:5s}: {err:.2e}   ({dt * 1e3:.0f} ms)")


def zk_demo() -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    batches = [(torch.randn(12, 16), torch.randn(12, 4)) for _ in range(2)]
    print("\n== zk: proving 2 SGD steps of MLP 16-32-4 (batch 12) in zero knowledge ==")
    t0 = time.perf_counter()
    proof, trained, _ = zk.prove_training(model, batches, lr=0.05)
    t1 = time.perf_counter()
    zk.verify_training(zk.TrainingProof.from_bytes(proof.to_bytes()))
    t2 = time.perf_counter()
    print(proof.statement.describe())
    print(f"  prove {t1 - t0:.2f} s, verify {t2 - t1:.2f} s, proof {len(proof.to_bytes()) / 1e3:.0f} kB: valid")
    ref = circuits_steps(model, batches, 0.05, "fixed").state_dict()
    same = all(torch.equal(trained.state_dict()[k], ref[k].float()) for k in ref)
    print(f"  trained weights equal circuits' fixed-point training: {same}")
    forged = bytearray(proof.to_bytes())
    forged[len(forged) // 2] ^= 1
    try:
        zk.verify_training(zk.TrainingProof.from_bytes(bytes(forged)))
        print("  a tampered proof verified: THIS IS A BUG")
    except (zk.VerificationError, zk.ProofFormatError) as exc:
        print(f"  a proof with one flipped bit is rejected: {exc}")


def fhe_demo() -> None:
    print("\n== fhe: encrypted matrix product on CKKS (SEAL, 128-bit secure parameters) ==")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((16, 32)), rng.standard_normal((32, 16))
    ctx = fhe.Context(backend="seal", levels=2)
    t0 = time.perf_counter()
    c = fhe.einsum("ij,jk->ik", ctx.encrypt(a), ctx.encrypt(b))
    t1 = time.perf_counter()
    cost = ctx.plan("ij,jk->ik", ctx.encrypt(a), ctx.encrypt(b)).cost()
    err = float(np.max(np.abs(ctx.decrypt(c) - a @ b)))
    print(f"  ij,jk->ik 16x32 . 32x16, both encrypted: {cost.rotations} rotations, "
          f"{cost.ct_ct_mults} ct-ct mults, {cost.levels} levels; {t1 - t0:.2f} s "
          f"(keys included); max error {err:.1e}")


if __name__ == "__main__":
    main()
    zk_demo()
    fhe_demo()
