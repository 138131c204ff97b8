"""SPLADE / PROSPER math on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from retrievers.sparse import ops


def test_log_saturation():
    x = torch.tensor([-2.0, 0.0, math.e - 1])
    torch.testing.assert_close(ops.log_saturation(x), torch.tensor([0.0, 0.0, 1.0]))


def test_last_token_pooling_with_right_and_left_padding():
    values = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)  # row r, position p -> 4r + p
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert ops.last_positions(right).tolist() == [1, 3]
    assert ops.last_positions(left).tolist() == [3, 3]
    assert ops.last_token_pool(values, right).squeeze(1).tolist() == [1.0, 7.0]
    assert ops.last_token_pool(values, left).squeeze(1).tolist() == [3.0, 7.0]


def test_max_pooling_ignores_padding():
    values = torch.tensor([[[1.0, 0.0], [0.5, 2.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert ops.max_pool(values, mask).tolist() == [[1.0, 2.0]]


def test_literal_indicator_excludes_specials_and_padding():
    ids = torch.tensor([[2, 5, 7, 5, 3, 0]])  # [CLS]=2 5 7 5 [SEP]=3 [PAD]=0
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    indicator = ops.literal_indicator(ids, mask, vocab_size=8, special_ids=(0, 2, 3))
    assert indicator.tolist() == [[0, 0, 0, 0, 0, 1, 0, 1]]


def test_lrn_compensation_by_hand():
    w = torch.tensor([[0.1, 0.0, 0.5, 0.2]])
    w_prime = torch.tensor([[0.3, 0.9, 0.1, 0.4]])
    indicator = torch.tensor([[1.0, 0.0, 1.0, 0.0]])  # terms 0 and 2 are literal
    # max(w') = 0.9: literal term 0 gets 0.1 + (0.9 - 0.3) = 0.7, term 2 gets 0.5 + (0.9 - 0.1) = 1.3
    torch.testing.assert_close(ops.literal_residual(w, w_prime, indicator, "max"), torch.tensor([[0.7, 0.0, 1.3, 0.2]]))
    torch.testing.assert_close(ops.literal_residual(w, w_prime, indicator, "add"), torch.tensor([[0.4, 0.0, 0.6, 0.2]]))
    torch.testing.assert_close(ops.literal_residual(w, w_prime, indicator, "none"), w)
    # LRN-add with a negative residual: 0.1 - 0.3 would be a negative impact; the index stores 0 instead
    negative = torch.tensor([[-0.3, -0.9, 0.1, -0.4]])
    torch.testing.assert_close(ops.literal_residual(w, negative, indicator, "add"), torch.tensor([[0.0, 0.0, 0.6, 0.2]]))
    with pytest.raises(ValueError):
        ops.literal_residual(w, w_prime, indicator, "mul")


def test_conditional_topk_only_cuts_rows_over_the_window():
    weights = torch.tensor([[0.5, 0.0, 0.3, 0.9, 0.1], [0.0, 0.2, 0.0, 0.0, 0.4]])
    out = ops.conditional_topk(weights, 2)
    # row 2 has 2 <= k non-zeros: unchanged
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0, 0.0, 0.9, 0.0], [0.0, 0.2, 0.0, 0.0, 0.4]]))
    assert torch.equal(ops.conditional_topk(weights, None), weights)
    assert torch.equal(ops.conditional_topk(weights, 5), weights)


def test_dynamic_window_shrinks_when_90_percent_fit():
    windows = (256, 128, 64)
    assert ops.dynamic_window(torch.tensor([100] * 95 + [200] * 5), windows, 256) == 128
    assert ops.dynamic_window(torch.tensor([100] * 85 + [300] * 15), windows, 256) == 256  # 85% under: stays
    assert ops.dynamic_window(torch.tensor([10] * 100), windows, 64) == 64  # smallest window: stays
    # the paper tests the *current* window: 95% of rows under 256 (none under 128) shrink 256 -> 128
    assert ops.dynamic_window(torch.tensor([200] * 95 + [300] * 5), windows, 256) == 128


def test_normalisation_variants():
    q = torch.tensor([[3.0, 4.0]])
    d = torch.tensor([[6.0, 8.0]])
    unit = torch.tensor([[0.6, 0.8]])
    nq, nd = ops.normalise(q, d, "query-l2")
    torch.testing.assert_close(nq, unit)
    assert nd.tolist() == [[6.0, 8.0]]  # the document keeps its scale
    nq, nd = ops.normalise(q, d, "both-l2")
    torch.testing.assert_close(nd, unit)
    nq, _ = ops.normalise(q, d, "query-l1")
    torch.testing.assert_close(nq, torch.tensor([[3 / 7, 4 / 7]]))
    nq, nd = ops.normalise(q, d, "doc-l2")
    assert nq.tolist() == [[3.0, 4.0]]
    torch.testing.assert_close(nd, unit)
    assert ops.normalise(q, d, "none") == (q, d)


def test_flops_value_by_hand():
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # column means (2, 0, 1) -> 4 + 0 + 1
    assert float(ops.flops(w)) == pytest.approx(5.0)


def test_echo_inputs_read_from_the_second_copy():
    ids = torch.tensor([[5, 6, 0]])
    mask = torch.tensor([[1, 1, 0]])
    echoed, attention, second = ops.echo_inputs(ids, mask)
    assert echoed.tolist() == [[5, 6, 0, 5, 6, 0]]
    assert attention.tolist() == [[1, 1, 0, 1, 1, 0]]
    assert second.tolist() == [[0, 0, 0, 1, 1, 0]]
    assert int(ops.last_positions(second)[0]) == 4  # last-token pooling lands on the second copy's last token


def test_bidirectional_and_causal_masks():
    mask = torch.tensor([[1, 1, 0]])
    bi = ops.bidirectional_mask(mask)
    causal = ops.causal_mask(mask)
    allowed_bi = (bi[0, 0] == 0).int().tolist()
    allowed_causal = (causal[0, 0] == 0).int().tolist()
    assert allowed_bi == [[1, 1, 0], [1, 1, 0], [1, 1, 0]]  # position 0 sees position 1
    assert allowed_causal == [[1, 0, 0], [1, 1, 0], [1, 1, 0]]  # position 0 sees only itself


def test_literal_indicator_keeps_a_literal_term_at_column_zero():
    """Left-out positions (padding, specials) must not overwrite a real literal term that happens to be term 0."""
    ids = torch.tensor([[0, 5, 7, 9]])
    mask = torch.tensor([[1, 1, 0, 0]])  # two padded positions after the literal term 0
    indicator = ops.literal_indicator(ids, mask, 10)
    assert indicator[0].nonzero().flatten().tolist() == [0, 5]
