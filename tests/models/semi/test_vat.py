"""VAT: the LDS loss against Miyato et al.'s Alg. 1 written out in the test (power iteration, r_adv of norm ε, KL of the
clean to the perturbed prediction) plus the entropy term, the gradient (clean side constant; the power iterations touch
no parameter gradient), BatchNorm running statistics updated by the labeled pass only, the adversarial direction
beating random ones, and bad config."""
import copy

import pytest
import torch
from torch import nn

import multissl.models.semi.vat as vat_module
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.vat import VATConfig, VATModel, frozen_batchnorm_statistics

C, B, MU = 5, 4, 2
EPS, XI = 2.0, 1e-2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU,
          "epsilon": EPS, "xi": XI, **kw}
    return VATModel(VATConfig(**kw))


def _inputs(seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g, dtype=dtype), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 1, 3, 16, 16, generator=g, dtype=dtype)}


def _kl(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)) per row, written out: sum_c p_c (log p_c - log q_c)."""
    p = p_logits.softmax(-1)
    return (p * (p.log() - q_logits.softmax(-1).log())).sum(-1)


def _naive_r_adv(model, u, seed, eps=EPS, xi=XI, iterations=1):
    """Alg. 1: d ~ N(0, I); K times d <- grad_r sum_b KL(p(u_b) || p(u_b + r_b)) at r = ξ d/||d||; r_adv = ε d/||d||."""
    torch.manual_seed(seed)
    d = torch.randn(u.shape, dtype=u.dtype)
    with torch.no_grad():
        clean = model.classify(u)
    for _ in range(iterations):
        r = (xi * d / d.flatten(1).norm(dim=1)[:, None, None, None]).requires_grad_(True)
        (d,) = torch.autograd.grad(_kl(clean, model.classify(u + r)).sum(), r)
    return eps * d / d.flatten(1).norm(dim=1)[:, None, None, None]


def test_loss_is_labeled_ce_plus_lambda_u_lds_plus_the_entropy_of_the_clean_unlabeled_predictions():
    # float64: r_adv is a normalised ξ-scaled gradient; in float32 two equivalent ways of summing it differ by ~1e-3
    model = _model(lambda_u=1.5, entropy_weight=0.5, power_iterations=2).double().eval()
    x = _inputs(dtype=torch.float64)
    u = x["u_weak"][:, 0]
    r_adv = _naive_r_adv(model, u, seed=7, iterations=2)
    torch.testing.assert_close(r_adv.flatten(1).norm(dim=1), torch.full((MU * B,), EPS, dtype=torch.float64))
    with torch.no_grad():
        lab, clean, adv = model.classify(x["x_l"]), model.classify(u), model.classify(u + r_adv)
    torch.manual_seed(7)  # the model's only random draw is the power iteration's start d
    out = model(**x)
    ce = -lab.log_softmax(-1)[torch.arange(B), x["labels"]].mean()
    lds = _kl(clean, adv).mean()
    p = clean.softmax(-1)
    entropy = -(p * p.log()).sum(-1).mean()
    torch.testing.assert_close(out.supervised_loss, ce)
    torch.testing.assert_close(out.unsupervised_loss, lds)
    torch.testing.assert_close(out.entropy, entropy)
    torch.testing.assert_close(out.loss, ce + 1.5 * lds + 0.5 * entropy)


def test_the_adversarial_direction_changes_the_prediction_more_than_random_directions_of_the_same_norm():
    model = _model(power_iterations=2).eval()
    u = _inputs()["u_weak"][:, 0]
    r_adv = _naive_r_adv(model, u, seed=3, iterations=2)  # checked against the model's loss in the test above
    with torch.no_grad():
        clean = model.classify(u)
        adversarial = _kl(clean, model.classify(u + r_adv))  # [μB]
        g = torch.Generator().manual_seed(0)
        random = torch.stack([_kl(clean, model.classify(u + EPS * d / d.flatten(1).norm(dim=1)[:, None, None, None]))
                              for d in torch.randn(8, *u.shape, generator=g)])  # [8, μB]
    assert (adversarial > random.max(0).values).float().mean() >= 0.75
    assert adversarial.mean() > 2 * random.mean()


def test_gradients_are_those_of_ce_plus_kl_to_a_constant_clean_prediction_and_power_iterations_leave_no_grad():
    model = _model(lambda_u=2.0).double().eval()  # float64: see the loss test
    x = _inputs(dtype=torch.float64)
    u = x["u_weak"][:, 0]
    r_adv = _naive_r_adv(model, u, seed=11)
    expected_loss = (nn.functional.cross_entropy(model.classify(x["x_l"]), x["labels"])
                     + 2.0 * _kl(model.classify(u).detach(), model.classify(u + r_adv)).mean())
    expected = torch.autograd.grad(expected_loss, list(model.parameters()))
    model.zero_grad()
    torch.manual_seed(11)
    model(**x).loss.backward()
    for (name, p), want in zip(model.named_parameters(), expected):
        torch.testing.assert_close(p.grad, want, msg=name)


def test_batchnorm_running_statistics_are_updated_by_the_labeled_pass_only():
    model = _model().train()
    x = _inputs()
    start = copy.deepcopy(model.state_dict())
    labeled_only = copy.deepcopy(model)
    with torch.no_grad():
        labeled_only.classify(x["x_l"])  # one train-mode pass over the labeled rows
    both = copy.deepcopy(labeled_only)
    with torch.no_grad():
        both.classify(x["u_weak"][:, 0])  # what an unfrozen clean unlabeled pass would add
    model(**x).loss.backward()  # labeled pass + clean, power-iteration and adversarial unlabeled passes
    stats = [k for k in start if "running_" in k or "num_batches_tracked" in k]
    assert stats and all(torch.equal(model.state_dict()[k], labeled_only.state_dict()[k]) for k in stats)
    assert all(int(model.state_dict()[k]) == 1 for k in stats if "num_batches_tracked" in k)
    assert not all(torch.equal(start[k], model.state_dict()[k]) for k in stats)  # the labeled pass did update them
    assert not all(torch.equal(both.state_dict()[k], model.state_dict()[k]) for k in stats)  # the check could fail


def test_frozen_batchnorm_statistics_keeps_batch_normalisation_and_restores_on_exit_even_after_an_error():
    bn = nn.BatchNorm1d(3).train()
    x = torch.randn(6, 3) * 4 + 2
    with frozen_batchnorm_statistics(bn):
        y = bn(x)
    torch.testing.assert_close(y, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bn.eps))  # batch statistics
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    with pytest.raises(RuntimeError), frozen_batchnorm_statistics(bn):
        raise RuntimeError("inside")
    assert bn.track_running_stats
    bn(x)
    assert not torch.equal(bn.running_mean, torch.zeros(3))  # tracking is back
    bn.eval()
    before = bn(x)
    with frozen_batchnorm_statistics(bn):  # eval-mode layers keep using their running statistics
        torch.testing.assert_close(bn(x), before)


def test_the_knobs_reach_the_power_iteration(monkeypatch):
    seen = {}

    def spy(logits_fn, x, **kwargs):
        seen.update(kwargs)
        return torch.zeros_like(x)

    monkeypatch.setattr(vat_module, "vat_perturbation", spy)
    _model(epsilon=3.5, xi=1e-4, power_iterations=3).eval()(**_inputs())
    assert (seen["eps"], seen["xi"], seen["power_iterations"]) == (3.5, 1e-4, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"epsilon": None}, "vat: epsilon is required"),
    ({"epsilon": 0.0}, r"epsilon \(the adversarial perturbation's L2 norm\) must be > 0"),
    ({"xi": -1e-3}, r"xi \(the power iteration's finite-difference step\) must be a number"),
    ({"power_iterations": 0}, "power_iterations must be a whole number >= 1"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)
