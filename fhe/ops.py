"""The operator algebra of :class:`~fhe.tensor.CipherTensor`: ``+ - * @``, unary ``-``,
``sum``, ``**`` and :func:`polyval`, with numpy broadcasting.

    x = ctx.encrypt(a)                 # CipherTensor
    y = 2 * x @ w + b                  # w, b: plaintext arrays (or CipherTensors)
    z = fhe.polyval(y, [0.1, 0.0, 0.5, 0.25])   # 0.1 y^3 + 0.5 y + 0.25, 2 levels
    s = z.sum(axis=-1, keepdims=True)

Products, matrix products and sums are einsums: the spec is built with numpy's broadcasting
rules (missing leading axes, size-1 axes) and runs through :func:`fhe.einsum`, so the planner
chooses the packing and its level check runs before any work. Additions are per-ciphertext
``add``/``sub``/``add_plain`` once both operands share a layout; an operand in another layout,
or one that must be broadcast, is first brought to the other's layout by an einsum with
``out_layout`` (a relayout or a product with a plaintext of ones: usually one level).
Plaintext additions pack the broadcast plaintext into the ciphertext's layout, so slots that
hold no element stay zero.

What costs a level (on top of what the planner says for an einsum):

* ``x * y``, ``x @ y``: the einsum's plan (``ctx.plan(...)``), one level for an elementwise
  product; multiplying by an integer scalar (``|k| <= 2**16``) is done by additions and costs
  none; ``x * 1`` and ``x * -1`` are free.
* ``x + y``, ``x - y``, ``-x``, ``x + plaintext``: none when the layouts agree (else the
  relayout / broadcast einsum, usually one level); mixed levels meet at the lower one.
* ``x.sum(...)``: one rotate-and-sum per summed axis and usually one mask (one level);
  ``keepdims`` and ``axis=()`` are free.
* ``polyval(x, c)`` of degree ``d``: ``ceil(log2(d + 1))`` levels (fewer when the top
  coefficients are integers); ``x ** k``: ``ceil(log2 k)``.
* ``bootstrap(x)`` gives levels back (desilo's bootstrap preset only; values in [-1, 1]).
"""
from __future__ import annotations

import numbers
import string

import numpy as np

from .errors import ContextMismatch, OutOfLevels, ShapeMismatch, UnsupportedInput
from .layout import Layout
from .tensor import CipherTensor, as_array, output_kind

__all__ = [
    "add", "bootstrap", "broadcast_shapes", "broadcast_to", "divide", "expand_dims", "matmul", "multiply",
    "negative", "polyval", "polyval_levels", "power", "relayout", "scale", "subtract",
    "tensor_sum", "transpose",
]

#: integer scalars up to this size are multiplied by double-and-add (no level)
MAX_INT_SCALE = 1 << 16

_LETTERS = string.ascii_lowercase + string.ascii_uppercase


# -- operands -------------------------------------------------------------------------------
def is_operand(x) -> bool:
    """Whether ``x`` is something the operators take (else the dunders return NotImplemented):
    a CipherTensor, a real number, a numpy array / scalar, a list or tuple, a torch tensor."""
    if isinstance(x, (CipherTensor, numbers.Number, np.ndarray, np.generic, list, tuple)):
        return True
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        return isinstance(x, torch.Tensor)
    return False


def _plain(x):
    """``(array, like)`` of a plaintext operand; UnsupportedInput for anything else."""
    if isinstance(x, CipherTensor):
        raise TypeError("expected a plaintext operand")
    if not is_operand(x):
        raise UnsupportedInput(f"unsupported operand type {type(x).__name__}")
    return as_array(x)


def _context(*xs):
    """The one context of the CipherTensors among ``xs`` (ContextMismatch if several)."""
    ctxs = {id(x.context): x.context for x in xs if isinstance(x, CipherTensor)}
    if len(ctxs) > 1:
        raise ContextMismatch("operands were encrypted under different contexts (different "
                              "keys); re-encrypt them under one context")
    if not ctxs:
        raise TypeError("at least one operand must be a CipherTensor")
    return next(iter(ctxs.values()))


def _shape(x) -> tuple[int, ...]:
    return x.shape if isinstance(x, CipherTensor) else tuple(np.shape(x))


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    """numpy's broadcast shape; :class:`ShapeMismatch` naming the shapes when they do not
    broadcast."""
    shapes = [tuple(int(n) for n in s) for s in shapes]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        names = " and ".join(str(s) for s in shapes)
        raise ShapeMismatch(f"shapes {names} do not broadcast") from None


def _labels(ndim: int, out_ndim: int) -> str:
    """Labels of an operand with ``ndim`` axes aligned to the right of ``out_ndim`` axes."""
    return _LETTERS[out_ndim - ndim:out_ndim]


def _einsum(spec, *operands, out_layout=None):
    from .execute import einsum

    return einsum(spec, *operands, out_layout=out_layout)


def _wrap(x: CipherTensor, layout: Layout, cts, like=None) -> CipherTensor:
    return CipherTensor(x.context, layout, cts, x.like if like is None else like)


def bootstrap(x: CipherTensor) -> CipherTensor:
    """``x`` refreshed to the backend's ``levels_after_bootstrap`` (the same layout): desilo's
    bootstrap preset (``fhe.Context('desilo', levels=L, bootstrap=True, allow_insecure=True)``);
    values must lie in [-1, 1]. :class:`~fhe.errors.BootstrapUnavailable` elsewhere."""
    backend = x.context.backend
    return _wrap(x, x.layout, [backend.bootstrap(ct) for ct in x.ciphertexts])


# -- layouts and broadcasting ---------------------------------------------------------------
def relayout(x: CipherTensor, layout: Layout) -> CipherTensor:
    """``x`` in ``layout`` (same shape): free if it already is, else an einsum relayout."""
    if layout.shape != x.shape:
        raise ShapeMismatch(f"cannot lay out shape {x.shape} as {layout.shape}")
    if layout == x.layout:
        return x
    labels = _labels(x.ndim, x.ndim)
    out = _einsum(f"{labels}->{labels}", x, out_layout=layout)
    return _check_layout(out, layout)


def broadcast_to(x: CipherTensor, shape, layout: Layout | None = None) -> CipherTensor:
    """``numpy.broadcast_to(x, shape)`` encrypted, in ``layout`` (default: ``x``'s own layout
    when the shape does not change, else row-major). Broadcasting is an einsum with a
    plaintext of ones (one ct-pt product: one level)."""
    shape = tuple(int(n) for n in shape)
    if broadcast_shapes(x.shape, shape) != shape:
        raise ShapeMismatch(f"shape {x.shape} does not broadcast to {shape}")
    if shape == x.shape:
        return x if layout is None else relayout(x, layout)
    layout = layout or Layout.row_major(shape, x.context.slots)
    out_labels = _labels(len(shape), len(shape))
    spec = f"{_labels(x.ndim, len(shape))},{out_labels}->{out_labels}"
    out = _einsum(spec, x, np.ones(shape), out_layout=layout)
    return _check_layout(_wrap(out, out.layout, out.ciphertexts, x.like), layout)


def _check_layout(x: CipherTensor, layout: Layout) -> CipherTensor:
    if x.layout != layout:  # the planner honours out_layout; guard the invariant anyway
        raise ShapeMismatch(f"relayout produced {x.layout}, expected {layout}")
    return x


def expand_dims(x: CipherTensor, axes) -> CipherTensor:
    """``numpy.expand_dims``: new size-1 axes at ``axes`` (positions in the result). Free:
    the same ciphertexts in a layout with stride-0, block-1 axes."""
    axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
    ndim = x.ndim + len(axes)
    axes = _normalize_axes(axes, ndim)
    shape, strides, blocks = list(x.shape), list(x.layout.strides), list(x.layout.blocks)
    for a in sorted(axes):
        shape.insert(a, 1)
        strides.insert(a, 0)
        blocks.insert(a, 1)
    layout = Layout(tuple(shape), x.layout.slots, tuple(strides), tuple(blocks))
    return _wrap(x, layout, x.ciphertexts)


def _normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"axis must be an int or a tuple of ints, got {a!r}")
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(int(a), ndim)
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(out)


def _common_layout(x: CipherTensor, y: CipherTensor):
    """``x`` and ``y`` broadcast to their common shape in one layout."""
    shape = broadcast_shapes(x.shape, y.shape)
    if x.shape == shape and y.shape == shape:
        if x.layout == y.layout:
            return x, y
        # relayout the operand with levels to spare (the relayout usually costs one)
        if y.level >= x.level:
            return x, relayout(y, x.layout)
        return relayout(x, y.layout), y
    if x.shape == shape:
        return x, broadcast_to(y, shape, x.layout)
    if y.shape == shape:
        return broadcast_to(x, shape, y.layout), y
    return broadcast_to(x, shape), broadcast_to(y, shape)


# -- addition -------------------------------------------------------------------------------
def _add_plain(x: CipherTensor, array: np.ndarray, like) -> CipherTensor:
    shape = broadcast_shapes(x.shape, array.shape)
    x = broadcast_to(x, shape)
    backend = x.context.backend
    if not array.any():
        return _wrap(x, x.layout, x.ciphertexts, like)
    vectors = x.layout.pack(np.broadcast_to(array, shape))  # unused slots stay zero
    cts = [backend.add_plain(ct, v) for ct, v in zip(x.ciphertexts, vectors)]
    return _wrap(x, x.layout, cts, like)


def _add(x, y, sign: int) -> CipherTensor:
    ctx = _context(x, y)
    if isinstance(x, CipherTensor) and isinstance(y, CipherTensor):
        x, y = _common_layout(x, y)
        op = ctx.backend.add if sign > 0 else ctx.backend.sub
        cts = [op(a, b) for a, b in zip(x.ciphertexts, y.ciphertexts)]
        return _wrap(x, x.layout, cts, output_kind([x.like, y.like]))
    if isinstance(x, CipherTensor):  # x ± plain
        array, like = _plain(y)
        return _add_plain(x, sign * array, output_kind([x.like, like]))
    array, like = _plain(x)  # plain ± y
    return _add_plain(y if sign > 0 else negative(y), array, output_kind([like, y.like]))


def add(x, y) -> CipherTensor:
    """``x + y`` (numpy broadcasting); at least one operand is a CipherTensor."""
    return _add(x, y, +1)


def subtract(x, y) -> CipherTensor:
    """``x - y`` (numpy broadcasting); at least one operand is a CipherTensor."""
    return _add(x, y, -1)


def negative(x: CipherTensor) -> CipherTensor:
    """``-x``: an encryption of zero minus each ciphertext; no level (the backends have no
    negation; ``sub`` brings the fresh zero down to ``x``'s level)."""
    backend = x.context.backend
    zero = backend.encrypt(np.zeros(backend.slots))
    return _wrap(x, x.layout, [backend.sub(zero, ct) for ct in x.ciphertexts])


def _zeros_like(x: CipherTensor) -> CipherTensor:
    """An encryption of zero in ``x``'s layout at ``x``'s level (``x - x``)."""
    backend = x.context.backend
    return _wrap(x, x.layout, [backend.sub(ct, ct) for ct in x.ciphertexts])


# -- products -------------------------------------------------------------------------------
def _small_int(c) -> int | None:
    """``c`` as an int when it is a real integer of at most MAX_INT_SCALE, else None."""
    c = float(c)
    if c.is_integer() and abs(c) <= MAX_INT_SCALE:
        return int(c)
    return None


def _times_int(x: CipherTensor, k: int) -> CipherTensor:
    """``k * x`` by double-and-add: no level, about ``2 log2 |k|`` additions."""
    if k == 0:
        return _zeros_like(x)
    if k < 0:
        return negative(_times_int(x, -k))
    backend = x.context.backend
    result, power = None, list(x.ciphertexts)
    while True:
        if k & 1:
            result = power if result is None else [backend.add(a, b)
                                                   for a, b in zip(result, power)]
        k >>= 1
        if not k:
            break
        power = [backend.add(a, a) for a in power]
    return _wrap(x, x.layout, result)


def scale(x: CipherTensor, c) -> CipherTensor:
    """``c * x`` for a real scalar ``c``: free for small integers (additions), else one
    ct-pt product through the planner (one level)."""
    k = _small_int(c)
    if k is not None:
        return _times_int(x, k)
    labels = _labels(x.ndim, x.ndim)
    return _einsum(f"{labels},->{labels}", x, np.float64(c))


def multiply(x, y) -> CipherTensor:
    """``x * y`` elementwise with numpy broadcasting, as an einsum (the planner decides the
    packing: one level for operands in one layout). Integer scalars cost no level."""
    _context(x, y)
    if isinstance(x, CipherTensor) and not isinstance(y, CipherTensor):
        array, like = _plain(y)
        if array.ndim == 0 and _small_int(array) is not None:
            return _wrap(x, x.layout, _times_int(x, _small_int(array)).ciphertexts,
                         output_kind([x.like, like]))
    elif isinstance(y, CipherTensor) and not isinstance(x, CipherTensor):
        array, like = _plain(x)
        if array.ndim == 0 and _small_int(array) is not None:
            return _wrap(y, y.layout, _times_int(y, _small_int(array)).ciphertexts,
                         output_kind([like, y.like]))
    sx, sy = _shape(x), _shape(y)
    n = len(broadcast_shapes(sx, sy))
    out = _labels(n, n)
    return _einsum(f"{_labels(len(sx), n)},{_labels(len(sy), n)}->{out}", x, y)


def divide(x: CipherTensor, y) -> CipherTensor:
    """``x / y`` for a plaintext (or scalar) divisor: ``x * (1 / y)``. Division by a
    ciphertext has no CKKS counterpart (approximate ``1/y`` with :func:`polyval`)."""
    if isinstance(y, CipherTensor):
        raise UnsupportedInput("division by a ciphertext is not supported (CKKS has no "
                               "inverse); approximate 1/y with polyval, or divide by plaintext")
    if not isinstance(x, CipherTensor):
        raise TypeError(f"divide takes a CipherTensor dividend, got {type(x).__name__}")
    array, like = _plain(y)
    if (array == 0).any():
        raise UnsupportedInput("division by zero in the plaintext divisor")
    out = multiply(x, 1.0 / array)
    return _wrap(out, out.layout, out.ciphertexts, output_kind([x.like, like]))


def transpose(x: CipherTensor, axes=None) -> CipherTensor:
    """``numpy.transpose``: a relabelling einsum (free: the same ciphertexts, axes of the
    layout permuted)."""
    n = x.ndim
    axes = tuple(reversed(range(n))) if axes is None else _normalize_axes(axes, n)
    if len(axes) != n:
        raise ShapeMismatch(f"transpose of shape {x.shape} needs {n} axes, got {axes}")
    labels = _labels(n, n)
    return _einsum(f"{labels}->{''.join(labels[a] for a in axes)}", x)


def matmul(x, y) -> CipherTensor:
    """``x @ y`` with numpy.matmul semantics (1-D operands promoted and the added axis
    removed, batch axes broadcast) as one einsum."""
    _context(x, y)
    sx, sy = _shape(x), _shape(y)
    if not sx or not sy:
        raise ShapeMismatch(f"matmul needs operands with at least one axis, got shapes "
                            f"{sx} and {sy}; use * for scalars")
    k_x = sx[-1]
    k_y = sy[0] if len(sy) == 1 else sy[-2]
    if k_x != k_y:
        raise ShapeMismatch(f"matmul: shapes {sx} and {sy} do not align "
                            f"(contracted sizes {k_x} and {k_y})")
    bx = sx[:-2] if len(sx) > 1 else ()
    by = sy[:-2] if len(sy) > 1 else ()
    try:
        batch = len(broadcast_shapes(bx, by))
    except ShapeMismatch:
        raise ShapeMismatch(f"matmul: batch axes of shapes {sx} and {sy} do not "
                            f"broadcast") from None
    n, k, m = _LETTERS[batch:batch + 3]
    bl = _labels(batch, batch)
    lx = _labels(len(bx), batch) + (n + k if len(sx) > 1 else k)
    ly = _labels(len(by), batch) + (k + m if len(sy) > 1 else k)
    lo = bl + (n if len(sx) > 1 else "") + (m if len(sy) > 1 else "")
    return _einsum(f"{lx},{ly}->{lo}", x, y)


def tensor_sum(x: CipherTensor, axis=None, keepdims: bool = False) -> CipherTensor:
    """``numpy.sum(x, axis, keepdims=keepdims)`` as an einsum (``axis=()`` and ``keepdims``
    are free)."""
    axes = tuple(range(x.ndim)) if axis is None else _normalize_axes(axis, x.ndim)
    out = x
    if axes:
        labels = _labels(x.ndim, x.ndim)
        kept = "".join(c for a, c in enumerate(labels) if a not in axes)
        out = _einsum(f"{labels}->{kept}", x)
    if keepdims and axes:
        out = expand_dims(out, axes)
    return out


# -- polynomials ----------------------------------------------------------------------------
class _Depths:
    """Dry run of :func:`_poly`: values are levels consumed (ciphertexts) or floats (clear)."""

    def __init__(self, base_depth: int = 0) -> None:
        self.base = base_depth

    def x(self):
        return self.base

    def square(self, d):
        return d + 1

    def mul(self, a, b):
        return max(a, b) + 1

    def scale(self, d, c):
        return d if _small_int(c) is not None else d + 1

    def add(self, a, b):
        return max(a, b)

    def add_const(self, d, c):
        return d


class _Cipher:
    """:func:`_poly` on ciphertexts: products through fhe.einsum, additions per ciphertext."""

    def __init__(self, x: CipherTensor) -> None:
        self._x = x

    def x(self):
        return self._x

    def square(self, t):
        return multiply(t, t)

    def mul(self, a, b):
        return multiply(a, b)

    def scale(self, t, c):
        return scale(t, c)

    def add(self, a, b):
        return add(a, b)

    def add_const(self, t, c):
        return add(t, c) if c else t


def _poly(alg, ascending, powers: dict):
    """Evaluate ``sum_i a_i x^i`` with ``a = ascending``: split at the largest power of two
    ``h <= d``, ``p = q + x^h * r`` (``deg q < h``, ``deg r < h``), recursively; ``x^h`` by
    repeated squaring. Depth ``ceil(log2(d + 1))``. Returns a float when ``p`` is constant."""
    a = list(ascending)
    while a and a[-1] == 0:
        a.pop()
    if len(a) <= 1:
        return float(a[0]) if a else 0.0
    d = len(a) - 1
    h = 1 << (d.bit_length() - 1)
    q = _poly(alg, a[:h], powers)
    r = _poly(alg, a[h:], powers)
    xh = _power_of_two(alg, h, powers)
    t = alg.scale(xh, r) if isinstance(r, float) else alg.mul(xh, r)
    return alg.add_const(t, q) if isinstance(q, float) else alg.add(t, q)


def _power_of_two(alg, h: int, powers: dict):
    if h not in powers:
        powers[h] = alg.x() if h == 1 else alg.square(_power_of_two(alg, h // 2, powers))
    return powers[h]


def _coefficients(coeffs) -> list[float]:
    array, _ = as_array(coeffs)
    if array.ndim != 1:
        raise ShapeMismatch(f"polyval takes a 1-D sequence of scalar coefficients, got shape "
                            f"{array.shape}")
    return [float(c) for c in array]


def polyval_levels(coeffs) -> int:
    """Levels :func:`polyval` consumes for these coefficients (highest degree first)."""
    return int(_poly(_Depths(), _coefficients(coeffs)[::-1], {})) if _degree(coeffs) else 0


def _degree(coeffs) -> int:
    c = _coefficients(coeffs)
    while c and c[0] == 0:
        c.pop(0)
    return max(len(c) - 1, 0)


def polyval(x: CipherTensor, coeffs) -> CipherTensor:
    """``numpy.polyval(coeffs, x)`` elementwise: ``coeffs`` highest degree first (numpy's
    order), real scalars. Depth ``ceil(log2(d + 1))`` for degree ``d``; checked before any
    work (:class:`OutOfLevels`). The constant term is an ``add_plain``; integer coefficients
    are applied by additions (no level)."""
    if not isinstance(x, CipherTensor):
        raise TypeError(f"polyval evaluates on a CipherTensor, got {type(x).__name__}")
    c = _coefficients(coeffs)
    d = _degree(c)
    need = polyval_levels(c)
    if need > x.level:
        raise OutOfLevels(f"polyval of degree {d}: needed {need} levels, have {x.level}; "
                          f"use a context with more levels (fhe.Context(levels=...)) or a "
                          f"fresher ciphertext", needed=need, have=x.level)
    result = _poly(_Cipher(x), c[::-1], {})
    if isinstance(result, float):  # constant polynomial: an encryption of it, at x's level
        return add(_zeros_like(x), result)
    return result


def power(x: CipherTensor, k: int) -> CipherTensor:
    """``x ** k`` for an integer ``k >= 1``: repeated squaring, ``ceil(log2 k)`` levels."""
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise UnsupportedInput(f"only integer powers >= 1 are supported, got {k!r}")
    return polyval(x, [1.0] + [0.0] * int(k))
