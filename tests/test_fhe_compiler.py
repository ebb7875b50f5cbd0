"""fhe.compile: whole models from the circuits Graph, encrypted inference planned once.

Compiled programs agree with circuits' float interpreter on the same graph (exactly where the
activation is exact, within the activation's error bound carried through the next layer where
it is approximated); levels, slots and keys are the program's; bad inputs are refused early.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import circuits
from fhe.compiler import compile, gelu_approx, polynomial, relu_approx, square
from fhe.errors import OutOfLevels, ShapeMismatch
from zk.training import synthetic_mlp


def _float_run(model, x):
    graph = circuits.trace(model, x, 16)
    params = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    return circuits.run(graph, {"x": x, **params}, mode="float")[graph.outputs["out"]]


@pytest.mark.parametrize("widths, bias", [((8, 4), False), ((8, 4), True), ((12, 6, 5, 3), True)])
def test_linear_layers_match_the_float_interpreter(widths, bias):
    """Without activations (a Linear stack) the compiled program is the graph, exactly."""
    layers = [torch.nn.Linear(a, b, bias=bias) for a, b in zip(widths, widths[1:])]
    model = torch.nn.Sequential(*layers).double()
    x = np.random.default_rng(0).uniform(-1, 1, (4, widths[0]))
    program = compile(model, x.shape)
    ctx = program.context("sim")
    out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
    np.testing.assert_allclose(out, _float_run(model, x), atol=1e-9)
    from fhe.backends.params import seal_params

    assert program.levels == sum(s.levels for s in program.steps)
    assert program.slots == max(4096, seal_params(None, program.levels, 40, False).ring_degree // 2)


@pytest.mark.parametrize("bias", [False, True])
def test_approximated_relu_within_its_error_bound(bias):
    model = synthetic_mlp((10, 8, 3), seed=1, bias=bias).double()
    x = np.random.default_rng(1).uniform(-1, 1, (6, 10))
    bound = 2.0
    act = relu_approx(bound, degree=15)
    program = compile(model, x.shape, act)
    assert program.calibrate(x)[0][1] <= 1.0  # the pre-activations stay in the declared range
    ctx = program.context("sim")
    out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
    np.testing.assert_allclose(out, program.reference(x), atol=1e-9)
    # the activation's error, carried through the last layer (|W2| row sums)
    w2 = model[2].weight.detach().numpy()
    carried = act.error * np.abs(w2).sum(axis=1).max()
    assert np.abs(out - _float_run(model, x)).max() <= carried + 1e-9
    assert 0 < act.error < 0.1 * bound


def test_composite_relu_is_more_accurate_and_runs_encrypted():
    """The composite minimax ReLU (t * s3(s2(s1(t))), degrees 7, 7, 7) beats the degree-15
    polynomial's error several times over with small coefficients, and a compiled program
    with it decrypts to its reference on seal (N = 32768: 12 levels)."""
    single, comp = relu_approx(2.0, 15), relu_approx(2.0, stages=(7, 7, 7))
    z = np.linspace(-2, 2, 40001)
    assert np.abs(comp(z) - np.maximum(z, 0)).max() <= comp.error + 1e-12
    assert comp.error < single.error / 4 and comp.levels == 10 and comp.degree == 1 + 7 ** 3
    assert max(np.abs(c).sum() for c in comp.stages) < 1e3
    assert "composite of degrees 7 o 7 o 7" in comp.describe()
    model = synthetic_mlp((10, 8, 3), seed=1, bias=True).double()
    x = np.random.default_rng(1).uniform(-1, 1, (6, 10))
    program = compile(model, x.shape, comp)
    w2 = model[2].weight.detach().numpy()
    carried = comp.error * np.abs(w2).sum(axis=1).max()
    assert np.abs(program.reference(x) - _float_run(model, x)).max() <= carried + 1e-9
    ctx = program.context("seal")
    out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
    np.testing.assert_allclose(out, program.reference(x), atol=1e-3)
    with pytest.raises(ValueError, match="odd degrees"):
        relu_approx(2.0, stages=(8, 7))
    with pytest.raises(ValueError, match="coefficients sum"):
        relu_approx(2.0, stages=(15, 15))


def test_exact_activations_square_and_polynomial():
    model = synthetic_mlp((6, 5, 2), seed=2, bias=True).double()
    x = np.random.default_rng(2).uniform(-1, 1, (3, 6))
    w1, b1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w2, b2 = model[2].weight.detach().numpy(), model[2].bias.detach().numpy()
    for act, f in ((square(), np.square), (polynomial([0.5, 1.0, 0.25]), lambda z: 0.5 * z * z + z + 0.25)):
        program = compile(model, x.shape, act)
        ctx = program.context("sim")
        out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
        np.testing.assert_allclose(out, f(x @ w1.T + b1) @ w2.T + b2, atol=1e-9)
        assert act.error == 0 and f"{act.levels} level(s)" in str(program)


def test_gelu_approximation_and_the_printed_program():
    act = gelu_approx(4.0, degree=7)
    z = np.linspace(-4, 4, 101)
    gelu = torch.nn.functional.gelu(torch.from_numpy(z), approximate="tanh").numpy()
    assert np.abs(act(z) - gelu).max() <= act.error + 1e-12 and act.levels == 3
    program = compile(synthetic_mlp((16, 8, 4), bias=True), (4, 16), act)
    text = str(program)
    for words in ("levels", "rotation keys", "0.matmul", "einsum bi,oi->bo", "1.relu", "gelu ~ minimax",
                  "max error", "per run on SEAL (estimated)", "ops: rotate"):
        assert words in text, text
    # the op counts are what a run does (measured on the simulator while compiling)
    ctx = program.context("sim")
    before = dict(ctx.backend.counters)
    program.run(ctx.encrypt(np.zeros((4, 16)), program.input_layout))
    ran = {k: v - before.get(k, 0) for k, v in ctx.backend.counters.items() if v - before.get(k, 0)}
    counted = {}
    for step in program.steps:
        for k, v in step.ops.items():
            counted[k] = counted.get(k, 0) + v
    assert ran == counted and program.seconds > 0


def test_slots_and_levels_follow_the_depth():
    """A deep program gets a ring whose 128-bit secure modulus holds its levels."""
    from fhe.backends.params import seal_params

    program = compile(synthetic_mlp((16, 8, 4), bias=True), (4, 16), relu_approx(2.0, 15))
    ring = seal_params(None, program.levels, 40, False).ring_degree
    assert program.slots == ring // 2 and program.levels >= 5
    shallow = compile(torch.nn.Sequential(torch.nn.Linear(16, 4)), (4, 16))
    assert shallow.slots <= program.slots


def test_seal_end_to_end_with_only_the_programs_keys():
    model = synthetic_mlp((16, 8, 4), seed=3, bias=True).double()
    x = np.random.default_rng(3).uniform(-1, 1, (4, 16))
    program = compile(model, x.shape, relu_approx(2.0, degree=7))
    ctx = program.context("seal")
    y = program.run(ctx.encrypt(x, program.input_layout))
    np.testing.assert_allclose(ctx.decrypt(y), program.reference(x), atol=1e-3)


def test_errors_are_named_before_any_work():
    model = synthetic_mlp((6, 5, 2))
    with pytest.raises(ValueError, match="is a ReLU: give activation="):
        compile(model, (3, 6))
    with pytest.raises(circuits.UnsupportedOp):
        compile(torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Sigmoid()), (3, 6))
    with pytest.raises(ValueError, match="bound must be a positive number"):
        relu_approx(-1.0)
    with pytest.raises(ValueError, match="amplify the encryption noise"):
        relu_approx(1.0, 23)
    program = compile(model, (3, 6), relu_approx(1.5, 7))
    with pytest.raises(ValueError, match="beyond the declared range"):
        program.calibrate(np.full((3, 6), 50.0))
    ctx = program.context("sim")
    with pytest.raises(ShapeMismatch, match="compiled for"):
        program.run(ctx.encrypt(np.zeros((6, 3))))
    import fhe

    small = fhe.Context(backend="sim", ring_degree=2 * program.slots, levels=2)
    with pytest.raises(OutOfLevels, match=f"needs {program.levels} levels"):
        program.run(small.encrypt(np.zeros((3, 6)), program.input_layout))


@pytest.mark.parametrize("backend", ["sim", "seal"])
def test_a_server_runs_a_compiled_program_with_the_public_context_only(backend):
    import fhe

    model = synthetic_mlp((16, 8, 4), seed=4, bias=True).double()
    x = np.random.default_rng(4).uniform(-1, 1, (4, 16))
    program = compile(model, x.shape, relu_approx(2.0, degree=7))
    client = program.context(backend)
    sent = client.encrypt(x, program.input_layout).to_bytes()
    server = fhe.PublicContext.from_bytes(client.public().to_bytes())
    with pytest.raises(fhe.errors.FHEError, match="no secret key"):
        server.decrypt(fhe.CipherTensor.from_bytes(sent, server))
    answer = program.run(fhe.CipherTensor.from_bytes(sent, server)).to_bytes()
    out = client.decrypt(fhe.CipherTensor.from_bytes(answer, client))
    np.testing.assert_allclose(out, program.reference(x), atol=1e-3 if backend == "seal" else 1e-9)


# ---------------------------------------------------------------- bootstrapping (desilo's preset)
def _deep_model():
    model = synthetic_mlp((16, 12, 8, 4), seed=3, bias=True).double()
    return model, np.random.default_rng(3).uniform(-1, 1, (4, 16))


def test_bootstraps_are_inserted_before_activations_where_levels_run_out():
    import fhe

    model, x = _deep_model()
    act = relu_approx(2.0, stages=(7, 7, 7))  # 10 levels per ReLU: 26 in all
    with pytest.raises(OutOfLevels, match="bootstrap=L"):
        compile(model, x.shape, act)  # no 128-bit SEAL ring holds 26 levels
    program = compile(model, x.shape, act, bootstrap=12)
    kinds = [s.kind for s in program.steps]
    assert kinds.count("bootstrap") == 2 and program.depth == 26 and program.levels == 12
    assert all(kinds[i + 1] == "activation" for i, k in enumerate(kinds) if k == "bootstrap")
    left = 12  # no stretch between bootstraps uses more than the levels a bootstrap gives
    for step in program.steps:
        left = 12 if step.kind == "bootstrap" else left - step.levels
        assert left >= 0
    assert program.slots == 32768 and "2 bootstrap(s) on desilo" in str(program)
    ctx = program.context("sim")
    out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
    np.testing.assert_allclose(out, program.reference(x), atol=1e-9)
    assert ctx.backend.counters["bootstrap"] == 2
    # the bootstrapped values are the activations' inputs t = z / bound: inside [-1, 1]
    with pytest.raises(fhe.FHEError, match=r"needs values in \[-1, 1\]"):
        fhe.ops.bootstrap(ctx.encrypt(np.full((2, 2), 3.0)))
    with pytest.raises(ValueError, match="run it on 'desilo'"):
        program.context("seal")


def test_bootstrap_errors_name_the_fix():
    model, x = _deep_model()
    act = relu_approx(2.0, stages=(7, 7, 7))
    with pytest.raises(OutOfLevels, match="need 12 levels.*compile with bootstrap=12"):
        compile(model, x.shape, act, bootstrap=11)
    for bad in (0, 18, 2.5):
        with pytest.raises(ValueError, match="levels after a bootstrap"):
            compile(model, x.shape, act, bootstrap=bad)
    with pytest.raises(ValueError, match="fixes the scale"):
        compile(model, x.shape, act, bootstrap=12, scale_bits=38)


@pytest.mark.slow
def test_bootstrapped_program_on_desilo():
    """desilofhe's bootstrap preset: ~4.6 GB of bootstrap keys, minutes on 2 CPU cores."""
    pytest.importorskip("desilofhe")
    model, x = _deep_model()
    program = compile(model, x.shape, relu_approx(2.0, degree=7), bootstrap=6)
    assert any(s.kind == "bootstrap" for s in program.steps)
    ctx = program.context("desilo", allow_insecure=True)
    out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
    np.testing.assert_allclose(out, program.reference(x), atol=1e-2)
