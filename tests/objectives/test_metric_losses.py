"""Triplet and soft-nearest-neighbour losses against the seed 001 formulas written with loops."""
import pytest
import torch

from multissl.objectives import soft_nearest_neighbor_loss, triplet_loss


def test_triplet_loss_formula():
    g = torch.Generator().manual_seed(4)
    a, p, n = (torch.randn(6, 5, generator=g) for _ in range(3))
    an, pn, nn_ = (x / x.norm(dim=1, keepdim=True) for x in (a, p, n))
    expect = sum(max(0.0, float(((an[i] - pn[i]) ** 2).sum() - ((an[i] - nn_[i]) ** 2).sum()) + 0.3) for i in range(6)) / 6
    assert triplet_loss(a, p, n, margin=0.3).item() == pytest.approx(expect, rel=1e-5)
    assert triplet_loss(a, a, -a, margin=0.3).item() == 0.0  # easy triplets: d_ap = 0, d_an = 4 > margin
    assert triplet_loss(a, -a, a, margin=0.3).item() == pytest.approx(4.3, rel=1e-6)  # the hardest: 4 - 0 + margin


def _snn_direct(x, y, t):
    """Seed 001 eq. (1) with explicit loops; samples without a same-label partner skipped."""
    b = len(x)
    terms = []
    for i in range(b):
        partners = [j for j in range(b) if j != i and y[j] == y[i]]
        if not partners:
            continue
        num = sum(torch.exp(-((x[i] - x[j]) ** 2).sum() / t) for j in partners)
        den = sum(torch.exp(-((x[i] - x[k]) ** 2).sum() / t) for k in range(b) if k != i)
        terms.append(-torch.log(num / den))
    return float(sum(terms) / len(terms))


@pytest.mark.parametrize("t", [0.5, 1.0, 4.0])
def test_soft_nearest_neighbor_matches_seed_equation_and_skips_singletons(t):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64) + 10  # an offset: distances must not care
    y = torch.tensor([0, 0, 1, 1, 1, 2, 0])  # sample 5 has no partner: skipped
    assert soft_nearest_neighbor_loss(x, y, t).item() == pytest.approx(_snn_direct(x, y, t), rel=1e-9)
    assert soft_nearest_neighbor_loss(x.float(), y, t).item() == pytest.approx(_snn_direct(x, y, t), rel=1e-5)


def test_soft_nearest_neighbor_analytic_and_gradients():
    # two tight, far-apart clusters: every neighbour mass is on same-label points -> loss ~ 0
    x = torch.tensor([[0.0, 0.0], [0.0, 0.01], [50.0, 0.0], [50.0, 0.01]])
    assert soft_nearest_neighbor_loss(x, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(0.0, abs=1e-6)
    # all points equal: neighbour mass spread uniformly -> -log(same-label others / all others)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    assert soft_nearest_neighbor_loss(torch.zeros(6, 3), y).item() == pytest.approx(-torch.log(torch.tensor(2 / 5)).item(), rel=1e-6)
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: soft_nearest_neighbor_loss(v, torch.tensor([0, 0, 1, 1, 1, 2]), 2.0), (z,))
    loss = soft_nearest_neighbor_loss(z, torch.arange(6))  # nobody has a partner: 0, finite (zero) gradients
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("call,match", [
    (lambda: triplet_loss(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 7)), r"negative must have the anchor's shape"),
    (lambda: triplet_loss(torch.randn(8), torch.randn(8), torch.randn(8)), r"anchor must have shape \[B, D\]"),
    (lambda: soft_nearest_neighbor_loss(torch.randn(4, 8), torch.zeros(5)), r"labels must have shape \[4\]"),
    (lambda: soft_nearest_neighbor_loss(torch.randn(4, 8), torch.zeros(4), temperature=-1.0), "temperature must be > 0"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
