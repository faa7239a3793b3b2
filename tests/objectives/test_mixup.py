"""MixMatch mixup/loss and ReMixMatch distribution alignment vs direct formulas; the generator-driven Beta sampler."""
import math

import pytest
import torch

from multissl.objectives.mixup import (
    distribution_alignment,
    mixmatch_loss,
    mixmatch_mixup,
    sample_beta,
    sample_gamma,
    update_marginal,
)


def _ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup |F_a - F_b|."""
    grid = torch.cat([a, b]).sort().values
    fa = torch.searchsorted(a.sort().values, grid, right=True).double() / a.numel()
    fb = torch.searchsorted(b.sort().values, grid, right=True).double() / b.numel()
    return float((fa - fb).abs().max())


@pytest.mark.parametrize("alpha", [0.3, 0.75, 2.0])
def test_beta_sampler_matches_torch_distribution(alpha):
    n = 20000
    ours = sample_beta(alpha, alpha, (n,), torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.manual_seed(1)
    ref = torch.distributions.Beta(torch.tensor(alpha, dtype=torch.float64), torch.tensor(alpha, dtype=torch.float64)
                                   ).sample((n,))
    # KS critical value at the 0.1% level for two samples of 20000: 1.95 * sqrt(2 / n) ~ 0.0195
    assert _ks_statistic(ours, ref) < 0.0195
    assert float(ours.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(ours.var()) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.05)
    assert bool(((ours > 0) & (ours < 1)).all())


def test_gamma_sampler_moments_determinism_and_errors():
    g = sample_gamma(3.0, (20000,), torch.Generator().manual_seed(2), dtype=torch.float64)
    assert float(g.mean()) == pytest.approx(3.0, rel=0.03) and float(g.var()) == pytest.approx(3.0, rel=0.06)
    a = sample_beta(0.75, 0.75, (50,), torch.Generator().manual_seed(3))
    b = sample_beta(0.75, 0.75, (50,), torch.Generator().manual_seed(3))
    c = sample_beta(0.75, 0.75, (50,), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="concentration"):
        sample_gamma(0.0, (3,))
    with pytest.raises(ValueError, match="alpha and beta"):
        sample_beta(-1.0, 1.0, (3,))


def test_mixup_matches_per_row_loop_with_explicit_noise():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 2, 3, generator=g)
    p = torch.rand(5, 4, generator=g).softmax(-1)
    lam = torch.tensor([0.2, 0.9, 0.5, 0.0, 0.7])
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = mixmatch_mixup(x, p, lam=lam, permutation=perm)
    for i in range(5):
        lp = max(lam[i].item(), 1 - lam[i].item())
        j = perm[i].item()
        assert torch.allclose(out.inputs[i], lp * x[i] + (1 - lp) * x[j], atol=1e-6)
        assert torch.allclose(out.targets[i], lp * p[i] + (1 - lp) * p[j], atol=1e-6)
        assert out.lam[i].item() == pytest.approx(lp)
    assert torch.allclose(out.targets.sum(-1), torch.ones(5), atol=1e-6)


def test_mixup_draws_from_generator_keeps_rows_dominant_and_detaches_targets():
    x = torch.randn(8, 3)
    p = torch.rand(8, 3).softmax(-1).requires_grad_()
    a = mixmatch_mixup(x, p, alpha=0.75, generator=torch.Generator().manual_seed(6))
    b = mixmatch_mixup(x, p, alpha=0.75, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.partner, b.partner)
    assert bool((a.lam >= 0.5).all()) and sorted(a.partner.tolist()) == list(range(8))
    assert not a.targets.requires_grad
    x_grad = x.clone().requires_grad_()
    mixmatch_mixup(x_grad, p, generator=torch.Generator().manual_seed(6)).inputs.sum().backward()
    assert x_grad.grad is not None  # the inputs stay differentiable (e.g. mixing embeddings)


def test_mixup_rejects_bad_input():
    x, p = torch.randn(4, 3), torch.rand(4, 2)
    with pytest.raises(ValueError, match="targets"):
        mixmatch_mixup(x, torch.rand(3, 2))
    with pytest.raises(ValueError, match="permutation"):
        mixmatch_mixup(x, p, permutation=torch.tensor([0, 0, 1, 2]))
    with pytest.raises(ValueError, match="lam"):
        mixmatch_mixup(x, p, lam=torch.tensor([0.5, 1.5, 0.2, 0.1]))
    with pytest.raises(ValueError, match="alpha"):
        mixmatch_mixup(x, p, alpha=0.0)
    with pytest.raises(ValueError, match="inputs"):
        mixmatch_mixup(torch.randn(4), p)


def test_mixmatch_loss_matches_direct_sums():
    g = torch.Generator().manual_seed(7)
    lx, tx = torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g).softmax(-1)
    lu, tu = torch.randn(5, 4, generator=g), torch.rand(5, 4, generator=g).softmax(-1)
    loss_x = 0.0
    for i in range(3):
        e = [math.exp(v) for v in lx[i].tolist()]
        loss_x += -sum(t * math.log(v / sum(e)) for t, v in zip(tx[i].tolist(), e))
    loss_x /= 3
    loss_u = 0.0
    for j in range(5):
        e = [math.exp(v) for v in lu[j].tolist()]
        loss_u += sum((t - v / sum(e)) ** 2 for t, v in zip(tu[j].tolist(), e))
    loss_u /= 4 * 5  # 1 / (L |U'|)
    out = mixmatch_loss(lx, tx, lu, tu, lambda_u=75.0)
    assert out.loss_x.item() == pytest.approx(loss_x, rel=1e-5)
    assert out.loss_u.item() == pytest.approx(loss_u, rel=1e-5)
    assert out.total.item() == pytest.approx(loss_x + 75.0 * loss_u, rel=1e-5)
    with pytest.raises(ValueError, match="share C"):
        mixmatch_loss(lx, tx, torch.randn(5, 3), torch.rand(5, 3), 1.0)


def test_distribution_alignment_matches_formula():
    g = torch.Generator().manual_seed(8)
    probs = torch.rand(4, 3, generator=g).softmax(-1)
    model_m = torch.tensor([0.5, 0.3, 0.2])
    target_m = torch.tensor([0.2, 0.2, 0.6])
    out = distribution_alignment(probs, model_m, target_m)
    for i in range(4):
        raw = [probs[i, c].item() * target_m[c].item() / model_m[c].item() for c in range(3)]
        assert out[i].tolist() == pytest.approx([v / sum(raw) for v in raw], rel=1e-5)
    # a model whose marginal already equals p(y) is left alone; uniform p(y) is the default
    assert torch.allclose(distribution_alignment(probs, target_m, target_m), probs, atol=1e-6)
    assert torch.allclose(distribution_alignment(probs, model_m), distribution_alignment(probs, model_m,
                                                                                         torch.full((3,), 1 / 3)))
    with pytest.raises(ValueError, match="model_marginal"):
        distribution_alignment(probs, torch.ones(4) / 4)


def test_update_marginal_is_a_pure_ema():
    running = torch.full((3,), 1 / 3)
    snapshot = running.clone()
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    new = update_marginal(running, probs, momentum=0.9)
    expected = [0.9 / 3 + 0.1 * (0.7 + 0.1) / 2, 0.9 / 3 + 0.1 * 0.15, 0.9 / 3 + 0.1 * 0.45]
    assert new.tolist() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(running, snapshot)
    with pytest.raises(ValueError, match="momentum"):
        update_marginal(running, probs, momentum=1.5)
