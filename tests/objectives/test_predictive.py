"""Next-token CE against a loop over (sequence, position) pairs."""
import math

import pytest
import torch

from multissl.objectives import next_token_loss


def test_next_token_loss_shifts_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 6, generator=g)
    ids = torch.tensor([[2, 5, 1, 0, 0], [3, 3, 4, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    terms = [-torch.log_softmax(logits[b, t], -1)[ids[b, t + 1]].item()
             for b in range(2) for t in range(4) if mask[b, t + 1]]
    assert next_token_loss(logits, ids, mask).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    every = [-torch.log_softmax(logits[b, t], -1)[ids[b, t + 1]].item() for b in range(2) for t in range(4)]
    assert next_token_loss(logits, ids).item() == pytest.approx(sum(every) / len(every), rel=1e-6)


def test_uniform_logits_give_log_vocab_and_empty_targets_give_zero():
    ids = torch.tensor([[2, 5, 1, 0]])
    assert next_token_loss(torch.zeros(1, 4, 6), ids).item() == pytest.approx(math.log(6))
    logits = torch.randn(1, 4, 6, requires_grad=True)
    loss = next_token_loss(logits, ids, torch.tensor([[1, 0, 0, 0]]))  # nothing to predict
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("call,match", [
    (lambda: next_token_loss(torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.long)), r"logits must have shape \[B, T, V\]"),
    (lambda: next_token_loss(torch.randn(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)), r"input_ids must have shape \[2, 5\]"),
    (lambda: next_token_loss(torch.randn(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4)),
     "attention_mask must have"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
