"""Malicious provers choosing the ARCHITECTURE: a statement holds the forward graph as bytes
(zk.Architecture), the verifier derives the training graph and lowers it op by op, so any graph
the parser accepts is attacker-chosen.

Each candidate is built by hand from circuits.Graph's builders. The secure behaviour asserted:
refused cleanly at parse or Circuit construction (ProofFormatError / StatementError /
UnsupportedOp / ValueError naming the problem), or proved and verified honestly with forgeries
rejected. Tests named "Was an exploit" or "was a crash" record what this review found and the
code now refuses.
"""
import numpy as np
import pytest

import circuits
import zk
from circuits import UnsupportedOp, quantize_lr
from zk import fac4dnn, field, magnitudes
from zk.keys import TensorKind as K
from zk.lower import pad

from forge import forge, redecompose, rejection
from test_lowering import LINEAR, rerun, set_limbs, violations

LR = 0.25


# ----------------------------------------------------------------------------------------
# tools
# ----------------------------------------------------------------------------------------
def _graph(build, extra_inputs=(), features=3):
    """A forward graph: data ``x`` (1, features), parameters ``w`` (3, features) and ``b`` (3,),
    ``extra_inputs`` ``(name, role, shape)``; ``build(g)`` returns the output tensor (or sets
    ``g.outputs`` itself and returns None)."""
    g = circuits.Graph(16, 16)
    g.input("x", (1, features), role="data")
    g.input("w", (3, features), role="param")
    g.input("b", (3,), role="param")
    for name, role, shape in extra_inputs:
        g.input(name, shape, role=role)
    out = build(g)
    if out is not None:
        g.outputs["out"] = out
    return g


def _circuit(build, training_=False, rows=2, steps=None):
    arch = zk.Architecture.of_graph(_graph(build))
    steps = steps or (2 if training_ else 1)
    return fac4dnn.Circuit(arch, rows, steps, *(quantize_lr(LR) if training_ else (0, 0)), training=training_)


def _witness(c, seed=0):
    """The honest witness of circuit ``c`` from seeded data, targets and initial parameters
    (:func:`test_lowering.rerun`), the statement's range-check limbs included."""
    rng = np.random.default_rng(seed)
    v = {}
    for t in range(c.steps):
        v[K.VALUE(t, "x")] = rng.integers(-2**12, 2**12, c.graph(c.rows[t])["x"].shape)
        if c.training:
            v[K.VALUE(t, "y")] = rng.integers(-2**12, 2**12, c.graph(c.rows[t])["y"].shape)
    for n in c.params:
        v[K.VALUE(0, n)] = rng.integers(-2**12, 2**12, c.graph(c.batch)[n].shape)
    v = rerun(c, v, lambda *a: None)
    for check in c.statement_checks():
        v.update(check.decompose(pad(v[check.key], c.shapes[check.key]), str(check.key)))
    return v


def _roundtrip(proof):
    cls = zk.TrainingProof if proof.statement.training else zk.InferenceProof
    return cls.from_bytes(proof.to_bytes())


def _verify(proof):
    return (zk.verify_training if proof.statement.training else zk.verify_inference)(proof)


def _lin(g, a="x", name="m"):
    return g.rescale(g.einsum("bi,oi->bo", a, "w", name=name), 16, name=name + "q")


# ----------------------------------------------------------------------------------------
# EXPLOIT: an inference output named twice is committed under the alias; the statement's
# output commitment is bound by no relation
# ----------------------------------------------------------------------------------------
def _aliased(g):
    z = _lin(g)
    g.outputs["out"] = z
    g.outputs["alias"] = z  # a second public name for the same tensor: the parser accepts it


def test_an_inference_output_with_a_second_name_is_refused():
    """Was an exploit: forward outputs {'out': z, 'alias': z} made the lowering commit z as the
    carried VALUE(1, 'alias'), leaving the statement's output bound by nothing but its zero padding
    (a claimed 12345 verified). A model has one output, out."""
    with pytest.raises(ValueError, match="one output, out"):
        _circuit(lambda g: _aliased(g))
    with pytest.raises(zk.ProofFormatError, match="one output, out"):
        zk.Architecture.read(circuits.architecture_bytes(_graph(lambda g: _aliased(g))))


def test_an_inference_output_that_is_a_constant_is_refused():
    """Was an exploit: out = a graph constant committed nothing (it is public), so any claimed
    output verified. The output is computed by an op."""
    with pytest.raises(ValueError, match="computed by an op"):
        _circuit(lambda g: g.constant("c", np.ones((1, 3)), 16))


def test_other_outputs_are_refused_in_training_too():
    """The same trick in training (an output named 'x' would rebind the next step's data, one named
    'y' its targets) is refused with the architecture; without the extra outputs the statement's
    data stay bound."""
    def build(g):
        g.outputs["out"] = _lin(g)
        g.outputs["x"] = "x"
        g.outputs["y"] = g.outputs["out"]
    with pytest.raises(ValueError, match="one output, out"):
        _circuit(build, training_=True)
    c = _circuit(_lin, training_=True)
    assert set(c.graph(2).outputs) == {"out", "w", "b"}
    statement = {k for k, _ in c.statement_keys}
    assert not statement & {k for k, _ in c.proof_keys}
    values = _witness(c)
    assert _verify(_roundtrip(forge(c, values)))
    values[K.VALUE(1, "x")] = np.array(values[K.VALUE(0, "x")], copy=True)  # step 1 claimed on X_0's data
    assert LINEAR in rejection(forge(c, values))


# ----------------------------------------------------------------------------------------
# EXPLOIT (magnitudes): an einsum whose second operand broadcasts a size-1 axis over a
# contracted axis is bounded as if it summed one term
# ----------------------------------------------------------------------------------------
def _broadcast_contraction(n):
    def build(g):
        g.input("v", (2, 1), role="param")  # broadcast over x's n features (numpy semantics)
        return g.rescale(g.einsum("bi,oi->bo", "x", "v", name="m"), 16, name="z")
    return build


def test_a_broadcast_contraction_is_bounded_by_all_its_terms():
    """Was an under-estimate: a size-1 axis broadcast over a contracted axis counted one term."""
    n = 64
    c = fac4dnn.Circuit(zk.Architecture.of_graph(_graph(_broadcast_contraction(n), features=n)), 1, 1,
                        training=False)
    b = c.template(0).bounds
    worst = n * b[K.VALUE(0, "x")] * b[K.VALUE(0, "v")]  # |sum_i x_i v_o| over the n features
    found = {x.equation: x.magnitude for x in magnitudes.bounds(c)}
    assert found["einsum m = bi,oi->bo"] >= worst


def test_a_sum_wrapping_modulo_r_through_a_broadcast_is_refused():
    n = 1 << 16
    g = circuits.Graph(40, 104)
    g.input("x", (1, n), role="data")
    g.input("v", (1, 1), role="param")
    g.outputs["out"] = g.rescale(g.einsum("bi,oi->bo", "x", "v", name="m"), 16, name="z")
    data_bits, param_bits = 113, 128
    c = fac4dnn.Circuit(zk.Architecture.of_graph(g), 1, 1, training=False, data_bits=data_bits,
                        param_bits=param_bits)
    with pytest.raises(zk.StatementError, match="unsound statement"):  # was: passed, and a false output verified
        c.check_sound()
    v = (1 << 127) - 1
    total = -(-field.R // v)  # sum_i x_i: v * total = r + T, 0 <= T < v
    wrapped = v * total - field.R
    q, extra = divmod(total, n)
    x = np.full((1, n), q, dtype=object)
    x[0, :extra] += 1
    assert x.sum() == total and x.max() < 1 << (data_bits - 1)
    z = (wrapped + (1 << 15)) >> 16
    assert z != (v * total + (1 << 15)) >> 16  # not the model's output
    values = {K.VALUE(0, "x"): x, K.VALUE(0, "v"): np.array([[v]], dtype=object),
              K.VALUE(0, "m"): np.array([[wrapped]], dtype=object), K.VALUE(0, "z"): np.array([[z]], dtype=object)}
    rem = np.array([[wrapped + (1 << 15) - (z << 16)]], dtype=object)
    set_limbs(c, values, K.REMAINDER_LIMBS, "z", rem)
    redecompose(c, values, K.VALUE(0, "z"))
    assert c.range_checks() and all(redecompose(c, values, key) for key, _ in c.range_checks())
    assert violations(c, values) == set()  # every relation holds modulo r: only the bounds refuse it
    with pytest.raises(zk.ProofFormatError, match="unsound statement"):
        _roundtrip(forge(c, values, lr=0.0))


def test_a_broadcast_contraction_proves_honestly():
    """The broadcast itself is proved correctly (numpy's semantics) at a small width."""
    c = fac4dnn.Circuit(zk.Architecture.of_graph(_graph(_broadcast_contraction(3))), 2, 1, training=False)
    values = _witness(c)
    assert violations(c, values) == set()
    assert _verify(_roundtrip(forge(c, values, lr=0.0)))


# ----------------------------------------------------------------------------------------
# accepted architectures: honest runs verify, a wrong output or final model is rejected
# ----------------------------------------------------------------------------------------
HONEST = {
    "x times x": lambda g: g.rescale(g.einsum("bi,bi->bi", _lin(g), "x", name="xx"), 16, name="xxq"),
    "rescaled parameter": lambda g: g.rescale(g.einsum("bi,oi->bo", "x", g.rescale("w", 8, name="w8"), name="m"),
                                              8, name="z"),
    "bias over the rows": lambda g: g.add(_lin(g), "b", name="s"),
    "parameter plus itself": lambda g: g.rescale(g.einsum("bi,oi->bo", "x", g.add("w", "w", name="ww"), name="m"),
                                                 16, name="z"),
    "constant operand": lambda g: g.rescale(g.einsum("bi,oi->bo", _lin(g), g.constant("c", np.eye(3) / 2, 16),
                                                     name="cm"), 16, name="cq"),
    "b reaches nothing": lambda g: _lin(g),
    "parameter vector as a scale": lambda g: g.rescale(g.einsum("bo,o->bo", _lin(g), "b", name="mb"), 16, name="mbq"),
    "ReLU of a residual sum with x": lambda g: g.relu(g.add(g.relu(_lin(g), name="h"), "x", name="res"), name="r2"),
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_an_accepted_training_architecture_verifies_and_binds_the_final_model(name):
    c = _circuit(HONEST[name], training_=True)
    values = _witness(c)
    assert violations(c, values) == set()
    assert _verify(_roundtrip(forge(c, values)))
    for p in c.params:  # every final parameter is bound: one moved entry is rejected
        forged = dict(values)
        key = K.VALUE(c.steps, p)
        forged[key] = np.array(forged[key], copy=True)
        forged[key].flat[0] += 1
        assert LINEAR in rejection(forge(c, forged)), p


@pytest.mark.parametrize("name", sorted(HONEST))
def test_an_accepted_inference_architecture_binds_its_output(name):
    c = _circuit(HONEST[name])
    values = _witness(c)
    assert _verify(_roundtrip(forge(c, values, lr=0.0)))
    key = K.VALUE(0, c.output)
    values[key] = np.array(values[key], copy=True)
    values[key].flat[0] += 1
    assert violations(c, values)
    rejection(forge(c, values, lr=0.0), zk.verify_inference)


@pytest.mark.parametrize("training_", [False, True])
def test_a_scalar_parameter(training_):
    """A rank-0 parameter (shape (), the parser allows rank 0): proved, and a wrong output or final
    value rejected."""
    def build(g):
        g.input("s", (), role="param")
        return g.rescale(g.einsum("bo,->bo", _lin(g), "s", name="ms"), 16, name="msq")
    c = _circuit(build, training_)
    values = _witness(c)
    lr = LR if training_ else 0.0
    assert _verify(_roundtrip(forge(c, values, lr=lr)))
    key = K.VALUE(c.steps, "s") if training_ else K.VALUE(0, c.output)
    values[key] = np.array(values[key], copy=True) + 1
    assert LINEAR in rejection(forge(c, values, lr=lr), zk.verify_training if training_ else zk.verify_inference)


def test_an_unreached_parameter_stays_unchanged():
    """``b`` reaches no output: no gradient, so its final value must be its initial one (a forged
    'moved' final b, every other tensor honest, violates the carry relation)."""
    c = _circuit(HONEST["b reaches nothing"], training_=True)
    assert c.graph(2).outputs["b"] == "b"
    values = _witness(c)
    key = K.VALUE(c.steps, "b")
    values[key] = np.array(values[key], copy=True) + 7
    found = violations(c, values)
    assert found and all("carried" in v for v in found), found
    assert LINEAR in rejection(forge(c, values))


def test_an_output_that_is_an_input_is_refused():
    """out = w would get no gradient (the proof would state w unchanged where torch's SGD moves it);
    out = x would list x twice in the statement. Both are refused."""
    for out, training_ in (("w", True), ("w", False), ("x", False), ("x", True)):
        with pytest.raises(ValueError, match="computed by an op"):
            _circuit(lambda g: out, training_=training_)


# ----------------------------------------------------------------------------------------
# accepted by Circuit, yet no honest proof can verify: should be refused at construction
# ----------------------------------------------------------------------------------------
def _refused_or_verifies(build, training_):
    """The secure-and-complete behaviour: refused when the Circuit is built, or the honest
    witness proves and verifies."""
    try:
        c = _circuit(build, training_)
    except (UnsupportedOp, ValueError):
        return
    keys = [k for k, _ in c.statement_keys + c.proof_keys]
    assert len(keys) == len(set(keys)), "a tensor key is committed twice"
    assert _verify(_roundtrip(forge(c, _witness(c), lr=LR if training_ else 0.0)))


def _off_path_relu(g):
    """A ReLU of data no parameter reaches: training gives it no relu_grad."""
    r = g.relu(g.rescale(g.einsum("bi,oi->bo", "x", g.constant("c", np.eye(3), 16), name="cx"), 16,
                         name="cxq"), name="r")
    return _lin(g, r)


BROKEN = {
    "relu of x": (lambda g: _lin(g, g.relu("x", name="rx")), (False, True),
                  "relu(x) range-checks x again: its range keys (t, 'x', j) are the statement range check's "
                  "keys (offset 1 vs 0): keys committed twice, the proof never parses/verifies; "
                  "training: the prover crashes (AttributeError)"),
    "relu of a parameter": (lambda g: g.rescale(g.einsum("bi,oi->bo", "x", g.relu("w", name="rw"), name="m"),
                                                16, name="z"), (False, True),
                            "relu(w) re-range-checks w under the keys of its statement range check "
                            "(0, 'w', j): keys committed twice, ProofFormatError on parse"),
    "diagonal of a parameter": (lambda g: g.rescale(g.einsum("bi,ii->bi", "x", "w", name="d"), 16, name="dq"),
                                (False,),
                                "einsum 'bi,ii->bi' (a repeated label) is accepted by zk.lower, but "
                                "zk.einsum's layout keys variables by label (dict), so the prover crashes "
                                "(ValueError: cannot reshape) and the verifier would evaluate w's 4-variable "
                                "MLE on a 2-variable point; refuse repeated labels in zk.lower.einsum"),
    "ReLU no gradient reaches": (_off_path_relu, (True,),
                                 "training: a ReLU off the parameters' path has no relu_grad, so its zkReLU "
                                 "group has g = None and fac4dnn._relu_forms builds the training form with "
                                 "None (prover AttributeError; verifier 'malformed object')"),
    "output is x": (lambda g: "x", (False,),
                    "inference with out = x: the statement lists VALUE(0, 'x') twice (data and output), "
                    "the parser refuses the honest proof (ProofFormatError: declares 4 commitments)"),
    "output is a parameter": (lambda g: "w", (False,),
                              "inference with out = w: VALUE(0, 'w') twice in the statement keys, "
                              "ProofFormatError on the honest proof"),
}


@pytest.mark.parametrize("name,training_", [(n, t) for n, (_, ts, _) in sorted(BROKEN.items()) for t in ts])
def test_an_architecture_is_refused_or_proves(name, training_):
    """Each was accepted by Circuit although no honest proof could verify (the reason says why);
    now refused at construction."""
    build, _, reason = BROKEN[name]
    with pytest.raises((UnsupportedOp, ValueError)):
        _circuit(build, training_)
    _refused_or_verifies(build, training_)


# ----------------------------------------------------------------------------------------
# clean refusals
# ----------------------------------------------------------------------------------------
REFUSED = {
    "three operands": (lambda g: g.rescale(g.rescale(g.einsum("bi,oi,o->bo", "x", "w", "b", name="t"), 16,
                                                     name="t1"), 16, name="t2"), (), "two operands"),
    "second data input": (lambda g: _lin(g), (("x2", "data", (1, 3)),), "inputs are x and its parameters"),
    "target input": (lambda g: _lin(g), (("t", "target", (1, 3)),), "inputs are x and its parameters"),
    "state input": (lambda g: _lin(g), (("s", "state", (3, 3)),), "inputs are x and its parameters"),
    "constant named y": (lambda g: g.add(_lin(g), g.constant("y", np.ones(3), 16), name="s"), (), "named y"),
    "constant named w.next": (lambda g: g.add(_lin(g), g.constant("w.next", np.ones(3), 16), name="s"), (),
                              "already used"),
    "sum of a parameter over its rows": (lambda g: g.rescale(g.einsum("bi,i->bi", "x", g.einsum("oi->i", "w"),
                                                                      name="p"), 16, name="z"), (),
                                         "batch axis only|only two operands"),
    "bias added to a parameter": (lambda g: g.rescale(g.einsum("bi,oi->bo", "x", g.add("w", "b", name="wb"),
                                                               name="m"), 16, name="z"), (), "rows of a matrix"),
    "a row of a parameter added to x": (lambda g: _lin(g, g.add("x", g.einsum("oi->i", "w", name="r"), name="a")),
                                        (), "batch axis only|only two operands"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_an_architecture_is_refused_cleanly(name):
    build, extra, match = REFUSED[name]
    with pytest.raises((UnsupportedOp, ValueError), match=match):
        g = _graph(build, extra)
        fac4dnn.Circuit(zk.Architecture.of_graph(g), 2, 2, *quantize_lr(LR), training=True)


def test_published_bytes_of_a_refused_graph_are_a_format_error():
    """The writer does not check what Architecture.check does: bytes of a graph with a second
    data input parse to ProofFormatError, and a graph rebatch refuses (an add broadcasting over
    the batch) to StatementError when the statement is made."""
    g = _graph(lambda g: _lin(g), (("x2", "data", (1, 3)),))
    with pytest.raises(zk.ProofFormatError, match="inputs are x"):
        zk.Architecture.read(circuits.architecture_bytes(g))
    g = _graph(lambda g: g.add("x", g.input("row", (1, 3), role="param"), name="a"))
    arch = zk.Architecture.read(circuits.architecture_bytes(g))  # of_graph would refuse (rebatch)
    with pytest.raises(zk.StatementError, match="batch"):
        zk.TrainingStatement(arch, 2, 1, LR, True, {}, 32, 24, (2,), (0,))


def test_huge_widths_and_scales_are_refused():
    g = _graph(lambda g: _lin(g), features=zk.architecture.MAX_WIDTH + 1)
    with pytest.raises(ValueError, match="too large to prove"):
        zk.Architecture.of_graph(g)
    g = _graph(lambda g: _lin(g))
    for data_bits, param_bits in ((128, 128), (121, 121)):  # 2^254 and 2^240 products
        stmt = zk.TrainingStatement(zk.Architecture.of_graph(g), 2, 1, 0.0, False, {}, data_bits, param_bits,
                                    (2,), (0,))
        with pytest.raises(zk.StatementError, match="unsound statement"):
            stmt.circuit.check_sound()


def _scale_1024_constant():
    """Bytes of a graph with a constant at scale 2^1024 (MAX_SCALE: the parser accepts it), which
    fixed point cannot encode as a float (2.0 ** 1024 overflows)."""
    g = circuits.Graph(16, 16)
    g.input("x", (1, 3), role="data")
    g.input("w", (3, 3), role="param")
    c = g.constant("c", np.zeros(3), 1024)
    g.outputs["out"] = g.rescale(g.einsum("bo,o->bo", _lin(g), c, name="mc"), 1024, name="q")
    return circuits.architecture_bytes(g)


def test_a_constant_at_the_largest_scale_in_a_proof_file_is_a_format_error():
    """An honest proof's statement with its architecture swapped for one holding a constant at
    scale 2^1024: the proof parser answers ProofFormatError (it catches the OverflowError)."""
    import struct

    from zk import training

    model = training.synthetic_mlp((3, 3, 2), seed=1)
    proof = zk.prove_inference(model, np.random.default_rng(1).standard_normal((2, 3)))
    data, old = proof.to_bytes(), proof.statement.architecture.data
    (head,) = struct.unpack("<I", data[9:13])
    assert data[13:17 + len(old)] == struct.pack("<I", len(old)) + old
    new = _scale_1024_constant()
    forged = data[:9] + struct.pack("<I", head - len(old) + len(new)) + struct.pack("<I", len(new)) + new + \
        data[17 + len(old):]
    with pytest.raises(zk.ProofFormatError):
        zk.InferenceProof.from_bytes(forged)


def test_a_constant_at_the_largest_scale_is_a_format_error():
    """Was a crash (OverflowError from FixedPoint.encode): the architecture's constants must encode."""
    with pytest.raises(zk.ProofFormatError, match="constant c at scale 2\\^1024"):
        zk.Architecture.read(_scale_1024_constant())
