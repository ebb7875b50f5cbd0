"""Junk in the power-of-two padding: hidden features, hidden units, hidden samples."""
import dataclasses

import numpy as np
import pytest

import zk
from zk import commit, einsum, fac4dnn, training, witness
from zk.keys import TensorKind
from zk.stack import stack

from forge import forge, honest_witness, padded, rejection


def test_hidden_features_and_units(monkeypatch):
    """An 8-8-3 MLP trained on 8 features claimed as "MLP 6-5-3": the extra features live in the
    padding columns of X and W1, the extra units in W1's padding rows and W2's padding columns."""
    circuit, values = honest_witness((8, 8, 3), 4)
    claimed = dataclasses.replace(circuit, architecture=zk.Architecture.mlp((6, 5, 3), (), 16, circuit.param_scale))
    proof = forge(claimed, values)
    assert "zero padding of the statement tensors" in rejection(proof)
    # the forgery is otherwise perfect: without the zero-padding relation it would verify
    monkeypatch.setattr(fac4dnn.Circuit, "padding_groups", lambda self: [])
    assert zk.verify_training(forge(claimed, values))


def test_hidden_sample():
    """A run on 4 samples per batch claimed as "batch 3": the 4th sample sits in the padding row
    of X_t and Y_t (3 outputs: the loss divides by 12, claimed 9, remainders of one width)."""
    circuit, values = honest_witness((4, 3, 3), 4, steps=2)
    claimed = dataclasses.replace(circuit, batch=3, rows=(3, 3))
    assert "zero padding" in rejection(forge(claimed, values))


@pytest.mark.parametrize("key", [TensorKind.VALUE(0, "x"), TensorKind.VALUE(0, "y"), TensorKind.VALUE(0, "0.weight"), TensorKind.VALUE(1, "2.weight"),
                                 TensorKind.VALUE(0, "2.bias"), TensorKind.VALUE(1, "0.bias")])
def test_junk_in_the_padding_of_each_statement_tensor(key):
    circuit, values = honest_witness((3, 3, 3), 3, bias=True)
    padded(values, key, circuit.shapes[key])[(-1,) * len(circuit.shapes[key])] = 5
    assert "zero padding" in rejection(forge(circuit, values))


def test_junk_in_the_padding_of_an_inference_output():
    model = training.synthetic_mlp((3, 3, 3))
    circuit, values = training.inference_witness(model, np.ones((3, 3)))
    out = TensorKind.VALUE(0, "2.z")
    assert out in [k for _, keys in circuit.padding_groups() for k in keys]
    padded(values, out, circuit.shapes[out])[3, 3] = 9
    assert "zero padding" in rejection(forge(circuit, values, lr=0.0), zk.verify_inference)


def _einsum_with(a_padded, b_padded, shapes, spec="ij,jk->ik", skip_padding=False, c=None):
    """An einsum proof for ``shapes`` whose committed tensors are the padded ones given (the real
    commitment and relation provers; by default C = einsum of the padded operands, so the
    relation holds over the padded tensors)."""
    parsed = zk.einsum.parse_einsum(spec, *shapes)
    if c is None:
        c = np.einsum(spec, a_padded, b_padded)[:parsed.output_shape[0], :parsed.output_shape[1]]
    committed = [commit.commit(x) for x in (a_padded, b_padded, c)]
    coms = tuple(com for com, _ in committed)
    t = zk.transcript.Transcript(einsum.DOMAIN)
    einsum._absorb_statement(t, str(parsed), shapes, coms)
    ops = [] if skip_padding else einsum.padded_operands(shapes)
    evals = zk.openings.Openings()
    pads = tuple(zk.padding.prove(stack([coms[k]], [committed[k][1]]), [shapes[k]], einsum._padded(shapes[k]), t,
                                  evals)
                 for k in ops)
    rel = einsum.prove_relation(parsed, [o for _, o in committed], coms, t, evals)
    return einsum.EinsumProof(str(parsed), shapes, coms, pads, rel, evals.prove(t))


def test_einsum_junk_in_operand_padding(monkeypatch):
    """A(2x3) with junk in its padding column and B(3x2) in its padding row: C != A.B."""
    rng = np.random.default_rng(0)
    a, b = np.zeros((2, 4), np.int64), np.zeros((4, 2), np.int64)
    a[:, :3], b[:3] = rng.integers(-9, 9, (2, 3)), rng.integers(-9, 9, (3, 2))
    a[:, 3], b[3] = 7, 11
    proof = _einsum_with(a, b, ((2, 3), (3, 2)))
    assert "zero padding of operand A" in rejection(proof, zk.verify_einsum)
    assert "zero padding" in rejection(zk.EinsumProof.from_bytes(proof.to_bytes()), zk.verify_einsum)
    # dropping the padding proofs is refused by count, and without the relation the forgery verifies
    bare = _einsum_with(a, b, ((2, 3), (3, 2)), skip_padding=True)
    assert "zero-padding proofs" in rejection(bare, zk.verify_einsum)
    monkeypatch.setattr(einsum, "padded_operands", lambda shapes: [])
    assert zk.verify_einsum(bare)


def test_einsum_junk_in_the_result_padding_is_rejected_by_the_relation():
    """C's padding is forced by the operands' (module docstring of zk.einsum)."""
    rng = np.random.default_rng(1)
    a, b = np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64)
    a[:3, :3], b[:3, :3] = rng.integers(-9, 9, (3, 3)), rng.integers(-9, 9, (3, 3))
    c = a @ b
    assert zk.verify_einsum(_einsum_with(a, b, ((3, 3), (3, 3)), c=c))
    c[3, 3] = 1
    assert "einsum" in rejection(_einsum_with(a, b, ((3, 3), (3, 3)), c=c), zk.verify_einsum)


def test_junk_in_the_padding_rows_of_a_smaller_last_batch():
    """The 2-row last batch is proved with its loss divided by 2 x 3 (torch's mean over real rows);
    a row smuggled into its padding is caught by the zero-padding proof."""
    rng = np.random.default_rng(1)
    _, dataset = zk.commit_dataset(rng.standard_normal((10, 5)), rng.standard_normal((10, 3)), 4)
    _, model = zk.commit_model(training.synthetic_mlp((5, 4, 3), seed=2, bias=True), lr=0.05)
    r = witness.training_run(model, dataset, [0, 1, 2], 0.05, commit.DEFAULT_KEY)
    assert r.circuit.rows == (4, 4, 2)
    assert next(n for n in r.circuit.graph(2).nodes if n.op == "loss_grad").attrs["count"] == 6
    values = {k: np.array(v, copy=True) for k, v in r.values.items()}
    padded(values, TensorKind.VALUE(2, "x"), r.circuit.shapes[TensorKind.VALUE(2, "x")])[3, 0] = 7
    assert "zero padding" in rejection(forge(r.circuit, values, 0.05))
