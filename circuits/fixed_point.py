"""The one fixed-point convention shared by the zk and fhe backends.

A real number ``x`` is represented at *scale exponent* ``s`` by the signed integer
``round(x * 2**s)`` (round half to even, numpy's ``rint``). Every tensor of a graph has its
own scale exponent, fixed when the graph is built:

* inputs and activations live at ``S`` (``scale_bits``, default 16); weights and biases at
  ``P >= S`` (``param_scale``): master weights, kept more precise than the forward pass so that
  an SGD update far below ``2**-S`` still moves them (mixed-precision training's habit);
* a product (``einsum``) of tensors at ``s1`` and ``s2`` lives at ``s1 + s2``; the graph then
  ``rescale``s it back with a division by a power of two **rounded to nearest** (``floor`` of
  ``x + 2**(bits-1)``), whose remainder ``0 <= rem < 2**bits`` is kept (the prover range-checks
  it); every other division (loss gradient, SGD update) rounds to nearest the same way, so the
  fixed-point run has no systematic drift;
* gradients live at ``2S``: the extra ``S`` bits keep the small values of the MSE gradient
  (which is divided by the number of outputs) precise;
* the learning rate is quantised as ``lr_q = round(lr * 2**lr_bits)`` with ``lr_bits`` chosen
  so that ``2**15 <= lr_q < 2**16``, i.e. a relative error below ``2**-16``; so is the weight
  decay, and the momentum and ``1 - dampening`` share one denominator ``2**bits``
  (:func:`quantize_momentum`);
* a momentum buffer and a weight-decayed gradient live at the gradient's scale.

Decoding divides by ``2**s``. All arithmetic on the integers is exact (see
:mod:`circuits.interpret`), so the fixed-point run is deterministic and reproducible by a
prover working in a prime field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Largest magnitude handled in int64 without switching to Python integers.
INT64_SAFE = 1 << 62


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed point with ``scale_bits`` fractional bits."""

    scale_bits: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.scale_bits, int) or not 1 <= self.scale_bits <= 40:
            raise ValueError(f"scale_bits must be an integer in [1, 40], got {self.scale_bits!r}")

    def encode(self, x, scale: int | None = None) -> np.ndarray:
        """Real array -> integer array at ``scale`` (default ``scale_bits``)."""
        s = self.scale_bits if scale is None else scale
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot encode non-finite values (nan or inf) in fixed point")
        scaled = np.rint(x * float(2**s))
        if scaled.size and np.max(np.abs(scaled)) >= INT64_SAFE:
            raise ValueError(
                f"value too large for fixed point at scale 2^{s}: |x| must stay below "
                f"{INT64_SAFE / 2**s:.3g}")
        return scaled.astype(np.int64)

    def decode(self, q, scale: int | None = None) -> np.ndarray:
        """Integer array at ``scale`` -> float64 array."""
        s = self.scale_bits if scale is None else scale
        return np.asarray(q).astype(np.float64) / float(2**s)


def quantize(x: float, what: str, target_bits: int = 16) -> tuple[int, int]:
    """``(x_q, x_bits)`` with ``x ≈ x_q / 2**x_bits`` and ``2**(target_bits-1) <= x_q < 2**target_bits``
    (``x`` a positive finite number, else ``ValueError`` naming it as ``what``)."""
    if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
        raise ValueError(f"{what} must be a positive finite number, got {x!r}")
    x_bits = target_bits - math.floor(math.log2(x)) - 1
    x_q = round(x * 2**x_bits)
    if x_q >= 2**target_bits:  # rounding crossed the power of two
        x_bits -= 1
        x_q = round(x * 2**x_bits)
    if x_bits < 0:
        raise ValueError(f"{what} {x} is too large for fixed point")
    return x_q, x_bits


def quantize_lr(lr: float, target_bits: int = 16) -> tuple[int, int]:
    """``(lr_q, lr_bits)``: :func:`quantize` of the learning rate."""
    return quantize(lr, "learning rate", target_bits)


def quantize_momentum(momentum: float, dampening: float, target_bits: int = 16) -> tuple[int, int, int]:
    """``(mu_q, damp_q, bits)`` with ``momentum ≈ mu_q / 2**bits`` and ``1 - dampening ≈ damp_q / 2**bits``:
    one denominator, the larger of the two quantised to ``target_bits`` bits, the other to the same
    absolute precision ``2**-bits``."""
    bits = quantize(max(momentum, 1 - dampening), "momentum", target_bits)[1]
    return round(momentum * 2**bits), round((1 - dampening) * 2**bits), bits


#: Extra bits of parameter precision beyond ``ceil(log2(1 / lr))`` (see :func:`param_scale_for`).
PARAM_HEADROOM_BITS = 6
#: Most extra bits :func:`param_scale_for` adds to ``scale_bits``.
MAX_PARAM_EXTRA_BITS = 24


def param_scale_for(lr: float | None, scale_bits: int = 16) -> int:
    """The parameter scale exponent for training at ``lr``: ``scale_bits`` plus
    ``ceil(log2(1 / lr)) + PARAM_HEADROOM_BITS`` bits, so that an update ``lr * g`` with a gradient
    ``|g|`` around ``2**-6`` still spans about ``2**6`` units of the parameters' last place
    (``scale_bits`` alone for inference, ``lr=None``)."""
    if lr is None:
        return scale_bits
    quantize_lr(lr)  # a positive finite learning rate, or ValueError naming it
    extra = max(0, math.ceil(-math.log2(lr)) + PARAM_HEADROOM_BITS)
    return scale_bits + min(extra, MAX_PARAM_EXTRA_BITS)
