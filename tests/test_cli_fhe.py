"""``zkfhe plan`` and ``zkfhe einsum``: output, results, and clean errors (no tracebacks)."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from zkfhe.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def test_plan_prints_layout_steps_and_cost(runner):
    res = runner.invoke(cli, ["plan", "ij,jk->ik", "--shapes", "16x32,32x32", "--slots", "8192"])
    assert res.exit_code == 0, res.output
    for needle in ["strategy", "i:16@32 j:32@1", "replicate", "cost: rotations=",
                   "rotation keys", "EinHops recipe"]:
        assert needle in res.output
    res = runner.invoke(cli, ["plan", "ik,kj->ij", "--shapes", "16x32,32x32", "--slots", "16384",
                              "--plain", "1"])
    assert res.exit_code == 0 and "plaintext" in res.output
    assert "EinHops recipe: rotations=" in res.output


def test_einsum_on_sim_writes_the_result(runner, tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (4, 8)), rng.uniform(-1, 1, (8, 3))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "c.npy"
    files = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    res = runner.invoke(cli, ["einsum", "ij,jk->ik", *files, "--backend", "sim", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "max |error| vs numpy" in res.output and "simulator" in res.output
    np.testing.assert_allclose(np.load(out), a @ b, atol=1e-12)


def test_einsum_on_seal(runner, tmp_path):
    pytest.importorskip("tenseal")
    a = np.random.default_rng(1).uniform(-1, 1, (4, 4))
    np.save(tmp_path / "a.npy", a)
    files = [str(tmp_path / "a.npy")] * 2
    res = runner.invoke(cli, ["einsum", "ij,jk->ik", *files, "--backend", "seal",
                              "--out", str(tmp_path / "c.npy")])
    assert res.exit_code == 0, res.output
    assert "Context(seal" in res.output and "security_bits=" in res.output
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), a @ a, atol=1e-3)


@pytest.mark.parametrize("args,message", [
    (["plan", "ij,jk->ik", "--shapes", "16x32,3y"], "not a shape"),
    (["plan", "ij,jk->ik", "--shapes", "16x32,31x32"], "size mismatch"),
    (["plan", "ij,jk->ik", "--shapes", "2x2,2x2", "--slots", "100"], "power of two"),
    (["plan", "i?,jk->ik", "--shapes", "2x2,2x2"], "invalid character"),
    (["plan", "ij,jk->ik", "--shapes", "64x64,64x64", "--levels", "1"], "levels"),
    (["plan", "ij->i", "--shapes", "2x2", "--plain", "3"], "only 1 operands"),
    (["einsum", "ij->i", "missing.npy", "--backend", "sim"], "does not exist"),
])
def test_bad_arguments_give_clean_errors(runner, args, message):
    res = runner.invoke(cli, args)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output


def test_bad_files_give_clean_errors(runner, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "a.npy", np.ones((2, 3)))
    np.save(tmp_path / "z.npy", np.ones(3, dtype=complex))
    for files, message in [(["obj.npy", "a.npy"], "allow_pickle"),
                           (["junk.npy", "a.npy"], "cannot read"),
                           (["a.npy", "a.npy"], "size mismatch"), (["z.npy", "z.npy"], "complex")]:
        spec = "i,i->i" if files[0] == "z.npy" else "ij,jk->ik"
        res = runner.invoke(cli, ["einsum", spec, *[str(tmp_path / f) for f in files],
                                  "--backend", "sim"])
        assert res.exit_code != 0 and message in res.output, (files, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit)


def test_device_cuda_needs_desilo_and_a_gpu(runner, tmp_path):
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    res = runner.invoke(cli, ["einsum", "ij->i", str(tmp_path / "a.npy"), "--backend", "seal", "--device", "cuda"])
    assert res.exit_code == 2 and "--device cuda needs --backend desilo" in res.output
    import gpu

    if gpu.available():
        pytest.skip("this machine has a GPU")
    res = runner.invoke(cli, ["einsum", "ij->i", str(tmp_path / "a.npy"), "--backend", "desilo", "--device", "cuda"])
    assert res.exit_code == 1 and "desilofhe cannot run on 'cuda'" in res.output
    assert "Traceback" not in res.output


# ------------------------------------------------------- bad parameters: one line, exit 2
@pytest.fixture
def operands(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "a.npy", rng.uniform(-1, 1, (4, 4)))
    return [str(tmp_path / "a.npy")] * 2


@pytest.mark.parametrize("extra,words", [
    (["--backend", "sim", "--ring-degree", "1000"], ["--ring-degree", "power of two"]),
    (["--backend", "seal", "--ring-degree", "2048"], ["--ring-degree", "4096"]),
    (["--backend", "seal", "--scale-bits", "70"], ["--scale-bits", "scale_bits must be in [20, 50]"]),
    (["--backend", "seal", "--scale-bits", "10"], ["--scale-bits"]),
    (["--backend", "seal", "--levels", "-1"], ["--levels", "-1"]),
    (["--backend", "sim", "--levels", "0"], ["--levels", "needs at least"]),
    (["--backend", "seal", "--ring-degree", "4096", "--levels", "3"], ["128-bit", "allow_insecure"]),
])
def test_einsum_bad_parameters_exit_2(runner, operands, extra, words):
    if "seal" in extra:
        pytest.importorskip("tenseal")
    res = runner.invoke(cli, ["einsum", "ij,jk->ik", *operands, *extra])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    for w in words:
        assert w in res.output, (w, res.output)


def test_levels_zero_is_honoured(runner, tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12.0).reshape(3, 4))
    res = runner.invoke(cli, ["einsum", "ij->ji", str(tmp_path / "a.npy"), "--backend", "sim",
                              "--levels", "0", "--out", str(tmp_path / "t.npy")])
    assert res.exit_code == 0, res.output
    assert "levels=0" in res.output
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), np.arange(12.0).reshape(3, 4).T)
    res = runner.invoke(cli, ["plan", "ij,jk->ik", "--shapes", "4x4,4x4", "--levels", "0"])
    assert res.exit_code == 2 and "needs at least" in res.output and "Traceback" not in res.output


def test_npz_operands(runner, tmp_path):
    a = np.random.default_rng(3).uniform(-1, 1, (4, 4))
    np.savez(tmp_path / "one.npz", a=a)
    np.savez(tmp_path / "two.npz", a=a, b=a)
    res = runner.invoke(cli, ["einsum", "ij,jk->ik", str(tmp_path / "one.npz"),
                              str(tmp_path / "one.npz"), "--backend", "sim",
                              "--out", str(tmp_path / "c.npy")])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), a @ a, atol=1e-12)
    res = runner.invoke(cli, ["einsum", "ij,jk->ik", str(tmp_path / "two.npz"),
                              str(tmp_path / "one.npz"), "--backend", "sim"])
    assert res.exit_code == 2 and "2 arrays (a, b)" in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_unreadable_and_unwritable_files(runner, tmp_path):
    import os

    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    res = runner.invoke(cli, ["einsum", "ij->i", str(tmp_path / "junk.npy"), "--backend", "sim"])
    assert res.exit_code == 2 and "cannot read" in res.output
    res = runner.invoke(cli, ["einsum", "ij->i", str(tmp_path), "--backend", "sim"])
    assert res.exit_code == 2 and "is a directory" in res.output
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.npy"
        np.save(locked, np.ones(2))
        locked.chmod(0)
        res = runner.invoke(cli, ["einsum", "i->i", str(locked), "--backend", "sim"])
        assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(cli, ["einsum", "ij->i", str(tmp_path / "a.npy"), "--backend", "sim",
                              "--out", str(tmp_path / "no" / "such" / "dir.npy")])
    assert res.exit_code == 1 and "cannot write" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_values_too_large_and_wrap_warning_are_one_line(runner, tmp_path):
    np.save(tmp_path / "big.npy", np.full((2, 2), 1e11))
    res = runner.invoke(cli, ["einsum", "ij->i", str(tmp_path / "big.npy"), "--backend", "sim"])
    assert res.exit_code == 1 and "2^19 = 524288" in res.output and "Traceback" not in res.output
    np.save(tmp_path / "near.npy", np.full(8, 4e5))
    res = runner.invoke(cli, ["einsum", "i,i->i", str(tmp_path / "near.npy"),
                              str(tmp_path / "near.npy"), "--backend", "sim",
                              "--ring-degree", "16", "--levels", "1"])
    assert res.exit_code == 0, res.output
    assert "warning: decrypted values" in res.output and "may have wrapped" in res.output


# ---------------------------------------------------------------- compile / run a saved model
@pytest.fixture
def saved_model(tmp_path):
    import torch

    from zk.training import synthetic_mlp

    model = synthetic_mlp((8, 6, 3), seed=0, bias=True)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    x = np.random.default_rng(0).uniform(-1, 1, (20, 8))
    np.save(tmp_path / "x.npy", x)
    return model, str(path), str(tmp_path / "x.npy"), x


def test_compile_prints_the_program(runner, saved_model):
    _, model, data, _ = saved_model
    res = runner.invoke(cli, ["compile", "--model", model, "--batch", "4", "--calibrate", data])
    assert res.exit_code == 0, res.output
    for needle in ("fhe program", "relu ~ minimax", "max error", "rotation keys", "0.matmul"):
        assert needle in res.output
    res = runner.invoke(cli, ["compile", "--model", model, "--relu-bound", "3", "--stages", "7,7"])
    assert res.exit_code == 0 and "composite of degrees 7 o 7" in res.output


@pytest.mark.parametrize("backend", ["sim", "seal"])
def test_run_encrypts_batches_and_agrees_with_torch(runner, saved_model, tmp_path, backend):
    import torch

    if backend == "seal":
        pytest.importorskip("tenseal")
    torch_model, model, data, x = saved_model
    out = tmp_path / "y.npy"
    res = runner.invoke(cli, ["run", "--model", model, "--data", data, "--batch", "8", "--calibrate", data,
                              "--backend", backend, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 batch(es) of 8" in res.output and "argmax = torch" in res.output
    with torch.no_grad():
        want = torch_model.double()(torch.from_numpy(x)).numpy()
    got = np.load(out)
    assert got.shape == (20, 3) and np.abs(got - want).max() < 0.2  # the ReLU approximation's error


def test_compile_and_run_errors_are_one_line(runner, saved_model, tmp_path):
    _, model, data, _ = saved_model
    cases = [
        (["compile", "--model", model], "has a ReLU: give its input range"),
        (["compile", "--model", model, "--relu-bound", "-1"], "bound must be a positive number"),
        (["compile", "--model", model, "--relu-bound", "2", "--stages", "8,7"], "odd degrees"),
        (["compile", "--model", model, "--relu-bound", "2", "--stages", "x"], "list of odd degrees"),
        (["compile", "--model", model, "--relu-bound", "2", "--calibrate", data], "not both"),
        (["run", "--model", model, "--relu-bound", "2", "--data", model], "Invalid value for --data"),
        (["compile", "--model", data, "--relu-bound", "2"], "not a torch state_dict"),
    ]
    np.save(tmp_path / "wide.npy", np.zeros((4, 9)))
    cases.append((["run", "--model", model, "--relu-bound", "2", "--data", str(tmp_path / "wide.npy")],
                  "(samples, 8)"))
    for args, needle in cases:
        res = runner.invoke(cli, args)
        assert res.exit_code in (1, 2), (args, res.output)
        assert needle in res.output and "Traceback" not in res.output, (args, res.output)
