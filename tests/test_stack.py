"""zk.stack: stacking instance commitments and openings (FAC4DNN)."""
from __future__ import annotations

import numpy as np
import pytest

from zk import commit, stack
from zk.commit import Commitment, Opening
from zk.device import CPU


def instances(count: int, rows: int, cols_vars: int, seed: int = 0):
    """``count`` instances committed in one batch and split, as zk.fac4dnn.commit_tensors does."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-50, 50, (count, rows << cols_vars))
    com, opening = commit.commit(values, col_vars=cols_vars)
    m = (rows << cols_vars).bit_length() - 1
    return [(Commitment(m, com.rows[i * rows:(i + 1) * rows], cols_vars),
             Opening(opening.table[i * rows:(i + 1) * rows], opening.blinds[i * rows:(i + 1) * rows]))
            for i in range(count)]


def test_a_batch_stacks_without_copying_and_anything_else_is_copied():
    parts = instances(4, 2, 3)
    coms, opens = zip(*parts)
    whole = stack.stack(coms, opens)
    expected = np.concatenate([o.table for o in opens])
    assert np.array_equal(whole.opening.table, expected)
    assert np.shares_memory(whole.opening.table, opens[0].table)  # the batch's own memory
    for order in ([3, 2, 1, 0], [0, 2]):  # not adjacent: a copy, same values
        s = stack.stack([coms[i] for i in order], [opens[i] for i in order])
        assert np.array_equal(s.opening.table, np.concatenate([opens[i].table for i in order]))
        assert not np.shares_memory(s.opening.table, opens[0].table)
    padded = stack.stack(coms[:3], opens[:3])  # 3 instances pad to 4 with zero rows
    assert padded.opening.table.shape[:2] == (8, 8) and not padded.opening.table[6:].any()


def test_stacked_commitment_opens_to_the_stacked_table():
    coms, opens = zip(*instances(4, 2, 3, seed=1))
    s = stack.stack(coms, opens)
    from zk.transcript import Transcript

    rng = np.random.default_rng(2)
    point = commit.field.random_seeded(s.commitment.num_vars, rng)
    value = commit.evaluate(s.opening, point)
    proof = commit.prove_eval(s.opening, s.commitment, point, Transcript(b"t"))
    commit.verify_eval(s.commitment, point, value, proof, Transcript(b"t"))


@pytest.mark.parametrize("high, dtype, small", [(2, np.uint8, np.uint8), (1 << 16, np.int64, np.uint16)],
                         ids=["bit planes as bytes", "16-bit limbs as uint16"])
def test_small_integer_tables_are_kept_small_and_open_like_field_tables(high, dtype, small):
    from zk import field
    from zk.transcript import Transcript

    bits = np.random.default_rng(3).integers(0, high, (4, 64)).astype(dtype)
    com, opening = commit.commit(bits, col_vars=5)
    assert opening.table.dtype == small and opening.table.shape == (8, 32)  # 1 or 2 bytes per entry
    same_com, same_opening = commit.commit(field.from_int(bits), col_vars=5, blinds=opening.blinds)
    assert com == same_com
    assert np.array_equal(opening.field_table(CPU), same_opening.table)
    point = field.random_seeded(8, np.random.default_rng(4))
    value = commit.evaluate(opening, point)
    assert np.array_equal(value, commit.evaluate(same_opening, point))
    proof = commit.prove_eval(opening, com, point, Transcript(b"t"))
    commit.verify_eval(com, point, value, proof, Transcript(b"t"))
    # stacking bytes with a field table (a cheating prover's non-0/1 "plane") expands the bytes
    mixed = stack.stack([com, same_com], [opening, same_opening])
    assert mixed.opening.table.shape == (16, 32, 4)
