"""torch.optim.SGD's momentum, dampening and weight decay in circuits: several steps against torch in
float64 (to 1e-10) and in exact fixed point (within the documented bound), the first-step rule, the
exact integer rules, bad arguments refused."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import circuits
from circuits import UnsupportedOp, run, train_step, training_graph

#: documented bound (docs/circuits.md): after a few fixed-point steps (lr 0.1, parameters at
#: param_scale_for(lr)), each parameter's total change differs from float64 torch's by at most this
#: fraction of the largest change of that tensor
FIXED_RELATIVE = 1e-3
OPTIONS = dict(momentum=0.9, dampening=0.1, weight_decay=0.01)


def mlp(seed, widths=(5, 7, 3)):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(widths[0], widths[1]), nn.ReLU(), nn.Linear(widths[1], widths[2])).double()


def batches(seed, steps, batch=6, widths=(5, 7, 3)):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, widths[0], generator=g, dtype=torch.float64),
             torch.randn(batch, widths[-1], generator=g, dtype=torch.float64)) for _ in range(steps)]


def torch_run(model, data, lr, **options):
    """Parameters and momentum buffers after torch.optim.SGD's steps on ``data``."""
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr, **options)
    for X, Y in data:
        opt.zero_grad()
        F.mse_loss(m(X), Y).backward()
        opt.step()
    out = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
    for name, p in m.named_parameters():
        if opt.state[p].get("momentum_buffer") is not None:
            out[f"{name}.momentum_buffer"] = opt.state[p]["momentum_buffer"].numpy().copy()
    return out


def circuits_run(model, data, lr, mode="float", **options):
    """The same steps through circuits.train_step, each step's results fed to the next."""
    m, buffers, out = copy.deepcopy(model), None, {}
    for X, Y in data:
        out = train_step(m, X, Y, lr, mode=mode, momentum_buffers=buffers, **options)
        m.load_state_dict({k: torch.from_numpy(np.array(out[k])) for k in m.state_dict()})
        buffers = {k: v for k, v in out.items() if k.endswith(".momentum_buffer")} or None
    return out


def assert_fixed_close(model, ours, ref):
    """Each parameter's change within FIXED_RELATIVE of torch's (largest change of the tensor)."""
    for k, w0 in model.state_dict().items():
        change = ref[k] - w0.numpy()
        assert np.max(np.abs(ours[k] - ref[k])) <= FIXED_RELATIVE * np.max(np.abs(change)), k


# -- several steps against torch.optim.SGD -------------------------------------------------------
def test_momentum_dampening_weight_decay_match_torch_in_float():
    model, data = mlp(0), batches(1, 4)
    ours, ref = circuits_run(model, data, 0.1, **OPTIONS), torch_run(model, data, 0.1, **OPTIONS)
    assert set(ours) == set(ref) and "0.weight.momentum_buffer" in ours
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_momentum_dampening_weight_decay_within_bound_in_fixed_point():
    model, data = mlp(2), batches(3, 4)
    ours, ref = circuits_run(model, data, 0.1, mode="fixed", **OPTIONS), torch_run(model, data, 0.1, **OPTIONS)
    assert_fixed_close(model, ours, ref)
    for k in ref:
        if k.endswith(".momentum_buffer"):  # the buffers: within the same fraction of their size
            assert np.max(np.abs(ours[k] - ref[k])) <= FIXED_RELATIVE * np.max(np.abs(ref[k])), k


# derandomized: a ReLU pre-activation rounding across zero in fixed point (docs/circuits.md) would flip a
# mask and a gradient entry by O(1); over 300 random draws the worst change error was 1.2e-4 of the change
@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.one_of(st.just(0.0), st.floats(0.05, 0.99)), st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1)),
       st.one_of(st.just(0.0), st.floats(1e-4, 0.1)), st.integers(0, 2**16))
def test_any_momentum_dampening_weight_decay(momentum, dampening, weight_decay, seed):
    options = dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    model, data = mlp(seed, (4, 5, 2)), batches(seed, 3, 4, (4, 5, 2))
    ref = torch_run(model, data, 0.1, **options)
    ours = circuits_run(model, data, 0.1, **options)
    assert set(ours) == set(ref)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=k)
    assert_fixed_close(model, circuits_run(model, data, 0.1, mode="fixed", **options), ref)



def test_shared_weights_and_residuals_match_torch():
    """The buffer follows the summed gradient of a module called twice, through a residual."""
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.head = nn.Linear(4, 4), nn.Linear(4, 2, bias=False)

        def forward(self, x):
            return self.head(torch.relu(self.fc(torch.relu(self.fc(x)) + x)))

    torch.manual_seed(7)
    model, data = Shared().double(), batches(8, 3, 5, (4, 2))
    ref, ours = torch_run(model, data, 0.05, **OPTIONS), circuits_run(model, data, 0.05, **OPTIONS)
    assert set(ours) == set(ref)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=k)

# -- the graph: first step, state inputs, outputs ------------------------------------------------
def test_first_step_buffer_is_the_decayed_gradient():
    forward = circuits.mlp_graph((5, 7, 3), True, 6)
    first = training_graph(forward, 0.1, **OPTIONS)
    assert [t.name for t in first.inputs if t.role == "state"] == []
    assert "momentum" not in {n.op for n in first.nodes}
    assert first.outputs["0.weight.momentum_buffer"] == "0.weight.grad.decayed"
    nxt = training_graph(forward, 0.1, **OPTIONS, first_step=False)
    state = [t for t in nxt.inputs if t.role == "state"]
    assert sorted(t.name for t in state) == [f"{p}.momentum_buffer" for p in ("0.bias", "0.weight", "2.bias", "2.weight")]
    assert all(t.scale == nxt[f"{t.name[:-len('.momentum_buffer')]}.grad"].scale for t in state)
    assert nxt.outputs["0.weight.momentum_buffer"] == "0.weight.momentum_buffer.next"
    assert list(nxt.outputs)[:5] == ["out", "0.weight", "0.bias", "2.weight", "2.bias"]
    # torch's first step ignores dampening: buf = d
    model, ((X, Y),) = mlp(4), batches(5, 1)
    a = train_step(model, X, Y, 0.1, momentum=0.9, dampening=0.7)
    b = train_step(model, X, Y, 0.1, momentum=0.9)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_no_momentum_no_state():
    g = training_graph(circuits.mlp_graph((3, 2), False, 4), 0.1, weight_decay=0.1, dampening=0.5, first_step=False)
    assert [t.role for t in g.inputs] == ["data", "target", "param"] and set(g.outputs) == {"out", "0.weight"}


# -- the exact integer rules ---------------------------------------------------------------------
def test_fixed_point_rules_are_exact():
    g = circuits.Graph(16, 26)
    w = g.input("w", (50,), role="param")
    fine, coarse = g.input("g48", (50,), scale=48), g.input("g32", (50,), scale=32)
    up = g.weight_decay(fine, w, 0.01, name="up")      # wd_bits 22: 26 + 22 = 48, an exact product
    down = g.weight_decay(coarse, w, 0.01, name="down")  # 26 + 22 - 32 = 16 bits divided away
    buf = g.input("buf", (50,), role="state", scale=48)
    mom = g.momentum(buf, up, 0.9, 0.1, name="mom")
    rng = np.random.default_rng(0)
    inputs = {"w": rng.normal(size=50), "g48": rng.normal(size=50), "g32": rng.normal(size=50),
              "buf": rng.normal(size=50)}
    v = run(g, inputs, mode="fixed")
    wd_q, wd_bits = circuits.quantize(0.01, "weight decay")
    assert wd_bits == 22 and "up.rem" not in v
    assert np.array_equal(v[up], v[fine] + wd_q * v[w])
    k = wd_bits + 26 - 32
    assert np.array_equal((v[down] - v[coarse]) * 2**k + v["down.rem"], wd_q * v[w] + 2**(k - 1))
    assert np.all((0 <= v["down.rem"]) & (v["down.rem"] < 2**k))
    mu_q, damp_q, bits = circuits.quantize_momentum(0.9, 0.1)
    assert (mu_q, damp_q) == (g.nodes[-1].attrs["mu_q"], g.nodes[-1].attrs["damp_q"])
    lhs = v[mom].astype(object) * 2**bits + v["mom.rem"]
    assert np.array_equal(lhs, mu_q * v[buf].astype(object) + damp_q * v[up].astype(object) + 2**(bits - 1))
    assert np.all((0 <= v["mom.rem"]) & (v["mom.rem"] < 2**bits))
    f = run(g, inputs)
    np.testing.assert_allclose(f[mom], 0.9 * inputs["buf"] + 0.9 * (inputs["g48"] + 0.01 * inputs["w"]))


@pytest.mark.parametrize("momentum, dampening", [(0.9, 0.1), (0.5, 0.0), (1.5, 1.0), (0.01, 0.99)])
def test_momentum_quantisation_shares_one_denominator(momentum, dampening):
    mu_q, damp_q, bits = circuits.quantize_momentum(momentum, dampening)
    assert 2**15 <= max(mu_q, damp_q) < 2**16
    assert abs(mu_q / 2**bits - momentum) <= 2**-(bits + 1)
    assert abs(damp_q / 2**bits - (1 - dampening)) <= 2**-(bits + 1)


# -- refused -------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, error, message", [
    (dict(momentum=-0.1), ValueError, "momentum must be a finite number >= 0"),
    (dict(momentum=float("nan")), ValueError, "momentum"),
    (dict(weight_decay=-1e-3), ValueError, "weight_decay must be"),
    (dict(momentum=0.9, dampening=1.5), ValueError, "dampening must be in \\[0, 1\\]"),
    (dict(momentum=0.9, nesterov=True), UnsupportedOp, "nesterov"),
    (dict(maximize=True), UnsupportedOp, "maximize"),
])
def test_bad_arguments_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        training_graph(circuits.mlp_graph((3, 2), True, 4), 0.1, **options)
    model, ((X, Y),) = mlp(0, (3, 4, 2)), batches(0, 1, 4, (3, 4, 2))
    with pytest.raises(error, match=message):
        train_step(model, X, Y, 0.1, **options)


def test_buffers_must_match_the_graph():
    model, ((X, Y),) = mlp(0, (3, 4, 2)), batches(0, 1, 4, (3, 4, 2))
    with pytest.raises(ValueError, match="unexpected input"):
        train_step(model, X, Y, 0.1, momentum_buffers={"0.weight.momentum_buffer": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="missing graph input.*0.bias.momentum_buffer"):
        train_step(model, X, Y, 0.1, momentum=0.9, momentum_buffers={"0.weight.momentum_buffer": np.zeros((4, 3))})
