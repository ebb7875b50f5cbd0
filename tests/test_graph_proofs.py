"""Property: random small graphs (depth, widths, residual blocks, bias, SGD options, 1-3 steps,
batches not powers of two) prove and verify, the proved parameters are circuits' own fixed-point
run bit for bit (traced from the torch module, independently of the published architecture), and
torch's SGD within the fidelity bound."""
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import circuits
import zk
from circuits import FixedPoint

LR = 0.05


class _Net(torch.nn.Module):
    """Linear, then hidden layers each ``relu(linear(h))`` or a residual ``h + relu(linear(h))``,
    then a final Linear."""

    def __init__(self, widths, residual, bias):
        super().__init__()
        self.first = torch.nn.Linear(widths[0], widths[1], bias=bias)
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(widths[1], widths[1], bias=bias) for _ in residual)
        self.residual = residual
        self.last = torch.nn.Linear(widths[1], widths[2], bias=bias)

    def forward(self, x):
        h = torch.relu(self.first(x))
        for layer, res in zip(self.hidden, self.residual):
            h = h + torch.relu(layer(h)) if res else torch.relu(layer(h))
        return self.last(h)


graphs = st.fixed_dictionaries({
    "widths": st.tuples(st.integers(2, 5), st.integers(2, 6), st.integers(1, 3)),
    "residual": st.lists(st.booleans(), max_size=2),
    "bias": st.booleans(),
    "momentum": st.sampled_from([0.0, 0.9]),
    "dampening": st.sampled_from([0.0, 0.1]),
    "weight_decay": st.sampled_from([0.0, 0.01]),
    "steps": st.integers(1, 3),
    "batch": st.sampled_from([1, 3, 5]),
    "seed": st.integers(0, 2**16),
})


def _fixed_point_run(model, data, options, scale_bits, param_scale):
    """The parameters after the steps, as circuits' fixed-point run of ``trace_training(model)``
    computes them (integers carried exactly from step to step, momentum buffers too)."""
    fp = FixedPoint(scale_bits)
    state = {n: fp.encode(p.detach().double().numpy(), param_scale) for n, p in model.state_dict().items()}
    for t, (x, y) in enumerate(data):
        g = circuits.trace_training(model, len(x), LR, scale_bits=scale_bits, param_scale=param_scale,
                                    first_step=t == 0, **options)
        inputs = {"x": fp.encode(x), "y": fp.encode(y), **{t_.name: state[t_.name] for t_ in g.inputs
                                                           if t_.role in ("param", "state")}}
        values = circuits.run(g, inputs, mode="fixed", encoded=set(inputs))
        state = {n: np.asarray(values[tensor]) for n, tensor in g.outputs.items() if n != "out"}
    return state


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(graphs)
def test_random_graphs_prove_verify_and_match_circuits_and_torch(case):
    torch.manual_seed(case["seed"])
    model = _Net(case["widths"], case["residual"], case["bias"])
    rng = np.random.default_rng(case["seed"])
    data = [(rng.standard_normal((case["batch"], case["widths"][0])), rng.standard_normal((case["batch"], case["widths"][2])))
            for _ in range(case["steps"])]
    options = {k: case[k] for k in ("momentum", "dampening", "weight_decay")}
    result = zk.prove_training(model, data, LR, **options)
    proof = zk.TrainingProof.from_bytes(result.proof.to_bytes())
    assert zk.verify_training(proof)
    st_ = proof.statement
    expected = _fixed_point_run(model, data, options, st_.scale_bits, st_.param_scale)
    proved = {**result.opening.integers(), **result.opening.state_integers()}
    assert set(proved) <= set(expected)
    for name, v in proved.items():
        assert np.array_equal(np.asarray(v, dtype=object), np.asarray(expected[name], dtype=object)), name
    # torch within the fidelity bound (norm over all parameters, as zk.Recorder checks it)
    ref = _Net(case["widths"], case["residual"], case["bias"]).double()
    ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    sgd = torch.optim.SGD(ref.parameters(), lr=LR, **options)
    for x, y in data:
        sgd.zero_grad()
        torch.nn.functional.mse_loss(ref(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        sgd.step()
    flat = lambda sd: np.concatenate([np.asarray(sd[n], dtype=np.float64).ravel() for n in sorted(sd)])  # noqa: E731
    trained, want = flat(result.model.state_dict()), flat(ref.state_dict())
    update = np.linalg.norm(want - flat(model.state_dict()))
    assert np.linalg.norm(trained - want) <= zk.recorder.FIDELITY * update + np.sqrt(want.size) * 2.0 ** -16
