"""zkDL training/inference proofs: honest runs verify, every kind of cheating is rejected."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import circuits
import zk
from zk import commit, fac4dnn, field, lookup, mle, training
from zk.fac4dnn import commit_tensors, derive_tensors
from zk.stack import instance_col_vars
from zk.device import CPU, SMALL_TABLES
from zk.fac4dnn import pad
from zk.keys import TensorKind
from zk.lower import ACT_HEADROOM, RangeCheck


def mlp(widths, seed=0):
    return training.synthetic_mlp(widths, seed)


def batches(widths, batch, steps, seed=0):
    return training.synthetic_batches(widths, batch, steps, seed)


@pytest.fixture(scope="module")
def honest():
    widths = (5, 4, 3)
    model = mlp(widths)
    data = batches(widths, 3, 2)
    circuit, values, _ = training.training_witness(model, data, 0.1)
    proof, trained, _ = zk.prove_training(model, data, 0.1)
    return model, data, circuit, values, proof, trained


@pytest.mark.parametrize("widths, batch, steps", [
    ((4, 3), 2, 1),  # one layer, no ReLU
    ((6, 5, 4, 2), 3, 2),  # three layers, batch not a power of two
    ((3, 7, 1), 5, 3),  # width-1 output, odd sizes
    ((2, 2, 2), 1, 4),  # batch 1, four steps
    ((1, 1), 1, 1),  # batch x outputs = 1: the loss remainder has no bit planes
])
def test_honest_training_proofs_verify(widths, batch, steps):
    model = mlp(widths, seed=steps)
    data = batches(widths, batch, steps, seed=batch)
    result = zk.prove_training(model, data, 0.05)
    proof = result.proof
    assert zk.verify_training(proof) is True
    assert zk.verify_training(zk.TrainingProof.from_bytes(proof.to_bytes())) is True
    assert_trained_like_circuits(model, data, 0.05, result)
    st_ = proof.statement
    assert st_.widths == widths and st_.steps == steps and st_.batch_size == batch
    assert len(st_.initial_model.commitments) == len(st_.final_model.commitments) == len(widths) - 1
    assert len(st_.data) == 2 * steps


def assert_trained_like_circuits(model, data, lr, result):
    """The proof's final model is the exact fixed-point training of circuits from the model's
    parameters at the parameter scale (master weights carried as integers between steps), and the
    trained torch model holds it decoded."""
    scale = circuits.param_scale_for(lr, 16)
    fp = circuits.FixedPoint(16)
    state = {k: fp.encode(v.double().numpy(), scale) for k, v in model.state_dict().items()}
    for X, Y in data:
        graph = circuits.trace_training(model, len(X), lr, param_scale=scale)
        inputs = {"x": fp.encode(X), "y": fp.encode(Y), **state}
        vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        state = {k: vals[graph.outputs[k]] for k in state}
    final = result.opening.integers()
    for k, v in state.items():
        np.testing.assert_array_equal(final[k], v)
        expected = torch.from_numpy(fp.decode(v, scale)).float()
        assert torch.equal(result.model.state_dict()[k], expected), k


def test_inference_proof(honest):
    model, data, *_ = honest
    proof = zk.prove_inference(model, data[0][0])
    assert zk.verify_inference(proof)
    again = zk.InferenceProof.from_bytes(proof.to_bytes())
    assert zk.verify_inference(again)
    with pytest.raises(zk.ProofFormatError, match="not a training proof"):
        zk.TrainingProof.from_bytes(proof.to_bytes())
    with pytest.raises(zk.VerificationError):
        zk.verify_training(proof)


def _lenient_multiplicities(columns, table_bits, unused=0, device=CPU, function=None):
    """A cheating prover's :func:`zk.lookup.multiplicities`: an entry outside the table is counted
    as an entry 0 instead of refused (the lookup's leaves still hold it)."""
    size = 1 << table_bits
    counts = np.zeros(size, dtype=np.int64)
    for c in columns:
        table = device.download(c.stack.opening.table)
        e = c.scale * (table.reshape(-1).astype(np.int64) if table.dtype in SMALL_TABLES else
                       field.to_signed(table).reshape(-1))
        counts += np.bincount(np.where((e >= 0) & (e < size), e, 0), minlength=size)
    counts[0] += unused
    return counts


def _cheat(circuit, values, edit):
    """Prove the witness ``values`` doctored by ``edit`` with our own prover (its refusal of
    looked-up entries outside their table skipped); the verifier's message rejecting it."""
    forged = {k: np.array(v, copy=True) for k, v in values.items()}
    edit(forged)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lookup, "multiplicities", _lenient_multiplicities)
        mp.setattr(fac4dnn.Circuit, "derived", property(lambda self: {}))  # every tensor committed by itself
        proof = training.prove_witness(circuit, forged, 0.1)
    with pytest.raises(zk.VerificationError) as err:
        zk.verify_training(proof)
    return str(err.value)


def _z_check(circuit, name="0.z"):
    """The range check of a ReLU's input ``name`` (``z - 1``, with its sign plane)."""
    check = RangeCheck(TensorKind.VALUE(0, name), circuit.scale_bits + ACT_HEADROOM, 1, True, circuit.limb_bits)
    assert all(circuit.lookup_bits[k] == b for k, b in check.limbs)
    return check


def _redecompose(circuit, v, check):
    """Refill ``check``'s limbs (and sign plane) from its tensor in ``v``: its own range check holds."""
    v.update(check.decompose(pad(v[check.key], circuit.shapes[check.key]), str(check.key)))


def test_wrong_weight_update_is_rejected(honest):
    _, _, circuit, values, _, _ = honest

    def edit(v):
        v[TensorKind.VALUE(1, "0.weight")][0, 0] += 1
    assert "linear relations" in _cheat(circuit, values, edit)

    nxt = RangeCheck(TensorKind.VALUE(1, "2.weight"), circuit.param_bits, 0, False, circuit.limb_bits)
    assert all(circuit.lookup_bits[k] == b for k, b in nxt.limbs)

    def consistent(v):  # change the next weights with their limbs refilled (their range holds): the SGD division breaks
        v[TensorKind.VALUE(1, "2.weight")][0, 0] -= 1
        _redecompose(circuit, v, nxt)
    assert "linear relations" in _cheat(circuit, values, consistent)


def test_wrong_relu_output_is_rejected(honest):
    _, _, circuit, values, _, _ = honest

    def edit(v):
        v[TensorKind.VALUE(0, "1.relu")][1, 1] += 3
    _cheat(circuit, values, edit)


def test_flipped_sign_bit_is_rejected(honest):
    _, _, circuit, values, _, _ = honest
    sign = TensorKind.BITS(0, "0.z", (circuit.scale_bits + ACT_HEADROOM) - 1)

    def edit(v):
        v[sign][0, 0] ^= 1
    _cheat(circuit, values, edit)


def test_out_of_range_remainder_is_rejected(honest):
    """R' = R + 2^p with Z' = Z - 1 satisfies P + 2^(p-1) = 2^p Z' + R' but R' has no p-bit
    decomposition (p the parameter scale): the prover's only way to recompose it is a top limb of
    2^b or more (b its bits, below the table's L here: it is still in the table, only the lookup
    of the top limb at scale 2^(L - b) can tell). At a negative Z (Z' still negative, its limbs
    refilled) the ReLU and everything downstream are unchanged: only the range lookups reject it."""
    _, _, circuit, values, _, _ = honest
    S, L = circuit.param_scale, circuit.limb_bits
    rem = sorted(k for k in circuit.lookup_bits if (k.kind, k.step, k.tensor) == (TensorKind.REMAINDER_LIMBS, 0, "0.z"))
    top, b = rem[-1], circuit.lookup_bits[rem[-1]]
    assert sum(circuit.lookup_bits[k] for k in rem) == S and b < L
    i = tuple(np.argwhere(np.asarray(values[TensorKind.VALUE(0, "0.z")]) < 0)[0])

    def edit(v):
        v[TensorKind.VALUE(0, "0.z")][i] -= 1
        v[top][i] += 1 << b  # R' = R + 2^S: the lower limbs unchanged, the top one in [2^b, 2^L)
        assert v[top][i] < 1 << L
        _redecompose(circuit, v, _z_check(circuit))
    assert "range lookups" in _cheat(circuit, values, edit)


def test_data_swapped_or_steps_reordered_is_rejected(honest):
    model, data, _, _, proof, _ = honest
    st_ = proof.statement
    keys = list(st_.commitments)
    x0, x1 = TensorKind.VALUE(0, "x"), TensorKind.VALUE(1, "x")
    swapped = dict(st_.commitments)
    swapped[x0], swapped[x1] = st_.commitments[x1], st_.commitments[x0]
    forged = dataclasses.replace(proof, statement=dataclasses.replace(st_, commitments=swapped))
    with pytest.raises(zk.VerificationError):
        zk.verify_training(forged)
    # other data: a statement committing to a different batch
    other, _, _ = zk.prove_training(model, [(data[0][0] + 1, data[0][1]), data[1]], 0.1)
    replaced = dict(st_.commitments)
    replaced[x0] = other.statement.commitments[x0]
    forged = dataclasses.replace(proof, statement=dataclasses.replace(st_, commitments=replaced))
    with pytest.raises(zk.VerificationError):
        zk.verify_training(forged)
    # a dropped step: claim the weights after step 1 are final
    dropped = dict(st_.commitments)
    for l in (1, 2):
        dropped[TensorKind.VALUE(2, f"{2 * (l - 1)}.weight")] = proof.commitments[TensorKind.VALUE(1, f"{2 * (l - 1)}.weight")]
    forged = dataclasses.replace(proof, statement=dataclasses.replace(st_, commitments=dropped))
    with pytest.raises(zk.VerificationError):
        zk.verify_training(forged)
    # a different learning rate in the statement
    forged = dataclasses.replace(proof, statement=dataclasses.replace(st_, lr=0.2))
    with pytest.raises(zk.VerificationError):
        zk.verify_training(forged)
    assert keys == list(st_.commitments)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_proof_bytes_never_verify(honest, data):
    proof = honest[4]
    raw = bytearray(proof.to_bytes())
    mode = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if mode == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif mode == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))
    try:
        parsed = zk.TrainingProof.from_bytes(bytes(raw))
    except zk.ProofFormatError:
        return
    with pytest.raises(zk.VerificationError):
        zk.verify_training(parsed)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_format_errors(raw):
    with pytest.raises(zk.ProofFormatError):
        zk.TrainingProof.from_bytes(b"ZKTRAIN\0\x01" + raw)


def test_no_witness_value_in_the_clear(honest):
    _, _, _, values, proof, _ = honest
    raw = proof.to_bytes()
    secrets = [v for key in (TensorKind.VALUE(0, "0.weight"), TensorKind.VALUE(0, "0.z"), TensorKind.VALUE(0, "x"), TensorKind.VALUE(0, "loss.grad"))
               for v in np.asarray(values[key]).reshape(-1)[:6] if abs(int(v)) > 1]
    assert secrets
    for v in secrets:
        assert field.to_bytes(field.from_int(int(v))) not in raw
    # every sumcheck message is a commitment: the proof holds no round polynomial in the clear
    layers = [layer for rel in proof.aggregated.lookups for tree in (rel.lookups, rel.table) for layer in tree.layers]
    assert layers
    for rel in proof.aggregated.einsums + proof.aggregated.relus + tuple(layers):
        assert all(len(row) in (3, 4) for row in rel.sumcheck.commitments)


def test_unsupported_models_and_bad_inputs():
    with pytest.raises(circuits.UnsupportedOp, match="Tanh"):
        zk.prove_training(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 2)),
                          batches((3, 2), 2, 1), 0.1)
    # a model ending in a ReLU is a graph like any other now: proved
    ending = zk.prove_training(torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False), torch.nn.ReLU()),
                               batches((3, 2), 2, 1), 0.1)
    assert zk.verify_training(ending.proof)
    with pytest.raises(ValueError, match="the model maps 3 features to 2 outputs, the dataset has X with 4"):
        zk.prove_training(mlp((3, 2)), [(torch.zeros(2, 4), torch.zeros(2, 2))], 0.1)
    with pytest.raises(ValueError, match="batch 1: expected X"):
        zk.prove_training(mlp((3, 2)), [(torch.zeros(2, 3), torch.zeros(2, 2)), (torch.zeros(3, 3), torch.zeros(3, 2))],
                          0.1)
    with pytest.raises(ValueError, match="X of batch 0 underflows in fixed point at scale 2.16"):
        zk.prove_training(mlp((3, 2)), [(torch.full((2, 3), 1e-7), torch.zeros(2, 2))], 0.1)
    with pytest.raises(ValueError, match="steps"):
        zk.prove_training(mlp((3, 2)), batches((3, 2), 2, 1), 0.1, steps=0)
    with pytest.raises(ValueError, match="leave the proof's range"):
        zk.prove_training(mlp((3, 2)), [(torch.full((2, 3), 1e6), torch.zeros(2, 2))], 0.1)


def test_limbs_outside_their_table_are_rejected_by_the_lookups(honest):
    """Limbs (l0 + 2^L, l1 - 1) recompose like (l0, l1): only the range lookups can tell (the first
    is beyond the table, the second too where l1 = 0)."""
    _, _, circuit, values, _, _ = honest
    L = circuit.limb_bits

    def edit(v):
        for k, delta in ((0, 1 << L), (1, -1)):
            key = TensorKind.REMAINDER_LIMBS(0, "0.z", k)
            assert circuit.lookup_bits[key] == L
            v[key] = v[key].astype(np.int64)
            v[key][0, 0] += delta
    assert "range lookups" in _cheat(circuit, values, edit)


def test_tiny_learning_rate_and_size_limits():
    """At lr = 1e-9 the parameters need 56 fractional bits, so products exceed int64 (Python
    integers); at lr = 1e-12 even those updates round away, and the proof is refused."""
    proof, _, _ = zk.prove_training(mlp((3, 2, 2)), batches((3, 2, 2), 2, 1), 1e-9, param_scale=56)
    assert proof.statement.param_scale == 56
    assert zk.verify_training(zk.TrainingProof.from_bytes(proof.to_bytes()))
    with pytest.raises(ValueError, match="SGD updates of 2.weight at step 0 underflow: on average 0.16 units"):
        zk.prove_training(mlp((3, 2, 2)), batches((3, 2, 2), 2, 1), 1e-12)
    with pytest.raises(ValueError, match="too large to prove"):
        zk.prove_training(mlp((3, 70000, 2)), batches((3, 70000, 2), 1, 1), 0.1)


# ---------------------------------------------------------------------------------------------
# Linear layers with a bias
# ---------------------------------------------------------------------------------------------
def biased_mlp(seed=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4, bias=False),
                               torch.nn.ReLU(), torch.nn.Linear(4, 3))


@pytest.fixture(scope="module")
def honest_bias():
    model = biased_mlp()
    data = batches((5, 4, 4, 3), 3, 2)
    circuit, values, _ = training.training_witness(model, data, 0.1)
    result = zk.prove_training(model, data, 0.1)
    return model, data, circuit, values, result.proof, result


def test_bias_training_proof_verifies_and_trains_like_circuits(honest_bias):
    model, data, circuit, _, proof, result = honest_bias
    trained = result.model
    assert zk.verify_training(zk.TrainingProof.from_bytes(proof.to_bytes())) is True
    assert_trained_like_circuits(model, data, 0.1, result)
    assert not torch.equal(trained[4].bias, model[4].bias)  # the biases were trained too (layer 2 is dead here)
    st_ = proof.statement
    assert st_.architecture.biases == (True, False, True) and circuit.architecture == st_.architecture
    assert "bias in layer(s) 1, 3" in st_.describe()
    assert sorted(k for k in st_.commitments if k.tensor.endswith("bias")) == \
        [TensorKind.VALUE(0, "0.bias"), TensorKind.VALUE(0, "4.bias"), TensorKind.VALUE(2, "0.bias"), TensorKind.VALUE(2, "4.bias")]


def test_bias_inference_proof():
    model = biased_mlp(4)
    X = batches((5, 4, 4, 3), 6, 1)[0][0]
    proof = zk.prove_inference(model, X)
    assert zk.verify_inference(zk.InferenceProof.from_bytes(proof.to_bytes()))
    assert proof.statement.architecture.biases == (True, False, True)


def test_wrong_bias_update_broadcast_or_gradient_is_rejected(honest_bias):
    _, _, circuit, values, _, _ = honest_bias

    def next_bias(v):
        v[TensorKind.VALUE(1, "0.bias")][0] += 1
    assert "linear relations" in _cheat(circuit, values, next_bias)

    def broadcast(v):  # Z and the broadcast move together: only the broadcast relation sees it
        z = np.array(v[TensorKind.VALUE(0, "0.z")])
        i, j = map(int, np.argwhere(z < 0)[0])  # stays negative: ReLU and its gradient unchanged
        v[TensorKind.BROADCAST(0, "0.biased")] = np.array(v[TensorKind.BROADCAST(0, "0.biased")])
        v[TensorKind.BROADCAST(0, "0.biased")][i, j] -= 1 << (circuit.param_scale - circuit.scale_bits)
        v[TensorKind.VALUE(0, "0.z")][i, j] -= 1  # P + 2^S BB + 2^(p-1) = 2^p Z + R still holds
        _redecompose(circuit, v, _z_check(circuit))  # and so does the range check of Z - 1
    assert "einsum" in _cheat(circuit, values, broadcast)

    def gradient(v):  # a bias gradient that is not the batch sum of G
        v[TensorKind.VALUE(0, "0.bias.grad")][0] += 1 << 20
    _cheat(circuit, values, gradient)


def test_the_architecture_is_validated(honest_bias):
    """The statement's architecture is parsed bounded: bytes that are no forward graph, or another
    architecture than the commitments have, are refused."""
    *_, proof, _ = honest_bias
    data = proof.to_bytes()
    arch = proof.statement.architecture.data
    at = data.index(arch)
    with pytest.raises(zk.ProofFormatError, match="architecture"):
        zk.TrainingProof.from_bytes(data[:at] + bytes(len(arch)) + data[at + len(arch):])
    other = zk.Architecture.mlp((5, 4, 4, 3), (True, True, True), 16, proof.statement.param_scale).data
    assert len(other) != len(arch) or other != arch
    with pytest.raises(zk.ProofFormatError):
        zk.TrainingProof.from_bytes(data[:at - 4] + len(other).to_bytes(4, "little") + other + data[at + len(arch):])


def assert_trained_like_torch(model, data, trained, slack=0.0, **sgd):
    """``trained`` is within 0.1 % of each tensor's largest change (plus ``slack``) of float64 torch
    SGD (options ``sgd``) from ``model`` on the batches ``data``."""
    ref = copy.deepcopy(model).double()
    optimizer = torch.optim.SGD(ref.parameters(), **sgd)
    for x, y in data:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(ref(torch.from_numpy(x).double()), torch.from_numpy(y).double()).backward()
        optimizer.step()
    for name, want in ref.state_dict().items():
        got, before = trained.state_dict()[name].double(), model.state_dict()[name].double()
        assert float((got - want).abs().max()) <= 1e-3 * float((want - before).abs().max()) + slack, name


@pytest.fixture(scope="module")
def honest_momentum():
    widths, options = (5, 4, 3), dict(momentum=0.9, dampening=0.1, weight_decay=0.01)
    model = training.synthetic_mlp(widths, seed=3, bias=True)
    data = batches(widths, 3, 3, seed=3)
    circuit, values, _ = training.training_witness(model, data, 0.1, sgd=training.SGDOptions(**options))
    return model, data, options, circuit, values, zk.prove_training(model, data, 0.1, **options)


def test_sgd_with_momentum_and_weight_decay_is_proved_like_torch(honest_momentum):
    """The momentum buffer is committed from step to step; the proved model is torch's SGD."""
    model, data, options, _, _, result = honest_momentum
    proof = zk.TrainingProof.from_bytes(result.proof.to_bytes())
    assert zk.verify_training(proof)
    assert (proof.statement.momentum, proof.statement.dampening, proof.statement.weight_decay) == (0.9, 0.1, 0.01)
    assert "momentum 0.9, dampening 0.1, weight decay 0.01" in proof.statement.describe()
    assert_trained_like_torch(model, data, result.model, lr=0.1, **options)
    # a statement without the options does not verify the same proof
    plain = dataclasses.replace(proof.statement, momentum=0.0)
    with pytest.raises(zk.VerificationError):
        zk.verify_training(dataclasses.replace(proof, statement=plain))


def test_a_doctored_momentum_buffer_is_rejected(honest_momentum):
    *_, circuit, values, _ = honest_momentum
    key = TensorKind.VALUE(1, "0.weight.momentum_buffer")
    assert key in values

    def edit(v):  # a buffer off by one: the momentum division or the next update breaks
        v[key] = np.array(v[key], copy=True)
        v[key][0, 0] += 1
    assert "linear relations" in _cheat(circuit, values, edit)


def test_bad_sgd_options_are_refused():
    with pytest.raises(ValueError, match="momentum"):
        zk.prove_training(mlp((3, 2)), batches((3, 2), 2, 1), 0.1, momentum=-0.5)
    with pytest.raises(circuits.UnsupportedOp, match="nesterov"):
        circuits.training_graph(circuits.mlp_graph((3, 2), False, 2), 0.1, momentum=0.9, nesterov=True)


class _Residual(torch.nn.Module):
    """Linear, then a residual block ``h + relu(block(h))`` with a ReLU after it, then Linear."""

    def __init__(self):
        super().__init__()
        self.inp, self.block, self.out = torch.nn.Linear(5, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        return self.out(torch.relu(h + torch.relu(self.block(h))))


class _Pooled(torch.nn.Module):
    """Average pooling of the features between two Linear layers."""

    def __init__(self):
        super().__init__()
        self.inp, self.pool, self.out = torch.nn.Linear(5, 8), torch.nn.AvgPool1d(2), torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.out(self.pool(torch.relu(self.inp(x))))


@pytest.mark.parametrize("make", [_Residual, _Pooled])
def test_models_beyond_mlps_are_proved_like_torch(make):
    """Any model circuits traces: the statement holds its forward graph; the proof verifies from
    the public files and the proved model is torch's SGD (and circuits' fixed point bit for bit)."""
    torch.manual_seed(0)
    model = make()
    data = batches((5, 3), 4, 2, seed=1)
    result = zk.prove_training(model, data, 0.1, momentum=0.5)
    proof = zk.TrainingProof.from_bytes(result.proof.to_bytes())
    assert zk.verify_training(proof)
    assert proof.statement.widths is None and "graph 5 -> 3" in proof.statement.describe()
    assert_trained_like_torch(model, data, result.model, 2.0 ** -14, lr=0.1, momentum=0.5)
    with pytest.raises(ValueError, match="no Sequential MLP"):
        result.opening.to_torch()
    assert zk.verify_inference(zk.prove_inference(result.opening, data[0][0]), model=result.proof.final_model)


def test_a_model_file_carries_the_momentum_buffers(honest_momentum):
    """The final model of a run with momentum holds the buffers (public commitments, secret
    integers): files round-trip, a next proof resumes from them, and a state table that claims
    more tensors than parameters is refused before allocating."""
    *_, result = honest_momentum
    opening = zk.ModelOpening.from_bytes(result.opening.to_bytes())
    commitment = opening.commitment
    assert [n for n, _ in commitment.state] == sorted(f"{p}.momentum_buffer" for p, _ in commitment.architecture.params)
    assert commitment.to_bytes() == result.proof.final_model.to_bytes()
    assert set(opening.state_integers()) == {n for n, _ in commitment.state}
    _, batches_, options, *_ = honest_momentum
    resumed = zk.prove_training(opening, batches_[:1], 0.1, **options)
    assert resumed.proof.statement.resumed and zk.verify_training(resumed.proof, initial_model=commitment)
    assert resumed.proof.statement.initial_model.to_bytes() == result.proof.final_model.to_bytes()
    with pytest.raises(ValueError, match="train it with momentum"):
        zk.prove_training(opening, batches_[:1], 0.1)
    raw = commitment.to_bytes()
    at = raw.index(commitment.state[0][0].encode()) - 1 - 4  # the state count, before the first name
    with pytest.raises(zk.ProofFormatError, match="optimizer state tensors"):
        zk.ModelCommitment.from_bytes(raw[:at] + (1 << 30).to_bytes(4, "little") + raw[at + 4:])


def test_parameters_that_outgrow_their_initial_width_are_proved():
    """The statement's parameter width holds the parameters of every step (each step range-checks
    the ones it makes): a run whose parameters grow far past the initial ones' width (tiny initial
    weights and biases, far targets) is proved, and verifies."""
    from zk import bits

    model = training.synthetic_mlp((4, 3, 2), 3, bias=True)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e-3)
    initial = [p.detach().numpy().astype(np.float64) for p in model.parameters()]
    x, y = torch.ones((4, 4)), torch.full((4, 2), 8.0)
    result = zk.prove_training(model, [(x, y)] * 3, 0.1, steps=3)
    assert zk.verify_training(result.proof)
    stmt = result.proof.statement
    initial_width = bits.signed_width([np.rint(p * 2.0 ** stmt.param_scale).astype(np.int64) for p in initial])
    final_width = bits.signed_width(list(result.opening.integers().values()))
    assert final_width > initial_width + 4 and stmt.param_bits >= final_width


def test_derived_commitments_are_the_witness_commitments():
    """Each tensor the prover derives from a linear relation (instead of an MSM over its entries)
    is read by that relation alone and is no statement tensor; its derived commitment is the Hyrax
    commitment of its witness under the derived blinds, and the proof verifies."""
    widths = (5, 4, 3)
    circuit, values, _ = training.training_witness(training.synthetic_mlp(widths, bias=True),
                                                   training.synthetic_batches(widths, 3, 2), 0.1)
    derived = circuit.derived
    statement = {k for k, _ in circuit.statement_keys}
    reads = [k for rel in circuit.linear_relations for _, k in rel.terms]
    assert derived and not statement & set(derived)
    for rel in circuit.linear_relations:  # a range check's or remainder's top limb where there is one
        k = next((k for k in derived if derived[k] is rel), None)
        limbs = [t for _, t in rel.terms if t.kind in (TensorKind.LIMBS, TensorKind.REMAINDER_LIMBS)]
        if k is not None and limbs and "SGD" in rel.equation:
            assert k == max(limbs, key=lambda t: t.plane), rel.equation
    for k, rel in derived.items():
        assert reads.count(k) == 1 and k in {t for _, t in rel.terms}
    key = commit.DEFAULT_KEY
    tensors = commit_tensors(circuit, values, circuit.statement_keys + [(k, s) for k, s in circuit.proof_keys
                                                                         if k not in derived], key, CPU)
    for k, (com, opening) in derive_tensors(circuit, values, tensors, key, CPU).items():
        shape = circuit.shapes[k]
        c = instance_col_vars(sum(mle.dim_bits(shape)))
        assert com == commit.commit(pad(values[k], shape), key, blinds=opening.blinds, col_vars=c)[0], k
    proof = training.prove_witness(circuit, values, 0.1)
    assert zk.verify_training(zk.TrainingProof.from_bytes(proof.to_bytes()))
