"""FreeMatch's self-adaptive thresholds vs a step-by-step loop of the paper's equations."""
import pytest
import torch

from multissl.objectives.adaptive_threshold import (
    FreeMatchState,
    freematch_class_thresholds,
    freematch_init_state,
    freematch_mask,
    freematch_step,
    freematch_update,
)
from multissl.objectives.pseudo_label import fixmatch_loss


def test_init_is_uniform():
    s = freematch_init_state(4)
    assert s.global_threshold.item() == pytest.approx(0.25) and s.global_threshold.dim() == 0
    assert s.class_marginal.tolist() == pytest.approx([0.25] * 4)
    assert freematch_class_thresholds(s).tolist() == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError, match="num_classes"):
        freematch_init_state(1)


def test_updates_match_the_papers_recursions_over_several_steps():
    c, lam = 3, 0.9
    g = torch.Generator().manual_seed(0)
    state = freematch_init_state(c, dtype=torch.float64)
    tau, marginal = 1 / c, [1 / c] * c
    for _ in range(5):
        probs = (torch.randn(6, c, generator=g, dtype=torch.float64) * 2).softmax(-1)
        snapshot = (state.global_threshold.clone(), state.class_marginal.clone())
        new = freematch_update(state, probs, momentum=lam)
        assert torch.equal(state.global_threshold, snapshot[0]) and torch.equal(state.class_marginal, snapshot[1])
        state = new
        rows = probs.tolist()
        tau = lam * tau + (1 - lam) * sum(max(r) for r in rows) / len(rows)
        marginal = [lam * m + (1 - lam) * sum(r[k] for r in rows) / len(rows) for k, m in enumerate(marginal)]
        assert state.global_threshold.item() == pytest.approx(tau, rel=1e-12)
        assert state.class_marginal.tolist() == pytest.approx(marginal, rel=1e-12)
        expected = [m / max(marginal) * tau for m in marginal]  # MaxNorm(p~)(c) * τ
        assert freematch_class_thresholds(state).tolist() == pytest.approx(expected, rel=1e-12)


def test_mask_hand_built():
    state = FreeMatchState(torch.tensor(0.8), torch.tensor([0.5, 0.25, 0.25]))
    # per-class thresholds: 0.8, 0.4, 0.4
    assert freematch_class_thresholds(state).tolist() == pytest.approx([0.8, 0.4, 0.4])
    probs = torch.tensor([[0.7, 0.2, 0.1],   # class 0 at 0.7 < 0.8: masked
                          [0.1, 0.5, 0.4],   # class 1 at 0.5 >= 0.4: kept
                          [0.3, 0.3, 0.4],   # class 2 at exactly 0.4: kept ('>=')
                          [0.85, 0.1, 0.05]])  # class 0 at 0.85: kept
    assert freematch_mask(state, probs).tolist() == [False, True, True, True]


def test_step_updates_first_then_masks_and_feeds_fixmatch():
    g = torch.Generator().manual_seed(1)
    state = freematch_init_state(4)
    logits = torch.randn(8, 4, generator=g) * 3
    mask, new = freematch_step(state, logits, momentum=0.5)
    manual_state = freematch_update(state, logits.softmax(-1), momentum=0.5)
    assert torch.equal(new.global_threshold, manual_state.global_threshold)
    assert torch.equal(mask, freematch_mask(manual_state, logits.softmax(-1)))
    _, rate = fixmatch_loss(logits, torch.randn(8, 4, generator=g), freematch_class_thresholds(new))
    assert rate.item() == pytest.approx(mask.float().mean().item())


def test_thresholds_rise_as_the_model_grows_confident():
    state = freematch_init_state(10)
    confident = torch.eye(10)[torch.arange(20) % 10] * 0.95 + 0.005  # rows of max prob 0.955
    for _ in range(200):
        state = freematch_update(state, confident, momentum=0.99)
    assert 0.8 < state.global_threshold.item() < 0.955  # from 1/C towards the mean confidence


def test_bad_input_is_named():
    s = freematch_init_state(3)
    with pytest.raises(ValueError, match="C = 3"):
        freematch_update(s, torch.rand(4, 5))
    with pytest.raises(ValueError, match="momentum"):
        freematch_update(s, torch.rand(4, 3), momentum=2.0)
    with pytest.raises(ValueError, match="scalar global_threshold"):
        freematch_mask(FreeMatchState(torch.ones(3), torch.ones(3)), torch.rand(4, 3))
    update = freematch_update(s, torch.rand(4, 3, requires_grad=True).softmax(-1))
    assert not update.global_threshold.requires_grad and not update.class_marginal.requires_grad
