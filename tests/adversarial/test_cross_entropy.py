"""zk proofs of SGD with softmax cross-entropy (``loss="cross_entropy"``, zk.lower ce_grad).

- completeness and fidelity: honest proofs verify (from bytes), their statements say cross-entropy,
  and the proved final parameters are circuits' own fixed-point training bit for bit and torch's
  float64 SGD with ``F.cross_entropy`` within the bound circuits.softmax derives;
- an MSE statement and a cross-entropy statement are not interchangeable;
- malicious provers: the honest witness doctored (every other relation kept consistent where that
  is possible, so that only the targeted check can catch it) and proved by our own prover, with
  entries outside their lookup tables counted as entries 0 (forge.lenient_multiplicities);
  each must be rejected by :func:`zk.verify_training`;
- the honest prover refuses logits whose row spreads by 64 (``2^HI_BITS``) or more.
"""
import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import circuits
import zk
from circuits import interpret, softmax
from zk import fac4dnn, lower, training
from zk.fac4dnn import pad
from zk.keys import TensorKind as K
from zk.witness import SGDOptions

from forge import forge as forge_at

S = 16  # activations' scale (prove_training's default)
LR = 0.1
CE = SGDOptions(loss="cross_entropy")
NAME = "loss.grad"  # the ce_grad node of circuits.training_graph


# ----------------------------------------------------------------------------------------
# data, references
# ----------------------------------------------------------------------------------------
def class_batches(widths, sizes, seed=0):
    """``(X, Y)`` float32 batches of the given row counts, ``Y`` one-hot rows of random classes."""
    rng = np.random.default_rng(seed)
    C = widths[-1]
    return [(rng.standard_normal((n, widths[0])).astype(np.float32),
             np.eye(C, dtype=np.float32)[rng.integers(0, C, n)]) for n in sizes]


def circuits_final(model, data, lr):
    """circuits' own fixed-point SGD (the trace of the torch model, master weights carried as
    integers at the parameter scale between steps): the final integer parameters."""
    scale = circuits.param_scale_for(lr, S)
    fp = circuits.FixedPoint(S)
    state = {k: fp.encode(v.double().numpy(), scale) for k, v in model.state_dict().items()}
    for X, Y in data:
        graph = circuits.trace_training(model, len(X), lr, loss="cross_entropy", param_scale=scale)
        inputs = {"x": fp.encode(X), "y": fp.encode(Y), **state}
        vals = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        state = {k: np.asarray(vals[graph.outputs[k]]) for k in state}
    return state, scale


def torch_final(model, data, lr):
    """float64 torch SGD with ``F.cross_entropy(logits, class indices)`` (mean over the batch)."""
    m = copy.deepcopy(model).double()
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    for X, Y in data:
        opt.zero_grad()
        labels = torch.from_numpy(Y.argmax(axis=1))
        F.cross_entropy(m(torch.from_numpy(X).double()), labels).backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in m.state_dict().items()}


def ce_grad_error_bound(rows, classes, S=S):
    """circuits.softmax's bound on |decoded G - torch's gradient| per entry: truncating ``d`` to
    ``F = min(S, 10)`` fractional bits costs a relative ``exp(2^-F) - 1`` of the softmax, the
    tables' and ``e``'s roundings ``1.51 C 2^-S``, ``p``'s rounding ``2^-(S+1)``; divided by the
    rows, plus ``G``'s own rounding ``2^-(2S+1)``."""
    F_ = min(S, softmax.EXP_BITS)
    return (math.expm1(2.0**-F_) + (1.51 * classes + 0.5) * 2.0**-S) / rows + 2.0**-(2 * S + 1)


# ----------------------------------------------------------------------------------------
# 1. completeness and fidelity
# ----------------------------------------------------------------------------------------
#: (widths, rows of each batch, seed): a 6-5-4 MLP with biases (batch 3: padded to 4), a batch of 5
#: whose last batch has 2 rows (padding rows 2..7 in that step), 10 classes padded to 16
CASES = {
    "6-5-4, batch 3, 2 steps": ((6, 5, 4), (3, 3), 0),
    "batch 5, last batch of 2": ((6, 5, 4), (5, 2), 1),
    "10 classes (padded to 16)": ((4, 6, 10), (3, 2), 2),
}

#: Relative bound on each parameter's error against float64 torch, as a fraction of the largest
#: change torch makes to that tensor (circuits' empirical FIXED_RELATIVE of tests/test_circuits_ce.py,
#: measured there at most 3.1e-3 over 25 seeds; here at most 1.4e-3): the error is dominated by the
#: exp tables' 10 fractional bits, ~(exp(2^-10) - 1) / rows per gradient entry.
FIXED_RELATIVE = 5e-3


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def honest_run(request):
    widths, sizes, seed = CASES[request.param]
    model = training.synthetic_mlp(widths, seed=seed, bias=True)
    data = class_batches(widths, sizes, seed)
    return model, data, zk.prove_training(model, data, LR, loss="cross_entropy")


def test_honest_proof_verifies_from_bytes(honest_run):
    model, data, result = honest_run
    proof = zk.TrainingProof.from_bytes(result.proof.to_bytes())
    assert zk.verify_training(proof) is True
    st = proof.statement
    assert st.loss == "cross_entropy" and st.rows == tuple(len(X) for X, _ in data)
    assert "loss         : softmax cross-entropy" in st.describe()
    assert "cross-entropy" in st.describe() and "squared" not in st.describe().lower()


def test_final_parameters_are_circuits_fixed_point_bit_for_bit(honest_run):
    model, data, result = honest_run
    state, scale = circuits_final(model, data, LR)
    final = result.opening.integers()
    assert set(final) == set(state)
    fp = circuits.FixedPoint(S)
    for k, v in state.items():
        np.testing.assert_array_equal(final[k], v, err_msg=k)
        assert torch.equal(result.model.state_dict()[k], torch.from_numpy(fp.decode(v, scale)).float()), k


def test_final_parameters_match_torch_cross_entropy(honest_run):
    model, data, result = honest_run
    ref = torch_final(model, data, LR)
    scale = circuits.param_scale_for(LR, S)
    ours = {k: circuits.FixedPoint(S).decode(v, scale) for k, v in result.opening.integers().items()}
    C = data[0][1].shape[1]
    for k, w0 in model.state_dict().items():
        change = np.max(np.abs(ref[k] - w0.double().numpy()))
        assert np.max(np.abs(ours[k] - ref[k])) <= FIXED_RELATIVE * change, k
    # the last bias's gradient is sum_b G_b: within rows * ce_grad_error_bound of torch's at every
    # step, so the bias within sum over steps of lr * rows * bound (2x for the drift of the
    # parameters themselves and the fixed point of the forward pass; measured: at most 0.06 of it)
    last = [k for k in ref if k.endswith(".bias")][-1]
    bound = 2 * sum(LR * len(X) * ce_grad_error_bound(len(X), C) for X, _ in data)
    assert np.max(np.abs(ours[last] - ref[last])) <= bound


# ----------------------------------------------------------------------------------------
# 2. an MSE statement is no cross-entropy statement
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def both_losses():
    widths = (4, 3, 3)
    model = training.synthetic_mlp(widths, seed=3, bias=True)
    data = class_batches(widths, (2,), 3)
    return (zk.prove_training(model, data, LR, loss="cross_entropy").proof,
            zk.prove_training(model, data, LR, loss="mse").proof)


def _relabelled(proof, loss):
    return zk.TrainingProof(dataclasses.replace(proof.statement, loss=loss), proof.commitments, proof.aggregated)


def _loss_byte_edited(proof, loss_index):
    """The proof file with the statement's loss byte (the byte before the dataset digest) set."""
    data = bytearray(proof.to_bytes())
    head = proof.statement.to_bytes()
    at = data.find(head)
    assert at >= 0 and data.find(head, at + 1) < 0
    loss_at = at + head.find(proof.statement.dataset) - 1
    assert data[loss_at] == ("mse", "cross_entropy").index(proof.statement.loss)
    data[loss_at] = loss_index
    return bytes(data)


def test_mse_and_cross_entropy_proofs_are_not_interchangeable(both_losses):
    ce, mse = both_losses
    assert zk.verify_training(ce) and zk.verify_training(mse)
    assert ce.statement.loss == "cross_entropy" and mse.statement.loss == "mse"
    for proof, other in ((ce, "mse"), (mse, "cross_entropy")):
        with pytest.raises(zk.VerificationError):
            zk.verify_training(_relabelled(proof, other))
    # the same in the file: the loss byte flipped (the parser already finds the commitments'
    # layouts wrong for the other loss's circuit)
    for proof, index in ((ce, 0), (mse, 1)):
        with pytest.raises((zk.ProofFormatError, zk.VerificationError)):
            zk.verify_training(zk.TrainingProof.from_bytes(_loss_byte_edited(proof, index)))
    with pytest.raises(zk.ProofFormatError, match="unknown loss"):
        zk.TrainingProof.from_bytes(_loss_byte_edited(ce, 2))


# ----------------------------------------------------------------------------------------
# 3. malicious provers
# ----------------------------------------------------------------------------------------
def forge(circuit, values):
    """Commit to ``values`` and prove ``circuit`` with our own provers (:func:`forge.forge`)."""
    return forge_at(circuit, values, LR)


def rejection(proof) -> str:
    """The message of the VerificationError the verifier raises, on the proof parsed from its bytes."""
    parsed = zk.TrainingProof.from_bytes(proof.to_bytes())
    with pytest.raises(zk.VerificationError) as err:
        zk.verify_training(parsed)
    return str(err.value)


def broken(circuit, values) -> list[str]:
    """The equations of the linear relations that ``values`` violate (exact integers, padding
    included): a forgery's target, checked before it is proved."""
    def tensor(k):
        v = circuit.public_value(k) if k.kind in (K.ONES, K.CONST) else values[k]
        return pad(v, circuit.shapes[k]).astype(object)
    out = []
    for rel in circuit.linear_relations:
        total = sum(c * tensor(k) for c, k in rel.terms) - rel.const
        if np.any(total != 0):
            out.append(rel.equation)
    return out


def breaks_only(circuit, values, *fragments) -> None:
    """The linear relations ``values`` violate are exactly one per ``fragment`` (its equation's text)."""
    failing = broken(circuit, values)
    assert len(failing) == len(fragments) and all(f in e for f, e in zip(fragments, failing)), failing


def ce_rule(z, y, S, F, H, count, name="ce_grad", *, c=None, e_hi=None, p=None):
    """circuits.softmax.ce_grad_fixed's rule (int64, any ``S <= 20``), with hooks for a cheating
    prover: ``c(z)`` the claimed row maxima, ``e_hi(a)`` the claimed ``E_hi[d_hi]`` (edited in place),
    ``p(p, p_rem, s)`` the claimed quotients. An argument ``d_hi`` outside the table reads the
    exponential's continuation ``rint(2^S exp(-d_hi))``. Also returns ``.e.prod``."""
    E_hi, E_mid = softmax.exp_tables(S, F, H)
    z, y = np.asarray(z).astype(np.int64), np.asarray(y).astype(np.int64)
    cz = z.max(axis=1) if c is None else np.asarray(c(z), dtype=np.int64)
    d = cz[:, None] - z
    d_hi, d_mid, d_lo = d >> S, (d >> (S - F)) & ((1 << F) - 1), d & ((1 << (S - F)) - 1)
    inside = (d_hi >= 0) & (d_hi < len(E_hi))
    a = np.where(inside, E_hi[np.clip(d_hi, 0, len(E_hi) - 1)],
                 np.rint(2.0**S * np.exp(-d_hi.astype(np.float64))).astype(np.int64))
    if e_hi is not None:
        e_hi(a)
    b = E_mid[d_mid]
    prod = a * b
    e, e_rem = np.divmod(prod + (1 << (S - 1)), 1 << S)
    s = e.sum(axis=1)
    num, den = e * (1 << (S + 1)) + s[:, None], 2 * s[:, None]
    pq, p_rem = np.divmod(num, den)
    if p is not None:
        p(pq, p_rem, s)
    g, g_rem = np.divmod((pq - y) * (1 << S) + count // 2, count)
    return {name: g, name + ".rem": g_rem, name + ".max": cz, name + ".d": d, name + ".d.hi": d_hi,
            name + ".d.mid": d_mid, name + ".d.lo": d_lo, name + ".e": e, name + ".e.rem": e_rem,
            name + ".sum": s, name + ".p": pq, name + ".p.rem": p_rem, name + ".e.hi": a, name + ".e.mid": b,
            name + ".e.prod": prod}


def test_ce_rule_is_the_library_rule():
    rng = np.random.default_rng(7)
    z = rng.integers(-(40 << S), 20 << S, (5, 6))
    z[1] = z[1, 0]  # ties
    y = np.eye(6, dtype=np.int64)[rng.integers(0, 6, 5)] << S
    ours, lib = ce_rule(z, y, S, 10, 6, 5, "g"), softmax.ce_grad_fixed(z, y, S, 10, 6, 5, "g")
    assert set(lib) <= set(ours)
    for k, v in lib.items():
        np.testing.assert_array_equal(np.asarray(v).astype(np.int64), ours[k], err_msg=k)


def key(t, suffix=""):
    return K.VALUE(t, NAME + suffix)


def limbs_of(circuit, kind, t, tensor):
    keys = sorted(k for k in circuit.lookup_bits if (k.kind, k.step, k.tensor) == (kind, t, tensor))
    assert keys, (kind, t, tensor)
    return [(k, circuit.lookup_bits[k]) for k in keys]


def set_limbs(circuit, values, kind, t, tensor, target):
    """Limbs of ``kind`` of ``tensor`` recomposing to ``target`` exactly: those of ``target`` modulo
    ``2^width``, the rest (a multiple of ``2^width``) added to limb 0 (outside its table: only the
    range lookup can catch it)."""
    limbs = limbs_of(circuit, kind, t, tensor)
    target = np.asarray(target).astype(np.int64)
    total = sum(b for _, b in limbs)
    low = np.mod(target, 1 << total)
    parts = lower.split_limbs(low, [b for _, b in limbs], tensor)
    parts[0] = parts[0] + (target - low)
    values.update(zip([k for k, _ in limbs], parts))


def redecompose(circuit, values, k):
    """Refill the range-check limbs of the committed tensor ``k`` from ``values[k]``."""
    rel = next(r for r in circuit.linear_relations if r.terms and r.terms[0] == (1, k)
               and r.equation.startswith("range check of"))
    rest = [kk for _, kk in rel.terms[1:]]
    width = sum(circuit.lookup_bits[kk] for kk in rest)
    check = lower.RangeCheck(k, width, rel.const + (1 << (width - 1)), False, circuit.limb_bits)
    assert check.recomposition("").terms == rel.terms
    values.update(check.decompose(pad(values[k], circuit.shapes[k]), str(k)))


@pytest.fixture(scope="module")
def base():
    """A 5-4-3 MLP with biases (3 classes padded to 4), batches of 3 then 2 rows (padded to 4):
    the honest witness and the setting of its last step."""
    widths = (5, 4, 3)
    model = training.synthetic_mlp(widths, seed=1, bias=True)
    data = class_batches(widths, (3, 2), 5)
    circuit, values, _ = training.training_witness(model, data, LR, sgd=CE, refuse_underflow=False)
    t = circuit.steps - 1
    node = next(n for n in circuit.graph(circuit.rows[t]).nodes if n.op == "ce_grad")
    return dict(model=model, data=data, circuit=circuit, values=values, t=t, logits=node.inputs[0],
                C=node.attrs["classes"], rows=circuit.rows[t], attrs=node.attrs)


def fresh(base):
    return {k: np.array(v, copy=True) for k, v in base["values"].items()}


def rerun_last(base, y_scale=1, **hooks):
    """The honest witness with the last step redone by circuits.run and refilled by the lowering's
    witness rules, ce_grad's rule replaced by :func:`ce_rule` with ``hooks`` (row 0 only) in both:
    everything downstream of the loss gradient consistent with the doctored rule (``y_scale``: the
    rule reads the targets times this, the lowering's own check of the targets bypassed). Returns the values
    and the rule's output on the padded batch (what the lowering's fill saw)."""
    circuit, t, values = base["circuit"], base["t"], fresh(base)
    graph = circuit.graph(circuit.rows[t])
    inputs = {}
    for x in graph.inputs:
        k = K.VALUE(t, x.name)
        inputs[x.name] = pad(values[k], circuit.shapes[k])[tuple(slice(0, d) for d in x.shape)].astype(np.int64)
    last = {}

    def rule(z, y, S, F, H, count, name="ce_grad"):
        last["out"] = ce_rule(z, y_scale * np.asarray(y).astype(np.int64), S, F, H, count, name, **hooks)
        return last["out"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interpret, "ce_grad_fixed", rule)
        mp.setattr(lower, "ce_grad_fixed", rule)
        run = circuits.run(graph, inputs, mode="fixed", encoded=set(inputs))
        values.update(circuit.step_witness(t, run))
    return values, last["out"]


def write_cols(values, circuit, k, rule_out, C):
    """``values[k][:, :C]`` (padded) = the rule's tensor of the same name (rows of the padded batch)."""
    a = pad(values[k], circuit.shapes[k])
    a[:, :C] = rule_out[k.tensor]
    values[k] = a


def refill_p_chain(base, values, p_new, rem_new):
    """``p`` and ``R_p`` (padded) set, with everything built on them made consistent: ``p``'s limbs,
    ``p s``, the masked ``p``, the limbs of ``R_p`` and of ``2 s - 1 - R_p`` (out of their tables
    where those leave their range)."""
    circuit, t, C, rows = base["circuit"], base["t"], base["C"], base["rows"]
    p_key, rem_key = key(t, ".p"), K.REMAINDER(t, NAME + ".p")
    values[p_key], values[rem_key] = p_new, rem_new
    set_limbs(circuit, values, K.LIMBS, t, NAME + ".p", p_new)
    sb = pad(values[key(t, ".sum.b")], circuit.shapes[key(t, ".sum.b")])
    values[key(t, ".p.s")] = p_new * sb
    mask = np.zeros_like(p_new)
    mask[:rows, :C] = 1
    values[key(t, ".p.masked")] = p_new * mask
    set_limbs(circuit, values, K.REMAINDER_LIMBS, t, NAME + ".p", rem_new)
    set_limbs(circuit, values, K.COMPLEMENT_LIMBS, t, NAME + ".p", 2 * sb - 1 - rem_new)


def test_untouched_witness_verifies(base):
    """The harness itself: our own prover on the honest witness (lenient lookups, the consistent
    rerun with no hook, the p chain refilled as it is) gives a proof that verifies."""
    values, out = rerun_last(base)
    circuit, t = base["circuit"], base["t"]
    for k in values:
        np.testing.assert_array_equal(pad(values[k], circuit.shapes[k]),
                                      pad(base["values"][k], circuit.shapes[k]), err_msg=str(k))
    refill_p_chain(base, values, pad(values[key(t, ".p")], circuit.shapes[key(t, ".p")]),
                   pad(values[K.REMAINDER(t, NAME + ".p")], circuit.shapes[key(t, ".p")]))
    breaks_only(circuit, values)
    assert zk.verify_training(zk.TrainingProof.from_bytes(forge(circuit, values).to_bytes()))


def _second_class(z_row):
    """A real class of the row that is not its (first) maximum."""
    return int(np.argsort(z_row)[-2])


def test_p_off_by_one_with_its_remainder_out_of_range(base):
    """``p + 1`` at one real entry (its limbs, ``p s`` and the masked ``p`` recomputed, the gradient
    and everything downstream of it redone), ``R_p - 2 s`` so that ``2 p s + R_p = 2^(S+1) e + s``
    still holds: ``R_p < 0`` leaves ``[0, 2 s)``, caught by the remainder's range lookup."""
    circuit, t, C = base["circuit"], base["t"], base["C"]
    j = 1

    def bump(p, p_rem, s):
        p[0, j] += 1
        p_rem[0, j] -= 2 * s[0]
    values, out = rerun_last(base, p=bump)
    shape = circuit.shapes[key(t, ".p")]
    p_new, rem_new = pad(values[key(t, ".p")], shape), pad(values[K.REMAINDER(t, NAME + ".p")], shape)
    assert out[NAME + ".p"][0, j] == p_new[0, j] + 1 and out[NAME + ".p.rem"][0, j] < 0
    p_new[:, :C], rem_new[:, :C] = out[NAME + ".p"], out[NAME + ".p.rem"]
    refill_p_chain(base, values, p_new, rem_new)
    breaks_only(circuit, values)
    assert "range lookups" in rejection(forge(circuit, values))


def test_p_off_by_one_with_the_division_broken(base):
    """``p + 1`` with ``R_p`` left as it is (in range): the division equation fails."""
    circuit, t, C = base["circuit"], base["t"], base["C"]

    def bump(p, p_rem, s):
        p[0, 0] += 1
    values, out = rerun_last(base, p=bump)
    shape = circuit.shapes[key(t, ".p")]
    p_new, rem_new = pad(values[key(t, ".p")], shape), pad(values[K.REMAINDER(t, NAME + ".p")], shape)
    p_new[:, :C] = out[NAME + ".p"]
    refill_p_chain(base, values, p_new, rem_new)
    breaks_only(circuit, values, "2 p s + R_p = 2^(S+1) e + s")
    assert "linear relations" in rejection(forge(circuit, values))


def test_max_one_unit_above_the_true_max(base):
    """``c + 1`` on row 0: ``d`` shifts up by one everywhere (its parts, ``e``, ``s``, ``p``, ``G``
    and everything downstream recomputed), the selector on the true max, ``sel d`` committed as it
    is (1): the selected class has ``d = 0`` fails."""
    circuit, t = base["circuit"], base["t"]

    def higher(z):
        c = z.max(axis=1)
        c[0] += 1
        return c
    values, out = rerun_last(base, c=higher)
    z = pad(values[K.VALUE(t, base["logits"])], circuit.shapes[K.VALUE(t, base["logits"])])
    sel = pad(values[key(t, ".sel")], circuit.shapes[key(t, ".sel")])
    jmax = int(np.argmax(z[0, :base["C"]]))
    sel[0] = 0
    sel[0, jmax] = 1
    values[key(t, ".sel")] = sel
    zero = pad(values[key(t, ".sel.d")], circuit.shapes[key(t, ".sel.d")])
    zero[0] = out[NAME + ".d"][0, jmax]
    assert zero[0] == 1
    values[key(t, ".sel.d")] = zero
    breaks_only(circuit, values, "the selected logit is the row's largest")
    assert "linear relations" in rejection(forge(circuit, values))


def test_max_below_the_true_max(base):
    """``c`` the row's second largest logit with the selector on it (``sel d = 0`` holds): ``d < 0``
    on the true max's class, whose ``d_hi = -1`` is no argument of the exp table (its ``e_hi`` the
    exponential's continuation), caught by the function lookup."""
    circuit, t = base["circuit"], base["t"]
    z0 = pad(base["values"][K.VALUE(t, base["logits"])], circuit.shapes[K.VALUE(t, base["logits"])])[0, :base["C"]]
    j2 = _second_class(z0)

    def second(z):
        c = z.max(axis=1)
        c[0] = z[0, j2]
        return c
    values, out = rerun_last(base, c=second)
    assert out[NAME + ".d.hi"][0].min() < 0
    for suffix in (".e.hi", ".e.prod"):
        write_cols(values, circuit, key(t, suffix), out, base["C"])
    sel = pad(values[key(t, ".sel")], circuit.shapes[key(t, ".sel")])
    sel[0] = 0
    sel[0, j2] = 1
    values[key(t, ".sel")] = sel
    breaks_only(circuit, values)
    assert "function lookups (a table of 2^6 rows)" in rejection(forge(circuit, values))


@pytest.mark.parametrize("consistent", [True, False], ids=["sel d committed as it is", "sel d committed as 0"])
def test_selector_on_a_non_max_class(base, consistent):
    circuit, t = base["circuit"], base["t"]
    values = fresh(base)
    d = pad(values[key(t, ".d")], circuit.shapes[key(t, ".d")])
    sel = pad(values[key(t, ".sel")], circuit.shapes[key(t, ".sel")])
    j = int(np.argmax(d[0, :base["C"]]))  # the row's smallest logit
    assert d[0, j] > 0 and sel[0, j] == 0
    sel[0] = 0
    sel[0, j] = 1
    values[key(t, ".sel")] = sel
    if consistent:
        zero = pad(values[key(t, ".sel.d")], circuit.shapes[key(t, ".sel.d")])
        zero[0] = d[0, j]
        values[key(t, ".sel.d")] = zero
    if consistent:
        breaks_only(circuit, values, "the selected logit is the row's largest")
        assert "linear relations" in rejection(forge(circuit, values))
    else:  # sel d = 0 holds as committed: the einsum defining sel d must catch it
        breaks_only(circuit, values)
        assert "einsum 'nbj,nbj->nb'" in rejection(forge(circuit, values))


def test_selector_on_a_padding_class(base):
    """On a padding class ``d = 0``, so ``sel d = 0`` holds: the one-class-per-row count (over the
    real classes only) must catch it."""
    circuit, t, C = base["circuit"], base["t"], base["C"]
    values = fresh(base)
    sel = pad(values[key(t, ".sel")], circuit.shapes[key(t, ".sel")])
    assert sel.shape[1] > C
    d = pad(values[key(t, ".d")], circuit.shapes[key(t, ".d")])
    assert d[0, C] == 0
    sel[0] = 0
    sel[0, C] = 1
    values[key(t, ".sel")] = sel
    picked = pad(values[key(t, ".sel.sum")], circuit.shapes[key(t, ".sel.sum")])
    picked[0] = 0  # what the einsum with the real classes gives
    values[key(t, ".sel.sum")] = picked
    breaks_only(circuit, values, "one selected class per row")
    assert "linear relations" in rejection(forge(circuit, values))


def test_e_hi_is_not_the_table_of_d_hi(base):
    """``e_hi = E_hi[d_hi] + 1`` at one entry, ``e_hi e_mid``, ``e``, ``s``, ``p``, ``G`` and all
    downstream recomputed from it: only the function lookup ``(d_hi, e_hi)`` can catch it."""
    circuit, t, C = base["circuit"], base["t"], base["C"]

    def more(a):
        a[0, 1] += 1000
    values, out = rerun_last(base, e_hi=more)
    for suffix in (".e.hi", ".e.prod"):
        write_cols(values, circuit, key(t, suffix), out, C)
    honest = pad(base["values"][key(t, ".e")], circuit.shapes[key(t, ".e")])
    assert not np.array_equal(pad(values[key(t, ".e")], honest.shape), honest)
    breaks_only(circuit, values)
    assert "function lookups (a table of 2^6 rows)" in rejection(forge(circuit, values))


def _other_tables(kind):
    def tables(S, F, H=softmax.HI_BITS):
        E_hi, E_mid = softmax._tables(S, F, H)
        if kind == "softmax at temperature 2":
            E_hi = np.rint(np.exp(-np.arange(1 << H) / 2.0) * 2.0**S).astype(np.int64)
            E_mid = np.rint(np.exp(-np.arange(1 << F) / 2.0**(F + 1)) * 2.0**S).astype(np.int64)
        else:  # the two tables' roles swapped (cut and padded to each other's size)
            E_hi, E_mid = E_mid[:1 << H].copy(), np.concatenate([E_hi, np.zeros((1 << F) - (1 << H), np.int64)])
        return E_hi, E_mid
    return tables


@pytest.mark.parametrize("kind", ["softmax at temperature 2", "tables swapped"])
def test_other_exp_tables_for_the_prover_only(base, kind):
    """The prover's witness, circuit and proof all from other exp tables (consistent with each other:
    it verifies against its own circuit); the verifier's circuit holds the public tables."""
    model, data = base["model"], base["data"]
    with pytest.MonkeyPatch.context() as mp:
        fac4dnn._templates.cache_clear()  # the lowered templates are shared by equal circuits
        mp.setattr(softmax, "exp_tables", _other_tables(kind))
        mp.setattr(circuits, "exp_tables", _other_tables(kind))
        circuit, values, _ = training.training_witness(model, data, LR, sgd=CE, refuse_underflow=False)
        assert not np.array_equal(values[key(0, ".e")], base["values"][key(0, ".e")])
        breaks_only(circuit, values)
        proof = forge(circuit, values)
        if kind == "softmax at temperature 2":
            assert zk.verify_training(proof)
        fac4dnn._templates.cache_clear()
    assert "function lookups" in rejection(proof)


def test_targets_not_summing_to_one(base):
    """The last step's targets scaled by 2 (rows summing to 2; their range limbs recomputed, the
    gradient ``2^S (p - 2y) / n`` and everything downstream redone, the target sums committed as
    they are): a statement about targets that are no probabilities, caught by ``y 1_C = 2^S ONES``."""
    t, rows = base["t"], base["rows"]
    values, out = rerun_last(base, y_scale=2)
    yk = K.VALUE(t, "y")
    values[yk] = 2 * np.asarray(values[yk])
    # the data range one bit wider (2^(S+1) must fit), every data range check redone
    circuit = dataclasses.replace(base["circuit"], data_bits=base["circuit"].data_bits + 1)
    for check in circuit.statement_checks():
        values.update(check.decompose(pad(values[check.key], circuit.shapes[check.key]), str(check.key)))
    ysum = pad(values[key(t, ".y.sum")], circuit.shapes[key(t, ".y.sum")])
    assert ysum[:rows].tolist() == [1 << S] * rows
    values[key(t, ".y.sum")] = 2 * ysum
    breaks_only(circuit, values, "every target row sums to 1")
    assert "linear relations" in rejection(forge(circuit, values))


def test_honest_prover_refuses_targets_not_summing_to_one(base):
    model, data = base["model"], base["data"]
    with pytest.raises(ValueError, match="rows of probabilities: row 0 of the batch sums to 2, not 1"):
        zk.prove_training(model, [(X, 2 * Y) for X, Y in data], LR, loss="cross_entropy")


def test_gradient_nonzero_on_a_padding_row(base):
    """``G = 1`` on a padding row of the last step (2 real rows of 4), its range limbs recomputed and
    the only tensor it reaches there (``G W``, rescaled to 0) made consistent: the gradient relation
    (``2^S (M p - y) + n/2 = n G + RG``, 0 on padding rows) must catch it."""
    circuit, t, rows = base["circuit"], base["t"], base["rows"]
    assert rows < circuit.shapes[key(t)][0]
    values = fresh(base)
    g = pad(values[key(t)], circuit.shapes[key(t)])
    assert not g[rows:].any()
    g[rows, 0] = 1
    values[key(t)] = g
    redecompose(circuit, values, key(t))
    raw_key, w = K.VALUE(t, "2.in.grad.raw"), pad(values[K.VALUE(t, "2.weight")], circuit.shapes[K.VALUE(t, "2.weight")])
    raw = pad(values[raw_key], circuit.shapes[raw_key])
    raw[rows] = g[rows] @ w
    values[raw_key] = raw
    k = 26  # 2.in.grad = (raw + 2^(k-1)) >> k: still 0 on that row, |w| < 1/2
    in_grad = pad(values[K.VALUE(t, "2.in.grad")], raw.shape)
    assert np.all(np.abs(raw[rows]) < 1 << (k - 1)) and not in_grad[rows].any()
    set_limbs(circuit, values, K.REMAINDER_LIMBS, t, "2.in.grad", raw + (1 << (k - 1)) - (in_grad << k))
    breaks_only(circuit, values, "(2^S (p - y) + n/2 = n G + RG")
    assert "linear relations" in rejection(forge(circuit, values))


# ----------------------------------------------------------------------------------------
# 4. the honest prover refuses logits that spread by 64 or more
# ----------------------------------------------------------------------------------------
def _spread_model(spread):
    m = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.copy_(torch.tensor([0.0, spread / 2, -spread / 2]))
    return m


@pytest.mark.parametrize("spread", [64.0, 100.0])
def test_logits_spreading_by_64_or_more_refused(spread):
    data = [(np.ones((2, 2), np.float32), np.eye(3, dtype=np.float32)[[0, 1]])]
    with pytest.raises(ValueError, match=r"logits of a row spread by .* 2\^6 = 64"):
        zk.prove_training(_spread_model(spread), data, LR, loss="cross_entropy")


def test_logits_spreading_by_just_under_64_proved():
    data = [(np.ones((2, 2), np.float32), np.eye(3, dtype=np.float32)[[0, 2]])]
    result = zk.prove_training(_spread_model(64.0 - 2.0**-10), data, LR, loss="cross_entropy")
    assert zk.verify_training(zk.TrainingProof.from_bytes(result.proof.to_bytes()))
