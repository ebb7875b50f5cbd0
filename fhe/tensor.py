"""``CipherTensor``: an encrypted tensor — ciphertexts, their layout, their context.

Also the conversion of user inputs (numpy arrays, torch tensors, nested lists, scalars) to
float64 arrays, remembering whether results should come back as torch tensors.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedInput
from .layout import Layout

__all__ = ["CipherTensor", "Like", "as_array", "output_kind"]


@dataclass(frozen=True)
class Like:
    """What decryption returns: ``"numpy"`` (float64) or ``"torch"`` (with ``dtype``)."""

    kind: str = "numpy"
    dtype: object = None


def as_array(x) -> tuple[np.ndarray, Like]:
    """A float64 copy of ``x`` and how to give results back; :class:`UnsupportedInput` for
    complex, non-numeric or non-finite data."""
    like = Like()
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        if not isinstance(x, torch.Tensor):
            raise UnsupportedInput(f"cannot encrypt a {type(x).__name__}")
        if x.is_complex():
            raise UnsupportedInput(f"complex tensors are not supported (dtype {x.dtype})")
        like = Like("torch", x.dtype if x.is_floating_point() else torch.float64)
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot read is unsupported
        raise UnsupportedInput(f"cannot read a {type(x).__name__} as an array: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise UnsupportedInput(
            f"only real numeric data can be encrypted, got dtype {a.dtype} "
            f"({'complex numbers' if a.dtype.kind == 'c' else 'not a number type'})")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise UnsupportedInput("cannot encode NaN or infinite values")
    return a, like


def output_kind(likes) -> Like:
    """Torch (first torch operand's dtype) if any operand came from torch, else numpy."""
    return next((lk for lk in likes if lk.kind == "torch"), Like())


class CipherTensor:
    """An encrypted tensor: ``shape``, ``layout`` (:class:`~fhe.layout.Layout`), ``level``
    (multiplications it can still take), ``context``. Decrypt with ``ctx.decrypt(x)``.

    On a context not yet sized (``fhe.Context()`` before its first einsum) ``encrypt`` gives
    a *deferred* tensor: it keeps the values inside the client's context object until the
    first einsum fixes the parameters, and is encrypted then — or as soon as its layout,
    ciphertexts or level are asked for (which fixes the default parameters)."""

    def __init__(self, context, layout: Layout, ciphertexts, like: Like = Like()) -> None:
        if len(ciphertexts) != layout.n_cts:
            raise ValueError(f"layout needs {layout.n_cts} ciphertexts, got {len(ciphertexts)}")
        self.context = context
        self._layout = layout
        self._ciphertexts = list(ciphertexts)
        self._shape = layout.shape
        self._pending: tuple[np.ndarray, Layout | None] | None = None
        self.like = like

    @classmethod
    def deferred(cls, context, array: np.ndarray, layout: Layout | None, like: Like) -> "CipherTensor":
        """A tensor of ``context`` to be encrypted when the context is sized (class docstring)."""
        x = cls.__new__(cls)
        x.context, x.like, x._shape = context, like, tuple(array.shape)
        x._layout, x._ciphertexts, x._pending = None, None, (array, layout)
        return x

    def _encrypted(self) -> None:
        if self._pending is not None:
            array, layout = self._pending
            self._layout, self._ciphertexts = self.context._encrypt(array, layout)
            self._pending = None

    @property
    def requested_slots(self) -> int | None:
        """For a deferred tensor encrypted with an explicit layout: that layout's slots (the
        context must be sized to them); else None."""
        return None if self._pending is None or self._pending[1] is None else self._pending[1].slots

    @property
    def layout(self) -> Layout:
        self._encrypted()
        return self._layout

    @property
    def ciphertexts(self) -> list:
        self._encrypted()
        return self._ciphertexts

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def level(self) -> int:
        return min(self.context.backend.level(ct) for ct in self.ciphertexts)

    def decrypt(self):
        return self.context.decrypt(self)

    def to_bytes(self) -> bytes:
        """Layout, output kind, key-set id and ciphertexts (:func:`fhe.serial.tensor_to_bytes`)."""
        from .serial import tensor_to_bytes

        return tensor_to_bytes(self)

    @staticmethod
    def from_bytes(data, context) -> "CipherTensor":
        """Inverse of :meth:`to_bytes`, checked against ``context`` (full or public)."""
        from .serial import tensor_from_bytes

        return tensor_from_bytes(data, context)

    # -- operators (fhe/ops.py; numpy broadcasting, through fhe.einsum) --------------------
    #: numpy defers to the reflected operators (``array + ct`` calls ``ct.__radd__``)
    __array_ufunc__ = None

    def _binary(self, name: str, other, reflected: bool = False):
        from . import ops

        if not ops.is_operand(other):
            return NotImplemented
        fn = getattr(ops, name)
        return fn(other, self) if reflected else fn(self, other)

    def __add__(self, other):
        return self._binary("add", other)

    def __radd__(self, other):
        return self._binary("add", other, reflected=True)

    def __sub__(self, other):
        return self._binary("subtract", other)

    def __rsub__(self, other):
        return self._binary("subtract", other, reflected=True)

    def __mul__(self, other):
        return self._binary("multiply", other)

    def __rmul__(self, other):
        return self._binary("multiply", other, reflected=True)

    def __matmul__(self, other):
        return self._binary("matmul", other)

    def __rmatmul__(self, other):
        return self._binary("matmul", other, reflected=True)

    def __truediv__(self, other):
        return self._binary("divide", other)

    def __neg__(self):
        from .ops import negative

        return negative(self)

    def __pos__(self):
        return self

    def __pow__(self, k):
        from .ops import power

        if not isinstance(k, numbers.Integral) or isinstance(k, bool):
            return NotImplemented
        return power(self, k)

    def sum(self, axis=None, keepdims: bool = False, *, dtype=None, out=None) -> "CipherTensor":
        """``numpy.sum``: an einsum over the summed axes (``keepdims`` is free). ``dtype`` and
        ``out`` exist so that ``np.sum(x, ...)`` works; only ``None`` is accepted."""
        from .ops import tensor_sum

        if dtype is not None or out is not None:
            raise UnsupportedInput("CipherTensor.sum takes no dtype or out")
        return tensor_sum(self, axis, keepdims)

    def polyval(self, coeffs) -> "CipherTensor":
        """``numpy.polyval(coeffs, self)``, coefficients highest degree first; depth
        ``ceil(log2(degree + 1))``."""
        from .ops import polyval

        return polyval(self, coeffs)

    def transpose(self, *axes) -> "CipherTensor":
        """``numpy.transpose`` (``x.transpose(1, 0)`` or ``x.transpose((1, 0))``): free."""
        from .ops import transpose

        if len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = axes[0]
        return transpose(self, axes or None)

    @property
    def T(self) -> "CipherTensor":
        """Axes reversed (free)."""
        return self.transpose()

    def expand_dims(self, axis) -> "CipherTensor":
        """``numpy.expand_dims`` (free: the same ciphertexts)."""
        from .ops import expand_dims

        return expand_dims(self, axis)

    def __repr__(self) -> str:
        if self._pending is not None:  # repr must not fix the context's parameters
            return (f"CipherTensor(shape={self.shape}, encrypted when the context is sized at "
                    f"its first einsum, backend={self.context.backend_name})")
        return (f"CipherTensor(shape={self.shape}, level={self.level}, "
                f"layout={self.layout}, backend={self.context.backend.name})")
