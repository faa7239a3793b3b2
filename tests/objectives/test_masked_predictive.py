import math

import pytest
import torch

from multissl.objectives import masked_reconstruction_loss, masked_token_loss, next_token_loss


def test_masked_token_loss_averages_only_unignored_positions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 7, generator=g)
    labels = torch.tensor([[-100, 3, -100, 1], [6, -100, -100, -100]])
    terms = [-torch.log_softmax(logits[b, t], -1)[labels[b, t]].item() for b in range(2) for t in range(4) if labels[b, t] != -100]
    assert masked_token_loss(logits, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    loss = masked_token_loss(logits, torch.full((1, 3), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_masked_reconstruction_counts_masked_patches_only():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_reconstruction_loss(pred, target, mask).item() == pytest.approx((1 + 4) / 2)


def test_next_token_loss_shifts_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 4, 6, generator=g)
    ids = torch.tensor([[2, 5, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    terms = [-torch.log_softmax(logits[0, t], -1)[ids[0, t + 1]].item() for t in range(2)]
    assert next_token_loss(logits, ids, mask).item() == pytest.approx(sum(terms) / 2, rel=1e-6)
    uniform = torch.zeros(1, 4, 6)
    assert next_token_loss(uniform, ids).item() == pytest.approx(math.log(6))


def test_shape_errors():
    with pytest.raises(ValueError, match="logits must be"):
        masked_token_loss(torch.randn(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="mask"):
        masked_reconstruction_loss(torch.randn(1, 3, 2), torch.randn(1, 3, 2), torch.ones(1, 2))
