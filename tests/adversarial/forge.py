"""A malicious prover: the library's own commitment and relation provers run on a doctored witness.

``honest_witness`` gives the exact fixed-point witness of a real training run; a test edits any
tensor (or the claimed circuit) and ``forge`` proves it with the real provers, skipping only the
prover-side refusal of unsound statements — what an attacker would do. ``rejection`` verifies and
returns the failing check's message.
"""
from __future__ import annotations

import numpy as np
import pytest

import zk
from zk import commit, training
from zk.fac4dnn import pad


def honest_witness(widths, batch, steps=1, lr=0.1, bias=False, seed=0, param_scale=None):
    """``(circuit, values)``: the honest witness of ``steps`` SGD steps of a seeded MLP (updates
    that round away are not refused: the witness is an attacker's starting point)."""
    model = training.synthetic_mlp(widths, seed=seed, bias=bias)
    data = training.synthetic_batches(widths, batch, steps, seed=seed)
    circuit, values, _ = training.training_witness(model, data, lr, param_scale=param_scale,
                                                   refuse_underflow=False)
    return circuit, {k: np.array(v, copy=True) for k, v in values.items()}


def forge(circuit, values, lr=None):
    """Commit to ``values`` and prove ``circuit`` with the real provers (no soundness refusal)."""
    lr = float(circuit.lr_q / (1 << circuit.lr_bits)) if lr is None else lr
    return training.commit_and_prove(circuit, values, lr, commit.DEFAULT_KEY, None)[0]


def padded(values, key, shape):
    """``values[key]`` zero-padded to ``shape`` (so a test can write into its padding)."""
    values[key] = pad(values[key], shape)
    return values[key]


def rejection(proof, verify=zk.verify_training) -> str:
    """The message of the VerificationError ``verify(proof)`` must raise."""
    with pytest.raises(zk.VerificationError) as err:
        verify(proof)
    return str(err.value)
