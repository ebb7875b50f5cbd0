"""fhe.compile: whole models from the circuits Graph, encrypted inference planned once.

Compiled programs agree with circuits' float interpreter on the same graph (exactly where the
activation is exact, within the activation's error bound carried through the next layer where
it is approximated), chains and graphs with residual adds and averages alike; levels (along the
deepest path), slots and keys are the program's; bad inputs and what is not lowered are refused
early, naming the node.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import circuits
from fhe.compiler import compile, gelu_approx, polynomial, relu_approx, square
from fhe.errors import OutOfLevels, ShapeMismatch
from zk.training import synthetic_mlp


def _float_run(model, x, graph=None):
    """circuits' float interpreter on ``graph`` (default: the model's) with the model's parameters."""
    graph = circuits.trace(model, x, 16) if graph is None else graph
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
    out, received = _served(program, x, backend)
    with pytest.raises(fhe.errors.FHEError, match="no secret key"):
        received.context.decrypt(received)
    np.testing.assert_allclose(out, program.reference(x), atol=1e-3 if backend == "seal" else 1e-9)


def _served(program, x, backend: str):
    """``x`` encrypted by a client, ``program`` run by a server holding the public context only,
    the answer decrypted by the client: ``(decrypted output, the input as the server received it)``."""
    import fhe

    client = program.context(backend)
    sent = client.encrypt(x, program.input_layout).to_bytes()
    server = fhe.PublicContext.from_bytes(client.public().to_bytes())
    received = fhe.CipherTensor.from_bytes(sent, server)
    answer = program.run(received).to_bytes()
    return client.decrypt(fhe.CipherTensor.from_bytes(answer, client)), received


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


# ---------------------------------------------------------------- graphs: residual adds, averages
class _ResidualMLP(torch.nn.Module):
    """x -> Linear -> ReLU -> Linear -> + x -> Linear."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Linear(8, 12, bias), torch.nn.Linear(12, 8, bias),
                                  torch.nn.Linear(8, 3, bias))

    def forward(self, x):
        return self.c(x + self.b(torch.relu(self.a(x))))


class _Skip(torch.nn.Module):
    """h = Linear(x); h + Linear(ReLU(h)) -> Linear: the two branches leave different layouts."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(8, 6), torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        h = self.a(x)
        return self.c(h + self.b(torch.relu(h)))


class _Pooled(torch.nn.Module):
    """Linear -> ReLU -> AvgPool1d(2) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.pool, self.c = torch.nn.Linear(8, 12), torch.nn.AvgPool1d(2), torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.c(self.pool(torch.relu(self.a(x))))


class _Mean(torch.nn.Module):
    """(batch, 5, 8) -> Linear -> ReLU -> mean over axis 1 -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c = torch.nn.Linear(8, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.c(torch.relu(self.a(x)).mean(1))


class _Branches(torch.nn.Module):
    """ReLU of the sum of two Linear branches, then Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(8, 6), torch.nn.Linear(8, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.c(torch.relu(self.a(x) + self.b(x)))


def _seeded(cls, *args):
    torch.manual_seed(7)
    return cls(*args).double()


def _squared(graph):
    """``graph`` with each ReLU ``z`` replaced by ``z * z`` (what :func:`square` computes)."""
    g = circuits.Graph(graph.scale_bits, graph.param_scale)
    for t in graph.inputs:
        g.input(t.name, t.shape, t.role, t.scale)
    for name, c in graph.constants.items():
        g.constant(name, c, graph[name].scale)
    for n in graph.nodes:
        if n.op == "relu":
            z = "abcdefgh"[:len(graph[n.output].shape)]
            g.einsum(f"{z},{z}->{z}", n.inputs[0], n.inputs[0], name=n.output)
        elif n.op == "einsum":
            g.einsum(n.attrs["spec"], *n.inputs, name=n.output)
        else:
            getattr(g, n.op)(*n.inputs, name=n.output, **n.attrs)
    g.outputs.update(graph.outputs)
    return g


def _on_sim(program, x):
    """The decrypted output of ``program`` on ``x`` on the simulator, and the output's level
    (the context has exactly the program's levels: a shortfall raises OutOfLevels)."""
    ctx = program.context("sim")
    y = program.run(ctx.encrypt(x, program.input_layout))
    return ctx.decrypt(y), y.level


def _levels(program) -> dict[str, int]:
    return {s.name: s.levels for s in program.steps}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("act", [square(), relu_approx(2.0, degree=7)], ids=["square", "relu"])
def test_residual_mlp_matches_the_float_interpreter(act, bias):
    model = _seeded(_ResidualMLP, bias)
    x = np.random.default_rng(5).uniform(-1, 1, (4, 8))
    program = compile(model, x.shape, act)
    (residual,) = [s for s in program.steps if s.kind == "residual"]
    assert "x" in residual.inputs and f"<- {', '.join(residual.inputs)}" in str(program)
    lv = _levels(program)  # the depth is the deep branch's: a, the activation, b, then c
    assert program.depth == program.levels == lv["a.matmul"] + act.levels + lv["b.matmul"] + lv["c.matmul"]
    out, level = _on_sim(program, x)
    assert level == 0
    np.testing.assert_allclose(out, program.reference(x), atol=1e-9)
    if act.error == 0:
        np.testing.assert_allclose(out, _float_run(model, x, _squared(circuits.trace(model, x, 16))), atol=1e-9)
        return
    assert program.calibrate(x)[0][1] <= 1.0
    # the activation's error, carried through b, the residual (exact) and c
    wb, wc = model.b.weight.detach().numpy(), model.c.weight.detach().numpy()
    carried = act.error * (np.abs(wc) @ np.abs(wb)).sum(axis=1).max()
    assert np.abs(out - _float_run(model, x)).max() <= carried + 1e-9


def test_a_residual_add_relayouts_the_shallower_branch():
    """The skip value h has levels to spare: it is brought to the deep branch's layout (a
    planned relayout einsum, its keys among the program's); the depth stays the deep branch's."""
    model = _seeded(_Skip)
    x = np.random.default_rng(6).uniform(-1, 1, (4, 8))
    program = compile(model, x.shape, square())
    (residual,) = [s for s in program.steps if s.kind == "residual"]
    assert residual.inputs == ("b.biased", "a.biased") and residual.levels >= 1
    assert set(residual.plan.rotation_keys) <= set(program.rotation_keys) and "a.biased relayouted" in str(program)
    lv = _levels(program)
    assert program.depth == lv["a.matmul"] + 1 + lv["b.matmul"] + lv["c.matmul"]
    assert program.depth < sum(lv.values())
    out, level = _on_sim(program, x)
    assert level == 0
    np.testing.assert_allclose(out, _float_run(model, x, _squared(circuits.trace(model, x, 16))), atol=1e-9)


def test_a_residual_program_runs_on_seal_on_the_servers_public_context():
    model = _seeded(_Skip)
    x = np.random.default_rng(6).uniform(-1, 1, (4, 8))
    program = compile(model, x.shape, square())
    out, _ = _served(program, x, "seal")
    np.testing.assert_allclose(out, program.reference(x), atol=1e-3)


@pytest.mark.parametrize("cls, shape, weights", [(_Pooled, (4, 8), "pool.weights"), (_Mean, (4, 5, 8), "mean.weights")])
def test_averages_match_the_float_interpreter(cls, shape, weights):
    model = _seeded(cls)
    x = np.random.default_rng(8).uniform(-1, 1, shape)
    act = relu_approx(2.0, degree=7)
    program = compile(model, x.shape, act)
    (average,) = [s for s in program.steps if s.kind == "einsum" and s.inputs == ("relu.relu",)]
    np.testing.assert_array_equal(average.plain, circuits.trace(model, x, 16).constants[weights])
    lv = _levels(program)
    assert program.depth == program.levels == sum(lv.values())  # a chain
    assert program.calibrate(x)[0][1] <= 1.0
    out, level = _on_sim(program, x)
    assert level == 0
    np.testing.assert_allclose(out, program.reference(x), atol=1e-9)
    # an average of errors is within the error: carried through c only
    carried = act.error * np.abs(model.c.weight.detach().numpy()).sum(axis=1).max()
    assert np.abs(out - _float_run(model, x)).max() <= carried + 1e-9


def test_the_bound_folds_into_both_branches_of_a_residual():
    model = _seeded(_Branches)
    x = np.random.default_rng(9).uniform(-1, 1, (4, 8))
    act = relu_approx(2.0, degree=7)
    program = compile(model, x.shape, act)
    assert program.calibrate(x)[0][1] <= 1.0
    out, _ = _on_sim(program, x)
    carried = act.error * np.abs(model.c.weight.detach().numpy()).sum(axis=1).max()
    assert np.abs(out - _float_run(model, x)).max() <= carried + 1e-9


def test_the_encrypted_operand_may_come_second():
    g = circuits.Graph(16)
    g.input("x", (4, 8))
    g.input("w", (3, 8), role="param")
    g.input("v", (3, 3), role="param")
    g.outputs["out"] = g.einsum("pq,bq->bp", "v", g.einsum("oi,bi->bo", "w", "x", name="h"), name="y")
    rng = np.random.default_rng(10)
    params = {"w": rng.normal(size=(3, 8)), "v": rng.normal(size=(3, 3))}
    program = compile(g, (4, 8), params=params)
    assert [s.plan.encrypted for s in program.steps] == [(False, True)] * 2
    x = rng.uniform(-1, 1, (4, 8))
    out, _ = _on_sim(program, x)
    np.testing.assert_allclose(out, circuits.run(g, {"x": x, **params})["y"], atol=1e-9)


class _Flat(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.c = torch.nn.Linear(8, 6), torch.nn.Linear(30, 3)

    def forward(self, x):
        return self.c(torch.flatten(self.a(x), 1))


class _ReluOfResidual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.c = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.c(torch.relu(x + self.a(x)))


def test_what_is_not_lowered_is_refused_naming_the_node():
    act = relu_approx(2.0, degree=7)
    with pytest.raises(circuits.UnsupportedOp, match=r"node flatten.flat = reshape\(a.z"):
        compile(_Flat(), (4, 5, 8))
    g = circuits.Graph(16)
    g.input("x", (4, 8))
    g.outputs["out"] = g.einsum("bi,bi->bi", "x", "x", name="xx")
    with pytest.raises(circuits.UnsupportedOp, match=r"node xx = einsum\(x, x"):
        compile(g, (4, 8), params={})
    # the 1/bound has no linear layer to fold into, or one whose output is read elsewhere too
    with pytest.raises(ValueError, match="activation relu.relu: .* x is the encrypted input"):
        compile(_ReluOfResidual(), (4, 8), act)
    with pytest.raises(ValueError, match="activation relu.relu: a.biased is read by relu.relu, add.add"):
        compile(_Skip(), (4, 8), act)
    compile(_ReluOfResidual(), (4, 8), relu_approx(1.0, degree=7))  # bound 1: nothing to fold
    with pytest.raises(circuits.UnsupportedOp, match="node add.add adds two encrypted branches"):
        compile(_ResidualMLP(), (4, 8), act, bootstrap=12)


def test_an_average_chain_bootstraps():
    model = _seeded(_Pooled)
    x = np.random.default_rng(11).uniform(-1, 1, (4, 8))
    program = compile(model, x.shape, relu_approx(2.0, degree=7), bootstrap=7)
    kinds = [s.kind for s in program.steps]
    assert kinds.count("bootstrap") == 1 and kinds[kinds.index("bootstrap") + 1] == "activation"
    assert program.steps[kinds.index("bootstrap") + 1].inputs == ("relu.relu.boot",)
    ctx = program.context("sim")
    out = ctx.decrypt(program.run(ctx.encrypt(x, program.input_layout)))
    np.testing.assert_allclose(out, program.reference(x), atol=1e-9)
