"""LARS against its formula (You et al. 2017, SimCLR's exclusions), written out per tensor in float64."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from multissl.training.config import TrainArgs
from multissl.training.lars import LARS
from multissl.training.performance import make_optimizer


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)).double()


def _grads(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    model.zero_grad()
    model(x).pow(2).sum().backward()


def _naive_lars(weights, grads, bufs, adapt, lr, momentum, wd, eta):
    """One LARS step for each tensor, as the formula reads: d = g + wd w; d *= eta ||w|| / ||d||; v = m v + d; w -= lr v."""
    new_w, new_v = [], []
    for w, g, v, a in zip(weights, grads, bufs, adapt):
        d = g + (wd if a else 0.0) * w
        if a:
            wn, dn = w.norm().item(), d.norm().item()
            d = d * (eta * wn / dn if wn > 0 and dn > 0 else 1.0)
        v = momentum * v + d
        new_w.append(w - lr * v)
        new_v.append(v)
    return new_w, new_v


def test_two_steps_equal_the_formula_and_exclude_biases_and_norms():
    model = _tiny()
    args = TrainArgs(optimizer="lars", learning_rate=0.5, momentum=0.9, weight_decay=1e-2, lars_trust_coefficient=0.02)
    opt = make_optimizer(model, args)
    assert isinstance(opt, LARS)
    params = list(model.parameters())
    adapt = [p.dim() > 1 for p in params]  # Linear weights; biases and BN weight/bias are excluded
    assert adapt.count(True) == 2 and adapt.count(False) == 4
    weights = [p.detach().clone() for p in params]
    bufs = [torch.zeros_like(w) for w in weights]
    for step in range(2):
        _grads(model, step)
        grads = [p.grad.detach().clone() for p in params]
        weights, bufs = _naive_lars(weights, grads, bufs, adapt, 0.5, 0.9, 1e-2, 0.02)
        opt.step()
        for p, w in zip(params, weights):
            torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-12)


def test_trust_ratio_scales_each_layer_by_its_weight_norm():
    # The adapted step of a weight has norm lr * eta * ||w|| whatever the gradient's scale (first step, no decay).
    model = _tiny()
    opt = LARS(model.parameters(), lr=1.0, momentum=0.0, trust_coefficient=0.1)
    w0 = [p.detach().clone() for p in model.parameters()]
    _grads(model, 0)
    for p in model.parameters():
        p.grad.mul_(1000.0)  # a huge gradient changes nothing
    opt.step()
    nonzero = [(p, w) for p, w in zip(model.parameters(), w0) if w.norm() > 0]  # zero-init biases: ratio 1
    assert len(nonzero) == 5
    for p, w in nonzero:
        torch.testing.assert_close((p.detach() - w).norm(), 0.1 * w.norm(), rtol=1e-10, atol=1e-12)


def test_without_adaptation_it_is_torch_sgd():
    a, b = _tiny(), _tiny()
    lars = LARS(a.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, lars_adapt=False)
    sgd = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for step in range(3):
        _grads(a, step)
        _grads(b, step)
        lars.step()
        sgd.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_a_zero_weight_gets_a_plain_step():
    w = nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    w.grad = torch.ones(2, 2, dtype=torch.float64)
    LARS([w], lr=0.5, momentum=0.0, trust_coefficient=0.001).step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.5, dtype=torch.float64))


@pytest.mark.parametrize("kwargs,match", [({"lr": 0.0}, "lr must be > 0"), ({"lr": 1.0, "momentum": 1.0}, "momentum"),
                                          ({"lr": 1.0, "trust_coefficient": 0.0}, "trust_coefficient")])
def test_bad_hyperparameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LARS([nn.Parameter(torch.ones(2, 2))], **kwargs)


def test_its_state_round_trips_through_state_dict():
    model = _tiny()
    opt = LARS(model.parameters(), lr=0.1)
    _grads(model, 0)
    opt.step()
    again = LARS(model.parameters(), lr=0.1)
    again.load_state_dict(opt.state_dict())
    p = next(model.parameters())
    torch.testing.assert_close(again.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])
