"""FAC4DNN: one aggregated circuit for T SGD steps (or one inference) of a ReLU MLP (any layer may have a bias).

Every intermediate tensor of the fixed-point witness (:mod:`circuits`) is committed, so no
relation depends on the order of the computation. Instances of one relation type that share a
padded shape, across all layers and steps, are stacked (:mod:`zk.stack`) and proved by ONE
sumcheck; everything linear is checked on the commitments directly. docs/fac4dnn.md has the
figure; the tensors of step ``t``, layer ``l`` (widths ``d_0..d_L``, batch ``B``, scale ``S``;
each named by a :class:`zk.keys.TensorKey`):

====================  ==========================================================================
relation              tensors (parameters at scale ``p >= S``; every division rounds to nearest)
====================  ==========================================================================
einsum (sumcheck)     ``P = H W^T``; ``GW = G^T H``; ``GX = G W`` (``l >= 2``); with a bias
                      ``BB = 1_B b^T``, ``GB = G^T 1_B`` (``1_B``: the batch's real rows)
rescale (linear)      ``P + 2^S BB + 2^(p-1) = 2^p Z + R``; ``GX + 2^(p-1) = 2^p GH + RH``
loss (linear)         ``2^(S+1) (Z_L - Y) + N/2 = N G_L + RL``, ``N = n_t d_L`` (``n_t`` real rows)
sgd (linear)          ``lr_q GW + 2^(k-1) = 2^k U + RU``; ``W_{t+1} = W_t - U``
                      (``k = lr_bits + 3S - p``); ``lr_q GB + 2^(kb-1) = 2^kb UB + RUB``;
                      ``b_{t+1} = b_t - UB`` (``kb = lr_bits + 2S - p``)
bits (linear)         ``Z - 1``, ``G_L``, ``GH``, ``U``, ``UB`` in two's complement; ``R``, ``RH``,
                      ``RU``, ``RUB``, ``RL``, ``N - 1 - RL`` unsigned: every plane committed, recomposed
ranges (linear)       statement tensors ``X``, ``Y`` in ``data_bits``, ``W_0``, ``b_0`` in
                      ``param_bits`` (two's complement)
zero padding          every statement tensor is zero outside its true shape (:mod:`zk.padding`)
zkReLU (sumcheck)     ``H_{l+1} + gamma G_l = (1 - s_l) (Z_l + gamma GH_{l+1})``, ``s_l`` the sign
                      plane of ``Z_l - 1`` (so ``1 - s = [Z > 0]``, torch's convention)
booleanity (sumcheck) ``b (1 - b) = 0`` for every plane
====================  ==========================================================================

Bit widths bound every quotient, so each fixed-point equation holds over the integers, not just
modulo ``r``: :mod:`zk.magnitudes` computes every equation's largest magnitude from the statement
and refuses statements that could wrap. All linear relations are checked at once: for a challenge ``rho`` the verifier
forms ``sum_i rho^i (relation on row i)`` from the commitments and the prover reveals its blind.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from circuits import parse_einsum

from . import bits, commit, einsum, field, group, hadamard, magnitudes, mle, padding
from .bits import BooleanityProof
from .commit import Commitment, Opening
from .device import CPU, Device
from .einsum import EinsumRelationProof
from .errors import VerificationError
from .hadamard import Affine, HadamardProof
from .keys import TensorKey, TensorKind
from .padding import PaddingProof
from .stack import Stack, instance_col_vars, stack
from .transcript import Transcript

EINSUMS = {"forward": "nbi,noi->nbo", "weight_grad": "nbo,nbi->noi", "input_grad": "nbo,noi->nbi",
           "bias_broadcast": "nb,no->nbo", "bias_grad": "nbo,nb->no"}

def ones(rows: int) -> TensorKey:
    """The public indicator of a batch's ``rows`` real rows (1 for ``b < rows``, 0 on padding
    rows), committed with blind 0 by prover and verifier alike: it broadcasts biases and sums
    their gradients. Its key's step holds ``rows``."""
    return TensorKind.ONES(rows, 0)

#: Largest booleanity stack, in variables: 2^26 entries, 2 GiB as field elements while proved.
MAX_BOOLEANITY_VARS = 26
#: Widest range check a statement may declare for its data or initial parameters.
MAX_RANGE_BITS = 128


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class Circuit:
    """Public parameters of the aggregated circuit (all derived from the statement)."""

    widths: tuple[int, ...]
    batch: int
    steps: int
    scale_bits: int
    lr_q: int = 0
    lr_bits: int = 0
    training: bool = True
    biases: tuple[bool, ...] = ()  # per Linear layer 1..L: has a bias (empty: none has)
    data_bits: int = 0  # range of X (and Y): two's complement of this width (0: scale_bits + 16)
    param_bits: int = 0  # range of the initial weights and biases (0: param_scale + 8)
    param_scale: int = 0  # scale exponent p of the weights and biases (0: scale_bits)
    rows: tuple[int, ...] = ()  # real rows of each step's batch (empty: ``batch`` every step)

    def __post_init__(self) -> None:
        if self.biases and len(self.biases) != self.layers:
            raise ValueError(f"{len(self.biases)} bias flags for {self.layers} layers")
        if not self.param_scale:
            object.__setattr__(self, "param_scale", self.scale_bits)
        if not self.rows:
            object.__setattr__(self, "rows", (self.batch,) * self.steps)
        if len(self.rows) != self.steps or not all(1 <= n <= self.batch for n in self.rows):
            raise ValueError(f"rows per step {self.rows[:8]}...: one count in [1, {self.batch}] per step")
        p, S = self.param_scale, self.scale_bits
        if not S <= p <= 2 * S + 24:
            raise ValueError(f"param_scale {p} must be in [scale_bits, 2 scale_bits + 24] = [{S}, {2 * S + 24}]")
        if self.training and self.k_bias_update < 1:
            raise ValueError(f"param_scale {p} leaves no SGD remainder at learning rate {self.lr_repr} "
                             f"(it must stay below lr_bits + 2 scale_bits = {self.lr_bits + 2 * S})")
        if not self.data_bits:
            object.__setattr__(self, "data_bits", self.scale_bits + 16)
        if not self.param_bits:
            object.__setattr__(self, "param_bits", p + 8)
        for name in ("data_bits", "param_bits"):
            if not 2 <= getattr(self, name) <= MAX_RANGE_BITS:
                raise ValueError(f"{name} must be in [2, {MAX_RANGE_BITS}], got {getattr(self, name)}")

    def check_sound(self) -> None:
        """Refuse (:class:`zk.StatementError`, naming the parameter) a statement whose equations
        could wrap modulo ``r`` (:mod:`zk.magnitudes`)."""
        magnitudes.check(self)

    @property
    def lr_repr(self) -> str:
        """The quantised learning rate, for messages."""
        return f"{self.lr_q / (1 << self.lr_bits):.3g}" if self.training else "-"

    def plane_widths(self) -> list[int]:
        """Every bit width a range check of this circuit uses."""
        widths = [self.param_scale, self.q_act, self.data_bits, self.param_bits]
        if self.training:
            widths += [self.q_grad, self.q_update, self.k_update, self.k_bias_update, self.k_loss]
        return widths

    @property
    def layers(self) -> int:
        return len(self.widths) - 1

    def has_bias(self, l: int) -> bool:
        return bool(self.biases) and bool(self.biases[l - 1])

    def bias(self, l: int) -> tuple[int]:
        """Padded shape of the bias of layer ``l``."""
        return (_pow2(self.widths[l]),)

    def act(self, l: int) -> tuple[int, int]:
        """Padded shape of an activation of width ``d_l``."""
        return (_pow2(self.batch), _pow2(self.widths[l]))

    def weight(self, l: int) -> tuple[int, int]:
        return (_pow2(self.widths[l]), _pow2(self.widths[l - 1]))

    # bit widths
    @property
    def q_act(self) -> int:  # pre-activations Z - 1 (scale S)
        return self.scale_bits + 16

    @property
    def q_grad(self) -> int:  # gradients (scale 2S)
        return 2 * self.scale_bits + 16

    @property
    def q_update(self) -> int:  # weight updates (scale p): |lr * gradient| < 128
        return self.param_scale + 8

    @property
    def k_update(self) -> int:  # remainder of the SGD division (weight gradients: scale 3S)
        return self.lr_bits + 3 * self.scale_bits - self.param_scale

    @property
    def k_bias_update(self) -> int:  # bias gradients: scale 2S
        return self.lr_bits + 2 * self.scale_bits - self.param_scale

    def loss_count(self, t: int) -> int:
        """``N``, the number of loss terms of step ``t`` (its real rows times the outputs)."""
        return self.rows[t] * self.widths[-1]

    @property
    def k_loss(self) -> int:
        return (self.batch * self.widths[-1] - 1).bit_length()

    # -- the committed tensors ---------------------------------------------------------
    @cached_property
    def statement_keys(self) -> list[tuple[TensorKey, tuple]]:
        L, T = self.layers, self.steps
        biased = [l for l in range(1, L + 1) if self.has_bias(l)]
        keys = [(TensorKind.X(t, 1), self.act(0)) for t in range(T)]
        keys += [(TensorKind.W(0, l), self.weight(l)) for l in range(1, L + 1)]
        keys += [(TensorKind.B(0, l), self.bias(l)) for l in biased]
        if self.training:
            keys += [(TensorKind.Y(t, L), self.act(L)) for t in range(T)]
            keys += [(TensorKind.W(T, l), self.weight(l)) for l in range(1, L + 1)]
            keys += [(TensorKind.B(T, l), self.bias(l)) for l in biased]
        else:
            keys += [(TensorKind.Z(0, L), self.act(L))]
        return keys

    def true_shape(self, key: TensorKey) -> tuple:
        """The unpadded shape of a statement tensor."""
        kind, t, l = key.kind, key.step, key.layer
        d, n = self.widths, self.rows[t] if kind in (TensorKind.X, TensorKind.Y, TensorKind.Z) else 0
        return {TensorKind.X: (n, d[0]), TensorKind.Y: (n, d[-1]), TensorKind.Z: (n, d[-1]),
                TensorKind.W: (d[l], d[l - 1]) if l else (), TensorKind.B: (d[l],)}[kind]

    def range_checks(self) -> list[tuple[TensorKey, TensorKind, int]]:
        """``(statement key, plane kind, width)`` of every statement tensor the circuit range-checks
        in two's complement: the data and targets, the initial weights and biases."""
        L = self.layers
        out = []
        for l in range(1, L + 1):
            out.append((TensorKind.W(0, l), TensorKind.Wb, self.param_bits))
            if self.has_bias(l):
                out.append((TensorKind.B(0, l), TensorKind.Bb, self.param_bits))
        for t in range(self.steps):
            out.append((TensorKind.X(t, 1), TensorKind.Xb, self.data_bits))
            if self.training:
                out.append((TensorKind.Y(t, L), TensorKind.Yb, self.data_bits))
        return out

    def padding_groups(self) -> list[tuple[tuple, list[TensorKey]]]:
        """Statement tensors with padding entries, by padded shape (one zero-padding proof each)."""
        by_shape: dict = {}
        for key, shape in self.statement_keys:
            if padding.needs_proof(self.true_shape(key), shape):
                by_shape.setdefault(shape, []).append(key)
        return sorted(by_shape.items())

    @cached_property
    def proof_keys(self) -> list[tuple[TensorKey, tuple]]:
        keys = self._initial_keys()
        for t in range(self.steps):
            keys += self._step_keys(t)
        return keys

    def proof_key_count(self) -> int:
        """``len(proof_keys)`` without building the list (steps other than the last have the same
        keys): what a parser checks against the bytes it was given before allocating."""
        T = self.steps
        return len(self._initial_keys()) + (T - 1) * len(self._step_keys(0)) + len(self._step_keys(T - 1))

    def _initial_keys(self) -> list[tuple[TensorKey, tuple]]:
        """Range checks of the initial parameters."""
        keys: list = []
        for l in range(1, self.layers + 1):
            keys += [(TensorKind.Wb(0, l, k), self.weight(l)) for k in range(self.param_bits)]
            if self.has_bias(l):
                keys += [(TensorKind.Bb(0, l, k), self.bias(l)) for k in range(self.param_bits)]
        return keys

    def _step_keys(self, t: int) -> list[tuple[TensorKey, tuple]]:
        """The committed tensors of step ``t``."""
        L, T, p = self.layers, self.steps, self.param_scale
        keys = []

        def planes(kind, t, l, n, shape):
            keys.extend((kind(t, l, k), shape) for k in range(n))

        planes(TensorKind.Xb, t, 1, self.data_bits, self.act(0))
        if self.training:
            planes(TensorKind.Yb, t, L, self.data_bits, self.act(L))
        for l in range(1, L + 1):
            a, a_in, w = self.act(l), self.act(l - 1), self.weight(l)
            if l >= 2:
                keys.append((TensorKind.H(t, l), a_in))
            keys.append((TensorKind.P(t, l), a))
            if self.training or l < L:
                keys.append((TensorKind.Z(t, l), a))
            planes(TensorKind.R, t, l, p, a)
            planes(TensorKind.Zb, t, l, self.q_act, a)
            if self.has_bias(l):
                keys.append((TensorKind.BB(t, l), a))  # the bias broadcast over the batch
            if not self.training:
                continue
            if self.has_bias(l):
                b = self.bias(l)
                keys += [(TensorKind.GB(t, l), b), (TensorKind.UB(t, l), b)]
                planes(TensorKind.RUB, t, l, self.k_bias_update, b)
                planes(TensorKind.UBb, t, l, self.q_update, b)
                if t < T - 1:
                    keys.append((TensorKind.B(t + 1, l), b))
            keys += [(TensorKind.G(t, l), a), (TensorKind.GW(t, l), w), (TensorKind.U(t, l), w)]
            planes(TensorKind.RU, t, l, self.k_update, w)
            planes(TensorKind.Ub, t, l, self.q_update, w)
            if t < T - 1:
                keys.append((TensorKind.W(t + 1, l), w))
            if l >= 2:
                keys += [(TensorKind.GX(t, l), a_in), (TensorKind.GH(t, l), a_in)]
                planes(TensorKind.RH, t, l, p, a_in)
                planes(TensorKind.GHb, t, l, self.q_grad, a_in)
            if l == L:
                keys.append((TensorKind.RL(t, l), a))
                planes(TensorKind.RLb, t, l, self.k_loss, a)
                planes(TensorKind.RL2b, t, l, self.k_loss, a)
                planes(TensorKind.Gb, t, l, self.q_grad, a)
        return keys

    @cached_property
    def public_keys(self) -> list[tuple[TensorKey, tuple]]:
        """Tensors both sides commit to themselves (blind 0): the row indicators (:func:`ones`) of
        the batches' row counts when a layer has a bias."""
        if not any(self.has_bias(l) for l in range(1, self.layers + 1)):
            return []
        return [(ones(n), (_pow2(self.batch),)) for n in sorted(set(self.rows))]

    @cached_property
    def shapes(self) -> dict[TensorKey, tuple]:
        return dict(self.statement_keys + self.proof_keys + self.public_keys)

    # -- relations ------------------------------------------------------------------------
    @cached_property
    def linear_relations(self) -> list[tuple[list[tuple[int, TensorKey]], int]]:
        """``(terms, const)``: ``sum coeff * tensor = const`` entrywise (padding included: the
        constants are what round to nearest adds before each division)."""
        L, T, S, p = self.layers, self.steps, self.scale_bits, self.param_scale
        half = lambda k: (1 << k) >> 1  # noqa: E731  (2^(k-1), and 0 for k = 0)
        rels = []

        def recompose(value_terms, kind, t, l, weights, const=0):
            rels.append((value_terms + [(-w, kind(t, l, k)) for k, w in enumerate(weights)], const))

        for key, kind, width in self.range_checks():  # the statement's data and initial parameters
            recompose([(1, key)], kind, key.step, key.layer, bits.signed_weights(width))
        for t in range(T):
            for l in range(1, L + 1):
                P, Z = TensorKind.P(t, l), TensorKind.Z(t, l)
                # P + 2^S BB + 2^(p-1) = 2^p Z + R with R = sum 2^k R_k, one relation (BB: bias)
                bias_term = [(1 << S, TensorKind.BB(t, l))] if self.has_bias(l) else []
                recompose([(1, P), (-(1 << p), Z)] + bias_term, TensorKind.R, t, l, bits.unsigned_weights(p),
                          const=-half(p))
                recompose([(1, Z)], TensorKind.Zb, t, l, bits.signed_weights(self.q_act), const=1)
                if not self.training:
                    continue
                if self.has_bias(l):
                    GB, UB = TensorKind.GB(t, l), TensorKind.UB(t, l)
                    recompose([(self.lr_q, GB), (-(1 << self.k_bias_update), UB)], TensorKind.RUB, t, l,
                              bits.unsigned_weights(self.k_bias_update), const=-half(self.k_bias_update))
                    recompose([(1, UB)], TensorKind.UBb, t, l, bits.signed_weights(self.q_update))
                    rels.append(([(1, TensorKind.B(t + 1, l)), (-1, TensorKind.B(t, l)), (1, UB)], 0))
                GW, U = TensorKind.GW(t, l), TensorKind.U(t, l)
                recompose([(self.lr_q, GW), (-(1 << self.k_update), U)], TensorKind.RU, t, l,
                          bits.unsigned_weights(self.k_update), const=-half(self.k_update))
                recompose([(1, U)], TensorKind.Ub, t, l, bits.signed_weights(self.q_update))
                rels.append(([(1, TensorKind.W(t + 1, l)), (-1, TensorKind.W(t, l)), (1, U)], 0))
                if l >= 2:
                    recompose([(1, TensorKind.GX(t, l)), (-(1 << p), TensorKind.GH(t, l))], TensorKind.RH, t, l,
                              bits.unsigned_weights(p), const=-half(p))
                    recompose([(1, TensorKind.GH(t, l))], TensorKind.GHb, t, l, bits.signed_weights(self.q_grad))
                if l == L:
                    G, RL, Y = TensorKind.G(t, l), TensorKind.RL(t, l), TensorKind.Y(t, l)
                    c, n = 1 << (S + 1), self.loss_count(t)
                    rels.append(([(c, Z), (-c, Y), (-n, G), (-1, RL)], -(n // 2)))
                    recompose([(1, RL)], TensorKind.RLb, t, l, bits.unsigned_weights(self.k_loss))
                    recompose([(-1, RL)], TensorKind.RL2b, t, l, bits.unsigned_weights(self.k_loss),
                              const=-(n - 1))
                    recompose([(1, G)], TensorKind.Gb, t, l, bits.signed_weights(self.q_grad))
        return rels

    def einsum_groups(self) -> list[tuple[str, list[tuple[TensorKey, TensorKey, TensorKey]]]]:
        """``(spec, [(A, B, C) per instance])`` grouped by padded shapes (one sumcheck each)."""
        L, T = self.layers, self.steps
        every, biased = (lambda l: True), self.has_bias
        kinds = [("forward", lambda t, l: (self.h(t, l), TensorKind.W(t, l), TensorKind.P(t, l)), every),
                 ("bias_broadcast", lambda t, l: (ones(self.rows[t]), TensorKind.B(t, l), TensorKind.BB(t, l)),
                  biased)]
        if self.training:
            kinds += [("weight_grad", lambda t, l: (TensorKind.G(t, l), self.h(t, l), TensorKind.GW(t, l)), every),
                      ("input_grad", lambda t, l: (TensorKind.G(t, l), TensorKind.W(t, l), TensorKind.GX(t, l)),
                       lambda l: l >= 2),
                      ("bias_grad", lambda t, l: (TensorKind.G(t, l), ones(self.rows[t]), TensorKind.GB(t, l)),
                       biased)]
        groups = []
        for kind, keys_of, included in kinds:
            by_shape: dict = {}
            for t in range(T):
                for l in filter(included, range(1, L + 1)):
                    a, b, c = keys_of(t, l)
                    by_shape.setdefault((self.shapes[a], self.shapes[b]), []).append((a, b, c))
            groups += [(EINSUMS[kind], inst) for _, inst in sorted(by_shape.items())]
        return groups

    def relu_groups(self) -> list[list[tuple[TensorKey, ...]]]:
        """Per padded shape: ``(H_{l+1}, G_l, sign_l, Z_l, GH_{l+1})`` for ``l < L``."""
        by_shape: dict = {}
        for t in range(self.steps):
            for l in range(1, self.layers):
                sign = TensorKind.Zb(t, l, self.q_act - 1)
                grads = (TensorKind.G(t, l), TensorKind.GH(t, l + 1)) if self.training else (None, None)
                by_shape.setdefault(self.act(l), []).append(
                    (self.h(t, l + 1), grads[0], sign, TensorKind.Z(t, l), grads[1]))
        return [inst for _, inst in sorted(by_shape.items())]

    def bit_groups(self) -> list[list[TensorKey]]:
        """Bit planes per padded shape, cut into power-of-two counts (86 planes: 64 + 16 + 4 + 2)
        so no booleanity sumcheck runs over padding instances, each group at most
        ``2^MAX_BOOLEANITY_VARS`` entries (the prover expands a group to field elements)."""
        by_shape: dict = {}
        for key, shape in self.proof_keys:
            if key.plane is not None:
                by_shape.setdefault(shape, []).append(key)
        groups = []
        for shape, keys in sorted(by_shape.items()):
            cap = 1 << max(0, MAX_BOOLEANITY_VARS - sum(mle.dim_bits(shape)))
            while keys:
                n = min(cap, 1 << (len(keys).bit_length() - 1))
                groups.append(keys[:n])
                keys = keys[n:]
        return groups

    @staticmethod
    def h(t: int, l: int) -> TensorKey:
        """The input of layer ``l`` at step ``t`` (the data batch for ``l = 1``)."""
        return TensorKind.X(t, 1) if l == 1 else TensorKind.H(t, l)


# ----------------------------------------------------------------------------------------
# committing
# ----------------------------------------------------------------------------------------
def pad(values: np.ndarray, shape: tuple, fill: int = 0) -> np.ndarray:
    """``values`` padded to ``shape`` with ``fill`` (0, or the constant a remainder takes on the
    padding): uint8 planes stay uint8, integers become int64, or Python integers where they
    exceed int64 (e.g. remainders of a very small learning rate)."""
    a = np.asarray(values)
    if a.dtype == object and a.size and max(abs(int(a.min())), abs(int(a.max())), fill) < 1 << 62:
        a = a.astype(np.int64)
    dtype = a.dtype if a.dtype in (np.uint8, object) else np.int64
    out = np.full(shape, fill, dtype=dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def commit_tensors(circuit: Circuit, values: dict, keys, key: commit.CommitKey, device: Device, progress=None):
    """Commit every tensor named in ``keys`` (padded to its shape) on ``device``:
    ``{key: (Commitment, Opening)}``.

    Tensors of one shape are committed a power-of-two batch per call (their rows side by side, so no
    padding instance is committed) and split back into per-instance commitments, which is what
    stacking later concatenates again. Bit planes are batched apart from value tensors, so that
    they stay 0/1 bytes and take the bit-commitment path.
    """
    by_shape: dict = {}
    for k, shape in keys:
        by_shape.setdefault((shape, k.plane is not None), []).append(k)
    out = {}
    done, total = 0, len(list(keys))
    for (shape, _), names in by_shape.items():
        m = sum(mle.dim_bits(shape))
        c = instance_col_vars(m)
        rows = 1 << (m - c)
        start = 0
        while start < len(names):  # power-of-two chunks of at most 256: no padding instances
            size = min(256, 1 << ((len(names) - start).bit_length() - 1))
            chunk = names[start:start + size]
            start += size
            tensors = np.stack([pad(values[k], shape) for k in chunk])
            com, opening = commit.commit(tensors.reshape(len(chunk), -1), key, col_vars=c, device=device)
            for i, k in enumerate(chunk):
                sl = slice(i * rows, (i + 1) * rows)
                out[k] = (Commitment(m, com.rows[sl], c), Opening(opening.table[sl], opening.blinds[sl]))
            done += len(chunk)
            if progress:
                progress("commit", done, total)
    return {k: out[k] for k, _ in keys}


def _ones_row(circuit_shape: tuple, key: commit.CommitKey) -> group.Point:
    """The row commitment of an all-ones instance (blind 0)."""
    m = sum(mle.dim_bits(circuit_shape))
    cols = 1 << instance_col_vars(m)
    return group.msm_small(key.g(cols), np.ones(cols, dtype=np.int64))


def public_tensors(circuit: Circuit, key: commit.CommitKey, device: Device = CPU) -> dict:
    """The circuit's public tensors (:attr:`Circuit.public_keys`) committed with blind 0 (on
    ``device``), as both sides compute them: ``{key: (Commitment, Opening)}``."""
    out = {}
    for k, shape in circuit.public_keys:
        indicator = np.zeros(shape, dtype=np.uint8)
        indicator[:k.step] = 1
        m = sum(mle.dim_bits(shape))
        c = instance_col_vars(m)
        out[k] = commit.commit(indicator, key, blinds=field.zeros(1 << (m - c)), col_vars=c, device=device)
    return out


# ----------------------------------------------------------------------------------------
# proof object
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AggregatedProof:
    """Everything after the commitments: the zero-padding proofs, the linear-relations blind and
    the sumcheck relations."""

    padding: tuple  # PaddingProof per padding group
    linear_blind: np.ndarray
    einsums: tuple  # EinsumRelationProof per einsum group
    relus: tuple  # HadamardProof per relu group
    booleanity: tuple  # BooleanityProof per bit group

    def check_shape(self, circuit: "Circuit") -> None:
        """VerificationError unless the proof holds exactly one relation proof of the right kind
        for every relation group the statement implies (objects as well as parsed bytes)."""
        expected = (("zero-padding", self.padding, circuit.padding_groups(), PaddingProof),
                    ("einsum", self.einsums, circuit.einsum_groups(), EinsumRelationProof),
                    ("zkReLU", self.relus, circuit.relu_groups(), HadamardProof),
                    ("booleanity", self.booleanity, circuit.bit_groups(), BooleanityProof))
        for name, got, groups, cls in expected:
            if not isinstance(got, tuple) or len(got) != len(groups):
                count = len(got) if isinstance(got, (tuple, list)) else type(got).__name__
                raise VerificationError(f"the proof has {count} {name} relations, the statement "
                                        f"implies {len(groups)}")
            if not all(isinstance(rel, cls) for rel in got):
                raise VerificationError(f"the proof's {name} relations are not {cls.__name__} objects")
        blind = self.linear_blind
        if not (isinstance(blind, np.ndarray) and blind.dtype == np.uint64 and blind.shape == (4,)):
            raise VerificationError("the proof's linear-relations blind is not one field element")


def _linear_combination(circuit: Circuit, rho: np.ndarray, rows_of):
    """Each linear relation with its row weights: consecutive powers of ``rho`` over all rows of
    all relations (one random combination, Schwartz–Zippel)."""
    rels = circuit.linear_relations
    counts = [len(rows_of(terms[0][1])) for terms, _ in rels]
    powers = field.powers(rho, sum(counts))
    out, offset = [], 0
    for (terms, const), rows in zip(rels, counts):
        out.append((terms, const, circuit.shapes[terms[0][1]], powers[offset:offset + rows]))
        offset += rows
    return out


def prove(circuit: Circuit, tensors: dict, t: Transcript, key: commit.CommitKey, device: Device,
          progress=None) -> AggregatedProof:
    """Prove every relation of ``circuit`` for the committed ``tensors`` ``{key: (com, opening)}``
    (their commitments already absorbed into ``t``) on ``device``."""
    tensors = {**tensors, **public_tensors(circuit, key, device)}
    total = (1 + len(circuit.padding_groups()) + len(circuit.einsum_groups()) + len(circuit.relu_groups())
             + len(circuit.bit_groups()))
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress("prove", done, total)

    def stacked(keys) -> Stack:
        return stack([tensors[k][0] for k in keys], [tensors[k][1] for k in keys], device)

    pads = []
    for shape, keys in circuit.padding_groups():
        pads.append(padding.prove(stacked(keys), [circuit.true_shape(k) for k in keys], shape, t, key, device))
        tick()
    # linear relations, batched: the prover reveals sum_i rho^i (blind combination of row i)
    rho = t.challenge_scalar("fac4dnn/linear")
    blind = field.zeros()
    for terms, _, _, weights in _linear_combination(circuit, rho, lambda k: tensors[k][1].blinds):
        for coeff, k in terms:
            blind = field.add(blind, field.mul(field.from_int(coeff),
                                               field.inner(weights, tensors[k][1].blinds)))
    t.absorb_scalars("fac4dnn/linear-blind", blind)
    tick()

    einsums = []
    for spec, instances in circuit.einsum_groups():
        a, b, c = (stacked(col) for col in zip(*instances))
        parsed = _parse(spec, a, b, circuit, instances[0])
        einsums.append(einsum.prove_relation(
            parsed, (a.opening, b.opening, c.opening),
            (a.commitment, b.commitment, c.commitment), t, key, device))
        tick()
    relus = []
    for instances in circuit.relu_groups():
        out, f, g, u = _relu_forms(circuit, instances, stacked, t)
        relus.append(hadamard.prove(out, f, g, u, t, key, device))
        tick()
    booleanity = []
    for keys in circuit.bit_groups():
        s = stacked(keys)
        booleanity.append(bits.prove_booleanity(s, t.challenge_scalars("fac4dnn/booleanity", s.commitment.num_vars),
                                                t, key, device))
        tick()
    return AggregatedProof(tuple(pads), blind, tuple(einsums), tuple(relus), tuple(booleanity))


def verify(circuit: Circuit, commitments: dict, proof: AggregatedProof, t: Transcript,
           key: commit.CommitKey, checks: commit.DeferredChecks | None = None) -> None:
    """Check an :class:`AggregatedProof` against ``commitments`` ``{key: Commitment}``. The
    openings' multi-scalar equations are batch-verified at the end, or added to ``checks``
    (batched with other proofs' by the caller, :func:`zk.verify_chain`)."""
    proof.check_shape(circuit)
    commitments = {**commitments, **{k: c for k, (c, _) in public_tensors(circuit, key).items()}}
    own = checks is None
    checks = commit.DeferredChecks() if own else checks

    def stacked(keys) -> Stack:
        return stack([commitments[k] for k in keys])

    for (shape, keys), rel in zip(circuit.padding_groups(), proof.padding):
        padding.verify(stacked(keys), [circuit.true_shape(k) for k in keys], shape, rel, t, key,
                       f"zero padding of the statement tensors {'/'.join(sorted({k.kind.value for k in keys}))} "
                       f"(padded shape {shape})", checks)
    rho = t.challenge_scalar("fac4dnn/linear")
    points, scalars = [], []
    ones = {}
    for terms, const, shape, weights in _linear_combination(circuit, rho, lambda k: commitments[k].rows):
        for coeff, k in terms:
            points += commitments[k].rows
            scalars.append(field.mul(field.from_int(coeff), weights))
        if const:
            if shape not in ones:
                ones[shape] = _ones_row(shape, key)
            points.append(ones[shape])
            scalars.append(field.mul(field.from_int(-const), field.sum(weights))[None])
    points.append(key.H)
    scalars.append(field.neg(proof.linear_blind)[None])
    if group.msm(points, np.concatenate(scalars)) != group.identity():
        raise VerificationError("linear relations (rescale, loss, SGD update, bit recomposition) "
                                "do not hold on the commitments")
    t.absorb_scalars("fac4dnn/linear-blind", proof.linear_blind)

    for (spec, instances), rel in zip(circuit.einsum_groups(), proof.einsums):
        a, b, c = (stacked(col) for col in zip(*instances))
        einsum.verify_relation(_parse(spec, a, b, circuit, instances[0]),
                               (a.commitment, b.commitment, c.commitment), rel, t, key, checks)
    for instances, rel in zip(circuit.relu_groups(), proof.relus):
        out, f, g, u = _relu_forms(circuit, instances, stacked, t)
        hadamard.verify(out, f, g, u, rel, t, key, what="zkReLU", checks=checks)
    for keys, rel in zip(circuit.bit_groups(), proof.booleanity):
        s = stacked(keys)
        bits.verify_booleanity(s, t.challenge_scalars("fac4dnn/booleanity", s.commitment.num_vars), rel, t, key,
                               checks)
    if own:
        checks.run()


def _parse(spec: str, a: Stack, b: Stack, circuit: Circuit, first: tuple):
    n = 1 << a.index_vars
    shape_a = (n, *circuit.shapes[first[0]])
    shape_b = (n, *circuit.shapes[first[1]])
    return parse_einsum(spec, shape_a, shape_b)


def _relu_forms(circuit: Circuit, instances, stacked, t: Transcript):
    """zkReLU as a Hadamard relation: ``H + gamma G = (1 - s) (Z + gamma GH)``."""
    h, g, s, z, gh = (stacked(col) if col[0] is not None else None for col in zip(*instances))
    u = t.challenge_scalars("fac4dnn/relu", h.commitment.num_vars)
    if not circuit.training:
        return Affine(0, [(1, h)]), Affine(1, [(-1, s)]), Affine(0, [(1, z)]), u
    gamma = t.challenge_scalar("fac4dnn/relu-gamma")
    return (Affine(0, [(1, h), (gamma, g)]), Affine(1, [(-1, s)]),
            Affine(0, [(1, z), (gamma, gh)]), u)


__all__ = ["Circuit", "AggregatedProof", "ones", "commit_tensors", "public_tensors", "prove", "verify", "pad"]
