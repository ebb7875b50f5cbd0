"""``zkfhe prove / verify / inspect``: honest proofs verify, damaged files are rejected with a
reason and exit 1, bad arguments give clean errors and never leave an output file."""
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
    assert (st.arch, st.batch_size, st.steps, st.lr) == ((6, 5, 3), 3, 2, 0.05)


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
        for cmd in ("verify", "inspect"):
            result = run(cmd, tmp_path / name)
            assert_clean_failure(result, 1, "malformed proof")
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
    # 7 rows, batch 3: two batches (the last row is unused), three steps cycle through them
    result = run("prove", "--model", tmp_path / "model.pt", "--data", tmp_path / "data.npz", "--batch", 3,
                 "--steps", 3, "--lr", 0.1, "--out", out, "--save-model", trained)
    assert result.exit_code == 0, result.output
    assert "last 1 rows" in result.stderr and "3 SGD steps" in result.stdout
    for stage in ("witness", "commit witness", "prove"):  # the progress bars, on stderr
        assert stage in result.stderr
    assert "100%" in result.stderr
    proof = zk.TrainingProof.from_bytes(out.read_bytes())
    assert (proof.statement.arch, proof.statement.batch_size, proof.statement.steps) == ((4, 3, 2), 3, 3)
    assert zk.verify_training(proof)
    # the saved model is the exact fixed-point run on the same batches (master weights carried
    # as integers at the parameter scale between steps), decoded
    x, y = np.load(tmp_path / "data.npz")["X"], np.load(tmp_path / "data.npz")["Y"]
    scale, fp = circuits.param_scale_for(0.1, 16), circuits.FixedPoint(16)
    state = {k: fp.encode(v.double().numpy(), scale) for k, v in model.state_dict().items()}
    for xb, yb in [(x[:3], y[:3]), (x[3:6], y[3:6]), (x[:3], y[:3])]:
        graph = circuits.trace_training(model, 3, 0.1, param_scale=scale)
        inputs = {"x": fp.encode(xb), "y": fp.encode(yb), **state}
        vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        state = {k: vals[graph.outputs[k]] for k in state}
    got = torch.load(trained, weights_only=True)
    assert got.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(got[k], torch.from_numpy(fp.decode(v, scale)).float()), k
    assert run("verify", out).exit_code == 0


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
    assert (proof.statement.arch, proof.statement.batch_size) == ((4, 2), 3)
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
