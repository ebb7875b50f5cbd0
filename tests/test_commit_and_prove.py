"""Commit-and-prove: published datasets and models, chains of proofs, inference of a trained model,
DataLoader habits and fidelity against torch. Cheating provers run our own prover code."""
import copy
import dataclasses

import numpy as np
import pytest
import torch

import circuits
import zk
from zk import commit, field, magnitudes, training, witness

WIDTHS, LR, BATCH = (5, 4, 3), 0.05, 4


def data(rows=10, seed=1, widths=WIDTHS):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, widths[0])).astype(np.float32),
            rng.standard_normal((rows, widths[-1])).astype(np.float32))


@pytest.fixture(scope="module")
def run():
    """A published dataset (10 rows, batches 4, 4, 2) and model, two chained epochs, one inference."""
    X, Y = data()
    dc, do = zk.commit_dataset(X, Y, BATCH)
    model = training.synthetic_mlp(WIDTHS, seed=2, bias=True)
    mc, mo = zk.commit_model(model, lr=LR)
    first = zk.prove_training(mo, do, LR)
    second = zk.prove_training(first.opening, do, LR)
    inference = zk.prove_inference(second.opening, X[:3])
    return dict(X=X, Y=Y, dc=dc, do=do, model=model, mc=mc, mo=mo, first=first, second=second,
                inference=inference)


def test_published_files_round_trip_and_keep_secrets(run):
    dc, do, mc, mo = run["dc"], run["do"], run["mc"], run["mo"]
    assert dc.rows == (4, 4, 2) and dc.batches == 3
    assert zk.DatasetCommitment.from_bytes(dc.to_bytes()).digest == dc.digest
    assert zk.ModelCommitment.from_bytes(mc.to_bytes()).digest == mc.digest
    again = zk.DatasetOpening.from_bytes(do.to_bytes())
    assert all(np.array_equal(a, b) for a, b in zip(again.x, do.x))
    assert zk.ModelOpening.from_bytes(mo.to_bytes()).commitment.digest == mc.digest
    for secret in (do, mo):
        assert "[" not in repr(secret)  # no values in the repr
    assert len(dc.to_bytes()) < 2000 and dc.digest.hex()[:16] in dc.describe()
    # a public file holds no blinds or values: the opening's bytes are not inside it
    assert do.to_bytes()[-64:] not in dc.to_bytes()


@pytest.mark.parametrize("parse, good", [(zk.DatasetCommitment.from_bytes, "dc"), (zk.ModelCommitment.from_bytes, "mc"),
                                         (zk.DatasetOpening.from_bytes, "do"), (zk.ModelOpening.from_bytes, "mo")])
def test_corrupted_and_foreign_files_are_refused(run, parse, good):
    data_ = run[good].to_bytes()
    for bad in (data_[:-1], data_ + b"\0", b"ZKTRAIN\0" + data_[8:], data_[:8] + b"\x09" + data_[9:], b""):
        with pytest.raises(zk.ProofFormatError):
            parse(bad)


def test_chained_epochs_verify_against_the_published_files(run):
    first, second = run["first"].proof, run["second"].proof
    assert zk.verify_training(first, dataset=run["dc"], initial_model=run["mc"])
    report = zk.verify_chain([first, second], dataset=run["dc"], initial_model=run["mc"])
    assert report.steps == 6 and report.batches == (0, 1, 2, 0, 1, 2) and report.distinct_batches == 3
    assert report.final_model.digest == second.final_model.digest
    assert first.statement.dataset == run["dc"].digest
    parsed = [zk.TrainingProof.from_bytes(p.to_bytes()) for p in (first, second)]
    assert zk.verify_chain(parsed, dataset=zk.DatasetCommitment.from_bytes(run["dc"].to_bytes())).proofs == 2


def test_the_proof_reuses_the_published_commitments(run):
    st = run["first"].proof.statement
    assert st.batch_commitments(2)[0].to_bytes() == run["dc"].x[2].to_bytes()
    assert st.rows == (4, 4, 2) and st.batch_indices == (0, 1, 2)
    assert st.initial_model.digest == run["mc"].digest
    # the final opening opens the proof's final commitments (the next proof reuses them)
    assert run["first"].opening.commitment.digest == run["first"].proof.final_model.digest


@pytest.mark.parametrize("proofs, message", [
    (lambda r: [r["second"].proof, r["first"].proof], "proof 1 of 2: the proof's initial parameters are not the published"),
    (lambda r: [r["first"].proof, r["first"].proof], "proof 2 of 2: it does not start from proof 1's final model"),
    (lambda r: [r["second"].proof], "proof 1 of 1: the proof's initial parameters"),
    (lambda r: [], "empty chain"),
])
def test_broken_chains_are_rejected(run, proofs, message):
    with pytest.raises(zk.VerificationError, match=message):
        zk.verify_chain(proofs(run), dataset=run["dc"], initial_model=run["mc"])


def test_a_chain_through_a_foreign_model_is_rejected(run):
    other = zk.commit_model(training.synthetic_mlp(WIDTHS, seed=9, bias=True), lr=LR)[1]
    foreign = zk.prove_training(other, run["do"], LR).proof
    with pytest.raises(zk.VerificationError, match="proof 2 of 2: it does not start from proof 1's final model"):
        zk.verify_chain([run["first"].proof, foreign], dataset=run["dc"])


def test_a_proof_on_other_data_fails_against_the_published_dataset(run):
    X = run["X"].copy()
    X[5, 1] += 0.25  # one changed entry (batch 1)
    _, other = zk.commit_dataset(X, run["Y"], BATCH)
    proof = zk.prove_training(run["mo"], other, LR).proof
    assert zk.verify_training(proof)  # a valid proof about other data
    with pytest.raises(zk.VerificationError, match="not the published dataset"):
        zk.verify_training(proof, dataset=run["dc"])


def _cheat(run, dataset_opening, digest, indices=None):
    """A malicious prover: our own prover on ``dataset_opening``'s data, claiming the published
    dataset's ``digest`` (and batch ``indices``)."""
    r = witness.training_run(run["mo"], dataset_opening, [0, 1, 2], LR, commit.DEFAULT_KEY)
    return training.commit_and_prove(r.circuit, r.values, LR, commit.DEFAULT_KEY, None, r.reused, digest,
                                   indices or (0, 1, 2))[0]


def test_a_prover_claiming_the_published_digest_for_other_data_is_caught(run):
    X = run["X"].copy()
    X[0, 0] += 1.0
    _, other = zk.commit_dataset(X, run["Y"], BATCH)
    proof = _cheat(run, other, run["dc"].digest)
    assert zk.verify_training(proof)  # internally consistent...
    with pytest.raises(zk.VerificationError, match="step 0: its data X is not batch 0 of the published dataset"):
        zk.verify_training(proof, dataset=run["dc"])  # ...but not about the published data


def test_batches_in_another_order_than_claimed_are_caught(run):
    d = run["do"]
    swapped = dataclasses.replace(d, x=(d.x[1], d.x[0], d.x[2]), y=(d.y[1], d.y[0], d.y[2]),
                                  x_blinds=(d.x_blinds[1], d.x_blinds[0], d.x_blinds[2]),
                                  y_blinds=(d.y_blinds[1], d.y_blinds[0], d.y_blinds[2]),
                                  commitment=dataclasses.replace(d.commitment, x=(d.commitment.x[1], d.commitment.x[0],
                                                                                  d.commitment.x[2]),
                                                                 y=(d.commitment.y[1], d.commitment.y[0], d.commitment.y[2])))
    proof = _cheat(run, swapped, run["dc"].digest)
    with pytest.raises(zk.VerificationError, match="step 0: its data X is not batch 0"):
        zk.verify_training(proof, dataset=run["dc"])
    honest_order = zk.prove_training(run["mo"], run["do"], LR, steps=2, start_batch=1).proof
    assert honest_order.statement.batch_indices == (1, 2)
    assert zk.verify_training(honest_order, dataset=run["dc"], initial_model=run["mc"])


def test_a_tampered_opening_is_refused_before_proving(run):
    d = run["do"]
    x0 = d.x[0].copy()
    x0[0, 0] += 1
    with pytest.raises(ValueError, match="dataset batch 0 .X.: the opening does not match its published commitment"):
        zk.prove_training(run["mo"], dataclasses.replace(d, x=(x0,) + d.x[1:]), LR)


@pytest.mark.parametrize("where", ["a parameter", "a row blind", "the last row blind"])
def test_a_tampered_model_opening_is_refused_before_proving(run, where):
    """The opening is checked against the published commitment on a random combination of its rows
    (zk.commit.opens), not by committing again: any changed entry or blind is still caught."""
    m = run["mo"]
    values, blinds = list(m.values), list(m.blinds)
    if where == "a parameter":
        values[0] = values[0].copy()
        values[0][-1, -1] -= 1
    else:
        row = 0 if where == "a row blind" else -1
        blinds[0] = blinds[0].copy()
        blinds[0][row] = field.add(blinds[0][row], field.from_int(1))
    tampered = dataclasses.replace(m, values=tuple(values), blinds=tuple(blinds))
    with pytest.raises(ValueError, match="model tensor 0.weight: the opening does not match its published commitment"):
        zk.prove_training(tampered, run["do"], LR)


def test_statement_widths_are_whole_limbs(run, monkeypatch):
    """The statement's data and parameter widths: the run's narrowest rounded up to whole limbs, or
    the narrowest where the wider ones would let an equation wrap."""
    stmt = run["first"].proof.statement
    circuit = stmt.circuit
    assert stmt.param_bits % circuit.limb_bits == 0 and stmt.data_bits % circuit.limb_bits == 0
    narrow = witness.whole_limbs(circuit, param_bits=9)
    assert narrow.param_bits == -(-9 // circuit.limb_bits) * circuit.limb_bits

    def refuse_wide(c):
        if c.param_bits % c.limb_bits == 0:
            raise zk.StatementError("wide")
    monkeypatch.setattr(magnitudes, "check", refuse_wide)
    assert witness.whole_limbs(circuit, param_bits=9).param_bits == 9


def test_inference_of_the_trained_model(run):
    inference, final = run["inference"], run["second"].proof.final_model
    assert zk.verify_inference(inference, model=final)
    assert zk.verify_inference(zk.InferenceProof.from_bytes(inference.to_bytes()), model=final)
    with pytest.raises(zk.VerificationError, match="inference parameters are not the published model"):
        zk.verify_inference(inference, model=run["first"].proof.final_model)
    with pytest.raises(zk.VerificationError, match="model= takes a ModelCommitment"):
        zk.verify_inference(inference, model=run["mo"])


def test_dataloader_epochs_and_torch_fidelity():
    """A torch DataLoader (last batch smaller) for two epochs: the proof verifies and the proved
    weights track torch's float64 SGD (cosine of the changes > 0.9999)."""
    X, Y = data(rows=10, seed=4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)),
                                         batch_size=4)
    model = training.synthetic_mlp(WIDTHS, seed=5, bias=True)
    result = zk.prove_training(model, loader, LR, epochs=2)
    assert result.proof.statement.steps == 6 and result.proof.statement.rows == (4, 4, 2) * 2
    assert zk.verify_training(result.proof)
    ref = copy.deepcopy(model).double()
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(ref(x.double()), y.double()).backward()
            opt.step()
    w0, proved, torch_ = ([p.detach().double().numpy().ravel() for p in m.parameters()]
                          for m in (model, result.model, ref))
    d_p, d_t = np.concatenate(proved) - np.concatenate(w0), np.concatenate(torch_) - np.concatenate(w0)
    assert d_p @ d_t / (np.linalg.norm(d_p) * np.linalg.norm(d_t)) > 0.9999
    assert abs(np.mean(np.concatenate(proved) - np.concatenate(torch_))) < 2.0 ** -16 / 10


def test_underflow_and_argument_errors(run):
    X, Y = data()
    with pytest.raises(ValueError, match="X of batch 0 underflows"):
        zk.commit_dataset(X * 1e-7, Y, BATCH)
    with pytest.raises(ValueError, match="steps or epochs, not both"):
        zk.prove_training(run["mo"], run["do"], LR, steps=2, epochs=1)
    with pytest.raises(ValueError, match="start_batch"):
        zk.prove_training(run["mo"], run["do"], LR, start_batch=3)
    with pytest.raises(TypeError, match="needs the dataset's opening"):
        zk.prove_training(run["mo"], run["dc"], LR)
    with pytest.raises(ValueError, match="committed at scale"):
        zk.prove_training(run["mo"], run["do"], LR, scale_bits=12)
    with pytest.raises(zk.VerificationError, match="dataset= takes a DatasetCommitment"):
        zk.verify_training(run["first"].proof, dataset=run["do"])


def test_old_proof_versions_are_refused_by_name(run):
    data_ = bytearray(run["first"].proof.to_bytes())
    data_[8] = 3
    with pytest.raises(zk.ProofFormatError, match="unsupported proof version 3"):
        zk.TrainingProof.from_bytes(bytes(data_))


def test_rounding_to_nearest_has_no_drift():
    """Many rescales of random products: floor would drift by -1/2 ULP each, nearest does not."""
    g = circuits.Graph(16)
    a, b = g.input("a", (64, 64)), g.input("b", (64, 64))
    g.rescale(g.einsum("ij,jk->ik", a, b), 16, name="c")
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    vals = circuits.run(g, {"a": A, "b": B}, mode="fixed")
    exact = vals[g.tensors["c"].name + ".rem"]  # remainders of round-to-nearest are centred
    assert abs(np.mean(exact) / 2**16 - 0.5) < 0.02
    fp = circuits.FixedPoint(16)
    err = circuits.decode(g, vals, "c") - fp.decode(fp.encode(A)) @ fp.decode(fp.encode(B))
    assert abs(err.mean()) < 2.0 ** -16 / 20
