"""Equations that could wrap modulo r: refused in prove, verify and parse, from the statement alone."""
import dataclasses

import numpy as np
import pytest

import zk
from zk import fac4dnn, field, lower, magnitudes, training
from zk.keys import TensorKind

from forge import forge, honest_witness, range_check_of, redecompose, rejection

LR = 2.0 ** -208  # at scales 2^16 the SGD remainder needs lr_bits + 3S - p = 255 bits: wider than Fr


def _k_update(circuit):
    """Bits of the SGD remainder of the weights (gradients at scale 3S, parameters at p)."""
    return circuit.lr_bits + 3 * circuit.scale_bits - circuit.param_scale


def _wrapped_update(circuit, values, delta=3):
    """Change one weight update by ``delta`` and solve the SGD division modulo r: the remainder
    ``lr_q GW + 2^(k-1) - 2^k (W - W')`` wraps to a field element below 2^255, genuine limbs of a
    255-bit range (and the next weights' own limbs recomputed: their range check holds)."""
    k = _k_update(circuit)
    nxt = values[TensorKind.VALUE(1, "0.weight")] = np.array(values[TensorKind.VALUE(1, "0.weight")], dtype=object)
    nxt[0, 0] -= delta
    u = np.array(values[TensorKind.VALUE(0, "0.weight")], dtype=object) - nxt
    gw = np.array(values[TensorKind.VALUE(0, "0.weight.grad")], dtype=object)
    half = 1 << (k - 1)  # what rounding to nearest adds before the division (also on the padding)
    rem = fac4dnn.pad((circuit.lr_q * gw + half - (u << k)) % field.R, circuit.shapes[TensorKind.VALUE(0, "0.weight")], half)
    limbs = lower.unsigned_limbs(TensorKind.REMAINDER_LIMBS, 0, "0.weight.next", k, circuit.limb_bits)
    assert all(circuit.lookup_bits[key] == b for key, b in limbs)
    values.update(zip([key for key, _ in limbs], lower.split_limbs(rem, [b for _, b in limbs], "wrapped remainder")))
    check = range_check_of(circuit, TensorKind.VALUE(1, "0.weight"))
    assert check.width == circuit.param_bits
    redecompose(circuit, values, TensorKind.VALUE(1, "0.weight"))


def test_a_wrapped_sgd_remainder_is_refused(monkeypatch):
    circuit, values = honest_witness((3, 2, 2), 2, lr=LR, param_scale=16)
    assert _k_update(circuit) == 255
    with pytest.raises(zk.StatementError, match="learning rate .* is too small for scale 2\\^16"):
        training.prove_witness(circuit, values, LR)
    _wrapped_update(circuit, values)
    proof = forge(circuit, values, LR)
    assert "too small for scale" in rejection(proof)
    with pytest.raises(zk.ProofFormatError, match="too small for scale"):
        zk.TrainingProof.from_bytes(proof.to_bytes())
    # the forgery is genuine: without the magnitude bounds, arbitrary final weights verify
    monkeypatch.setattr(magnitudes, "check", lambda circuit: None)
    assert zk.verify_training(proof)


def _sound(lr, widths=(3, 2, 2), batch=2, scale=16):
    from circuits import quantize_lr

    c = fac4dnn.Circuit(zk.Architecture.mlp(widths, (), scale), batch, 1, *quantize_lr(lr))
    try:
        c.check_sound()
        return True
    except zk.StatementError:
        return False


def test_the_learning_rate_bound_at_its_edge():
    """The smallest accepted learning rate keeps every equation below 2^240 < r/2, the next
    power of two down is refused."""
    edge = next(e for e in range(1, 400) if not _sound(2.0 ** -e)) - 1
    assert _sound(2.0 ** -edge) and not _sound(2.0 ** -(edge + 1))
    from circuits import quantize_lr

    worst = max(b.magnitude for b in magnitudes.bounds(fac4dnn.Circuit(zk.Architecture.mlp((3, 2, 2)), 2, 1, *quantize_lr(2.0 ** -edge))))
    assert worst < magnitudes.LIMIT < field.R // 2
    assert 150 < edge < 200  # lr down to about 2^-170 at scale 2^16


@pytest.mark.parametrize("arch, change, parameter", [
    (((1 << 16, 8, 2), 16), dict(data_bits=120, param_bits=110), "input width 65536 of 0.matmul"),
    (((3, 2, 2), 16), dict(data_bits=128, param_bits=128), "input width 3 of 0.matmul"),
    (((3, 2, 2), 40), dict(lr_bits=165), "too small for scale 2\\^40"),
])
def test_wide_statements_are_refused_naming_the_parameter(arch, change, parameter):
    (widths, scale) = arch
    c = dataclasses.replace(fac4dnn.Circuit(zk.Architecture.mlp(widths, (), scale), 2, 1, 1 << 15, 22), **change)
    with pytest.raises(zk.StatementError, match=parameter):
        c.check_sound()


def test_honest_statements_pass():
    circuit, _ = honest_witness((4, 3, 2), 3, lr=0.01)
    circuit.check_sound()
    assert max(b.magnitude for b in magnitudes.bounds(circuit)).bit_length() < 200
