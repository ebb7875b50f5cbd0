"""Names of the tensors the FAC4DNN circuit commits to (:mod:`zk.lower`, :mod:`zk.fac4dnn`).

A :class:`TensorKey` names one committed tensor by the graph tensor it belongs to: its
:class:`TensorKind` (the tensor itself, a plane of its range check, its remainder, ...), the SGD
step, the circuits graph tensor's name and, for a limb or a plane, its index. Its tuple form
``("limbs", 0, "0.z", 1)`` (``-1``: no index) is what transcripts absorb and what keys sort by.
Parameters are named by their state_dict names: ``VALUE(t, "0.weight")`` is the weight after
``t`` steps.
"""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = ["TensorKind", "TensorKey"]


class TensorKind(Enum):
    """What a committed tensor is, relative to the graph tensor its key names."""

    VALUE = "value"
    """the graph tensor's integers (data, targets, parameters after ``step`` steps, intermediates)"""
    LIMBS = "limbs"
    """a limb of the range check of the tensor (``value - offset`` in two's complement,
    :class:`zk.lower.RangeCheck`; an SGD update's output is checked as the parameter it becomes)"""
    BITS = "bits"
    """the sign plane of a ReLU input's range check (its ``plane`` is the top bit's index)"""
    REMAINDER = "remainder"
    """the remainder of the rounding division that made the tensor, when the divisor is not a power
    of two (the loss gradient's ``N``)"""
    REMAINDER_LIMBS = "remainder-limbs"
    """a limb of that remainder (unsigned), or of the remainder itself when the divisor is a power of two"""
    COMPLEMENT_LIMBS = "complement-limbs"
    """a limb of ``divisor - 1 - remainder`` (unsigned): with the remainder's limbs, ``0 <= rem < divisor``"""
    BROADCAST = "broadcast"
    """the vector operand of an ``add`` broadcast over the batch's real rows, ``ONES b^T``"""
    QUOTIENT = "quotient"
    """a range-checked rounded quotient that a graph tensor adds (weight decay's ``wd w``, named by
    the decayed gradient)"""
    ONES = "ones"
    """public indicator of a batch's real rows (its key's step holds the row count)"""
    CONST = "const"
    """a public graph constant (e.g. pooling weights), encoded at its scale, or a public indicator an
    op's rule needs (cross-entropy's real classes; its mask of real rows and classes, the step
    holding the row count)"""

    def __call__(self, step: int, tensor: str, plane: int | None = None) -> TensorKey:
        """The key of this kind's tensor for graph tensor ``tensor`` at ``step`` (and limb or ``plane``)."""
        return TensorKey(self, step, tensor, plane)


class TensorKey(NamedTuple):
    """One committed tensor: ``plane`` is the limb's or plane's index, None for a value tensor."""

    kind: TensorKind
    step: int
    tensor: str
    plane: int | None = None

    def as_tuple(self) -> tuple[str, int, str, int]:
        """``(kind name, step, tensor, plane)``, ``-1`` for no plane."""
        return self.kind.value, self.step, self.tensor, -1 if self.plane is None else self.plane

    def __str__(self) -> str:
        return str(self.as_tuple())

    def __lt__(self, other: TensorKey) -> bool:
        return self.as_tuple() < other.as_tuple()

    def __le__(self, other: TensorKey) -> bool:
        return self.as_tuple() <= other.as_tuple()

    def __gt__(self, other: TensorKey) -> bool:
        return self.as_tuple() > other.as_tuple()

    def __ge__(self, other: TensorKey) -> bool:
        return self.as_tuple() >= other.as_tuple()
