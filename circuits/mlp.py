"""The forward graph of a Linear/ReLU MLP from its public shape, without torch."""
from __future__ import annotations

from collections.abc import Sequence

from .graph import Graph


def mlp_graph(widths: Sequence[int], biases: bool | Sequence[bool], batch: int, scale_bits: int = 16,
              param_scale: int | None = None) -> Graph:
    """The graph :func:`~circuits.trace` builds for ``nn.Sequential(Linear(widths[0], widths[1]),
    ReLU(), ..., Linear(widths[-2], widths[-1]))`` on a batch of ``batch`` rows, names included:
    parameters ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... (``biases``: one flag per Linear,
    or one for all)."""
    layers = len(widths) - 1
    if layers < 1 or not all(isinstance(n, int) and n > 0 for n in widths):
        raise ValueError(f"widths must be at least two positive integers, got {widths!r}")
    biases = [biases] * layers if isinstance(biases, bool) else list(biases)
    if len(biases) != layers:
        raise ValueError(f"{layers} Linear layers but {len(biases)} bias flags")
    g = Graph(scale_bits, param_scale)
    h = g.input("x", (batch, widths[0]), role="data")
    for l in range(layers):
        g.input(f"{2 * l}.weight", (widths[l + 1], widths[l]), role="param")
        if biases[l]:
            g.input(f"{2 * l}.bias", (widths[l + 1],), role="param")
    for l in range(layers):
        if l:
            h = g.relu(h, name=f"{2 * l - 1}.relu")
        p = g.einsum("bi,oi->bo", h, f"{2 * l}.weight", name=f"{2 * l}.matmul")
        if biases[l]:
            p = g.add(p, f"{2 * l}.bias", name=f"{2 * l}.biased")
        h = g.rescale(p, g.param_scale, name=f"{2 * l}.z")
    g.outputs["out"] = h
    return g
