"""circuits.serial: canonical architecture bytes of forward graphs, bounded reads, rebatching."""
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings, strategies as st

import circuits
from circuits import ArchitectureError, architecture_bytes, read_architecture, rebatch
from circuits import serial


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.out(x + torch.relu(self.fc(x)))


class Pooled(nn.Module):
    """AvgPool1d over the last axis of a 3-D input, then a mean over a non-batch axis."""

    def __init__(self):
        super().__init__()
        self.fc, self.pool, self.out = nn.Linear(4, 6), nn.AvgPool1d(2), nn.Linear(3, 2)

    def forward(self, x):
        h = self.pool(torch.relu(self.fc(x)))  # (b, 5, 3)
        return self.out(h.mean(1))


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.head = nn.Linear(12, 5), nn.Linear(5, 2, bias=False)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x.reshape(x.shape[0], -1))))


MODELS = {
    "mlp": (lambda: nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)), (5,)),
    "residual": (Residual, (6,)),
    "pooled": (Pooled, (5, 4)),
    "adaptive-pool-flatten": (lambda: nn.Sequential(nn.Linear(6, 4), nn.AdaptiveAvgPool1d(2), nn.Flatten(),
                                                nn.Linear(6, 2)), (3, 6)),
    "flatten": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 1)), (3, 4)),
    "reshape": (Flat, (2, 6)),
}


def _same(a: circuits.Graph, b: circuits.Graph) -> None:
    assert str(a) == str(b)
    assert list(a.tensors) == list(b.tensors)
    assert list(a.constants) == list(b.constants)
    for k in a.constants:
        assert a.constants[k].tobytes() == b.constants[k].tobytes()


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_rebatch_matches_tracing_and_round_trips(kind):
    make, features = MODELS[kind]
    torch.manual_seed(0)
    model = make()
    g = circuits.trace(model, torch.zeros(4, *features))
    for n in (1, 3, 4, 17):
        r = rebatch(g, n)
        _same(r, circuits.trace(model, torch.zeros(n, *features)))
        data = architecture_bytes(r)
        back = read_architecture(data)
        _same(back, r)
        assert architecture_bytes(back) == data
    assert architecture_bytes(rebatch(rebatch(g, 1), 4)) == architecture_bytes(g)


def test_mlp_graph_rebatch_and_param_scale():
    g = circuits.mlp_graph([5, 8, 3], [True, False], batch=6, scale_bits=12, param_scale=20)
    _same(rebatch(g, 2), circuits.mlp_graph([5, 8, 3], [True, False], batch=2, scale_bits=12,
                                             param_scale=20))
    back = read_architecture(architecture_bytes(g))
    _same(back, g)
    assert (back.scale_bits, back.param_scale) == (12, 20)


def test_training_ops_refused():
    model = nn.Sequential(nn.Linear(3, 2))
    step = circuits.trace_training(model, batch_size=4, lr=0.1)
    for f in (architecture_bytes, lambda g: rebatch(g, 2)):
        with pytest.raises(ArchitectureError, match="forward graph holds only"):
            f(step)


def _graph(*build):
    g = circuits.Graph()
    g.input("x", (4, 6))
    g.input("w", (4, 6), role="param")
    for f in build:
        f(g)
    return g


@pytest.mark.parametrize("build, match", [
    (lambda g: g.reshape("x", (8, 3), name="r"), "reshape"),
    (lambda g: g.einsum("bi->i", "x", name="s"), "einsum"),
    (lambda g: g.einsum("bi->ib", "x", name="t"), "einsum"),
    (lambda g: g.einsum("bi,bi->bi", "x", "w", name="u"), "label 'b' elsewhere"),
    (lambda g: g.add("x", "w", name="v"), "broadcasts"),
])
def test_rebatch_refuses_graphs_that_mix_the_batch_axis(build, match):
    g = _graph(build)
    with pytest.raises(ArchitectureError, match=match):
        rebatch(g, 3)


def test_rebatch_needs_x_and_a_positive_batch():
    g = circuits.Graph()
    g.input("h", (4, 6))
    with pytest.raises(ArchitectureError, match="data input 'x'"):
        rebatch(g, 2)
    with pytest.raises(ArchitectureError, match="data input 'x'"):
        architecture_bytes(g)
    for bad in (0, -1, True, 2.0, 2**21):
        with pytest.raises(ArchitectureError, match="batch"):
            rebatch(_graph(), bad)


def test_writer_refuses_what_the_reader_would():
    g = _graph()
    g.constant("c", [np.nan], 4)
    with pytest.raises(ArchitectureError, match="non-finite"):
        architecture_bytes(g)
    g = _graph(lambda g: g.relu("x", name="bad\nname"))
    with pytest.raises(ArchitectureError, match="bad tensor name"):
        architecture_bytes(g)


VALID = architecture_bytes(circuits.trace(MODELS["pooled"][0](), torch.zeros(2, 5, 4)))


def _parses_canonically_or_refuses(data: bytes) -> None:
    try:
        g = read_architecture(data)
    except ArchitectureError:
        return
    assert architecture_bytes(g) == data


def test_every_truncation_refused():
    for n in range(len(VALID)):
        with pytest.raises(ArchitectureError):
            read_architecture(VALID[:n])
    with pytest.raises(ArchitectureError, match="trailing"):
        read_architecture(VALID + b"\0")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_single_byte_flips(pos, byte):
    _parses_canonically_or_refuses(VALID[:pos] + bytes([byte]) + VALID[pos + 1:])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=2, max_size=6),
       st.integers(0, len(VALID)))
def test_several_flips_and_a_cut(flips, cut):
    data = bytearray(VALID)
    for pos, byte in flips:
        data[pos] = byte
    _parses_canonically_or_refuses(bytes(data[:cut]))


def _header(**fields):
    f = dict(version=serial.VERSION, scale_bits=16, param_scale=16, batch=2, inputs=1, constants=0,
             nodes=0, outputs=0) | fields
    return serial.MAGIC + struct.pack("<BHHI4I", *f.values())


@pytest.mark.parametrize("fields, match", [
    (dict(nodes=2**31), "number of nodes"),
    (dict(inputs=2**32 - 1), "number of inputs"),
    (dict(constants=serial.MAX_CONSTANTS + 1), "number of constants"),
    (dict(outputs=2**31), "number of outputs"),
    (dict(version=2), "unknown architecture version 2"),
    (dict(version=0), "unknown architecture version 0"),
    (dict(param_scale=8), "param_scale"),
    (dict(scale_bits=60000, param_scale=60000), "scale"),
])
def test_header_limits_refused_before_allocating(fields, match):
    with pytest.raises(ArchitectureError, match=match):
        read_architecture(_header(**fields) + b"\0" * 64)


def _input(name=b"x", role=0, scale=16, shape=(2, 3), rank=None):
    return (bytes([0, len(name)]) + name + struct.pack("<BHB", role, scale, len(shape) if rank is None else rank)
            + struct.pack(f"<{len(shape)}I", *shape))


@pytest.mark.parametrize("body, match", [
    (_input(shape=(2, 2**31)), "dimension"),
    (_input(shape=(2, 0)), "dimension"),
    (_input(rank=200, shape=()), "rank"),
    (_input(role=9), "unknown role"),
    (_input(name=b"\xff\xfe"), "not UTF-8"),
    (_input(name=b""), "length of a tensor name"),
    (bytes([0, 200]) + b"a" * 200, "length of a tensor name"),
    (bytes([9, 1]) + b"x", "unknown op code 9"),
    (bytes([1, 1]) + b"x", "more constants"),
    (_input(shape=(3, 3)), "header batch 2"),
])
def test_records_refused(body, match):
    with pytest.raises(ArchitectureError, match=match):
        read_architecture(_header() + body)


def test_constant_entries_bounded_before_reading():
    big = bytes([1, 1]) + b"c" + struct.pack("<HB3I", 17, 3, 2**20, 2**20, 2**20)
    with pytest.raises(ArchitectureError, match="total entries"):
        read_architecture(_header(constants=1) + _input() + big)


def test_bad_magic_and_unknown_op_in_builder():
    with pytest.raises(ArchitectureError, match="magic"):
        read_architecture(b"ZKFB" + VALID[4:])
    g = _graph(lambda g: g.relu("x", name="y"))
    data = architecture_bytes(g)
    i = data.index(b"\x01y") - 1  # the relu record's kind byte
    assert data[i] == serial._KINDS.index("relu")
    bad = data[:i] + bytes([serial._KINDS.index("rescale")]) + data[i + 1:]
    with pytest.raises(ArchitectureError):
        read_architecture(bad)


def _relu_graph_bytes() -> bytes:
    g = _graph(lambda g: g.einsum("bi,bj->bij", "x", "x", name="e"), lambda g: g.relu("e", name="y"))
    g.outputs["out"] = "y"
    return architecture_bytes(g)


@pytest.mark.parametrize("old, new, match", [
    (b"\x0abi,bj->bij", b"\x05bi,bj", "'bi,bj' is not in normal form 'bi,bj->ij'"),
    (b"\x0abi,bj->bij", b"\x0abi,bk->bij", "node 'e'"),
    (b"\x01e\x02", b"\x01x\x02", "used twice"),
    (b"\x03out\x01y", b"\x03out\x01z", "names no tensor"),
    (b"\x01y\x01e", b"\x01y\x01q", "no tensor named 'q'"),
])
def test_edited_records_refused(old, new, match):
    data = _relu_graph_bytes()
    assert data.count(old) == 1
    with pytest.raises(ArchitectureError, match=match):
        read_architecture(data.replace(old, new))


def test_an_edit_that_stays_valid_is_canonical():
    data = _relu_graph_bytes().replace(b"bi,bj->bij", b"bi,bj->bji")
    assert architecture_bytes(read_architecture(data)) == data


def test_duplicate_output_refused():
    data = _relu_graph_bytes()
    n = len(_header())
    assert data.endswith(b"\x03out\x01y") and data[n - 4:n] == struct.pack("<I", 1)
    twice = data[:n - 4] + struct.pack("<I", 2) + data[n:] + b"\x03out\x01y"
    with pytest.raises(ArchitectureError, match="declared twice"):
        read_architecture(twice)
