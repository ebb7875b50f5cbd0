"""``zkfhe commit-data / commit-model / prove / verify / verify-chain / inspect``: honest proofs
verify (against the published commitments too), damaged or foreign files are rejected with a
reason and exit 1, bad arguments give clean errors (exit 2) and never leave an output file."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import circuits
import zk
from zkfhe.cli import cli
from zk.training import synthetic_mlp
from zkfhe.cli_zk import load_model

TINY = ["--arch", "6,5,3", "--batch", "3", "--quiet"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_clean_failure(result, code, *words):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for w in words:
        assert w in result.output, result.output


@pytest.fixture(scope="module")
def proved(tmp_path_factory):
    """A training proof file and the trained model the CLI saved beside it."""
    d = tmp_path_factory.mktemp("proofs")
    result = run("prove", *TINY, "--steps", 2, "--lr", 0.05, "--seed", 3, "--out", d / "run.zkp",
                 "--save-model", d / "trained.pt")
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --quiet
    return d / "run.zkp", d / "trained.pt"


@pytest.fixture(scope="module")
def training_file(proved):
    return proved[0]


def test_prove_verify_inspect_training(training_file):
    result = run("verify", training_file)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "valid"
    assert "2 SGD steps" in result.output and "6-5-3" in result.output

    result = run("inspect", training_file)
    assert result.exit_code == 0, result.output
    proof = zk.TrainingProof.from_bytes(training_file.read_bytes())
    assert proof.statement.describe() in result.output
    assert f"proof size: {len(training_file.read_bytes()):,} bytes" in result.output
    for name in proof.size_breakdown():
        assert name in result.output
    st = proof.statement
    assert (st.widths, st.batch_size, st.steps, st.lr) == ((6, 5, 3), 3, 2, 0.05)


def test_synthetic_run_is_determined_by_the_seed(proved, tmp_path):
    # same seed: same random model and batches, hence the same trained weights
    _, trained = proved
    again = tmp_path / "again.pt"
    result = run("prove", *TINY, "--steps", 2, "--lr", 0.05, "--seed", 3, "--out", tmp_path / "again.zkp",
                 "--save-model", again)
    assert result.exit_code == 0, result.output
    a, b = torch.load(trained, weights_only=True), torch.load(again, weights_only=True)
    assert a.keys() == b.keys() == {"0.weight", "2.weight"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and another seed gives another model
    other = synthetic_mlp((6, 5, 3), 4)
    assert not torch.equal(other[0].weight, synthetic_mlp((6, 5, 3), 3)[0].weight)


@pytest.mark.parametrize("position", [0, 3, 9, 200, -40, -1])
def test_flipped_byte_is_rejected(training_file, tmp_path, position):
    data = bytearray(training_file.read_bytes())
    data[position] ^= 0x01
    bad = tmp_path / "bad.zkp"
    bad.write_bytes(bytes(data))
    result = run("verify", bad)
    assert_clean_failure(result, 1)
    assert "valid\n" not in result.output
    assert "malformed proof" in result.output or "invalid proof" in result.output


def test_truncated_and_empty_and_foreign_files(training_file, tmp_path):
    cases = {"truncated.zkp": training_file.read_bytes()[:-7], "empty.zkp": b"",
             "foreign.zkp": b"PK\x03\x04 not a proof at all"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_clean_failure(run("verify", tmp_path / name), 1, "malformed proof")
        assert_clean_failure(run("inspect", tmp_path / name), 1, "malformed")
    assert "empty" in run("verify", tmp_path / "empty.zkp").output
    assert "not a zkfhe proof" in run("verify", tmp_path / "foreign.zkp").output


def test_verify_missing_file_and_directory(tmp_path):
    assert_clean_failure(run("verify", tmp_path / "nope.zkp"), 1, "no such file")
    assert_clean_failure(run("verify", tmp_path), 1, "is a directory")
    assert_clean_failure(run("inspect", tmp_path / "nope.zkp"), 1, "no such file")


@pytest.mark.parametrize("bias", [False, True])
def test_model_and_data_files(tmp_path, bias):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=bias), torch.nn.ReLU(),
                                torch.nn.Linear(3, 2, bias=False))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.standard_normal((7, 4)), Y=rng.standard_normal((7, 2)))
    out, trained = tmp_path / "run.zkp", tmp_path / "trained.pt"
    # 7 rows, batch 3: batches of 3, 3 and 1 rows (as commit-data cuts them), four steps cycle through them
    result = run("prove", "--model", tmp_path / "model.pt", "--data", tmp_path / "data.npz", "--batch", 3,
                 "--steps", 4, "--lr", 0.1, "--out", out, "--save-model", trained)
    assert result.exit_code == 0, result.output
    assert "not used" not in result.stderr and "4 SGD steps" in result.stdout
    for stage in ("witness", "commit witness", "prove"):  # the progress bars, on stderr
        assert stage in result.stderr
    assert "100%" in result.stderr
    proof = zk.TrainingProof.from_bytes(out.read_bytes())
    assert (proof.statement.widths, proof.statement.batch_size, proof.statement.steps) == ((4, 3, 2), 3, 4)
    assert proof.statement.rows == (3, 3, 1, 3)
    assert zk.verify_training(proof)
    # the saved model is the exact fixed-point run on the same batches (master weights carried
    # as integers at the parameter scale between steps), decoded
    x, y = np.load(tmp_path / "data.npz")["X"], np.load(tmp_path / "data.npz")["Y"]
    scale, fp = circuits.param_scale_for(0.1, 16), circuits.FixedPoint(16)
    state = {k: fp.encode(v.double().numpy(), scale) for k, v in model.state_dict().items()}
    for xb, yb in [(x[:3], y[:3]), (x[3:6], y[3:6]), (x[6:], y[6:]), (x[:3], y[:3])]:
        graph = circuits.trace_training(model, len(xb), 0.1, param_scale=scale)
        inputs = {"x": fp.encode(xb), "y": fp.encode(yb), **state}
        vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        state = {k: vals[graph.outputs[k]] for k in state}
    got = torch.load(trained, weights_only=True)
    assert got.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(got[k], torch.from_numpy(fp.decode(v, scale)).float()), k
    assert run("verify", out).exit_code == 0


def test_momentum_and_weight_decay_from_the_command_line(tmp_path):
    """SGD options reach the statement, in one proof and in a chain of segments that resume."""
    out = tmp_path / "run.zkp"
    result = run("prove", *TINY, "--steps", 2, "--momentum", 0.9, "--weight-decay", 0.01, "--out", out)
    assert result.exit_code == 0, result.output
    st = zk.TrainingProof.from_bytes(out.read_bytes()).statement
    assert (st.momentum, st.dampening, st.weight_decay) == (0.9, 0.0, 0.01)
    chain = tmp_path / "run.zkchain"
    result = run("prove", *TINY, "--steps", 2, "--momentum", 0.5, "--segment-steps", 1, "--out", chain)
    assert result.exit_code == 0, result.output
    proofs = zk.Chain.from_bytes(chain.read_bytes())
    assert [p.statement.resumed for p in proofs] == [False, True]
    assert run("verify-chain", chain).exit_code == 0


def test_inference_proof(tmp_path):
    out = tmp_path / "infer.zkp"
    result = run("prove", "--inference", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"ZKINFER\0"
    result = run("verify", out)
    assert result.exit_code == 0 and result.output.startswith("valid\n") and "inference" in result.output
    result = run("inspect", out)
    assert result.exit_code == 0 and "inference proof statement" in result.output


def test_inference_proof_from_files(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    np.savez(tmp_path / "data.npz", X=np.random.default_rng(1).standard_normal((5, 4)))  # no Y needed
    out = tmp_path / "infer.zkp"
    result = run("prove", "--inference", "--model", tmp_path / "model.pt", "--data", tmp_path / "data.npz",
                 "--batch", 3, "--out", out)
    assert result.exit_code == 0, result.output
    assert "last 2 rows" in result.output
    proof = zk.InferenceProof.from_bytes(out.read_bytes())
    assert (proof.statement.widths, proof.statement.batch_size) == ((4, 2), 3)
    assert run("verify", out).exit_code == 0


def test_load_model_rebuilds_the_sequential(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(5, 4, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(4, 4, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(4, 2, bias=False))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    rebuilt = load_model(str(tmp_path / "m.pt"))
    x = torch.randn(3, 5)
    assert torch.equal(rebuilt(x), model(x))
    assert [type(m).__name__ for m in rebuilt] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    torch.save(model.double().state_dict(), tmp_path / "m64.pt")  # float64 weights stay float64
    assert load_model(str(tmp_path / "m64.pt"))[0].weight.dtype == torch.float64


@pytest.mark.parametrize("args, code, words", [
    (["--arch", "784,abc"], 2, ["--arch", "comma-separated"]),
    (["--arch", "784"], 2, ["at least two widths"]),
    (["--arch", "4,0,2"], 2, ["positive"]),
    (["--arch", "4,2", "--steps", "0"], 2, ["--steps"]),
    (["--arch", "4,2", "--lr", "-1"], 2, ["positive learning rate"]),
    (["--arch", "4,2", "--lr", "nan"], 2, ["positive learning rate"]),
    (["--arch", "4,2", "--batch", "0"], 2, ["--batch"]),
    (["--arch", "4,2", "--inference", "--steps", "2"], 2, ["--steps applies to training"]),
    (["--arch", "4,2", "--device", "tpu"], 2, ["--device"]),
    (["--arch", "4,2", "--momentum", "1.5"], 2, ["--momentum"]),
    (["--arch", "4,2", "--inference", "--weight-decay", "0.1"], 2, ["--weight-decay applies to training"]),
    ([], 2, ["exactly one of --arch"]),
])
def test_bad_arguments(tmp_path, args, code, words):
    out = tmp_path / "run.zkp"
    result = run("prove", *args, "--out", out)
    assert_clean_failure(result, code, *words)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_failed_proof_leaves_the_old_file_alone(tmp_path):
    out = tmp_path / "run.zkp"
    out.write_bytes(b"old")
    result = run("prove", "--arch", "4,2", "--batch", 2, "--lr", "1e6", "--quiet", "--out", out)
    assert_clean_failure(result, 1, "cannot prove", "learning rate")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["run.zkp"]


def test_missing_out_and_bad_out(tmp_path):
    assert_clean_failure(run("prove", "--arch", "4,2"), 2, "--out")
    assert_clean_failure(run("prove", "--arch", "4,2", "--out", tmp_path), 2, "is a directory")
    assert_clean_failure(run("prove", "--arch", "4,2", "--out", tmp_path / "no" / "run.zkp"), 2, "does not exist")


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    import gpu

    if gpu.available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    result = run("prove", "--arch", "4,2", "--device", "cuda", "--out", tmp_path / "run.zkp")
    assert_clean_failure(result, 2, "sees no CUDA device")
    assert list(tmp_path.iterdir()) == []


def test_bad_model_and_data_files(tmp_path):
    def prove(*args):
        result = run("prove", *args, "--batch", 2, "--quiet", "--out", tmp_path / "run.zkp")
        assert not (tmp_path / "run.zkp").exists()
        return result

    good = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.ReLU(), torch.nn.Linear(3, 2, bias=False))
    torch.save(good.state_dict(), tmp_path / "good.pt")
    torch.save({"0.weight": torch.zeros(2, 4), "0.bias": torch.zeros(3)}, tmp_path / "bias.pt")
    torch.save({"0.weight": torch.zeros(2, 4), "2.bias": torch.zeros(2)}, tmp_path / "orphan.pt")
    torch.save({"0.weight": torch.zeros(3, 4), "1.weight": torch.zeros(2, 3)}, tmp_path / "gap.pt")
    torch.save({"0.weight": torch.zeros(3, 4), "2.weight": torch.zeros(2, 5)}, tmp_path / "shapes.pt")
    torch.save({"layer.weight": torch.zeros(3, 4)}, tmp_path / "keys.pt")
    torch.save({"0.weight": torch.full((2, 4), float("nan"))}, tmp_path / "nan.pt")
    torch.save(good, tmp_path / "module.pt")  # a pickled module, refused by weights_only=True
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "good.npz", X=rng.standard_normal((4, 4)), Y=rng.standard_normal((4, 2)))
    np.savez(tmp_path / "noy.npz", X=rng.standard_normal((4, 4)))
    np.savez(tmp_path / "wide.npz", X=rng.standard_normal((4, 5)), Y=rng.standard_normal((4, 2)))
    np.savez(tmp_path / "rows.npz", X=rng.standard_normal((4, 4)), Y=rng.standard_normal((3, 2)))
    np.savez(tmp_path / "few.npz", X=rng.standard_normal((1, 4)), Y=rng.standard_normal((1, 2)))
    np.savez(tmp_path / "none.npz", X=np.zeros((0, 4)), Y=np.zeros((0, 2)))
    np.savez(tmp_path / "nan.npz", X=np.full((4, 4), np.nan), Y=np.zeros((4, 2)))
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}], dtype=object), Y=np.zeros((1, 2)))
    np.save(tmp_path / "plain.npy", np.zeros((4, 4)))
    d = ["--data", tmp_path / "good.npz"]
    cases = [
        (["--model", tmp_path / "missing.pt", *d], ["no such file"]),
        (["--model", tmp_path, *d], ["is a directory"]),
        (["--model", tmp_path / "bias.pt", *d], ["0.bias has 3 entries"]),
        (["--model", tmp_path / "orphan.pt", *d], ["2.bias has no 2.weight"]),
        (["--model", tmp_path / "gap.pt", *d], ["layer indices"]),
        (["--model", tmp_path / "shapes.pt", *d], ["has 5 inputs"]),
        (["--model", tmp_path / "keys.pt", *d], ["unexpected key"]),
        (["--model", tmp_path / "nan.pt", *d], ["non-finite"]),
        (["--model", tmp_path / "module.pt", *d], ["not a torch state_dict"]),
        (["--model", tmp_path / "junk.pt", *d], ["not a torch state_dict"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "noy.npz"], ["no array Y"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "wide.npz"], ["X has 5 columns"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "rows.npz"], ["X has 4 rows but Y has 3"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "few.npz"], ["fewer than --batch 2"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "none.npz"], ["no rows"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "nan.npz"], ["non-finite"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "obj.npz"], ["cannot read"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "plain.npy"], ["not a single .npy"]),
        (["--model", tmp_path / "good.pt", "--data", tmp_path / "junk.pt"], ["cannot read"]),
        (["--model", tmp_path / "good.pt", "--arch", "4,2"], ["exactly one of --arch"]),
    ]
    for args, words in cases:
        result = prove(*args)
        assert result.exit_code in (1, 2), (args, result.output)
        assert_clean_failure(result, result.exit_code, *words)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.zkp")]  # no temp file left


# ----------------------------------------------------------------------------------------
# commit-and-prove: published dataset and model commitments, openings, chains
# ----------------------------------------------------------------------------------------
def one_line_failure(result, code, *words):
    assert_clean_failure(result, code, *words)
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """commit-data (two datasets), commit-model, a first training proof from both openings and a
    second one from the first's saved final opening; the paths and the commands' outputs."""
    d = tmp_path_factory.mktemp("published")
    rng = np.random.default_rng(5)
    for name in ("data", "other"):  # 7 rows, batch 3: batches of 3, 3 and 1 rows
        np.savez(d / f"{name}.npz", X=rng.standard_normal((7, 4)), Y=rng.standard_normal((7, 2)))
    out = {}
    out["commit-data"] = run("commit-data", d / "data.npz", "--batch", 3, "--out", d / "data.zkc",
                             "--opening", d / "data.zko")
    out["commit-other"] = run("commit-data", d / "other.npz", "--batch", 3, "--out", d / "other.zkc",
                              "--opening", d / "other.zko", "--quiet")
    out["commit-model"] = run("commit-model", "--arch", "4,3,2", "--seed", 1, "--lr", 0.05, "--out", d / "model.zkc",
                              "--opening", d / "model.zko")
    out["p1"] = run("prove", "--model", d / "model.zko", "--data", d / "data.zko", "--epochs", 1, "--lr", 0.05,
                    "--out", d / "p1.zkp", "--save-opening", d / "f1.zko", "--save-model-commitment", d / "f1.zkc",
                    "--save-model", d / "f1.pt")
    out["p2"] = run("prove", "--model", d / "f1.zko", "--data", d / "data.zko", "--steps", 2, "--start-batch", 1,
                    "--lr", 0.05, "--out", d / "p2.zkp", "--quiet")
    for name, result in out.items():
        assert result.exit_code == 0, (name, result.output)
    return d, out


def test_commit_data_and_model(published, tmp_path):
    d, out = published
    data = zk.DatasetCommitment.from_bytes((d / "data.zkc").read_bytes())
    opening = zk.DatasetOpening.from_bytes((d / "data.zko").read_bytes())
    assert opening.commitment.to_bytes() == (d / "data.zkc").read_bytes()
    assert (data.batch_size, data.rows, data.features, data.outputs, data.scale_bits) == (3, (3, 3, 1), 4, 2, 16)
    text = out["commit-data"].stdout
    assert data.digest.hex() in text and "SECRET" in text and "verifier never" in text
    assert out["commit-other"].output == ""  # --quiet
    model = zk.ModelCommitment.from_bytes((d / "model.zkc").read_bytes())
    m_open = zk.ModelOpening.from_bytes((d / "model.zko").read_bytes())
    assert m_open.commitment.to_bytes() == (d / "model.zkc").read_bytes()
    assert model.architecture.widths == (4, 3, 2) and model.param_scale == circuits.param_scale_for(0.05, 16)
    assert model.digest.hex() in out["commit-model"].stdout and "SECRET" in out["commit-model"].stdout
    # --arch --seed is the same random model as prove --arch --seed
    x = torch.randn(2, 4)
    assert torch.allclose(m_open.to_torch()(x), synthetic_mlp((4, 3, 2), 1)(x), atol=1e-6)

    # existing files are not overwritten without --force (a new commitment has another digest)
    for f in ("data.zkc", "data.zko"):
        (tmp_path / f).write_bytes((d / f).read_bytes())
    args = ["commit-data", d / "data.npz", "--batch", 3, "--out", tmp_path / "data.zkc",
            "--opening", tmp_path / "data.zko"]
    assert_clean_failure(run(*args), 2, "exists", "--force")
    assert (tmp_path / "data.zkc").read_bytes() == (d / "data.zkc").read_bytes()
    assert run(*args, "--force", "--quiet").exit_code == 0
    again = zk.DatasetCommitment.from_bytes((tmp_path / "data.zkc").read_bytes())
    assert again.digest != data.digest  # fresh blinds
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    # a state_dict, with --param-scale
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)).state_dict(), tmp_path / "m.pt")
    result = run("commit-model", "--model", tmp_path / "m.pt", "--param-scale", 30, "--out", tmp_path / "m.zkc",
                 "--opening", tmp_path / "m.zko", "-q")
    assert result.exit_code == 0, result.output
    m = zk.ModelCommitment.from_bytes((tmp_path / "m.zkc").read_bytes())
    assert (m.architecture.widths, m.architecture.biases, m.param_scale) == ((4, 2), (True,), 30)


def test_prove_from_openings(published):
    d, out = published
    data = zk.DatasetCommitment.from_bytes((d / "data.zkc").read_bytes())
    model = zk.ModelCommitment.from_bytes((d / "model.zkc").read_bytes())
    p1 = zk.TrainingProof.from_bytes((d / "p1.zkp").read_bytes())
    p2 = zk.TrainingProof.from_bytes((d / "p2.zkp").read_bytes())
    assert p1.statement.dataset == p2.statement.dataset == data.digest
    assert p1.statement.batch_indices == (0, 1, 2) and p1.statement.rows == (3, 3, 1)  # --epochs 1
    assert p2.statement.batch_indices == (1, 2)  # --steps 2 --start-batch 1
    assert p1.initial_model.to_bytes() == model.to_bytes()
    assert (d / "f1.zkc").read_bytes() == p1.final_model.to_bytes()
    final = zk.ModelOpening.from_bytes((d / "f1.zko").read_bytes())
    assert final.commitment.to_bytes() == p1.final_model.to_bytes() == p2.initial_model.to_bytes()
    saved = torch.load(d / "f1.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in final.to_torch().state_dict().items())
    text = out["p1"].stdout
    assert "3 SGD steps" in text and p1.final_model.digest.hex() in text and "SECRET" in text
    assert data.digest[:8].hex() in text and model.digest[:8].hex() in text


def test_verify_against_published_files(published):
    d, _ = published
    result = run("verify", d / "p1.zkp", "--data", d / "data.zkc", "--model", d / "model.zkc")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "valid"
    assert "checked against published files" in result.output
    assert "data.zkc" in result.output and "model.zkc" in result.output
    assert run("verify", d / "p2.zkp", "--data", d / "data.zkc", "--model", d / "f1.zkc").exit_code == 0
    assert "not checked against" in run("verify", d / "p1.zkp").output
    one_line_failure(run("verify", d / "p1.zkp", "--data", d / "other.zkc"), 1, "invalid proof", "not the published dataset")
    one_line_failure(run("verify", d / "p1.zkp", "--model", d / "f1.zkc"), 1, "invalid proof", "initial parameters")
    one_line_failure(run("verify", d / "p2.zkp", "--model", d / "model.zkc"), 1, "invalid proof")
    # the secret opening is not what a verifier takes, nor a commitment of the other kind
    one_line_failure(run("verify", d / "p1.zkp", "--data", d / "data.zko"), 1, "SECRET")
    one_line_failure(run("verify", d / "p1.zkp", "--data", d / "model.zkc"), 1, "a model commitment")
    one_line_failure(run("verify", d / "data.zkc"), 1, "a dataset commitment, not a")
    one_line_failure(run("verify", d / "p1.zkp", "--model", d / "missing.zkc"), 1, "no such file")


def test_verify_chain(published):
    d, _ = published
    result = run("verify-chain", d / "p1.zkp", d / "p2.zkp", "--data", d / "data.zkc", "--model", d / "model.zkc")
    assert result.exit_code == 0, result.output
    p1, p2 = (zk.TrainingProof.from_bytes((d / f).read_bytes()) for f in ("p1.zkp", "p2.zkp"))
    report = zk.verify_chain([p1, p2], dataset=zk.DatasetCommitment.from_bytes((d / "data.zkc").read_bytes()),
                             initial_model=zk.ModelCommitment.from_bytes((d / "model.zkc").read_bytes()))
    assert report.describe() in result.output and "5 SGD steps" in result.output
    assert p2.final_model.digest.hex() in result.output
    # reversed: the second proof does not start from the first one's final model
    one_line_failure(run("verify-chain", d / "p2.zkp", d / "p1.zkp"), 1, "invalid chain", "proof 2 of 2",
                     "p1.zkp", "does not start from")
    # and with the published initial model, the first one does not start from it
    one_line_failure(run("verify-chain", d / "p2.zkp", d / "p1.zkp", "--model", d / "model.zkc"), 1,
                     "proof 1 of 2", "p2.zkp")
    one_line_failure(run("verify-chain", d / "p1.zkp", d / "p2.zkp", "--data", d / "other.zkc"), 1,
                     "proof 1 of 2", "p1.zkp", "not the published dataset")
    one_line_failure(run("verify-chain", d / "p1.zkp", d / "model.zkc"), 1, "model.zkc", "a model commitment")


def test_prove_in_segments_and_verify_the_chain_file(published, tmp_path):
    d, _ = published
    chain = tmp_path / "run.zkchain"
    result = run("prove", "--model", d / "model.zko", "--data", d / "data.zko", "--epochs", 2, "--lr", 0.05,
                 "--segment-steps", 2, "--out", chain, "--save-opening", tmp_path / "f.zko",
                 "--save-model-commitment", tmp_path / "f.zkc")
    assert result.exit_code == 0, result.output
    assert "chain of 3 segment proofs, 6 SGD steps" in result.stdout and "batches used 0-2, 0-2" in result.stdout
    final = zk.ModelCommitment.from_bytes((tmp_path / "f.zkc").read_bytes())
    assert zk.ModelOpening.from_bytes((tmp_path / "f.zko").read_bytes()).commitment == final
    result = run("verify-chain", chain, "--data", d / "data.zkc", "--model", d / "model.zkc", "--quiet")
    assert result.exit_code == 0, result.output
    assert "3 proof(s), 6 SGD steps" in result.output and final.digest.hex() in result.output
    result = run("inspect", chain)
    assert result.exit_code == 0 and "training chain" in result.output and "3 (" in result.output
    # a chain file and proof files in one run: p1 also starts from the model, so the chain's first
    # segment does not continue it
    one_line_failure(run("verify-chain", d / "p1.zkp", chain, "--quiet"), 1, "proof 2 of 4",
                     "run.zkchain, segment 1", "does not start from proof 1's final model")
    (tmp_path / "cut.zkchain").write_bytes(chain.read_bytes()[:-10])
    one_line_failure(run("verify-chain", tmp_path / "cut.zkchain"), 1, "malformed training chain")
    # a chain whose last segment frames well but is cut short inside
    parsed = zk.Chain.from_bytes(chain.read_bytes())
    (tmp_path / "inner.zkchain").write_bytes(zk.Chain(parsed.segments[:-1] + (parsed.segments[-1][:100],)).to_bytes())
    one_line_failure(run("inspect", tmp_path / "inner.zkchain"), 1, "malformed training chain")
    one_line_failure(run("verify-chain", tmp_path / "inner.zkchain"), 1, "proof 3 of 3", "segment 3")
    one_line_failure(run("verify-chain", d / "model.zko"), 1, "a model opening")


def test_inference_from_a_model_opening(published, tmp_path):
    d, _ = published
    out = tmp_path / "infer.zkp"
    result = run("prove", "--inference", "--model", d / "f1.zko", "--data", d / "data.npz", "--batch", 3,
                 "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    proof = zk.InferenceProof.from_bytes(out.read_bytes())
    assert proof.model.to_bytes() == (d / "f1.zkc").read_bytes()
    result = run("verify", out, "--model", d / "f1.zkc")
    assert result.exit_code == 0 and "the inference is of the published model" in result.output, result.output
    one_line_failure(run("verify", out, "--model", d / "model.zkc"), 1, "invalid proof", "not the published model")
    assert_clean_failure(run("verify", out, "--data", d / "data.zkc"), 2, "--data applies to training")
    # an inference proof is not a link of a chain
    one_line_failure(run("verify-chain", d / "p1.zkp", out), 1, "inference proof")


def test_npz_epochs_and_save_opening(published, tmp_path):
    d, _ = published
    result = run("prove", "--model", d / "model.zko", "--data", d / "data.npz", "--batch", 3, "--epochs", 2,
                 "--lr", 0.05, "--quiet", "--out", tmp_path / "run.zkp", "--save-opening", tmp_path / "f.zko")
    assert result.exit_code == 0, result.output
    proof = zk.TrainingProof.from_bytes((tmp_path / "run.zkp").read_bytes())
    assert proof.statement.batch_indices == (0, 1, 2, 0, 1, 2)  # the .npz path: batches as commit-data cuts them
    opening = zk.ModelOpening.from_bytes((tmp_path / "f.zko").read_bytes())
    assert opening.commitment.to_bytes() == proof.final_model.to_bytes()
    result = run("verify", tmp_path / "run.zkp", "--model", d / "model.zkc")
    assert result.exit_code == 0, result.output


def test_inspect_every_file_kind(published, training_file, tmp_path):
    d, _ = published
    for name, cls in (("data.zkc", zk.DatasetCommitment), ("model.zkc", zk.ModelCommitment)):
        result = run("inspect", d / name)
        assert result.exit_code == 0, result.output
        assert cls.from_bytes((d / name).read_bytes()).describe() in result.output
    for name, cls in (("data.zko", zk.DatasetOpening), ("model.zko", zk.ModelOpening)):
        result = run("inspect", d / name)
        assert result.exit_code == 0, result.output
        opening = cls.from_bytes((d / name).read_bytes())
        assert "SECRET" in result.output and opening.commitment.describe() in result.output
        # only that: the header, the size, and the public commitment; no values
        assert len(result.output.splitlines()) == 3 + len(opening.commitment.describe().splitlines())
    result = run("inspect", d / "p1.zkp")
    assert result.exit_code == 0
    assert zk.TrainingProof.from_bytes((d / "p1.zkp").read_bytes()).statement.describe() in result.output
    proof = zk.prove_einsum("ij,jk->ik", np.arange(6).reshape(2, 3), np.ones((3, 2), dtype=np.int64))
    (tmp_path / "e.zkp").write_bytes(proof.to_bytes())
    result = run("inspect", tmp_path / "e.zkp")
    assert result.exit_code == 0 and "ij,jk->ik" in result.output, result.output
    result = run("verify", tmp_path / "e.zkp")
    assert result.exit_code == 0 and result.output.startswith("valid\n"), result.output
    assert_clean_failure(run("verify", tmp_path / "e.zkp", "--model", d / "model.zkc"), 2, "einsum")


def test_corrupted_commitment_files(published, tmp_path):
    d, _ = published
    good = (d / "data.zkc").read_bytes()
    cases = {"truncated.zkc": good[:-5], "header.zkc": good[:9] + b"\xff\xff\xff\xff" + good[13:],
             "version.zkc": good[:8] + b"\x09" + good[9:], "empty.zkc": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        one_line_failure(run("verify", d / "p1.zkp", "--data", tmp_path / name), 1, "malformed", name)
        one_line_failure(run("inspect", tmp_path / name), 1, "malformed", name)
    # a flipped byte in a commitment: malformed, or another (unpublished) dataset
    flipped = bytearray(good)
    flipped[-20] ^= 0x01
    (tmp_path / "flipped.zkc").write_bytes(bytes(flipped))
    one_line_failure(run("verify", d / "p1.zkp", "--data", tmp_path / "flipped.zkc"), 1)
    model = (d / "model.zkc").read_bytes()
    (tmp_path / "model.zkc").write_bytes(model[:-3])
    one_line_failure(run("verify", d / "p1.zkp", "--model", tmp_path / "model.zkc"), 1, "malformed model commitment")
    # an opening that parses but no longer opens its commitment: a blind, or a parameter value
    for position, words in ((-16, ["does not match its published commitment"]), (-40, [])):
        opening = bytearray((d / "model.zko").read_bytes())
        opening[position] ^= 0x01
        (tmp_path / "model.zko").write_bytes(bytes(opening))
        result = run("prove", "--model", tmp_path / "model.zko", "--data", d / "data.zko", "--lr", 0.05, "--quiet",
                     "--out", tmp_path / "run.zkp")
        one_line_failure(result, 1, "cannot prove", *words)
        assert not (tmp_path / "run.zkp").exists()


@pytest.mark.parametrize("args, words", [
    (["commit-data", "{d}/data.npz", "--out", "{t}/a.zkc"], ["--opening"]),
    (["commit-data", "{d}/data.npz", "--out", "{t}/a.zkc", "--opening", "{t}/a.zkc"], ["same file"]),
    (["commit-data", "{d}/data.npz", "--batch", "0", "--out", "{t}/a.zkc", "--opening", "{t}/a.zko"], ["--batch"]),
    (["commit-data", "{d}/data.npz", "--scale-bits", "99", "--out", "{t}/a.zkc", "--opening", "{t}/a.zko"],
     ["--scale-bits"]),
    (["commit-data", "--out", "{t}/a.zkc", "--opening", "{t}/a.zko"], ["DATA"]),
    (["commit-model", "--arch", "4,2", "--model", "{d}/f1.pt", "--out", "{t}/a.zkc", "--opening", "{t}/a.zko"],
     ["exactly one of --arch"]),
    (["commit-model", "--arch", "4,2", "--lr", "0.1", "--param-scale", "30", "--out", "{t}/a.zkc",
      "--opening", "{t}/a.zko"], ["not both"]),
    (["commit-model", "--arch", "4,2", "--param-scale", "8", "--out", "{t}/a.zkc", "--opening", "{t}/a.zko"],
     ["--param-scale"]),
    (["prove", "--inference", "--model", "{d}/f1.zko", "--save-opening", "{t}/a.zko", "--out", "{t}/a.zkp"],
     ["--save-opening applies to training"]),
    (["prove", "--model", "{d}/model.zko", "--data", "{d}/data.zko", "--steps", "2", "--epochs", "1",
      "--out", "{t}/a.zkp"], ["--steps or --epochs"]),
    (["prove", "--model", "{d}/model.zko", "--data", "{d}/data.zko", "--batch", "2", "--out", "{t}/a.zkp"],
     ["--batch applies"]),
    (["prove", "--model", "{d}/model.zko", "--data", "{d}/data.zko", "--start-batch", "3", "--out", "{t}/a.zkp"],
     ["--start-batch", "3 batches"]),
    (["prove", "--arch", "4,2", "--epochs", "2", "--out", "{t}/a.zkp"], ["--epochs and --start-batch"]),
    (["prove", "--arch", "4,2", "--out", "{t}/a.zkp", "--save-opening", "{t}/a.zkp"], ["same file"]),
    (["verify-chain"], ["PROOF"]),
    (["prove", "--arch", "4,2", "--executor", "process", "--out", "{t}/a.zkp"], ["--executor applies to runs"]),
    (["prove", "--arch", "4,2", "--inference", "--segment-steps", "2", "--out", "{t}/a.zkp"],
     ["--segment-steps applies to training"]),
    (["prove", "--arch", "4,2", "--segment-steps", "2", "--ray-address", "auto", "--out", "{t}/a.zkp"],
     ["--ray-address applies to --executor ray"]),
    (["prove", "--arch", "4,2", "--segment-steps", "2", "--workers", "2", "--out", "{t}/a.zkp"],
     ["inline runs one worker"]),
    (["prove", "--arch", "4,2", "--segment-steps", "0", "--out", "{t}/a.zkp"], ["--segment-steps"]),
    (["prove", "--arch", "4,2", "--segment-steps", "2", "--executor", "mpi", "--out", "{t}/a.zkp"], ["--executor"]),
])
def test_bad_commit_and_prove_arguments(published, tmp_path, args, words):
    d, _ = published
    result = run(*[a.format(d=d, t=tmp_path) for a in args])
    assert_clean_failure(result, 2, *words)
    assert list(tmp_path.iterdir()) == []


def test_wrong_kind_of_file_for_prove(published, tmp_path):
    d, _ = published
    out = tmp_path / "run.zkp"
    one_line_failure(run("prove", "--model", d / "model.zkc", "--data", d / "data.zko", "--out", out), 1,
                     "proving needs the secret model opening")
    one_line_failure(run("prove", "--model", d / "model.zko", "--data", d / "data.zkc", "--out", out), 1,
                     "proving needs the secret dataset opening")
    one_line_failure(run("prove", "--model", d / "p1.zkp", "--data", d / "data.zko", "--out", out), 1,
                     "a training proof, not a model opening")
    assert_clean_failure(run("prove", "--inference", "--model", d / "model.zko", "--data", d / "data.zko",
                             "--out", out), 2, "--inference")
    one_line_failure(run("commit-model", "--model", d / "model.zko", "--out", tmp_path / "a.zkc",
                         "--opening", tmp_path / "a.zko"), 1, "a model opening, not a torch state_dict")
    assert list(tmp_path.iterdir()) == []
