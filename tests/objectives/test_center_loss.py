"""Center loss and its update rule against Wen et al. 2016 (seed 001) written with loops over samples and classes.

pytorch-metric-learning has no center loss, so there is no peer to compare with: the reference is the paper.
"""
import pytest
import torch

from multissl.objectives.center_loss import CenterLossState, center_loss, center_update


def _data(b=10, d=3, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c - 1, (b,), generator=g)  # the last class never appears in the batch
    return torch.randn(b, d, generator=g, dtype=torch.float64), y, torch.randn(c, d, generator=g, dtype=torch.float64)


def _loss_direct(x, y, c):
    """L_C = 1/2 sum_i ||x_i - c_{y_i}||^2."""
    return sum(0.5 * sum((float(x[i, k]) - float(c[y[i], k])) ** 2 for k in range(x.shape[1])) for i in range(len(y)))


def _update_direct(c, x, y, alpha):
    """c_j - alpha * sum_i d(y_i = j)(c_j - x_i) / (1 + sum_i d(y_i = j)), one class at a time."""
    new = c.clone()
    for j in range(c.shape[0]):
        members = [i for i in range(len(y)) if int(y[i]) == j]
        delta = sum((c[j] - x[i] for i in members), torch.zeros_like(c[j])) / (1 + len(members))
        new[j] = c[j] - alpha * delta
    return new


def test_center_loss_equals_paper_formula_and_its_gradient():
    x, y, c = _data()
    assert center_loss(x, y, c, reduction="sum").item() == pytest.approx(_loss_direct(x, y, c), rel=1e-12)
    assert center_loss(x, y, c).item() == pytest.approx(_loss_direct(x, y, c) / len(y), rel=1e-12)
    xg = x.clone().requires_grad_(True)
    center_loss(xg, y, c, reduction="sum").backward()
    assert torch.allclose(xg.grad, x - c[y])  # eq. (3): dL_C/dx_i = x_i - c_{y_i}
    assert center_loss(c[y], y, c).item() == 0.0  # every sample on its center


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_center_update_equals_paper_rule(alpha):
    x, y, c = _data()
    c_before, x_before = c.clone(), x.clone()
    new = center_update(c, x, y, alpha)
    assert torch.allclose(new, _update_direct(c, x, y, alpha), atol=1e-12)
    assert torch.equal(new[-1], c[-1])  # an absent class keeps its center
    assert torch.equal(c, c_before) and torch.equal(x, x_before)  # pure: inputs untouched
    if alpha:
        assert not torch.allclose(new[: -1], c[: -1])


def test_center_update_analytic_and_gradient_free():
    # one sample per class, alpha = 1: c <- c - (c - x) / 2 = (c + x) / 2
    c, x = torch.zeros(2, 2), torch.tensor([[2.0, 4.0], [-2.0, 0.0]], requires_grad=True)
    new = center_update(c, x, torch.tensor([0, 1]), alpha=1.0)
    assert torch.equal(new, torch.tensor([[1.0, 2.0], [-1.0, 0.0]])) and not new.requires_grad


def test_center_loss_state_holds_and_updates_centers():
    x, y, _ = _data()
    state = CenterLossState(num_classes=5, dim=3, alpha=0.5).double()
    assert torch.equal(state.centers, torch.zeros(5, 3, dtype=torch.float64))
    assert "centers" in state.state_dict() and not list(state.parameters())  # a buffer, not an optimizer parameter
    assert state(x, y).item() == pytest.approx(_loss_direct(x, y, state.centers) / len(y), rel=1e-12)
    expect = _update_direct(state.centers.clone(), x, y, 0.5)
    state.update(x, y)
    assert torch.allclose(state.centers, expect, atol=1e-12)
    for _ in range(60):  # repeated on the same batch, each center converges to its class mean (the rule's fixed point)
        state.update(x, y)
    present = y.unique()
    assert len(present) >= 2
    means = torch.stack([x[y == j].mean(0) for j in present])
    assert torch.allclose(state.centers[present], means, atol=1e-6)


def _gloo_worker(rank: int) -> list:
    x, y, c = _data(b=10)
    rows = slice(0, 3) if rank == 0 else slice(3, 10)  # unequal per-rank batches
    return center_update(c, x[rows], y[rows], 0.5, gather_distributed=True).tolist()


def test_distributed_update_equals_full_batch_update():
    """2 gloo processes with 3 and 7 rows end with the center update of all 10 rows (and not of their own rows)."""
    from tests.gloo import run_on_ranks

    x, y, c = _data(b=10)
    full = _update_direct(c, x, y, 0.5)
    results = [torch.tensor(r, dtype=torch.float64) for r in run_on_ranks(_gloo_worker, 2)]
    for r in results:
        assert torch.allclose(r, full, atol=1e-12)
    assert not torch.allclose(center_update(c, x[:3], y[:3], 0.5), full)  # a local update differs: the check can fail


_X, _Y, _C = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.randn(3, 3)


@pytest.mark.parametrize("call,match", [
    (lambda: center_loss(torch.randn(3), _Y, _C), r"embeddings must have shape \[B, D\]"),
    (lambda: center_loss(_X, _Y, torch.randn(3, 4)), r"centers must have shape \[C, 3\]"),
    (lambda: center_loss(_X, _Y[:3], _C), r"labels must be an integer tensor of shape \[4\]"),
    (lambda: center_loss(_X, torch.tensor([0, 1, 3, 0]), _C), r"labels must lie in \[0, 3\)"),
    (lambda: center_loss(_X, _Y, _C, reduction="none"), r"reduction must be 'mean' or 'sum'"),
    (lambda: center_update(_C, _X, _Y, alpha=1.5), r"alpha must be in \[0, 1\]"),
    (lambda: center_update(_C, _X, _Y.float(), 0.5), r"labels must be an integer tensor"),
    (lambda: CenterLossState(0, 3), r"num_classes and dim must be >= 1"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
