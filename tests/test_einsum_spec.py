"""circuits.einsum_spec agrees with numpy.einsum and rejects malformed specs by name."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from circuits import EinsumSpec, parse_einsum

LETTERS = "abcdefgAB"


@st.composite
def einsum_cases(draw):
    """A random valid einsum (with repeats, broadcasting, ellipsis, implicit output)."""
    sizes = {c: draw(st.integers(1, 4)) for c in LETTERS}
    n_ops = draw(st.integers(1, 3))
    ell_shape = draw(st.lists(st.integers(1, 3), max_size=2))
    use_ell = bool(ell_shape) and draw(st.booleans())
    terms, shapes = [], []
    for _ in range(n_ops):
        labels = draw(st.lists(st.sampled_from(LETTERS), max_size=3))
        shape = [sizes[c] for c in labels]
        # a size-1 axis broadcasts against any size
        shape = [1 if draw(st.integers(0, 5)) == 0 else n for n in shape]
        # repeated labels inside an operand must have equal sizes
        for i, c in enumerate(labels):
            shape[i] = shape[labels.index(c)]
        term = "".join(labels)
        if use_ell and draw(st.booleans()):
            k = draw(st.integers(0, len(ell_shape)))
            cut = draw(st.integers(0, len(labels)))
            term = term[:cut] + "..." + term[cut:]
            tail = [1 if draw(st.integers(0, 4)) == 0 else n for n in ell_shape[len(ell_shape) - k:]]
            shape = shape[:cut] + tail + shape[cut:]
        terms.append(term)
        shapes.append(tuple(shape))
    spec = ",".join(terms)
    if draw(st.booleans()):
        present = sorted({c for t in terms for c in t if c != "."})
        out = draw(st.lists(st.sampled_from(present), unique=True)) if present else []
        has_ell = any("..." in t for t in terms)
        out_s = "".join(out)
        if has_ell:
            cut = draw(st.integers(0, len(out)))
            out_s = out_s[:cut] + "..." + out_s[cut:]
        spec += "->" + out_s
    return spec, shapes


@settings(max_examples=300, deadline=None)
@given(einsum_cases(), st.integers(0, 2**32 - 1))
def test_agrees_with_numpy(case, seed):
    spec, shapes = case
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(-5, 6, size=s) for s in shapes]
    try:
        expected = np.einsum(spec, *arrays)
    except ValueError:
        with pytest.raises(ValueError):
            parse_einsum(spec, *shapes)
        return
    parsed = parse_einsum(spec, *shapes)
    assert parsed.output_shape == expected.shape
    np.testing.assert_array_equal(parsed.reference(*arrays), expected)
    # normalising twice is a fixed point
    again = parse_einsum(str(parsed), *shapes)
    assert str(again) == str(parsed)


def test_normal_forms():
    assert str(parse_einsum("ij,jk", (2, 3), (3, 4))) == "ij,jk->ik"
    assert str(parse_einsum("bA", (2, 3))) == "bA->Ab"  # numpy sorts implicit outputs by ASCII
    s = parse_einsum("...ij,...jk", (5, 1, 2, 3), (4, 3, 2))
    assert s.output_shape == (5, 4, 2, 2)
    assert str(parse_einsum("ii->i", (3, 3))) == "ii->i"  # a diagonal is kept as written
    mm = parse_einsum("bij,bjk->bik", (2, 3, 4), (2, 4, 5))
    assert mm.contracted == ("j",) and mm.labels == ("b", "i", "k", "j")
    assert isinstance(mm, EinsumSpec)


def test_the_module_is_not_shadowed():
    import circuits
    import circuits.einsum_spec as module

    assert circuits.einsum_spec is module and module.EinsumSpec is EinsumSpec


@pytest.mark.parametrize("spec, shapes, message", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "size mismatch for index 'j'"),
    ("ij,jk->ik", [(2, 3)], "names 2 operand(s) but 1 were given"),
    ("ij->ik", [(2, 3)], "output index 'k'"),
    ("i1->i", [(2, 2)], "invalid character '1'"),
    ("ij->ii", [(2, 2)], "appears more than once"),
    ("ijk->i", [(2, 2)], "has 3 label(s) but shape (2, 2)"),
    ("i..j->i", [(2, 2)], "stray '.'"),
    ("ij->i->j", [(2, 2)], "more than one '->'"),
    ("ij-i", [(2, 2)], "malformed '->'"),
    ("ii->i", [(2, 3)], "repeats index 'i' on axes of different sizes"),
    ("...i->i", [(3, 4)], "no '...'"),
    ("......->", [(3,)], "more than one ellipsis"),
])
def test_rejects_malformed(spec, shapes, message):
    with pytest.raises(ValueError) as err:
        parse_einsum(spec, *shapes)
    assert message in str(err.value)


def test_rejects_non_string_and_no_operands():
    with pytest.raises(TypeError, match="must be a string"):
        parse_einsum(3, (2,))
    with pytest.raises(ValueError, match="at least one operand"):
        parse_einsum("i->i")


def test_reference_checks_shapes():
    s = parse_einsum("ij,jk->ik", (2, 3), (3, 4))
    with pytest.raises(ValueError, match="operand 1 has shape"):
        s.reference(np.ones((2, 3)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="takes 2 operand"):
        s.reference(np.ones((2, 3)))
