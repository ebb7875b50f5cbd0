"""circuits' torch.fx front end: any nn.Module of supported ops, against torch in float64, fixed point
within the documented bound, trace_training against autograd, UnsupportedOp naming the culprit."""
import copy
import hashlib
import operator
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st

import circuits
from circuits import UnsupportedOp, run, trace, trace_training, train_step

#: documented bounds (docs/circuits.md), in units of 2^-S, for the random models below (activations and
#: weights of magnitude ~1, lr <= 0.5): the inference output, and one SGD step's updated parameters
#: unless a ReLU's pre-activation rounds across zero (then its mask, and the gradient, differ)
FIXED_OUT_ULPS = 16
FIXED_STEP_ULPS = 16


# -- a Sequential MLP's graph is exactly what the Sequential tracer built before torch.fx -------
def canonical(g, ordered=True):
    """The graph as text; ``ordered=False`` sorts the tensors and nodes (the same DAG, whatever
    topological order the builder emitted it in)."""
    arrange = list if ordered else sorted
    lines = [f"scale {g.scale_bits} {g.param_scale}"]
    lines += arrange(f"T {t.name} {t.shape} {t.scale} {t.role}" for t in g.tensors.values())
    lines += arrange(f"N {n.op} {n.inputs} {n.output} {sorted((k, v) for k, v in n.attrs.items() if k != 'parsed')}"
                     for n in g.nodes)
    lines += [f"O {k} {v}" for k, v in g.outputs.items()]
    return "\n".join(lines)


def sequential_graphs():
    L, R, Fl = nn.Linear, nn.ReLU, nn.Flatten
    yield "mlp", trace(nn.Sequential(L(4, 3), R(), L(3, 2)), torch.zeros(5, 4))
    yield "flatten", trace(nn.Sequential(Fl(), L(12, 5), R(), L(5, 3, bias=False)), torch.zeros(4, 3, 4), 12)
    yield "step", trace_training(nn.Sequential(L(4, 3), R(), L(3, 2)), 5, 0.1)
    yield "mixed", trace_training(nn.Sequential(L(3, 5, bias=False), R(), L(5, 4), R(inplace=True), L(4, 2, bias=False)),
                                  3, 0.01, param_scale=circuits.param_scale_for(0.01))
    yield "flatstep", trace_training(nn.Sequential(Fl(), L(6, 4), R(), L(4, 4), R(), L(4, 1, bias=False)), 2, 0.5,
                                     input_shape=(2, 2, 3), scale_bits=12)
    yield "final_relu", trace_training(nn.Sequential(L(3, 2), R()), 4, 0.1)
    yield "single", trace_training(nn.Sequential(L(5, 1)), 7, 0.003, param_scale=30)
    yield "relu_first", trace_training(nn.Sequential(R(), L(3, 3), R(), L(3, 2)), 2, 0.1)


#: sha256 prefixes of canonical(graph, ordered=False) of the Sequential-only tracer's graphs (commit
#: 683dfbf; the ordered forms were also unchanged until the backward pass became a rewrite of the
#: forward graph, circuits.autodiff, which emits a Linear's bias gradient before its weight gradient)
SEQUENTIAL_DIGESTS = {
    "mlp": "0b64a2ba6897a167", "flatten": "2962e37c960a70a6", "step": "fbcfd10a9492b829",
    "mixed": "555fd7fcc68e4f89", "flatstep": "d44ee72c5fe95b10", "final_relu": "ba8c71c077832ebc",
    "single": "07aa56afbd052407", "relu_first": "4b5f1f31748a720f",
}

MLP_GRAPH = """\
scale 16 16
T x (5, 4) 16 data
T 0.weight (3, 4) 16 param
T 0.bias (3,) 16 param
T 2.weight (2, 3) 16 param
T 2.bias (2,) 16 param
T 0.matmul (5, 3) 32 intermediate
T 0.biased (5, 3) 32 intermediate
T 0.z (5, 3) 16 intermediate
T 1.relu (5, 3) 16 intermediate
T 2.matmul (5, 2) 32 intermediate
T 2.biased (5, 2) 32 intermediate
T 2.z (5, 2) 16 intermediate
N einsum ('x', '0.weight') 0.matmul [('spec', 'bi,oi->bo')]
N add ('0.matmul', '0.bias') 0.biased []
N rescale ('0.biased',) 0.z [('bits', 16)]
N relu ('0.z',) 1.relu []
N einsum ('1.relu', '2.weight') 2.matmul [('spec', 'bi,oi->bo')]
N add ('2.matmul', '2.bias') 2.biased []
N rescale ('2.biased',) 2.z [('bits', 16)]
O out 2.z"""


def test_sequential_mlp_graphs_unchanged():
    graphs = dict(sequential_graphs())
    assert canonical(graphs["mlp"]) == MLP_GRAPH
    digests = {k: hashlib.sha256(canonical(g, ordered=False).encode()).hexdigest()[:16] for k, g in graphs.items()}
    assert digests == SEQUENTIAL_DIGESTS



@pytest.mark.parametrize("widths, biases", [((4, 3, 2), True), ((5, 1), False), ((3, 5, 4, 2), (False, True, False)),
                                            ((6, 4, 4, 1), (True, True, False))])
def test_mlp_graph_is_the_traced_sequential(widths, biases):
    flags = [biases] * (len(widths) - 1) if isinstance(biases, bool) else biases
    mods = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        mods += [nn.ReLU()] * bool(i) + [nn.Linear(a, b, bias=flags[i])]
    model, batch, lr = nn.Sequential(*mods), 5, 0.01
    ps = circuits.param_scale_for(lr)
    forward = circuits.mlp_graph(widths, biases, batch, param_scale=ps)
    assert str(forward) == str(trace(model, torch.zeros(batch, widths[0]), param_scale=ps))
    assert canonical(forward) == canonical(trace(model, torch.zeros(batch, widths[0]), param_scale=ps))
    assert canonical(circuits.training_graph(forward, lr)) == canonical(trace_training(model, batch, lr, param_scale=ps))
    with_momentum = dict(momentum=0.9, dampening=0.1, weight_decay=0.01, first_step=False)
    assert (canonical(circuits.training_graph(forward, lr, **with_momentum))
            == canonical(trace_training(model, batch, lr, param_scale=ps, **with_momentum)))



def test_mlp_training_graph_without_torch():
    """A verifier derives the training graph from public widths without importing torch."""
    code = ("import sys, circuits; g = circuits.training_graph(circuits.mlp_graph((3, 4, 2), True, 5), 0.1); "
            "assert 'torch' not in sys.modules and g.outputs['0.weight'] == '0.weight.next'")
    subprocess.run([sys.executable, "-c", code], check=True)

def test_training_graph_needs_no_torch_names():
    """The rewrite reads ops and roles only: a hand-built graph with arbitrary names trains like torch."""
    g = circuits.Graph()
    g.input("features", (4, 3))
    g.input("A", (2, 3), role="param")
    g.input("c", (2,), role="param")
    h = g.rescale(g.add(g.einsum("bi,oi->bo", "features", "A", name="p"), "c", name="q"), 16, name="r")
    g.outputs["out"] = g.relu(h, name="s")
    t = circuits.training_graph(g, 0.1)
    assert set(t.outputs) == {"out", "A", "c"} and {"A.grad", "c.grad", "A.next", "c.next"} <= set(t.tensors)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).double()
    X, Y = data((4, 3), 2, 1)
    vals = run(t, {"features": X, "y": Y, "A": model[0].weight, "c": model[0].bias})
    ref = torch_step(model, X, Y, 0.1)
    np.testing.assert_allclose(vals[t.outputs["A"]], ref["0.weight"], rtol=1e-12)
    np.testing.assert_allclose(vals[t.outputs["c"]], ref["0.bias"], rtol=1e-12)

# -- random models: residual blocks, bias on/off, pooling, every spelling of the ops ----------
POOLS = {
    "none": lambda h: h,
    "avg": nn.AvgPool1d(2),
    "avg_pad": nn.AvgPool1d(3, stride=2, padding=1),
    "avg_nopad_count": nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False),
    "adaptive": nn.AdaptiveAvgPool1d(3),
    "f_avg": lambda h: F.avg_pool1d(h, 2, ceil_mode=True),
    "mean": lambda h: h.mean(-1),  # (batch, C): the flatten is a no-op
    "mean_keep": lambda h: torch.mean(h, dim=2, keepdim=True),
}
FLATTENS = {
    "module": nn.Flatten(),
    "torch": lambda h: torch.flatten(h, 1),
    "reshape": lambda h: h.reshape(h.shape[0], -1),
    "view": lambda h: h.view(h.size(0), -1),
}
ADDS = {"plus": operator.add, "torch": torch.add, "method": lambda a, b: a.add(b)}
RELUS = {"module": nn.ReLU(), "torch": torch.relu, "functional": F.relu}


class Model(nn.Module):
    """x (batch, C, L) -> residual blocks over L -> pool -> flatten -> Linear head [-> mean]."""

    def __init__(self, channels, length, blocks, pool, flatten, add, relu, head_bias, outputs, final_mean, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.fcs = nn.ModuleList(nn.Linear(length, length, bias=b) for _, b in blocks)
        self.placements = tuple(p for p, _ in blocks)
        self.pool, self.flatten, self.add, self.act = POOLS[pool], FLATTENS[flatten], ADDS[add], RELUS[relu]
        features = self.flatten(self.pool(torch.zeros(1, channels, length))).shape[1]
        self.head = nn.Linear(features, outputs, bias=head_bias)
        self.final_mean = final_mean
        self.double()

    def forward(self, x):
        h = x
        for fc, placement in zip(self.fcs, self.placements):
            if placement == "pre":  # h + relu(fc(h))
                h = self.add(h, self.act(fc(h)))
            elif placement == "post":  # relu(h + fc(h))
                h = self.act(self.add(h, fc(h)))
            else:
                h = self.act(fc(h))
        h = self.head(self.flatten(self.pool(h)))
        return h.mean(1, keepdim=True) if self.final_mean else h


models = st.builds(
    lambda c, length, blocks, pool, flatten, add, relu, bias, outputs, mean, batch, seed: (
        Model(c, length, blocks, pool, flatten, add, relu, bias, outputs, mean, seed), (batch, c, length), seed),
    st.integers(1, 3), st.integers(3, 7),
    st.lists(st.tuples(st.sampled_from(["pre", "post", "plain"]), st.booleans()), max_size=3),
    st.sampled_from(sorted(POOLS)), st.sampled_from(sorted(FLATTENS)), st.sampled_from(sorted(ADDS)),
    st.sampled_from(sorted(RELUS)), st.booleans(), st.integers(1, 3), st.booleans(), st.integers(1, 5),
    st.integers(0, 2**16))


def data(shape, outputs, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64),
            torch.randn(shape[0], outputs, generator=g, dtype=torch.float64))


def torch_step(model, X, Y, lr):
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    F.mse_loss(m(X), Y).backward()
    opt.step()
    return {k: v.detach().numpy() for k, v in m.state_dict().items()}


@settings(max_examples=40, deadline=None)
@given(models)
def test_inference_float_equals_torch_and_fixed_within_bound(case):
    model, shape, seed = case
    X, _ = data(shape, 1, seed)
    g = trace(model, X)
    inputs = {"x": X, **model.state_dict()}
    out = run(g, inputs)[g.outputs["out"]]
    np.testing.assert_allclose(out, model(X).detach().numpy(), rtol=1e-9, atol=1e-12)
    fixed = circuits.decode(g, run(g, inputs, mode="fixed"), g.outputs["out"])
    assert np.max(np.abs(fixed - out)) <= FIXED_OUT_ULPS * 2.0**-16


@settings(max_examples=30, deadline=None)
@given(models, st.sampled_from([0.5, 0.1, 0.01]))
def test_training_step_gradients_equal_autograd(case, lr):
    model, shape, seed = case
    outputs = 1 if model.final_mean else model.head.out_features
    X, Y = data(shape, outputs, seed)
    ours, ref = train_step(model, X, Y, lr), torch_step(model, X, Y, lr)
    assert ours.keys() == ref.keys()
    for k, w in model.state_dict().items():  # the gradient itself, not masked by the weights
        np.testing.assert_allclose((w.numpy() - ours[k]) / lr, (w.numpy() - ref[k]) / lr,
                                   rtol=1e-7, atol=1e-12, err_msg=k)
    g = trace_training(model, len(X), lr, input_shape=X.shape, param_scale=circuits.param_scale_for(lr))
    inputs = circuits.training_inputs(model, X, Y)
    fl, fx = run(g, inputs), run(g, inputs, mode="fixed")
    assume(not any(np.any((fl[n.inputs[1]] > 0) != (fx[n.inputs[1]] > 0)) for n in g.nodes if n.op == "relu_grad"))
    for k, t in g.outputs.items():
        assert np.max(np.abs(circuits.decode(g, fx, t) - fl[t])) <= FIXED_STEP_ULPS * 2.0**-16, k


def test_average_is_exact_but_for_the_final_rounding():
    """Power-of-two windows: the fixed-point mean is the exact mean rounded to nearest; a window
    of three stays within (1 + max|h|) 2^-(S+1) of the exact mean of the fixed-point inputs."""
    for pool in (nn.AvgPool1d(4), nn.AvgPool1d(3)):
        model = nn.Sequential(pool, nn.Flatten(), nn.Linear(2 * (12 // pool.kernel_size[0]), 1))
        X = torch.randn(6, 2, 12, dtype=torch.float64)
        g = trace(model, X)
        vals = run(g, {"x": X, **model.state_dict()}, mode="fixed")
        h = vals["x"].astype(object)
        exact = pool(torch.tensor(h.astype(np.float64))).numpy()  # the mean of the integers
        bound = 0.5 if pool.kernel_size == (4,) else 0.5 * (1 + np.max(np.abs(X.numpy())))
        assert np.max(np.abs(vals["0.mean"] - exact)) <= bound * (1 + 1e-12)
        assert g["0.weights"].role == "const" and "0.weights" not in {t.name for t in g.inputs}


def test_names_and_reuse():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(3, 3), nn.ReLU()

        def forward(self, x):
            return self.fc(self.act(self.fc(x)) + x)

    model = Shared().double()
    g = trace_training(model, 2, 0.1)
    names = [n.output for n in g.nodes]
    assert names[:6] == ["fc.matmul", "fc.biased", "fc.z", "act.relu", "add.add", "fc@1.matmul"]
    assert "fc.weight.grad.sum1" in names  # the shared weight's two gradients, summed
    X, Y = data((2, 3), 3, 0)
    ours, ref = train_step(model, X, Y, 0.1), torch_step(model, X, Y, 0.1)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-9)


def test_bare_linear_and_functional_forms():
    model = nn.Linear(3, 2).double()
    X = torch.randn(4, 3, dtype=torch.float64)
    g = trace(model, X)
    assert [t.name for t in g.inputs] == ["x", "weight", "bias"]
    np.testing.assert_allclose(run(g, {"x": X, **model.state_dict()})[g.outputs["out"]],
                               model(X).detach().numpy(), rtol=1e-12)


# -- UnsupportedOp, raised before any graph is built ------------------------------------------
class Encoder(nn.Module):
    def __init__(self, last):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), last)

    def forward(self, x):
        return self.encoder(x)


class Functional(nn.Module):
    """``fn(fc(x))``; the subclasses below replace the forward."""

    def __init__(self, fn=None):
        super().__init__()
        self.fc, self.fn = nn.Linear(4, 4), fn

    def forward(self, x):
        return self.fn(self.fc(x))


class Branchy(Functional):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.fc(x)
        return x


class TwoInputs(Functional):
    def forward(self, x, y):
        return self.fc(x) + y


class Buffered(Functional):
    def __init__(self):
        super().__init__(torch.relu)
        self.register_buffer("scale", torch.ones(4))


class InPlace(Functional):
    def forward(self, x):
        h = self.fc(x)
        return F.relu(h, inplace=True) + h


@pytest.mark.parametrize("model, x, message", [
    (Encoder(nn.Sigmoid()), (2, 4), r"unsupported module encoder\.2 \(Sigmoid\) \[fx node 'encoder_2' at .*test_circuits_fx\.py:\d+: return self\.encoder\(x\)\]"),
    (nn.Sequential(nn.Conv1d(1, 1, 3), nn.Flatten(), nn.Linear(2, 1)), (2, 1, 4), r"module 0 \(Conv1d\)"),
    (Functional(torch.sigmoid), (2, 4),
     r"function torch\.sigmoid \[fx node 'sigmoid' at .*test_circuits_fx\.py:\d+: return self\.fn\(self\.fc\(x\)\)\]"),
    (Functional(lambda h: h * 2), (2, 4), r"function operator\.mul \[fx node 'mul' at .*: h \* 2"),
    (Functional(lambda h: h.mean(0)), (2, 4), r"method Tensor\.mean .*batch axis"),
    (Functional(lambda h: h.mean()), (2, 4), r"method Tensor\.mean .*only mean\(dim, keepdim\)"),
    (Functional(lambda h: h.view(1, -1)), (2, 4), r"method Tensor\.view .*only a flatten"),
    (Functional(lambda h: h + h.mean(1, keepdim=True)), (2, 4), r"function operator\.add .*no broadcasting"),
    (Functional(lambda h: h[:, 0]), (2, 4), r"function operator\.getitem .*only indexing a shape"),
    (Functional(lambda h: torch.flatten(h)), (2, 4), r"function torch\.flatten .*start_dim=1"),
    (Branchy(), (2, 4), r"torch\.fx cannot trace Branchy\.forward \[.*test_circuits_fx\.py:\d+: "
                        r"if x\.sum\(\) > 0:.*control flow"),
    (TwoInputs(), (2, 4), "one input tensor"),
    (Buffered(), (2, 4), "buffers .*: scale"),
    (InPlace(), (2, 4), r"function torch\.nn\.functional\.relu .*in-place ReLU"),
    (nn.Sequential(nn.ReLU()), (2, 4), "no Linear layer"),
])
def test_unsupported_ops_are_named(model, x, message):
    with pytest.raises(UnsupportedOp, match=message):
        trace(model, torch.zeros(x))
    with pytest.raises(UnsupportedOp, match=message):
        trace_training(model, x[0], 0.1, input_shape=x)


def test_unsupported_op_comes_before_shape_errors():
    """The whole model is checked before any graph is built: the Sigmoid, not the mis-shaped input."""
    with pytest.raises(UnsupportedOp, match="Sigmoid"):
        trace(Encoder(nn.Sigmoid()), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"module encoder\.0 \(Linear\) \[fx node 'encoder_0' at .*\]: expects inputs \(batch, \.\.\., 4\)"):
        trace(Encoder(nn.ReLU()), torch.zeros(2, 5))
