"""Π-model / Mean Teacher consistency, Laine & Aila's ramp-up and Temporal Ensembling's EMA vs direct formulas."""
import itertools
import math

import pytest
import torch

from multissl.objectives.consistency import (
    consistency_loss,
    probs_consistency_loss,
    sigmoid_rampup,
    temporal_ensemble_targets,
    temporal_ensemble_update,
)


@pytest.mark.parametrize("step", [0, 1, 7, 25, 49, 50, 80])
def test_sigmoid_rampup_is_laine_aila_formula(step):
    t = min(step / 50, 1.0)
    assert sigmoid_rampup(step, 50) == pytest.approx(math.exp(-5 * (1 - t) ** 2), rel=1e-12)


def test_sigmoid_rampup_endpoints_monotone_and_errors():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(10, 10) == 1.0 and sigmoid_rampup(1000, 10) == 1.0
    assert sigmoid_rampup(5, 0) == 1.0  # no ramp-up at all
    values = [sigmoid_rampup(s, 20) for s in range(21)]
    assert all(a < b for a, b in itertools.pairwise(values))
    with pytest.raises(ValueError, match="rampup_steps"):
        sigmoid_rampup(3, -1)


def _softmax_row(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def test_mse_consistency_matches_direct_sum():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    total = 0.0
    for i in range(5):
        ps, pt = _softmax_row(s[i].tolist()), _softmax_row(t[i].tolist())
        total += sum((a - b) ** 2 for a, b in zip(ps, pt))
    assert consistency_loss(s, t, "mse").item() == pytest.approx(total / (5 * 4), rel=1e-5)


def test_kl_consistency_matches_direct_sum():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    total = 0.0
    for i in range(6):
        ps, pt = _softmax_row(s[i].tolist()), _softmax_row(t[i].tolist())
        total += sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt))
    assert consistency_loss(s, t, "kl").item() == pytest.approx(total / 6, rel=1e-5)
    assert consistency_loss(t, t, "kl").item() == pytest.approx(0.0, abs=1e-6)


def test_target_detached_by_default_but_pi_model_can_differentiate_both():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    consistency_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    s2, t2 = s.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    consistency_loss(s2, t2, detach_target=False).backward()
    assert t2.grad is not None and t2.grad.abs().sum() > 0
    # MSE is symmetric, so with both sides live the gradients are equal and opposite in softmax space
    assert torch.allclose(s2.grad.sum(), -t2.grad.sum(), atol=1e-6)


def test_probs_target_with_zeros_is_finite_and_matches_logit_form():
    s = torch.randn(3, 4, requires_grad=True)
    onehot = torch.eye(4)[[0, 2, 3]]
    loss = probs_consistency_loss(s, onehot, kind="kl")
    assert torch.isfinite(loss)
    # KL(onehot || p) = -log p_y: the cross-entropy
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(s, torch.tensor([0, 2, 3])).item(), rel=1e-5)
    t = torch.randn(3, 4)
    assert torch.allclose(probs_consistency_loss(s, t.softmax(-1)), consistency_loss(s, t), atol=1e-7)


def test_consistency_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        consistency_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="kind"):
        consistency_loss(torch.randn(3, 4), torch.randn(3, 4), kind="l1")
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        probs_consistency_loss(torch.randn(3, 4, 2), torch.rand(3, 4, 2))


def test_temporal_ensemble_matches_per_row_loop():
    n, c, alpha = 6, 3, 0.6
    g = torch.Generator().manual_seed(2)
    z_state, counts = torch.zeros(n, c), torch.zeros(n, dtype=torch.long)
    ref_z = [[0.0] * c for _ in range(n)]
    ref_t = [0] * n
    for idx in ([0, 2, 4], [1, 2, 5], [2, 3], [0, 5, 4, 1]):
        preds = torch.rand(len(idx), c, generator=g).softmax(-1)
        ind = torch.tensor(idx)
        old_state, snapshot = z_state, z_state.clone()
        z_state, counts = temporal_ensemble_update(z_state, counts, ind, preds, alpha)
        assert torch.equal(old_state, snapshot)  # pure: the input tensor was not modified
        for j, row in enumerate(idx):
            ref_z[row] = [alpha * a + (1 - alpha) * b for a, b in zip(ref_z[row], preds[j].tolist())]
            ref_t[row] += 1
    assert torch.allclose(z_state, torch.tensor(ref_z), atol=1e-6)
    assert counts.tolist() == ref_t
    ind = torch.arange(n)
    targets = temporal_ensemble_targets(z_state, counts, ind, alpha)
    for row in range(n):
        expected = [v / (1 - alpha ** ref_t[row]) for v in ref_z[row]]
        assert targets[row].tolist() == pytest.approx(expected, rel=1e-5)


def test_bias_correction_recovers_a_constant_prediction_and_update_is_pure():
    z = torch.tensor([[0.7, 0.2, 0.1]])
    ens, cnt = torch.zeros(3, 3), torch.zeros(3, dtype=torch.long)
    ens0, cnt0 = ens.clone(), cnt.clone()
    new_ens, new_cnt = temporal_ensemble_update(ens, cnt, torch.tensor([1]), z, alpha=0.9)
    assert torch.equal(ens, ens0) and torch.equal(cnt, cnt0)  # inputs untouched
    for _ in range(4):
        new_ens, new_cnt = temporal_ensemble_update(new_ens, new_cnt, torch.tensor([1]), z, alpha=0.9)
        # without correction Z = (1 - 0.9^t) z, far below z; with it the target is exactly z
        assert torch.allclose(temporal_ensemble_targets(new_ens, new_cnt, torch.tensor([1]), 0.9), z, atol=1e-6)
    never = temporal_ensemble_targets(new_ens, new_cnt, torch.tensor([0, 2]), 0.9)
    assert torch.equal(never, torch.zeros(2, 3))  # rows never seen: zero target, no division by zero


def test_temporal_ensemble_keeps_no_graph_and_rejects_bad_input():
    preds = torch.randn(2, 3, requires_grad=True).softmax(-1)
    ens, cnt = temporal_ensemble_update(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1]),
                                        preds, 0.5)
    assert not ens.requires_grad
    with pytest.raises(ValueError, match="repeat"):
        temporal_ensemble_update(ens, cnt, torch.tensor([1, 1]), preds.detach(), 0.5)
    with pytest.raises(ValueError, match=r"predictions must be \[B, C\]"):
        temporal_ensemble_update(ens, cnt, torch.tensor([1, 2]), torch.rand(2, 4), 0.5)
    with pytest.raises(ValueError, match="indices must lie"):
        temporal_ensemble_update(ens, cnt, torch.tensor([1, 4]), preds.detach(), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        temporal_ensemble_update(ens, cnt, torch.tensor([1, 2]), preds.detach(), 1.0)
    with pytest.raises(ValueError, match="counts"):
        temporal_ensemble_targets(ens, torch.zeros(3, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="integer"):
        temporal_ensemble_targets(ens, cnt, torch.tensor([0.0]))
