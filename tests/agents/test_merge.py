"""The named merge rules of a fan-in agent: shapes, errors naming the edge, and the gradient split."""

import pytest
import torch

from agents import MERGES, merge_inputs, merged_shape, split_gradient


def test_rules():
    assert MERGES == ("concat", "sum")


def test_concat_shape_and_values():
    assert merged_shape("concat", [(64,), (32,)], ["a->c", "b->c"]) == (96,)
    assert merged_shape("concat", [(3, 8, 8), (5, 8, 8)]) == (8, 8, 8)
    a, b = torch.randn(4, 2), torch.randn(4, 3)
    out = merge_inputs("concat", [a, b])
    assert out.shape == (4, 5)
    assert torch.equal(out[:, :2], a) and torch.equal(out[:, 2:], b)


def test_sum_shape_and_values():
    assert merged_shape("sum", [(16,), (16,), (16,)]) == (16,)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(merge_inputs("sum", [a, b]), a + b)


def test_one_input_is_itself():
    x = torch.randn(2, 7)
    assert merge_inputs("concat", [x]) is x
    assert merged_shape("sum", [(7,)]) == (7,)


@pytest.mark.parametrize("rule, shapes, words", [
    ("sum", [(4,), (5,)], ["b->c", "[5]", "same shape"]),
    ("concat", [(3, 8, 8), (3, 4, 4)], ["b->c", "[3, 4, 4]", "first axis"]),
    ("concat", [(4,), (3, 2)], ["b->c", "[3, 2]"]),
])
def test_shapes_that_do_not_fit_name_the_edge(rule, shapes, words):
    with pytest.raises(ValueError) as err:
        merged_shape(rule, shapes, ["a->c", "b->c"])
    for w in words:
        assert w in str(err.value)


def test_unknown_rule():
    with pytest.raises(ValueError, match="expected one of"):
        merged_shape("mean", [(2,)])
    with pytest.raises(ValueError, match="no inputs"):
        merged_shape("concat", [])


@pytest.mark.parametrize("rule, shapes", [("concat", [(2,), (3,), (1,)]), ("sum", [(4,), (4,)]),
                                          ("concat", [(2, 3, 3), (1, 3, 3)])])
def test_split_gradient_equals_autograd(rule, shapes):
    parts = [torch.randn(5, *s, requires_grad=True) for s in shapes]
    merged = merge_inputs(rule, parts)
    w = torch.randn_like(merged)
    (merged * w).sum().backward()
    for p, g in zip(parts, split_gradient(rule, w, shapes)):
        assert torch.allclose(p.grad, g)
