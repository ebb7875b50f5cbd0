"""Defaults that work (issue 14, part 4): real encryption by default, levels and rings that
follow the work, values the scale cannot hold detected, a fast planner, a clean fhe CLI."""
from __future__ import annotations

import numpy as np
import pytest

import fhe


# ---------------------------------------------------------------- 1. real encryption by default
def test_default_context_encrypts_with_seal():
    pytest.importorskip("tenseal")
    ctx = fhe.Context()
    assert type(ctx.backend).__name__ == "SealBackend"
    assert ctx.backend.security_bits >= 128
    assert repr(ctx).startswith("Context(seal,") and "ENCRYPTION" not in repr(ctx)


def test_simulator_only_by_name_and_says_so():
    ctx = fhe.Context(backend="sim", ring_degree=256, levels=2)
    assert repr(ctx).startswith("Context(sim — NO ENCRYPTION, debugging only")
    assert "ring_degree=256" in repr(ctx) and "levels=2" in repr(ctx)


# ---------------------------------------------------------------- 2. public errors, numbers in them
def test_too_deep_is_a_public_out_of_levels_with_needed_and_have():
    with pytest.raises(fhe.OutOfLevels) as err:
        fhe.plan("ij,jk,kl->il", (16, 8), (8, 8), (8, 16), slots=8192, levels=3)
    exc = err.value
    assert type(exc) is fhe.OutOfLevels and exc.__cause__ is None
    assert (exc.needed, exc.have) == (4, 3)
    msg = str(exc)
    assert "needs at least 4" in msg and "have 3" in msg and "fhe.Context(levels=4)" in msg
    assert "for_einsum" in msg and "_TooDeep" not in msg


def test_too_deep_after_encrypting_names_the_fix():
    ctx = fhe.Context(backend="sim", ring_degree=1024, levels=1)
    x = ctx.encrypt(np.ones((16, 16)))
    with pytest.raises(fhe.OutOfLevels) as err:
        fhe.einsum("ij,jk->ik", x, x)
    assert type(err.value) is fhe.OutOfLevels and err.value.have == 1
    assert f"fhe.Context(levels={err.value.needed})" in str(err.value)


def test_worn_operands_are_told_to_re_encrypt():
    p = fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192)
    with pytest.raises(fhe.OutOfLevels, match="operand 1 at level 1") as err:
        p.check_levels([2, 1])
    assert "re-encrypt" in str(err.value)


def test_no_plan_says_why():
    with pytest.raises(fhe.FHEError, match="does not apply.*strategy='auto'"):
        fhe.plan("ij->ji", (8, 8), slots=64, strategy="diagonal")
    with pytest.raises(fhe.FHEError, match="262144 ciphertext tiles of 64 slots, more than the 4096"):
        fhe.plan("ij,kl->ijkl", (64, 64), (64, 64), slots=64, strategy="aligned")
