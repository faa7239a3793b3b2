"""VAT: per-sample normalisation, power iteration against the explicit KL Hessian of a linear model, LDS loss."""
import copy
import math

import pytest
import torch

from multissl.objectives.vat import (
    kl_with_logits,
    l2_normalize_per_sample,
    vat_loss,
    vat_perturbation,
)


def test_l2_normalize_per_sample_over_all_non_batch_dims():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(3, 2, 4, 5, generator=g)
    out = l2_normalize_per_sample(d)
    for b in range(3):
        norm = math.sqrt(sum(v * v for v in d[b].flatten().tolist()))
        assert torch.allclose(out[b], d[b] / norm, atol=1e-6)
    assert torch.equal(l2_normalize_per_sample(torch.zeros(2, 3)), torch.zeros(2, 3))  # no NaN on zeros
    with pytest.raises(ValueError, match="non-batch"):
        l2_normalize_per_sample(torch.randn(4))


def _linear(d_in=5, c=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c, d_in, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    return w, bias


def _kl_hessian(w, logits_row):
    """Hessian of r -> KL(p || softmax(W(x + r) + b)) at r = 0: W^T (diag p - p p^T) W."""
    p = logits_row.softmax(-1)
    return w.T @ (torch.diag(p) - torch.outer(p, p)) @ w


def test_one_power_iteration_is_hessian_times_start_direction():
    w, bias = _linear()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    def logits_fn(inp):
        return inp @ w.T + bias
    r_adv = vat_perturbation(logits_fn, x, eps=2.0, xi=1e-6, power_iterations=1,
                             generator=torch.Generator().manual_seed(7))
    d0 = torch.randn(3, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)  # the same draw
    for b in range(3):
        hd = _kl_hessian(w, logits_fn(x[b])) @ (d0[b] / d0[b].norm())
        expected = 2.0 * hd / hd.norm()
        assert torch.allclose(r_adv[b], expected, atol=1e-5)


def test_many_power_iterations_find_the_top_eigenvector():
    w, bias = _linear(d_in=6, c=4, seed=3)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    def logits_fn(inp):
        return inp @ w.T + bias
    r_adv = vat_perturbation(logits_fn, x, eps=1.0, xi=1e-6, power_iterations=60,
                             generator=torch.Generator().manual_seed(5))
    for b in range(4):
        vals, vecs = torch.linalg.eigh(_kl_hessian(w, logits_fn(x[b])))
        top = vecs[:, -1]
        assert vals[-1] > 1.5 * vals[-2]  # a clear eigen-gap, so 60 iterations converge
        assert abs(float(r_adv[b] @ top)) == pytest.approx(1.0, abs=1e-6)  # ||r_adv|| = 1 and parallel to top


def test_default_xi_gives_the_exact_direction_in_float32():
    """The float32 power iteration at the default ξ agrees with the float64 gradient at the paper's ξ = 1e-6."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    x = torch.randn(32, 16) * 3
    r32 = vat_perturbation(model, x, eps=1.0, generator=torch.Generator().manual_seed(1))
    d0 = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).double()  # the same start, in float64
    model64, x64 = copy.deepcopy(model).double(), x.double()
    r = (1e-6 * l2_normalize_per_sample(d0)).requires_grad_()
    (grad,) = torch.autograd.grad(kl_with_logits(model64(x64), model64(x64 + r)), r)
    cos = (r32.double() * l2_normalize_per_sample(grad)).sum(1)
    assert float(cos.min()) > 0.99


def test_radv_has_norm_eps_per_sample_is_seeded_and_leaves_parameter_grads_alone():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x = torch.randn(5, 3, 2, 2)
    r1 = vat_perturbation(model, x, eps=0.3, generator=torch.Generator().manual_seed(0))
    r2 = vat_perturbation(model, x, eps=0.3, generator=torch.Generator().manual_seed(0))
    r3 = vat_perturbation(model, x, eps=0.3, generator=torch.Generator().manual_seed(1))
    assert r1.shape == x.shape and torch.allclose(r1.flatten(1).norm(dim=1), torch.full((5,), 0.3), atol=1e-6)
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    assert not r1.requires_grad
    assert all(p.grad is None for p in model.parameters())  # power iterations differentiate only r
    with torch.no_grad():  # still works inside a no_grad region
        r4 = vat_perturbation(model, x, eps=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r1, r4)


def test_lds_loss_is_kl_at_radv_with_clean_side_detached():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(6, 4)
    clean = model(x)  # has a graph; the loss must not send gradient through it
    loss = vat_loss(model, x, eps=1.0, clean_logits=clean, generator=torch.Generator().manual_seed(9))
    r_adv = vat_perturbation(model, x, eps=1.0, clean_logits=clean, generator=torch.Generator().manual_seed(9))
    direct = 0.0
    adv = model(x + r_adv).detach()
    for b in range(6):
        p = clean[b].detach().softmax(-1).tolist()
        q = adv[b].softmax(-1).tolist()
        direct += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))
    assert loss.item() == pytest.approx(direct / 6, rel=1e-5)
    assert loss.item() > 0
    # the model gets gradient through the perturbed pass only; none reaches the clean logits
    grads = torch.autograd.grad(loss, [model.weight, clean], allow_unused=True)
    assert grads[0] is not None and grads[0].abs().sum() > 0
    assert grads[1] is None  # the clean prediction is a constant target


def test_radv_increases_kl_more_than_random_directions():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5))
    x = torch.randn(32, 8)
    clean = model(x).detach()
    r_adv = vat_perturbation(model, x, eps=0.5, xi=1e-3, power_iterations=3, generator=torch.Generator().manual_seed(2))
    rand = 0.5 * l2_normalize_per_sample(torch.randn(32, 8, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        assert kl_with_logits(clean, model(x + r_adv)) > 3 * kl_with_logits(clean, model(x + rand))


def test_vat_bad_input_is_named():
    model = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="eps and xi"):
        vat_perturbation(model, x, eps=0.0)
    with pytest.raises(ValueError, match="power_iterations"):
        vat_perturbation(model, x, eps=1.0, power_iterations=0)
    with pytest.raises(ValueError, match="non-batch"):
        vat_perturbation(model, torch.randn(4), eps=1.0)
    with pytest.raises(ValueError, match=r"logits_fn must return \[B, C\]"):
        vat_perturbation(lambda t: t.sum(-1), x, eps=1.0)
    with pytest.raises(ValueError, match="same shape|both be"):
        kl_with_logits(torch.randn(2, 3), torch.randn(2, 4))
