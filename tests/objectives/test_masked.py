"""Masked token CE and MAE reconstruction against loops over positions / patches."""
import pytest
import torch

from multissl.objectives import masked_reconstruction_loss, masked_token_loss


def test_masked_token_loss_averages_only_unignored_positions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 7, generator=g)
    labels = torch.tensor([[-100, 3, -100, 1], [6, -100, -100, -100]])
    terms = [-torch.log_softmax(logits[b, t], -1)[labels[b, t]].item() for b in range(2) for t in range(4) if labels[b, t] != -100]
    assert masked_token_loss(logits, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    custom = labels.masked_fill(labels == -100, -1)  # the same positions under a custom ignore index
    assert masked_token_loss(logits, custom, ignore_index=-1).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    loss = masked_token_loss(logits, torch.full((1, 3), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_half_precision_logits_are_upcast():
    logits = torch.randn(2, 3, 11, dtype=torch.bfloat16)
    labels = torch.tensor([[1, -100, 4], [0, 10, -100]])
    assert masked_token_loss(logits, labels).dtype == torch.float32
    assert masked_token_loss(logits, labels).item() == pytest.approx(masked_token_loss(logits.float(), labels).item(), rel=1e-6)


def test_masked_reconstruction_counts_masked_patches_only():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 0]])
    errs = [sum((pred[b, n, p] - target[b, n, p]).item() ** 2 for p in range(3)) / 3
            for b in range(2) for n in range(5) if mask[b, n]]
    assert masked_reconstruction_loss(pred, target, mask).item() == pytest.approx(sum(errs) / len(errs), rel=1e-6)
    assert masked_reconstruction_loss(pred, target, mask.bool()).item() == pytest.approx(sum(errs) / len(errs), rel=1e-6)
    # a huge error on an unmasked patch changes nothing
    target2 = target.clone()
    target2[0, 1] = 1e6
    assert masked_reconstruction_loss(pred, target2, mask).item() == pytest.approx(sum(errs) / len(errs), rel=1e-6)


def test_masked_reconstruction_normalised_target_and_empty_mask():
    target = torch.tensor([[[1.0, 3.0], [10.0, 10.0]]])
    pred = torch.zeros(1, 2, 2, requires_grad=True)
    # patch 0 normalised by its own mean 2 and unbiased var 2 -> (+-1/sqrt(2+eps)); MSE vs 0 = 1/(2+eps)
    assert masked_reconstruction_loss(pred, target, torch.tensor([[1, 0]]), norm_target=True).item() == pytest.approx(0.5, rel=1e-5)
    loss = masked_reconstruction_loss(pred, target, torch.zeros(1, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("call,match", [
    (lambda: masked_token_loss(torch.randn(2, 5), torch.zeros(2, dtype=torch.long)), r"logits must have shape \[B, T, V\]"),
    (lambda: masked_token_loss(torch.randn(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)), r"labels must have shape \[2, 5\]"),
    (lambda: masked_reconstruction_loss(torch.randn(1, 3, 2), torch.randn(1, 3, 2), torch.ones(1, 2)), r"mask must have shape \[1, 3\]"),
    (lambda: masked_reconstruction_loss(torch.randn(1, 3, 2), torch.randn(1, 3, 4), torch.ones(1, 3)), "target must have pred's shape"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
