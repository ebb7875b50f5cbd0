"""Malicious provers against the circuit lowered from the circuits Graph (zk.lower).

Two kinds of forgery, both proved by our own prover (``forge``):

- *consistent* forgeries: the step's fixed-point run is redone with one op's rule doctored
  (:func:`rerun`), and every committed tensor is refilled from the doctored run by the lowering's
  own witness rules, so every relation holds except those of the doctored op;
- *local* forgeries: junk written into one committed tensor (often into its padding), with its
  range-check limbs recomputed so that only the relation that defines the tensor can catch it;
- *oversized limbs*: a value outside its range held by a limb outside its table (or a sign plane
  outside ``[0, 2)``), so that every linear relation holds and only the range lookups can catch it
  (our prover's own refusal skipped: :func:`forge.lenient_multiplicities`).

Each test names the check that must reject the forgery.
"""
import dataclasses

import numpy as np
import pytest

import circuits
import zk
from circuits import UnsupportedOp, interpret
from zk import field, lower, training
from zk.keys import TensorKind as K
from zk.lower import pad

from forge import forge, honest_witness, padded, range_check_of, redecompose, rejection

LINEAR = "linear relations"


# ----------------------------------------------------------------------------------------
# tools
# ----------------------------------------------------------------------------------------
_decompose = lower.RangeCheck.decompose


def lenient_split_limbs(values, widths, what):
    """The attacker's limbs: those of each value modulo ``2^sum(widths)`` (what a prover can commit
    to when the value is out of range: every limb is in its table, the recomposition then fails)."""
    a = np.asarray(values).astype(object) % (1 << sum(widths))
    out, shift = [], 0
    for b in widths:
        out.append(np.asarray((a >> shift) & ((1 << b) - 1)).astype(np.int64))  # (0-d: an int)
        shift += b
    return out


def lenient_decompose(check, values, what):
    """:meth:`zk.lower.RangeCheck.decompose` of the in-range value congruent to each value modulo
    ``2^width`` (the limbs and sign plane in their tables, the recomposition failing)."""
    top = 1 << (check.width - 1)
    a = np.asarray(values).astype(object)
    return _decompose(check, (a - check.offset + top) % (2 * top) + check.offset - top, what)


def rerun(circuit, values, doctor, graph_of=None, after=None):
    """``values`` re-derived from their own data, targets and initial parameters, every step run
    by :func:`circuits.run` with ``doctor(t, node, args, out)`` free to change each op's outputs
    ``out`` (a dict) in place, and every committed tensor refilled by the lowering's witness rules
    (limbs of out-of-range values: those of their residue, :func:`lenient_split_limbs`,
    :func:`lenient_decompose`).
    ``graph_of(t)``: the graph step ``t`` runs (default: the circuit's own); ``after(t, values)``
    may change the witness after step ``t`` (e.g. what it carries to the next step)."""
    original = interpret._step_fixed
    step = {"t": 0}

    def doctored(node, graph, args):
        out = original(node, graph, args)
        doctor(step["t"], node, args, out)
        return out

    values = dict(values)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interpret, "_step_fixed", doctored)
        mp.setattr(lower, "split_limbs", lenient_split_limbs)
        mp.setattr(lower.RangeCheck, "decompose", lenient_decompose)
        _steps(circuit, values, step, graph_of, after)
    return values


def _steps(circuit, values, step, graph_of, after):
    for t in range(circuit.steps):
        step["t"] = t
        graph = graph_of(t) if graph_of else circuit.graph(circuit.rows[t], t == 0 or not circuit.momentum)
        inputs = {}
        for x in graph.inputs:
            key = K.VALUE(t, x.name)
            v = pad(values[key], circuit.shapes[key])  # a graph of more rows reads zero rows
            inputs[x.name] = v[tuple(slice(0, d) for d in x.shape)].astype(np.int64)
        run = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        values.update(circuit.step_witness(t, run))
        if after:
            after(t, values)


def write(circuit, values, key, index, value, replanes=True):
    """``values[key][index] = value`` (padding included) with ``key``'s range-check limbs (and sign
    plane) recomputed, so its own range check still holds."""
    a = padded(values, key, circuit.shapes[key])
    a[index] = value
    if replanes and key.kind is K.VALUE:
        redecompose(circuit, values, key)
    return values


def limbs_of(circuit, kind, tensor, step=0):
    """``[(key, bits)]`` of the looked-up tensors of ``kind`` for ``tensor`` at ``step``, limb 0 first."""
    keys = sorted(k for k in circuit.lookup_bits if (k.kind, k.step, k.tensor) == (kind, step, tensor))
    return [(k, circuit.lookup_bits[k]) for k in keys]


def set_limbs(circuit, values, kind, tensor, ints, split=lower.split_limbs, step=0):
    """Write the limbs of kind ``kind`` of ``tensor`` as ``split`` decomposes the (padded) ``ints``."""
    limbs = limbs_of(circuit, kind, tensor, step)
    assert limbs, (kind, tensor)
    values.update(zip([k for k, _ in limbs], split(ints, [b for _, b in limbs], tensor)))
    return values


def top_heavy_split_limbs(values, widths, what):
    """The attacker's limbs of out-of-range values that keep every recomposition: each limb but the
    top one as the value's, the top one whatever is left (at or above ``2^bits``, or negative)."""
    a = np.asarray(values).astype(object)
    out, shift = [], 0
    for b in widths[:-1]:
        out.append(np.asarray((a >> shift) & ((1 << b) - 1), dtype=object))
        shift += b
    out.append(np.asarray(a >> shift, dtype=object))
    return out


def _table(circuit, values, key):
    if key.kind in (K.ONES, K.CONST):
        return np.asarray(circuit.public_value(key)).astype(object)
    return pad(values[key], circuit.shapes[key]).astype(object)


_MOD = np.frompyfunc(lambda x: int(x) % field.R, 1, 1)


def violations(circuit, values) -> set:
    """The relations of ``circuit`` that ``values`` violates, evaluated directly (mod r): what the
    proof must catch. ``{"linear: <equation>", "einsum: <output>", "zkReLU: <h>",
    "lookup: <limb or sign plane>" (an entry outside ``[0, 2^bits)``), "padding: <statement tensor>"}``."""
    out = set()
    v = {}

    def table(key):
        if key not in v:
            v[key] = _table(circuit, values, key)
        return v[key]
    for rel in circuit.linear_relations:
        total = sum(c * table(k) for c, k in rel.terms) - rel.const
        if (_MOD(total) != 0).any():
            out.add(f"linear: {rel.equation}")
    for spec, instances in circuit.einsum_groups():
        ins, res = spec.split("->")
        plain = ",".join(x[1:] for x in ins.split(",")) + "->" + res[1:]
        for a, b, c in instances:
            diff = np.einsum(plain, table(a), table(b)) - table(c)
            if (_MOD(diff) != 0).any():
                out.add(f"einsum: {c.tensor}")
    for group in circuit.relu_groups():
        for h, g, s, z, gh in group:
            ok = not _MOD(table(h) - (1 - table(s)) * table(z)).any()
            ok &= g is None or not _MOD(table(g) - (1 - table(s)) * table(gh)).any()
            if not ok:
                out.add(f"zkReLU: {h.tensor}")
    for k, b in circuit.lookup_bits.items():
        if (_MOD(table(k)) >= 1 << b).any():
            out.add(f"lookup: {k}")
    for _, keys in circuit.padding_groups():
        for k in keys:
            inside = np.zeros(circuit.shapes[k], bool)
            inside[tuple(slice(0, d) for d in circuit.true_shape(k))] = True
            if _MOD(table(k)[~inside]).any():
                out.add(f"padding: {k.tensor}")
    return out


def field_rejection(circuit, values, expect, verify=zk.verify_training, lr=None, violated=None):
    """Prove the forgery with our own prover; the verifier must reject it with a message holding
    ``expect`` (one string or several); ``violated``: exactly the relations the witness violates."""
    found = violations(circuit, values)
    print("violated:", sorted(found))
    if violated is not None:
        assert found == set(violated), found
    assert found, "the forgery violates no relation: a false statement would be a true one"
    msg = rejection(forge(circuit, values, lr=lr), verify)
    print("rejected:", msg)
    assert any(e in msg for e in ((expect,) if isinstance(expect, str) else expect)), msg
    return msg


@pytest.fixture(scope="module")
def base():
    """One SGD step of a biased 3-3-2 MLP on a batch of 3 rows: the batch and the hidden width pad
    to 4, so nearly every tensor has padding entries."""
    return honest_witness((3, 3, 2), 3, bias=True)


def _copy(witness):
    circuit, values = witness
    return circuit, {k: np.array(v, copy=True) for k, v in values.items()}


@pytest.fixture
def w(base):
    return _copy(base)


def test_rerun_reproduces_the_honest_witness(w):
    circuit, values = w
    again = rerun(circuit, values, lambda *a: None)
    for k, v in values.items():
        np.testing.assert_array_equal(pad(again[k], circuit.shapes[k]), pad(v, circuit.shapes[k]), err_msg=str(k))
    assert violations(circuit, again) == set()


def _doctor(op, change, step=None, output=None):
    """A doctor for :func:`rerun`: ``change(args, out, node)`` on the nodes of ``op`` (at ``step``,
    of ``output`` when given)."""
    def doctor(t, node, args, out):
        if node.op == op and (step is None or t == step) and (output is None or node.output == output):
            change(args, out, node)
    return doctor


def _first_index(a, where):
    """The index of the first entry of ``a`` where ``where(a)`` holds."""
    idx = np.argwhere(where(np.asarray(a)))
    assert len(idx), "no entry to attack"
    return tuple(idx[0])


# ----------------------------------------------------------------------------------------
# ReLU (zkReLU): h = (1 - s) z, g = (1 - s) g_h, s the sign plane of z - 1
# ----------------------------------------------------------------------------------------
def test_relu_passing_negative_preactivations(w):
    """h = z everywhere (a linear 'ReLU'): every other relation refilled to match."""
    circuit, values = w
    assert (np.asarray(values[K.VALUE(0, "0.z")]) < 0).any()

    def identity(args, out, node):
        out[node.output] = args[0].copy()
    forged = rerun(circuit, values, _doctor("relu", identity))
    assert "zkReLU" in field_rejection(circuit, forged, "zkReLU")


def test_relu_grad_through_a_negative_preactivation(w):
    """g = g_h where z < 0 (a leaky backward pass), the forward pass honest."""
    circuit, values = w

    def leaky(args, out, node):
        out[node.output] = args[0].copy()
    forged = rerun(circuit, values, _doctor("relu_grad", leaky))
    assert not np.array_equal(forged[K.VALUE(1, "0.weight")], values[K.VALUE(1, "0.weight")])
    field_rejection(circuit, forged, "zkReLU")


def _zero_preactivation_witness():
    """A bias-free 3-3-2 step whose first real row of X is zero: its pre-activations are exactly 0."""
    model = training.synthetic_mlp((3, 3, 2), seed=1)
    (x, y), = training.synthetic_batches((3, 3, 2), 3, 1, seed=1)
    x[0] = 0
    circuit, values, _ = training.training_witness(model, [(x, y)], 0.1, refuse_underflow=False)
    values = {k: np.array(v, copy=True) for k, v in values.items()}
    assert (np.asarray(values[K.VALUE(0, "0.z")])[0] == 0).all()
    return circuit, values


def test_relu_grad_at_zero_follows_torch():
    """torch's relu backward at z = 0 is 0 ([z > 0]); a prover using [z >= 0] is rejected by
    zkReLU, and one that also flips the sign plane of z - 1 = -1 to 'positive' by the
    recomposition of z's range check."""
    circuit, values = _zero_preactivation_witness()
    gh = np.asarray(values[K.VALUE(0, "2.in.grad")])
    assert (gh[0] != 0).any() and (np.asarray(values[K.VALUE(0, "1.grad")])[0] == 0).all()

    def at_zero_passes(args, out, node):
        g, z = args
        out[node.output] = np.where(z >= 0, g, 0).astype(g.dtype)
    forged = rerun(circuit, values, _doctor("relu_grad", at_zero_passes))
    assert (np.asarray(forged[K.VALUE(0, "1.grad")])[0] != 0).any()
    field_rejection(circuit, forged, "zkReLU", violated={"zkReLU: 1.relu"})
    sign = range_check_of(circuit, K.VALUE(0, "0.z")).sign_plane
    forged[sign] = np.array(forged[sign], copy=True)
    forged[sign][0] = 0  # z = 0 on row 0 claimed positive; h = z = 0 either way
    field_rejection(circuit, forged, LINEAR, violated={"linear: range check of 0.z (rescaled by 2^26)"})


def test_sign_plane_inconsistent_with_z(w):
    """A positive z given the sign plane of a negative one (h = 0 and g = 0 there, refilled
    downstream): the recomposition of z - 1 cannot hold (top weight -2^(w-1), unique two's
    complement), whatever the lower planes."""
    circuit, values = w
    i = _first_index(values[K.VALUE(0, "0.z")], lambda a: a > 1)

    def kill(args, out, node):
        out[node.output] = np.array(out[node.output], copy=True)
        out[node.output][i] = 0
    forged = rerun(circuit, values, lambda t, node, args, out: kill(args, out, node)
                   if node.op in ("relu", "relu_grad") else None)
    sign = range_check_of(circuit, K.VALUE(0, "0.z")).sign_plane
    forged[sign] = np.array(forged[sign], copy=True)
    forged[sign][i] = 1
    field_rejection(circuit, forged, LINEAR, violated={"linear: range check of 0.z (rescaled by 2^26)"})


def test_a_sign_plane_of_two_negates_a_relu(w):
    """s = 2 at a positive z (where s = 0): zkReLU holds with h = -z and g = -g_h (a 'ReLU' that
    negates, refilled downstream), and the recomposition of z - 1 = -2^(w-1) s + limbs too, its
    top limb taking the extra 2^w: only the range lookups reject it (the sign plane outside
    [0, 2), the top limb outside its table)."""
    circuit, values = w
    key = K.VALUE(0, "0.z")
    i = _first_index(values[key], lambda a: a > 1)

    def negate(t, node, args, out):
        if node.op in ("relu", "relu_grad") and node.inputs[-1] == "0.z":
            out[node.output] = np.array(out[node.output], dtype=object)
            out[node.output][i] = -args[0][i]
    forged = rerun(circuit, values, negate)
    check = range_check_of(circuit, key)
    sign = padded(forged, check.sign_plane, circuit.shapes[key]).astype(object)
    assert sign[i] == 0
    sign[i] = 2
    forged[check.sign_plane] = sign
    low = pad(forged[key], circuit.shapes[key]).astype(object) - check.offset + (sign << (check.width - 1))
    limbs = check.limbs[:-1]
    forged.update(zip([k for k, _ in limbs], top_heavy_split_limbs(low, [b for _, b in limbs], "z")))
    field_rejection(circuit, forged, "range lookups", violated={f"lookup: {check.sign_plane}", f"lookup: {limbs[-1][0]}"})


# ----------------------------------------------------------------------------------------
# rescale: x + 2^(k-1) = 2^k q + R, R in [0, 2^k) by its k bits of limbs, q range-checked
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [-1, 1])
def test_rescale_remainder_outside_its_range(w, delta):
    """q one less with R = R + 2^k (R >= 2^k: the remainder equal to or above the divisor), or q
    one more with R - 2^k < 0: the equation holds over the integers, k bits of limbs cannot hold R
    (the attacker's limbs are R's residue modulo 2^k, so the division fails)."""
    circuit, values = w
    k = next(n for n in circuit.graph(3).nodes if n.output == "2.in.grad").attrs["bits"]

    def shift(args, out, node):
        q, r = (np.array(out[x], dtype=object) for x in (node.output, node.output + ".rem"))
        q[0, 0] += delta
        r[0, 0] -= delta << k
        out[node.output], out[node.output + ".rem"] = q, r
    forged = rerun(circuit, values, _doctor("rescale", shift, output="2.in.grad"))
    assert forged[K.VALUE(0, "2.in.grad")][0, 0] == values[K.VALUE(0, "2.in.grad")][0, 0] + delta
    field_rejection(circuit, forged, LINEAR,
                    violated={"linear: rescale 2.in.grad (2.in.grad.raw + 2^25 = 2^26 2.in.grad + R)"})
    # the honest prover derives a remainder limb's commitment from this relation: the forged table no longer opens
    assert any(k.kind is K.REMAINDER_LIMBS and k.tensor == "2.in.grad" for k in circuit.derived)
    rejection(forge(circuit, forged, commit_all=False))


@pytest.mark.parametrize("delta", [-1, 1])
def test_rescale_remainder_held_by_an_oversized_top_limb(w, delta):
    """The same forgery with R's top limb holding what its k bits cannot (R + 2^k: a top limb of
    2^b or more; R - 2^k: a negative one): the division and every recomposition hold, only the
    range lookups reject it (the top limb here is narrower than the table: its scaled column)."""
    circuit, values = w
    k = next(n for n in circuit.graph(3).nodes if n.output == "2.in.grad").attrs["bits"]
    limbs = limbs_of(circuit, K.REMAINDER_LIMBS, "2.in.grad")
    top, b = limbs[-1]
    assert sum(w for _, w in limbs) == k and b < circuit.limb_bits

    seen = {}

    def shift(args, out, node):
        q, r = (np.array(out[x], dtype=object) for x in (node.output, node.output + ".rem"))
        q[0, 0] += delta
        r[0, 0] -= delta << k
        out[node.output], out[node.output + ".rem"] = q, r
        seen["rem"] = r
    forged = rerun(circuit, values, _doctor("rescale", shift, output="2.in.grad"))
    rem = pad(seen["rem"], circuit.shapes[K.VALUE(0, "2.in.grad")], 1 << (k - 1))  # 2^(k-1) on padding
    set_limbs(circuit, forged, K.REMAINDER_LIMBS, "2.in.grad", rem, top_heavy_split_limbs)
    assert int(forged[top][0, 0]) == (int(values[top][0, 0]) + (1 << b) if delta == -1 else
                                      int(values[top][0, 0]) - (1 << b))
    field_rejection(circuit, forged, "range lookups", violated={f"lookup: {top}"})


# ----------------------------------------------------------------------------------------
# loss gradient: 2^(S+1) (out - y) + N/2 = N G + RL, RL in [0, N) (N = 6: not a power of two)
# ----------------------------------------------------------------------------------------
def test_loss_remainder_equal_to_the_divisor(w):
    """G one less and RL = RL + N (>= N, below 2^3 so its limbs hold it): only the complement
    limbs of N - 1 - RL catch it."""
    circuit, values = w
    n = next(n for n in circuit.graph(3).nodes if n.op == "loss_grad").attrs["count"]
    assert n == 6

    def shift(args, out, node):
        q, r = (np.array(out[x], dtype=object) for x in (node.output, node.output + ".rem"))
        i = _first_index(r, lambda a: a + n < 8)
        q[i] -= 1
        r[i] += n
        out[node.output], out[node.output + ".rem"] = q, r
    forged = rerun(circuit, values, _doctor("loss_grad", shift))
    field_rejection(circuit, forged, LINEAR, violated={"linear: range check of the remainder of loss.grad"})


def test_loss_gradient_on_a_padding_row(w):
    """A gradient on the padding row (row 3 of a batch of 3): G = 1 there with RL = N/2 - N < 0."""
    circuit, values = w
    key = K.VALUE(0, "loss.grad")
    write(circuit, values, key, (3, 0), 1)
    rem = padded(values, K.REMAINDER(0, "loss.grad"), circuit.shapes[key]).astype(object)
    rem[3, 0] -= 6
    values[K.REMAINDER(0, "loss.grad")] = rem
    for kind, r in ((K.REMAINDER_LIMBS, rem), (K.COMPLEMENT_LIMBS, 5 - rem)):
        set_limbs(circuit, values, kind, "loss.grad", r, lenient_split_limbs)
    found = violations(circuit, values)
    assert "linear: range check of the remainder of loss.grad" in found, found
    field_rejection(circuit, values, LINEAR)


# ----------------------------------------------------------------------------------------
# SGD: lr_q g + 2^(k-1) = 2^k (w - w') + R, the next parameters w' range-checked
# ----------------------------------------------------------------------------------------
SGD_W0 = "linear: SGD update of 0.weight (lr_q g + 2^40 = 2^41 (w - w') + R)"


@pytest.mark.parametrize("change", ["off by one", "rounded the other way", "did not move"])
def test_an_update_that_is_not_lr_times_the_gradient(w, change):
    circuit, values = w
    k = 41

    def doctor(args, out, node):
        wt, g = args
        nxt, rem = np.array(out[node.output], dtype=object), np.array(out[node.output + ".rem"], dtype=object)
        if change == "off by one":
            nxt[0, 0] -= 1  # U + 1, R unchanged
        elif change == "rounded the other way":
            nxt[0, 0] -= 1
            rem[0, 0] -= 1 << k
        else:  # U = 0: the weight did not move, R = lr_q g + 2^(k-1)
            nxt = np.array(wt, dtype=object)
            rem = np.asarray(g, dtype=object) * node.attrs["lr_q"] + (1 << (k - 1))
        out[node.output], out[node.output + ".rem"] = nxt, rem
    forged = rerun(circuit, values, _doctor("sgd_update", doctor, output="0.weight.next"))
    if change == "did not move":
        np.testing.assert_array_equal(forged[K.VALUE(1, "0.weight")], values[K.VALUE(0, "0.weight")])
    field_rejection(circuit, forged, LINEAR, violated={SGD_W0})
    assert any(k.kind is K.REMAINDER_LIMBS and k.tensor == "0.weight.next" for k in circuit.derived)  # rejected too
    rejection(forge(circuit, forged, commit_all=False))


def test_final_weights_from_another_run(w):
    """The final weights of another run (another seed's data), the next weights refilled."""
    circuit, values = w
    _, other = honest_witness((3, 3, 2), 3, bias=True, seed=5)
    for name in circuit.params:
        values[K.VALUE(1, name)] = other[K.VALUE(1, name)] - other[K.VALUE(0, name)] + values[K.VALUE(0, name)]

    def refill(args, out, node):
        out[node.output] = values[K.VALUE(1, node.inputs[0])]
    forged = rerun(circuit, values, _doctor("sgd_update", refill))
    assert {v for v in violations(circuit, forged)} == {
        f"linear: SGD update of {n} (lr_q g + 2^{40 if 'weight' in n else 24} = 2^{41 if 'weight' in n else 25} (w - w') + R)"
        for n in circuit.params}
    field_rejection(circuit, forged, LINEAR)


def test_intermediate_weights_of_a_two_step_run(monkeypatch):
    """Step 0's update off by one, step 1 run honestly from the doctored weights: only step 0's
    SGD equation fails (the intermediate weights are no statement tensor)."""
    circuit, values = honest_witness((3, 3, 2), 2, steps=2)

    def doctor(args, out, node):
        nxt = np.array(out[node.output], dtype=object)
        nxt[1, 2] += 1
        out[node.output] = nxt
    forged = rerun(circuit, values, _doctor("sgd_update", doctor, step=0, output="2.weight.next"))
    assert K.VALUE(1, "2.weight") not in dict(circuit.statement_keys)
    field_rejection(circuit, forged, LINEAR, violated={"linear: SGD update of 2.weight (lr_q g + 2^40 = 2^41 (w - w') + R)"})


# ----------------------------------------------------------------------------------------
# junk in the padding of intermediate tensors (no zero-padding proof: their relations pin it)
# ----------------------------------------------------------------------------------------
def _true_shape(circuit, key):
    graph = circuit.graph(circuit.rows[min(key.step, circuit.steps - 1)])
    return graph[key.tensor].shape


def _padding_entries(circuit, key):
    shape = circuit.shapes[key]
    inside = np.zeros(shape, bool)
    inside[tuple(slice(0, d) for d in _true_shape(circuit, key))] = True
    return [tuple(int(i) for i in ix) for ix in np.argwhere(~inside)]


def _intermediates(circuit):
    statement = dict(circuit.statement_keys)
    return [k for k, _ in circuit.proof_keys if k.plane is None and k not in statement
            and _padding_entries(circuit, k)]


@pytest.fixture(scope="module")
def two_steps_witness():
    return honest_witness((3, 3, 2), 3, steps=2, bias=True)


@pytest.fixture
def two_steps(two_steps_witness):
    return _copy(two_steps_witness)


def test_junk_in_any_padding_entry_of_any_intermediate_violates_a_relation(two_steps):
    """Every non-statement tensor with padding (activations, broadcast biases, gradients,
    remainders, the weights between the steps), junk 1 written into each of its
    padding entries in turn (its range planes recomputed): some relation always fails."""
    circuit, honest = two_steps
    keys = _intermediates(circuit)
    kinds = {k.kind for k in keys}
    assert {K.VALUE, K.BROADCAST, K.REMAINDER} <= kinds
    assert K.VALUE(1, "0.weight") in keys and K.VALUE(1, "0.bias") in keys
    free = []
    for key in keys:
        for entry in _padding_entries(circuit, key):
            values = dict(honest)
            old = pad(values[key], circuit.shapes[key])[entry]
            write(circuit, values, key, entry, int(old) + 1)
            if not violations(circuit, values):
                free.append((key, entry))
    assert free == []


def test_a_flipped_limb_bit_on_padding_violates_a_relation(two_steps):
    """The lowest bit of the lowest and of the top limb (or the sign plane) of every range check
    and remainder, flipped at the first padding entry of its tensor (the limb stays in its
    table): some relation (recomposition, division) always fails."""
    circuit, honest = two_steps
    groups: dict = {}
    for k, _ in circuit.proof_keys:
        if k.plane is not None:
            groups.setdefault((k.kind, k.step, k.tensor), []).append(k)
    free = []
    for (kind, step, tensor), planes in groups.items():
        like = K.VALUE(step, tensor)
        if like not in circuit.shapes or not _padding_entries(circuit, like):
            continue
        entry = _padding_entries(circuit, like)[0]
        for plane in {planes[0], planes[-1]}:
            values = dict(honest)
            a = np.array(pad(values[plane], circuit.shapes[plane]), copy=True)
            a[entry] ^= 1
            values[plane] = a
            if not violations(circuit, values):
                free.append((plane, entry))
    assert len(groups) > 20 and free == []


@pytest.mark.parametrize("key, entry", [
    (K.BROADCAST(0, "0.biased"), (3, 0)),   # the bias broadcast beyond the batch's real rows
    (K.VALUE(1, "0.weight"), (3, 3)),       # the updated weight outside its true shape
    (K.VALUE(1, "0.bias"), (3,)),           # the weights between two steps
])
def test_junk_in_intermediate_padding_is_rejected(two_steps, key, entry):
    circuit, honest = two_steps
    values = write(circuit, dict(honest), key, entry, 5)
    field_rejection(circuit, values, (LINEAR, "einsum", "zkReLU"))


@pytest.mark.parametrize("key, fill", [(K.REMAINDER_LIMBS(0, "0.z", 0), 1), (K.REMAINDER(0, "loss.grad"), 2)])
def test_remainders_on_padding_keep_their_fill(two_steps, key, fill):
    """On padding the rescale remainder is 2^(k-1) (its limb 0 is 0) and the loss remainder N/2:
    a remainder of another value there (its limbs recomputed) breaks the division."""
    circuit, honest = two_steps
    values = dict(honest)
    a = padded(values, key, circuit.shapes[key])
    assert a[3, 0] == (0 if key.kind is K.REMAINDER_LIMBS else 3)
    a[3, 0] = fill
    if key.kind is K.REMAINDER:
        for kind, r in ((K.REMAINDER_LIMBS, a), (K.COMPLEMENT_LIMBS, 5 - a)):
            set_limbs(circuit, values, kind, "loss.grad", r)
    found = violations(circuit, values)
    assert len(found) == 1 and ("rescale 0.z" in next(iter(found)) or "loss gradient" in next(iter(found))), found
    field_rejection(circuit, values, LINEAR)


# ----------------------------------------------------------------------------------------
# a smaller last batch (rows (4, 2)): the row indicator ONES and the loss count N
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_last_witness():
    model = training.synthetic_mlp((3, 3, 2), seed=3, bias=True)
    (x0, y0), (x1, y1) = training.synthetic_batches((3, 3, 2), 4, 2, seed=3)
    circuit, values, _ = training.training_witness(model, [(x0, y0), (x1[:2], y1[:2])], 0.1,
                                                   refuse_underflow=False)
    assert circuit.rows == (4, 2)
    return circuit, values


@pytest.fixture
def short_last(short_last_witness):
    return _copy(short_last_witness)


def _count(circuit, t):
    return next(n for n in circuit.graph(circuit.rows[t]).nodes if n.op == "loss_grad").attrs["count"]


def test_the_row_indicator_is_public(short_last):
    """ONES is no commitment of the proof: both sides derive it from the statement's rows."""
    circuit, values = short_last
    proof = forge(circuit, values)
    assert zk.verify_training(proof)
    assert not [k for k in (*proof.commitments, *proof.statement.commitments) if k.kind is K.ONES]
    ones = [k for k, _ in proof.statement.circuit.public_keys if k.kind is K.ONES]
    assert sorted(k.step for k in ones) == [2, 4]
    np.testing.assert_array_equal(proof.statement.circuit.public_value(K.ONES(2, "4")), [1, 1, 0, 0])
    assert (_count(circuit, 0), _count(circuit, 1)) == (8, 4)


def test_the_last_batch_divided_by_the_full_batch_count(short_last):
    """The 2-row batch's loss divided by N = 8 (the full batch's) instead of 4."""
    circuit, values = short_last

    def full_count(args, out, node):
        diff = interpret._mul_const(interpret._add(args[0], args[1], sign=-1), 1 << (circuit.scale_bits + 1))
        out[node.output], out[node.output + ".rem"] = interpret._round_div(diff, 8)
    forged = rerun(circuit, values, _doctor("loss_grad", full_count, step=1))
    field_rejection(circuit, forged, LINEAR,
                    violated={"linear: loss gradient (2^(S+1) (2.z - y) + N/2 = N G + RL, N = 4)"})


def test_padding_rows_of_the_last_batch_made_real(short_last):
    """The 2-row step run as a 4-row step on zero rows 2 and 3 (the biases broadcast over all 4
    rows, the bias gradients summed over them, the loss still divided by the claimed N = 4):
    every relation holds but the two that read ONES, the broadcast and the bias gradient."""
    circuit, values = short_last

    def claimed_count(args, out, node):
        diff = interpret._mul_const(interpret._add(args[0], args[1], sign=-1), 1 << (circuit.scale_bits + 1))
        out[node.output], out[node.output + ".rem"] = interpret._round_div(diff, 4)
    forged = rerun(circuit, values, _doctor("loss_grad", claimed_count, step=1),
                   graph_of=lambda t: circuit.graph(4))
    for layer, width in (("0", 3), ("2", 2)):
        b = np.asarray(forged[K.VALUE(1, f"{layer}.bias")])
        forged[K.BROADCAST(1, f"{layer}.biased")] = np.broadcast_to(b, (4, width)).copy()
    assert (np.asarray(forged[K.VALUE(1, "loss.grad")])[2:] != 0).any()  # the zero rows count
    field_rejection(circuit, forged, "einsum", violated={"einsum: 0.biased", "einsum: 2.biased",
                                                         "einsum: 0.bias.grad", "einsum: 2.bias.grad"})


# ----------------------------------------------------------------------------------------
# inference: h = (1 - s) z, the output a statement tensor
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inference_witness():
    model = training.synthetic_mlp((3, 3, 2), seed=4, bias=True)
    x = np.random.default_rng(4).standard_normal((3, 3))
    circuit, values = training.inference_witness(model, x)
    assert not circuit.training and circuit.output == "2.z"
    return circuit, values


@pytest.fixture
def inference(inference_witness):
    return _copy(inference_witness)


def _infer_rejection(circuit, values, expect, violated):
    return field_rejection(circuit, values, expect, verify=zk.verify_inference, lr=0.0, violated=violated)


OUT_RESCALE = "linear: rescale 2.z (2.biased + 2^15 = 2^16 2.z + R)"  # inference: parameters at 2^16


def test_inference_honest_and_rerun(inference):
    circuit, values = inference
    again = rerun(circuit, values, lambda *a: None)
    assert violations(circuit, again) == set()


def test_inference_with_a_wrong_output(inference):
    circuit, values = inference
    key = K.VALUE(0, "2.z")
    assert key in dict(circuit.statement_keys)
    values = write(circuit, values, key, (0, 0), int(values[key][0, 0]) + 1)
    _infer_rejection(circuit, values, LINEAR, {OUT_RESCALE})


def test_inference_output_of_other_inputs(inference):
    """The output of the same model on other inputs (its range planes and remainders refilled)."""
    circuit, values = inference
    model = training.synthetic_mlp((3, 3, 2), seed=4, bias=True)
    _, other = training.inference_witness(model, np.random.default_rng(9).standard_normal((3, 3)))
    for k, v in other.items():
        if k.tensor == "2.z" and k.kind is not K.VALUE or k == K.VALUE(0, "2.z"):
            values[k] = v
    _infer_rejection(circuit, values, LINEAR, {OUT_RESCALE})


def test_inference_relu_passing_negatives(inference):
    circuit, values = inference

    def identity(args, out, node):
        out[node.output] = args[0].copy()
    forged = rerun(circuit, values, _doctor("relu", identity))
    _infer_rejection(circuit, forged, "zkReLU", {"zkReLU: 1.relu"})


def test_inference_output_wrapping_modulo_r(inference):
    """Output + 2^-16 mod r with the remainder one less: the rescale holds modulo r with genuine
    remainder limbs; the output's range check (32-bit two's complement) fails."""
    circuit, values = inference
    key = K.VALUE(0, "2.z")
    r_limbs = limbs_of(circuit, K.REMAINDER_LIMBS, "2.z")
    assert sum(b for _, b in r_limbs) == 16
    rem = sum(c * np.asarray(pad(values[k], circuit.shapes[key]), dtype=object)
              for c, k in lower.limb_terms(r_limbs))
    i = _first_index(rem[:3, :2], lambda a: a >= 1)
    q = padded(values, key, circuit.shapes[key]).astype(object)
    q[i] = (q[i] + pow(1 << 16, -1, field.R)) % field.R
    values[key] = q
    rem[i] -= 1
    set_limbs(circuit, values, K.REMAINDER_LIMBS, "2.z", rem)
    _infer_rejection(circuit, values, LINEAR, {"linear: range check of 2.z (rescaled by 2^16)"})


# ----------------------------------------------------------------------------------------
# torch.optim.SGD's momentum, dampening and weight decay
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def momentum_witness():
    from zk.witness import SGDOptions

    model = training.synthetic_mlp((3, 3, 2), seed=6, bias=True)
    data = training.synthetic_batches((3, 3, 2), 3, 2, seed=6)
    circuit, values, _ = training.training_witness(model, data, 0.1, refuse_underflow=False,
                                                   sgd=SGDOptions(0.9, 0.1, 0.01))
    assert (circuit.momentum, circuit.dampening, circuit.weight_decay) == (0.9, 0.1, 0.01)
    return circuit, values


@pytest.fixture
def momentum(momentum_witness):
    return _copy(momentum_witness)


def test_momentum_rerun_is_honest(momentum):
    circuit, values = momentum
    again = rerun(circuit, values, lambda *a: None)
    assert violations(circuit, again) == set()
    assert zk.verify_training(forge(circuit, again))


def test_a_momentum_buffer_off_by_one(momentum):
    """Step 1's buffer buf' one more at one entry; the update and the final weights follow it."""
    circuit, values = momentum

    def doctor(args, out, node):
        b = np.array(out[node.output], dtype=object)
        b[0, 1] += 1
        out[node.output] = b
    forged = rerun(circuit, values, _doctor("momentum", doctor, step=1, output="0.weight.momentum_buffer.next"))
    field_rejection(circuit, forged, LINEAR, violated={
        "linear: momentum 0.weight.momentum_buffer.next (mu_q buf + damp_q d + 2^15 = 2^16 buf' + R)"})


def test_a_first_momentum_buffer_that_is_not_the_gradient(momentum):
    """The buffer step 0 hands to step 1 is its (decayed) gradient: one entry changed, step 1 run
    from it; the sum that makes it, its range check and step 0's update, which reads it, fail."""
    circuit, values = momentum

    def after(t, values):
        if t == 0:
            key = K.VALUE(1, "2.weight.momentum_buffer")
            values[key] = np.array(values[key], dtype=object)
            values[key][1, 1] += 7
    forged = rerun(circuit, values, lambda *a: None, after=after)
    field_rejection(circuit, forged, LINEAR, violated={"linear: sum 2.weight.grad.decayed",
                                                       "linear: SGD update of 2.weight (lr_q g + 2^40 = 2^41 (w - w') + R)",
                                                       "linear: range check of the state 2.weight.momentum_buffer"})


def test_a_weight_decay_term_off_by_one(momentum):
    circuit, values = momentum

    def doctor(args, out, node):
        d = np.array(out[node.output], dtype=object)
        d[2] -= 1
        out[node.output] = d
    forged = rerun(circuit, values, _doctor("weight_decay", doctor, step=1, output="0.bias.grad.decayed"))
    field_rejection(circuit, forged, LINEAR, violated={"linear: weight decay of 0.bias (wd_q w + 2^15 = 2^16 q + R)"})


@pytest.mark.parametrize("claim", [dict(momentum=0.0, dampening=0.0)])
def test_a_momentum_run_claimed_with_other_options(momentum, claim):
    """A run with momentum 0.9, dampening 0.1 and weight decay 0.01 claimed with other options."""
    circuit, values = momentum
    claimed = dataclasses.replace(circuit, **claim)
    for k, _ in claimed.proof_keys:  # a tensor only the claimed circuit commits: zero
        values.setdefault(k, np.zeros(claimed.shapes[k], np.int64))
    assert violations(claimed, values)
    assert LINEAR in rejection(forge(claimed, values))


def test_a_carried_tensor_is_bounded_at_the_next_step_as_where_it_was_made(momentum_witness):
    """The bound a step assumes for a carried momentum buffer is the one its range check gives
    where it is made (the first buffer, step 0's gradient, is range-checked too)."""
    circuit, _ = momentum_witness
    made = {k: b for k, b in circuit.template(0).bounds.items() if k.step == 1}
    read = circuit.template(1).bounds
    low = {k.tensor: (made[k].bit_length(), read[k._replace(step=0)].bit_length())
           for k in made if read.get(k._replace(step=0), made[k]) < made[k]}
    assert low == {}


# ----------------------------------------------------------------------------------------
# the relations come from the statement alone, and every committed tensor is bound by one
# ----------------------------------------------------------------------------------------
def _relations(c):
    return (c.statement_keys, c.proof_keys, c.public_keys, [(r.terms, r.const) for r in c.linear_relations],
            c.einsum_groups(), c.relu_groups(), c.lookup_groups(), c.lookup_bits, c.padding_groups())


@pytest.mark.parametrize("which", ["short_last", "momentum", "inference"])
def test_the_verifiers_relations_depend_only_on_the_statement(which, request):
    """The verifier's circuit, parsed from the proof's bytes, is the prover's: same committed
    tensors, same relations, same public tensors."""
    circuit, values = request.getfixturevalue(which)
    cls = zk.TrainingProof if circuit.training else zk.InferenceProof
    proof = forge(circuit, values, lr=None if circuit.training else 0.0)
    parsed = cls.from_bytes(proof.to_bytes()).statement.circuit
    assert parsed == circuit
    assert _relations(parsed) == _relations(circuit)


def _keys(c):
    return [k for k, _ in c.statement_keys + c.proof_keys]


@pytest.mark.parametrize("which", ["w", "short_last", "momentum", "inference"])
def test_every_committed_tensor_is_bound_by_a_relation(which, request):
    """Every committed value tensor other than the statement's data is made by a relation (an
    einsum's output, a zkReLU output, a term of a linear relation), every limb and sign plane is
    looked up (at scale 1, and a top limb narrower than the table also at its scale) and in a
    recomposition, and the relations name only committed or public tensors."""
    circuit, _ = request.getfixturevalue(which)
    linear = {k for rel in circuit.linear_relations for _, k in rel.terms}
    einsum_out = {c for _, inst in circuit.einsum_groups() for _, _, c in inst}
    einsum_in = {k for _, inst in circuit.einsum_groups() for a, b, _ in inst for k in (a, b)}
    relu = {k for group in circuit.relu_groups() for inst in group for k in inst if k is not None}
    planes = {k for group in circuit.lookup_groups() for keys, scale in group if scale == 1 for k in keys}
    scaled = {(k, scale) for group in circuit.lookup_groups() for keys, scale in group if scale > 1 for k in keys}
    committed = set(_keys(circuit))
    public = {k for k, _ in circuit.public_keys}
    assert len(committed) == len(_keys(circuit))  # no key twice
    for k in committed:
        if k.plane is not None:
            assert k in planes and k in linear, k
            b = circuit.lookup_bits[k]
            assert b == circuit.limb_bits or (k, 1 << (circuit.limb_bits - b)) in scaled, k
        else:
            assert k in linear | einsum_out | relu, k
    assert (linear | einsum_out | einsum_in | relu | planes) <= committed | public
    assert all(k.kind in (K.ONES, K.CONST) for k in public)


def _no_bias_in_layer_2(circuit):
    if hasattr(zk, "Architecture"):  # the circuit holds the model's forward graph
        return dict(architecture=zk.Architecture.mlp((3, 3, 2), (True, False), circuit.scale_bits, circuit.param_scale))
    return dict(biases=(True, False))


@pytest.mark.parametrize("claim", ["fewer rows", "other learning rate", "narrower parameters", "no bias in layer 2"])
def test_an_honest_witness_claimed_as_another_statement(w, claim):
    """An honest witness proved under another claimed circuit: rejected (the circuit is the
    statement's, the witness does not satisfy it)."""
    circuit, values = w
    claimed = dataclasses.replace(circuit, **{
        "fewer rows": dict(batch=3, rows=(2,)),
        "other learning rate": dict(lr_q=circuit.lr_q + 1),
        "narrower parameters": dict(param_bits=circuit.param_bits - 1),
        "no bias in layer 2": _no_bias_in_layer_2(circuit),
    }[claim])
    for k, _ in claimed.proof_keys:  # a tensor only the claimed circuit commits (a wider remainder): zero
        values.setdefault(k, np.zeros(claimed.shapes[k], np.int64))
    if claim == "narrower parameters":  # the top bit dropped: the recompositions of W0 and of the updated
        found = violations(claimed, values)  # parameters fail (and their top limbs, a bit narrower, may leave
        assert any(v.startswith("linear: range check of") for v in found), found  # their tables)
        assert all(v.startswith(("linear: range check of", "lookup: ('limbs', 0, ", "lookup: ('limbs', 1, "))
                   for v in found), found
    msg = rejection(forge(claimed, values, lr=float(claimed.lr_q / (1 << claimed.lr_bits))))
    assert ("zero padding" if claim == "fewer rows" else LINEAR) in msg, msg


# ----------------------------------------------------------------------------------------
# architectures from the statement (any forward graph): the row indicator assumes a batch axis
# ----------------------------------------------------------------------------------------
def _custom_inference(build, rows, doctor=lambda *a: None):
    """An inference circuit of the forward graph ``build(graph)`` (input ``x`` (1, 3), a parameter
    ``w`` (3, 3)) on ``rows`` rows, and its witness run with ``doctor``."""
    if not hasattr(zk, "Architecture"):
        pytest.skip("statements hold MLP widths, not forward graphs")
    from zk import fac4dnn

    g = circuits.Graph(16, 16)
    g.input("x", (1, 3), role="data")
    g.input("w", (3, 3), role="param")
    g.input("b", (3,), role="param")
    g.outputs["out"] = build(g)
    circuit = fac4dnn.Circuit(zk.Architecture.of_graph(g), rows, 1, training=False)
    rng = np.random.default_rng(0)
    values = rerun(circuit, {K.VALUE(0, "x"): rng.integers(-2**12, 2**12, (rows, 3)),
                             K.VALUE(0, "w"): rng.integers(-2**12, 2**12, (3, 3)),
                             K.VALUE(0, "b"): rng.integers(-2**12, 2**12, (3,))}, doctor)
    for check in circuit.statement_checks():
        values.update(check.decompose(pad(values[check.key], circuit.shapes[check.key]), str(check.key)))
    return circuit, values


def _param_sum(g):
    """out = rescale(x * sum_o w[o, :]): a sum over a parameter's leading axis (not the batch)."""
    s = g.einsum("oi->i", "w", name="s")
    return g.rescale(g.einsum("bi,i->bi", "x", s, name="p"), 16, name="z")


def _param_broadcast(g):
    """out = rescale(x (w + b)^T): a parameter vector b added to every row of the parameter w."""
    shifted = g.add("w", "b", name="shifted")  # broadcast over w's 3 rows, not over the batch
    return g.rescale(g.einsum("bi,oi->bo", "x", shifted, name="m"), 16, name="z")


@pytest.mark.parametrize("build", [_param_sum, _param_broadcast])
def test_row_indicators_only_on_the_batch_axis(build):
    """A sum over a parameter's leading axis, or a vector broadcast over a parameter matrix, is no
    batch sum or broadcast: the row indicator ONES would cut it at the batch's row count (such a
    circuit proved s = w[0] + w[1] instead of the sum of all three rows). It is refused, naming
    the node, before anything is proved."""
    with pytest.raises(UnsupportedOp, match="the batch axis only|over the rows of a matrix only"):
        _custom_inference(build, 2)


def test_a_chain_of_proofs_with_other_sgd_options():
    rng = np.random.default_rng(0)
    data, opening = zk.commit_dataset(rng.standard_normal((3, 3)), rng.standard_normal((3, 2)), batch_size=3)
    model0, start = zk.commit_model(training.synthetic_mlp((3, 3, 2), seed=1), lr=0.1)
    first = zk.prove_training(start, opening, lr=0.1)
    second = zk.prove_training(first.opening, opening, lr=0.1, momentum=0.9, weight_decay=0.5)
    with pytest.raises(zk.VerificationError, match="momentum, dampening and weight decay .* one run has one of each"):
        zk.verify_chain([first.proof, second.proof], dataset=data, initial_model=model0)
    third = zk.prove_training(first.opening, opening, lr=0.1, momentum=0.9)
    fourth = zk.prove_training(third.opening, opening, lr=0.1, momentum=0.9)  # resumes from third's buffers
    assert fourth.proof.statement.resumed and zk.verify_chain([third.proof, fourth.proof], dataset=data)
    stripped = zk.model.from_integers(third.opening.commitment.architecture, third.opening.integers(),
                                      zk.commit.DEFAULT_KEY)  # the same weights, the buffers dropped
    fresh = zk.prove_training(stripped, opening, lr=0.1, momentum=0.9)
    with pytest.raises(zk.VerificationError, match="fresh momentum buffers"):
        zk.verify_chain([third.proof, fresh.proof], dataset=data)
    report = zk.verify_chain([third.proof], dataset=data)
    assert report.sgd == (0.9, 0.0, 0.0) and "momentum 0.9" in report.describe()
