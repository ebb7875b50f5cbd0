"""Names of the tensors the FAC4DNN circuit commits to (:mod:`zk.fac4dnn`, docs/fac4dnn.md).

A :class:`TensorKey` names one tensor: its :class:`TensorKind`, step ``t``, layer ``l`` and, for
a bit plane, the plane's index. Its tuple form ``("RL2b", t, l, j)`` (``-1``: no plane) is what
transcripts absorb and what keys sort by, so proofs do not depend on how keys are spelled.
"""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = ["TensorKind", "TensorKey"]


class TensorKind(Enum):
    """What a committed tensor is (``S``: activation scale, ``p``: parameter scale)."""

    X = "X"
    """data batch (the input of layer 1)"""
    Y = "Y"
    """targets of the batch"""
    W = "W"
    """weights of layer ``l`` after ``t`` steps"""
    B = "B"
    """bias of layer ``l`` after ``t`` steps"""
    H = "H"
    """input of layer ``l >= 2`` (the activation of layer ``l - 1``)"""
    P = "P"
    """product ``H W^T``"""
    BB = "BB"
    """bias broadcast over the batch's real rows, ``1_B b^T``"""
    Z = "Z"
    """pre-activation: ``P + 2^S BB`` rescaled (inference: the output, for ``l = L``)"""
    R = "R"
    """bit planes of the rescale remainder of ``Z``"""
    Zb = "Zb"
    """bit planes of ``Z - 1`` (two's complement; the top plane is the ReLU sign)"""
    G = "G"
    """gradient of the loss with respect to ``Z`` (for ``l = L``, ``G_L`` of the loss)"""
    Gb = "Gb"
    """bit planes of ``G_L``"""
    RL = "RL"
    """loss remainder, ``2^(S+1) (Z_L - Y) + N/2 - N G_L``"""
    RLb = "RLb"
    """bit planes of ``RL``"""
    RL2b = "RL2b"
    """bit planes of ``N - 1 - RL``"""
    GW = "GW"
    """weight gradient ``G^T H``"""
    GB = "GB"
    """bias gradient ``G^T 1_B``"""
    GX = "GX"
    """input gradient ``G W`` before rescaling"""
    GH = "GH"
    """input gradient rescaled: the gradient of ``H``"""
    RH = "RH"
    """bit planes of the rescale remainder of ``GH``"""
    GHb = "GHb"
    """bit planes of ``GH``"""
    U = "U"
    """weight update ``W_t - W_{t+1}``"""
    RU = "RU"
    """bit planes of the SGD remainder of ``U``"""
    Ub = "Ub"
    """bit planes of ``U``"""
    UB = "UB"
    """bias update ``b_t - b_{t+1}``"""
    RUB = "RUB"
    """bit planes of the SGD remainder of ``UB``"""
    UBb = "UBb"
    """bit planes of ``UB``"""
    Xb = "Xb"
    """bit planes of the range check of ``X``"""
    Yb = "Yb"
    """bit planes of the range check of ``Y``"""
    Wb = "Wb"
    """bit planes of the range check of the initial weights"""
    Bb = "Bb"
    """bit planes of the range check of the initial biases"""
    ONES = "ONES"
    """public indicator ``1_B`` of a batch's real rows (its key's step holds the row count)"""

    def __call__(self, step: int, layer: int, plane: int | None = None) -> TensorKey:
        """The key of this kind's tensor of ``step``, ``layer`` (and bit ``plane``)."""
        return TensorKey(self, step, layer, plane)


class TensorKey(NamedTuple):
    """One committed tensor: ``plane`` is the bit plane's index, None for a value tensor."""

    kind: TensorKind
    step: int
    layer: int
    plane: int | None = None

    def as_tuple(self) -> tuple[str, int, int, int]:
        """``(kind name, step, layer, plane)``, ``-1`` for no plane."""
        return self.kind.value, self.step, self.layer, -1 if self.plane is None else self.plane

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
