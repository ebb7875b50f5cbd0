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
