"""A forward graph's architecture as canonical bytes, and the same graph for another batch size.

A verifier derives a model's training circuit from public files alone: the forward graph that
:func:`~circuits.trace` or :func:`~circuits.mlp_graph` builds (inputs, constants, ``einsum`` /
``add`` / ``rescale`` / ``relu`` / ``reshape`` nodes, outputs) is written by
:func:`architecture_bytes` and rebuilt by :func:`read_architecture` through :class:`Graph`'s
builders, so every shape and scale is checked again. One graph has exactly one encoding, and a
file that parses is the encoding of the graph it gives. :func:`rebatch` re-instantiates a graph
for a batch of another size (the batch axis: the leading axis of the data input ``"x"``).

Byte layout, little-endian (``name``: ``u8 length || UTF-8``, printable, 1 to 128 bytes;
``shape``: ``u8 rank || rank x u32``, every dimension positive)::

    header   "ZKFA" | version u8 (1) | scale_bits u16 | param_scale u16 | batch u32
             | inputs u32 | constants u32 | nodes u32 | outputs u32
    records  inputs + constants + nodes records, in the graph's tensor order, each
             kind u8 | name (the tensor's) | body:
               0 input     role u8 (index in INPUT_ROLES) | scale u16 | shape
               1 constant  scale u16 | shape | its entries as float64, C order
               2 einsum    operands u8 | operands x name | spec (u8 length || ASCII, normal form)
               3 add       name | name
               4 rescale   name | bits u16
               5 relu      name
               6 reshape   name | shape (the target)
    outputs  outputs x (public name | tensor name), in order

Every count, length, rank and dimension is checked against the limits below before anything
is allocated; every refusal is an :class:`ArchitectureError` naming the problem.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from .graph import INPUT_ROLES, Graph, Node, Tensor

MAGIC = b"ZKFA"
VERSION = 1
MAX_NODES = 4096
MAX_INPUTS = 256
MAX_CONSTANTS = 1024
MAX_OUTPUTS = 256
MAX_NAME = 128  # bytes of UTF-8
MAX_SPEC = 128  # bytes of ASCII
MAX_OPERANDS = 8
MAX_RANK = 8
MAX_DIM = 2**20
MAX_SCALE = 1024
MAX_CONST_ENTRIES = 2**22  # all constants together

#: the ops a forward graph may hold, by record kind (0 and 1: inputs and constants)
FORWARD_OPS = ("einsum", "add", "rescale", "relu", "reshape")
_KINDS = ("input", "constant") + FORWARD_OPS
_ARITY = {"add": 2, "rescale": 1, "relu": 1, "reshape": 1}
#: the attribute each op's builder takes besides its operands
_ATTR = {"einsum": "spec", "rescale": "bits", "reshape": "shape"}
_COUNTS = (("inputs", MAX_INPUTS), ("constants", MAX_CONSTANTS), ("nodes", MAX_NODES),
           ("outputs", MAX_OUTPUTS))


class ArchitectureError(ValueError):
    """An architecture file (or a graph to write or rebatch) that is not a valid forward graph."""


def _limit(what: str, n: int, most: int, least: int = 0) -> int:
    if not least <= n <= most:
        raise ArchitectureError(f"{what} is {n}: must be between {least} and {most}")
    return n


def _check_name(name: str, what: str) -> bytes:
    raw = name.encode("utf-8") if name.isprintable() else b""
    if not 1 <= len(raw) <= MAX_NAME:
        raise ArchitectureError(f"bad {what} name {name!r}: names are 1 to {MAX_NAME} bytes of "
                                "printable UTF-8")
    return raw


def _check_shape(shape, what: str) -> tuple[int, ...]:
    _limit(f"the rank of {what}", len(shape), MAX_RANK)
    for d in shape:
        _limit(f"a dimension of {what}", d, MAX_DIM, 1)
    return tuple(shape)


def _data_input(g: Graph) -> Tensor:
    """The data input ``"x"``, whose leading axis is the batch axis."""
    x = g.tensors.get("x")
    if x is None or x.role != "data" or not x.shape:
        raise ArchitectureError("a forward graph needs a data input 'x' with a leading batch axis")
    return x


def _records(g: Graph) -> list[tuple[Tensor, Node | None]]:
    """Every tensor in the graph's order with the node that computes it (None for inputs and
    constants); refuses ops a forward graph may not hold."""
    producer = {n.output: n for n in g.nodes}
    out = []
    for t in g.tensors.values():
        node = producer.get(t.name)
        if node is not None and node.op not in FORWARD_OPS:
            raise ArchitectureError(f"node {t.name!r} is a {node.op!r} op: a forward graph holds only "
                                    f"{', '.join(FORWARD_OPS)} (write the forward graph, not the "
                                    "training step)")
        out.append((t, node))
    return out


def _emit(g: Graph, op: str, name: str, inputs, attr) -> str:
    """Append node ``name`` through Graph's builders; their refusals become ArchitectureError."""
    try:
        if op == "einsum":
            return g.einsum(attr, *inputs, name=name)
        if op == "rescale":
            return g.rescale(inputs[0], attr, name=name)
        if op == "reshape":
            return g.reshape(inputs[0], attr, name=name)
        return getattr(g, op)(*inputs, name=name)
    except (ValueError, KeyError) as exc:
        raise ArchitectureError(f"node {name!r} ({op}): {exc}") from None


# -- writing ------------------------------------------------------------------------------------
def architecture_bytes(forward: Graph) -> bytes:
    """The canonical encoding of forward graph ``forward`` (see the module docstring)."""
    records = _records(forward)
    counts = [len(forward.inputs), len(forward.constants), len(forward.nodes), len(forward.outputs)]
    for (what, most), n in zip(_COUNTS, counts):
        _limit(f"the number of {what}", n, most)
    scales = [forward.scale_bits, forward.param_scale] + [t.scale for t, n in records if n is None]
    for s in scales:
        _limit("a scale exponent", s, MAX_SCALE)
    entries = sum(v.size for v in forward.constants.values())
    _limit("the constants' total entries", entries, MAX_CONST_ENTRIES)
    out = [MAGIC, struct.pack("<BHHI4I", VERSION, forward.scale_bits, forward.param_scale,
                              _data_input(forward).shape[0], *counts)]
    for t, node in records:
        kind = "constant" if t.role == "const" else "input" if node is None else node.op
        out += [struct.pack("<B", _KINDS.index(kind)), _name(t.name, "tensor")]
        if kind == "input":
            out += [struct.pack("<BH", INPUT_ROLES.index(t.role), t.scale), _shape(t.shape, t.name)]
        elif kind == "constant":
            value = forward.constants[t.name]
            if not np.isfinite(value).all():
                raise ArchitectureError(f"constant {t.name!r} has non-finite values")
            out += [struct.pack("<H", t.scale), _shape(t.shape, t.name),
                    value.astype("<f8").tobytes()]
        else:
            if kind == "einsum":
                _limit(f"the operands of einsum {t.name!r}", len(node.inputs), MAX_OPERANDS, 1)
                out.append(struct.pack("<B", len(node.inputs)))
            out += [_name(x, "operand") for x in node.inputs]
            if kind == "einsum":
                out.append(_spec(node.attrs["spec"], t.name))
            elif kind == "rescale":
                bits = _limit(f"the bits of rescale {t.name!r}", node.attrs["bits"], 2**16 - 1)
                out.append(struct.pack("<H", bits))
            elif kind == "reshape":
                out.append(_shape(node.attrs["shape"], t.name))
    for public, tensor in forward.outputs.items():
        if tensor not in forward.tensors:
            raise ArchitectureError(f"output {public!r} names no tensor of the graph ({tensor!r})")
        out += [_name(public, "output"), _name(tensor, "output tensor")]
    return b"".join(out)


def _name(name: str, what: str) -> bytes:
    raw = _check_name(name, what)
    return struct.pack("<B", len(raw)) + raw


def _shape(shape, what: str) -> bytes:
    shape = _check_shape(shape, repr(what))
    return struct.pack(f"<B{len(shape)}I", len(shape), *shape)


def _spec(spec: str, what: str) -> bytes:
    raw = spec.encode("ascii")
    _limit(f"the spec length of einsum {what!r}", len(raw), MAX_SPEC, 1)
    return struct.pack("<B", len(raw)) + raw


# -- reading ------------------------------------------------------------------------------------
class _Reader:
    """Reads a byte string front to back; every overrun is an ArchitectureError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = bytes(data), 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ArchitectureError(f"truncated architecture: wanted {n} bytes at offset {self.pos}, "
                                    f"{len(self.data) - self.pos} left")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def u8(self) -> int:
        return self.unpack("B")[0]

    def u16(self) -> int:
        return self.unpack("H")[0]

    def name(self, what: str) -> str:
        n = _limit(f"the length of a {what} name", self.u8(), MAX_NAME, 1)
        raw = self.take(n)
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchitectureError(f"bad {what} name {raw!r}: not UTF-8") from None
        _check_name(name, what)
        return name

    def shape(self, what: str) -> tuple[int, ...]:
        rank = _limit(f"the rank of {what}", self.u8(), MAX_RANK)
        return _check_shape(self.unpack(f"{rank}I"), what)

    def scale(self) -> int:
        return _limit("a scale exponent", self.u16(), MAX_SCALE)


def read_architecture(data: bytes) -> Graph:
    """The forward graph that ``data`` encodes, rebuilt through Graph's builders; anything else
    (truncated, trailing bytes, unknown version or op, bad names, shapes the builders refuse,
    counts beyond the limits) raises :class:`ArchitectureError`."""
    r = _Reader(data)
    if r.take(len(MAGIC)) != MAGIC:
        raise ArchitectureError("not an architecture file (bad magic)")
    version = r.u8()
    if version != VERSION:
        raise ArchitectureError(f"unknown architecture version {version} (this reader knows {VERSION})")
    scale_bits, param_scale, batch, *counts = r.unpack("HHI4I")
    for (what, most), n in zip(_COUNTS, counts):
        _limit(f"the number of {what}", n, most)
    try:
        g = Graph(_limit("scale_bits", scale_bits, MAX_SCALE), _limit("param_scale", param_scale, MAX_SCALE))
    except ValueError as exc:
        raise ArchitectureError(str(exc)) from None
    left = list(counts[:3])
    entries = 0
    for _ in range(sum(counts[:3])):
        code = r.u8()
        if code >= len(_KINDS):
            raise ArchitectureError(f"unknown op code {code} at offset {r.pos - 1}")
        kind = _KINDS[code]
        group = min(code, 2)
        if left[group] == 0:
            raise ArchitectureError(f"more {_COUNTS[group][0]} than the header declares ({counts[group]})")
        left[group] -= 1
        name = r.name("tensor")
        if name in g.tensors:
            raise ArchitectureError(f"tensor name {name!r} is used twice")
        if kind == "input":
            role = r.u8()
            if role >= len(INPUT_ROLES):
                raise ArchitectureError(f"input {name!r}: unknown role code {role}")
            scale = r.scale()
            g.input(name, r.shape(repr(name)), INPUT_ROLES[role], scale)
        elif kind == "constant":
            scale = r.scale()
            shape = r.shape(repr(name))
            entries = _limit("the constants' total entries", entries + math.prod(shape), MAX_CONST_ENTRIES)
            value = np.frombuffer(r.take(8 * math.prod(shape)), "<f8").reshape(shape)
            if not np.isfinite(value).all():
                raise ArchitectureError(f"constant {name!r} has non-finite values")
            g.constant(name, value, scale)
        else:
            if kind == "einsum":
                arity = _limit(f"the operands of einsum {name!r}", r.u8(), MAX_OPERANDS, 1)
            else:
                arity = _ARITY[kind]
            inputs = [r.name("operand") for _ in range(arity)]
            attr = None
            if kind == "einsum":
                attr = _read_spec(r, name)
            elif kind == "rescale":
                attr = r.u16()
            elif kind == "reshape":
                attr = r.shape(f"the target of reshape {name!r}")
            _emit(g, kind, name, inputs, attr)
            if kind == "einsum" and g.nodes[-1].attrs["spec"] != attr:
                raise ArchitectureError(f"einsum {name!r}: spec {attr!r} is not in normal form "
                                        f"{g.nodes[-1].attrs['spec']!r}")
    for _ in range(counts[3]):
        public, tensor = r.name("output"), r.name("output tensor")
        if public in g.outputs:
            raise ArchitectureError(f"output {public!r} is declared twice")
        if tensor not in g.tensors:
            raise ArchitectureError(f"output {public!r} names no tensor of the graph ({tensor!r})")
        g.outputs[public] = tensor
    if r.pos != len(r.data):
        raise ArchitectureError(f"{len(r.data) - r.pos} trailing bytes after the architecture")
    if _data_input(g).shape[0] != batch:
        raise ArchitectureError(f"header batch {batch} differs from input 'x' {g['x'].shape}")
    return g


def _read_spec(r: _Reader, name: str) -> str:
    n = _limit(f"the spec length of einsum {name!r}", r.u8(), MAX_SPEC, 1)
    raw = r.take(n)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise ArchitectureError(f"einsum {name!r}: spec {raw!r} is not ASCII") from None


# -- another batch size -------------------------------------------------------------------------
def rebatch(forward: Graph, batch: int) -> Graph:
    """``forward`` for a batch of ``batch`` rows: ``"x"``'s leading dimension replaced, and every
    tensor computed from it keeps the batch as its leading axis (a reshape's target's leading
    dimension follows). Refuses (ArchitectureError) a graph in which the leading axis does not
    carry through: an einsum that sums over it or moves it, an add that broadcasts over it, a
    reshape that mixes it with other axes."""
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise ArchitectureError(f"batch must be an integer, got {batch!r}")
    _limit("batch", batch, MAX_DIM, 1)
    _data_input(forward)
    g = Graph(forward.scale_bits, forward.param_scale)
    batched = {"x"}
    for t, node in _records(forward):
        if t.role == "const":
            g.constant(t.name, forward.constants[t.name], t.scale)
        elif node is None:
            g.input(t.name, (batch,) + t.shape[1:] if t.name == "x" else t.shape, t.role, t.scale)
        else:
            attr = node.attrs[_ATTR[node.op]] if node.op in _ATTR else None
            if any(x in batched for x in node.inputs):
                _carries(forward, node, batched)
                batched.add(t.name)
                if node.op == "reshape":
                    attr = (batch,) + attr[1:]
            _emit(g, node.op, t.name, node.inputs, attr)
    g.outputs.update(forward.outputs)
    return g


def _carries(g: Graph, node: Node, batched: set[str]) -> None:
    """Refuse ``node`` (some of whose operands are batched) unless its output's leading axis is
    the batch axis of those operands, untouched."""
    old = g["x"].shape[0]
    fail = f"{node.op} {node.output!r} does not keep the batch as its leading axis: "
    if node.op == "einsum":
        parsed = node.attrs["parsed"]
        labels = {ops[0] for ops, x in zip(parsed.operands, node.inputs) if x in batched}
        b = labels.pop()
        if labels or not parsed.output or parsed.output[0] != b:
            raise ArchitectureError(fail + f"spec {node.attrs['spec']!r}")
        uses = sum(ops.count(b) for ops in parsed.operands) + parsed.output.count(b)
        if uses != 1 + sum(1 for x in node.inputs if x in batched):
            raise ArchitectureError(fail + f"spec {node.attrs['spec']!r} uses label {b!r} elsewhere")
    elif node.op == "add":
        ranks = {len(g[x].shape) for x in node.inputs if x in batched}
        rank = ranks.pop()
        if ranks or any(len(g[x].shape) >= rank for x in node.inputs if x not in batched):
            raise ArchitectureError(fail + "it broadcasts an operand over the batch axis")
    elif node.op == "reshape" and node.attrs["shape"][:1] != (old,):
        raise ArchitectureError(fail + f"reshape {g[node.inputs[0]].shape} -> {node.attrs['shape']}")
