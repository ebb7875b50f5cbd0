"""circuits: tracing, the interpreter and train_step against torch autograd + SGD."""
import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import circuits
from circuits import FixedPoint, Graph, UnsupportedOp, run, trace, trace_training, train_step

#: documented bound (docs/circuits.md): |fixed - float| <= 4 * 2^-S on updated parameters for
#: inputs and weights of magnitude ~1, lr <= 0.5 and up to 3 layers.
FIXED_BOUND_ULPS = 4


def make_mlp(widths, biases, seed):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1], bias=biases[i]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).double()


def torch_step(model, X, Y, lr):
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    opt.zero_grad()
    torch.nn.functional.mse_loss(m(X), Y).backward()
    opt.step()
    return {k: v.detach().numpy() for k, v in m.state_dict().items()}


mlp_cases = st.tuples(
    st.lists(st.integers(1, 12), min_size=2, max_size=4),  # widths (depth 1..3)
    st.lists(st.booleans(), min_size=3, max_size=3),  # bias per layer
    st.integers(1, 9),  # batch (not only powers of two)
    st.sampled_from([0.5, 0.1, 0.01, 0.003]),
    st.integers(0, 2**16),
)


@settings(max_examples=40, deadline=None)
@given(mlp_cases)
def test_float_step_equals_torch(case):
    widths, biases, batch, lr, seed = case
    model = make_mlp(widths, biases, seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, widths[0], generator=g, dtype=torch.float64)
    Y = torch.randn(batch, widths[-1], generator=g, dtype=torch.float64)
    ours = train_step(model, X, Y, lr)
    ref = torch_step(model, X, Y, lr)
    assert ours.keys() == ref.keys()
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-6, atol=1e-12, err_msg=k)


@settings(max_examples=25, deadline=None)
@given(mlp_cases)
def test_fixed_step_within_documented_bound(case):
    widths, biases, batch, lr, seed = case
    model = make_mlp(widths, biases, seed)
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(batch, widths[0], generator=g, dtype=torch.float64)
    Y = torch.randn(batch, widths[-1], generator=g, dtype=torch.float64)
    fl = train_step(model, X, Y, lr)
    fx = train_step(model, X, Y, lr, mode="fixed")
    for k in fl:
        assert np.max(np.abs(fl[k] - fx[k])) <= FIXED_BOUND_ULPS * 2.0**-16, k


def test_fixed_run_is_exact_integer_arithmetic():
    model = make_mlp([4, 3, 2], [True, True], 0)
    X, Y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    graph = trace_training(model, 5, 0.1)
    vals = run(graph, circuits.training_inputs(model, X, Y), mode="fixed")
    for node in graph.nodes:
        out = vals[node.output]
        assert out.dtype in (np.int64, object), node
        if node.op == "rescale":
            x = vals[node.inputs[0]]
            rem = vals[node.output + ".rem"]
            assert np.all((rem >= 0) & (rem < 2 ** node.attrs["bits"]))
            bits = node.attrs["bits"]
            np.testing.assert_array_equal(out * 2 ** bits + rem, x + 2 ** (bits - 1))  # to nearest
        if node.op == "einsum":
            ins = [vals[i].astype(object) for i in node.inputs]
            np.testing.assert_array_equal(out, np.einsum(node.attrs["spec"], *ins))
        if node.op == "loss_grad":
            o, y = (vals[i] for i in node.inputs)
            rem = vals[node.output + ".rem"]
            n = node.attrs["count"]
            assert np.all((rem >= 0) & (rem < n))
            np.testing.assert_array_equal(out * n + rem, (o - y) * 2 ** 17 + n // 2)
        if node.op == "sgd_update":
            w, gr = (vals[i] for i in node.inputs)
            k = node.attrs["lr_bits"] + graph[node.inputs[1]].scale - graph[node.inputs[0]].scale
            rem = vals[node.output + ".rem"]
            assert np.all((rem >= 0) & (rem < 2 ** k))
            np.testing.assert_array_equal((w - out) * 2 ** k + rem,
                                          gr.astype(object) * node.attrs["lr_q"] + 2 ** (k - 1))


def test_wide_integers_switch_to_python_ints():
    g = Graph(scale_bits=30)
    a = g.input("a", (2, 3))
    b = g.input("b", (3, 2))
    c = g.einsum("ij,jk->ik", a, b)
    g.rescale(c, 30, name="d")
    big = np.full((2, 3), 1000.0)
    vals = run(g, {"a": big, "b": big.T.copy()}, mode="fixed")
    assert vals[c].dtype == object  # 3 * (1000 * 2^30)^2 > 2^62
    np.testing.assert_allclose(circuits.decode(g, vals, "d"), np.full((2, 2), 3e6))


def test_inference_trace_matches_model():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.ReLU(),
                                torch.nn.Linear(5, 3, bias=False)).double()
    X = torch.randn(4, 3, 4, dtype=torch.float64)
    g = trace(model, X)
    inputs = {"x": X, **model.state_dict()}
    out = run(g, inputs)[g.outputs["out"]]
    np.testing.assert_allclose(out, model(X).detach().numpy(), rtol=1e-9)
    fixed = circuits.decode(g, run(g, inputs, mode="fixed"), g.outputs["out"])
    np.testing.assert_allclose(fixed, model(X).detach().numpy(), atol=1e-3)
    assert all(n.op != "matmul" for n in g.nodes)
    assert {n.op for n in g.nodes} == {"reshape", "einsum", "rescale", "add", "relu"}


def test_unsupported_module_is_named():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sigmoid())
    with pytest.raises(UnsupportedOp, match=r"module 1 \(Sigmoid\)"):
        trace(model, torch.zeros(2, 3))
    with pytest.raises(UnsupportedOp, match="torch.nn.Module"):
        trace(lambda x: x, torch.zeros(2, 3))
    with pytest.raises(UnsupportedOp, match="Flatten"):
        trace(torch.nn.Sequential(torch.nn.Flatten(0), torch.nn.Linear(3, 3)), torch.zeros(2, 3))


def test_wrong_shapes_and_dtypes():
    model = make_mlp([4, 3], [True], 0)
    with pytest.raises(ValueError, match=r"module 0 \(Linear\) .*expects inputs \(batch, \.\.\., 4\)"):
        trace(model, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="Y must have shape"):
        train_step(model, torch.zeros(2, 4), torch.zeros(3, 3), 0.1)
    with pytest.raises(TypeError, match="dtype"):
        train_step(model, np.array([["a"] * 4] * 2), np.zeros((2, 3)), 0.1)
    with pytest.raises(TypeError, match="dtype"):
        train_step(model, np.zeros((2, 4), dtype=bool), np.zeros((2, 3)), 0.1)
    with pytest.raises(ValueError, match="learning rate"):
        train_step(model, np.zeros((2, 4)), np.zeros((2, 3)), -1.0)
    with pytest.raises(ValueError, match="mode must be"):
        train_step(model, np.zeros((2, 4)), np.zeros((2, 3)), 0.1, mode="double")
    g = trace(model, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="missing graph input"):
        run(g, {"x": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="input 'x' has shape"):
        run(g, {"x": np.zeros((3, 4)), **model.state_dict()})
    with pytest.raises(ValueError, match="non-finite"):
        run(g, {"x": np.full((2, 4), np.nan), **model.state_dict()}, mode="fixed")


def test_graph_builder_checks():
    g = Graph()
    a = g.input("a", (2, 3))
    b = g.input("b", (4,))
    with pytest.raises(ValueError, match="do not broadcast"):
        g.add(a, b)
    with pytest.raises(ValueError, match="size mismatch"):
        g.einsum("ij,j->i", a, b)
    with pytest.raises(ValueError, match="already used"):
        g.input("a", (1,))
    with pytest.raises(KeyError, match="no tensor named 'c'"):
        g.relu("c")
    with pytest.raises(ValueError, match="cannot drop"):
        g.rescale(a, 17)


def test_fixed_point_codec():
    fp = FixedPoint(8)
    x = np.array([0.5, -1.25, 3.0])
    np.testing.assert_array_equal(fp.encode(x), [128, -320, 768])
    np.testing.assert_array_equal(fp.decode(fp.encode(x)), x)
    with pytest.raises(ValueError, match="scale_bits"):
        FixedPoint(0)
    with pytest.raises(ValueError, match="too large"):
        fp.encode([1e30])
    lr_q, lr_bits = circuits.quantize_lr(0.01)
    assert 2**15 <= lr_q < 2**16 and abs(lr_q / 2**lr_bits - 0.01) < 0.01 * 2**-15
