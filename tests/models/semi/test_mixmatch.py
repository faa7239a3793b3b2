"""MixMatch: the loss against its formula (guess = sharpened mean of K weak predictions, MixUp with λ' = max(λ, 1-λ) over
labeled + unlabeled, soft CE + per-class squared error) from the model's own logits; the gradient is that of the formula
with constant targets; the mixed batch is one forward; the mixing is deterministic per seed; the data hook gives K
weak views (guess_views, default 2); clear config errors."""
import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel

import multissl.models.semi.mixmatch as mixmatch_module
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.mixmatch import MixMatchConfig, MixMatchModel

C, B, MU, K = 5, 4, 2, 2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return MixMatchModel(MixMatchConfig(**kw))


def _inputs(seed=1, k=K):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, k, 3, 16, 16, generator=g)}


def _logits(model, x):
    return model.classifier(model.embed(x))  # [N, C]


@pytest.fixture
def recorded(monkeypatch):
    """Every Mixed that the model's mixmatch_mixup call returns (so the test knows λ' and the shuffle)."""
    calls, real = [], mixmatch_module.mixmatch_mixup

    def spy(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(mixmatch_module, "mixmatch_mixup", spy)
    return calls


def _naive(model, x, mixed, t=0.5, detach=True):
    """MixMatch's L_X and L_U written out from the recorded λ' and partner, with the model's logits (eval mode)."""
    rows = [x["u_weak"][:, k] for k in range(x["u_weak"].shape[1])]  # K views, each [μB, 3, S, S]
    probs = [torch.softmax(_logits(model, r), -1) for r in rows]
    mean = sum(probs) / len(probs)
    guess = mean ** (1 / t) / (mean ** (1 / t)).sum(-1, keepdim=True)  # Sharpen(p, T)
    if detach:
        guess = guess.detach()
    inputs = torch.cat([x["x_l"], *rows])  # W before the shuffle: labeled, then view 0, view 1, ...
    targets = torch.cat([torch.eye(C)[x["labels"]], *[guess] * len(rows)])
    lam = mixed.lam[:, None]
    assert bool((lam >= 0.5).all())
    mixed_x = lam[:, :, None, None] * inputs + (1 - lam[:, :, None, None]) * inputs[mixed.partner]
    mixed_p = lam * targets + (1 - lam) * targets[mixed.partner]
    logits = _logits(model, mixed_x)
    l_x = -(mixed_p[:B] * torch.log_softmax(logits[:B], -1)).sum(-1).mean()
    l_u = ((mixed_p[B:] - torch.softmax(logits[B:], -1)) ** 2).sum() / (C * (mixed_p.shape[0] - B))
    return l_x, l_u, mixed_x


@pytest.mark.parametrize("k", [K, 3])
def test_loss_is_soft_ce_on_mixed_labeled_plus_lambda_u_times_squared_error_on_mixed_unlabeled(recorded, k):
    model = _model(lambda_u=30.0, sharpen_temperature=0.5, guess_views=k).eval()  # eval: logits do not depend on the batch
    x = _inputs(k=k)
    out = model(**x)
    (mixed,) = recorded
    assert mixed.inputs.shape == (B + k * MU * B, 3, 16, 16)
    with torch.no_grad():
        l_x, l_u, mixed_x = _naive(model, x, mixed)
    torch.testing.assert_close(mixed.inputs, mixed_x)
    torch.testing.assert_close(out.supervised_loss, l_x)
    torch.testing.assert_close(out.unsupervised_loss, l_u)
    torch.testing.assert_close(out.loss, l_x + 30.0 * l_u)
    assert out.accuracy is None and out.mask_rate is None  # labeled rows are mixed: no plain labeled accuracy


def test_the_gradient_is_the_formulas_with_constant_targets(recorded):
    model = _model(lambda_u=30.0).eval()
    x = _inputs()
    model(**x).loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    l_x, l_u, _ = _naive(model, x, recorded[0], detach=True)
    (l_x + 30.0 * l_u).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, msg=name)
    model.zero_grad()
    l_x, l_u, _ = _naive(model, x, recorded[0], detach=False)  # a guess with a gradient would move differently
    (l_x + 30.0 * l_u).backward()
    assert not torch.allclose(ours["classifier.weight"], model.classifier.weight.grad)


def test_training_forward_is_one_concatenated_pass_over_the_mixed_batch(recorded):
    model = _model(lambda_u=1.0).train()
    out = model(**_inputs())
    mixed = recorded[0]
    with torch.no_grad():
        joint = _logits(model, mixed.inputs)  # batch statistics of all B + KμB mixed rows
        alone = _logits(model, mixed.inputs[:B])
    expected = -(mixed.targets[:B] * torch.log_softmax(joint[:B], -1)).sum(-1).mean()
    torch.testing.assert_close(out.supervised_loss, expected)
    assert not torch.allclose(-(mixed.targets[:B] * torch.log_softmax(alone, -1)).sum(-1).mean(), expected, atol=1e-4)


def test_the_mixing_is_drawn_from_the_seeded_global_rng(recorded):
    model = _model().eval()
    x = _inputs()
    losses = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)  # the loop seeds the global RNG per (run seed, step)
        losses.append(model(**x).loss)
    a, b, c = recorded
    assert torch.equal(a.lam, b.lam) and torch.equal(a.partner, b.partner) and torch.equal(losses[0], losses[1])
    assert not torch.equal(a.lam, c.lam)


class _Data:
    """What make_batch_source reads: .load() -> 4 classes x 6 rows of 8x8 RGB noise images."""

    def load(self):
        rng = np.random.default_rng(0)
        images = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(24)]
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=4)})
        return datasets.Dataset.from_dict({"image": images, "label": [i % 4 for i in range(24)]}, features=features)


@pytest.mark.parametrize("k", [K, 3])
def test_the_data_hook_gives_guess_views_weak_views_of_each_unlabeled_row(k):
    config = _model(num_classes=4, labels_per_class=2, guess_views=k).config
    assert MixMatchModel.views_for(config) == (k, 0)
    item = MixMatchModel.make_batch_source(config, _Data(), batch_size=B, seed=0)[0]
    assert set(item) == {"x_l", "labels", "u_weak"}
    assert item["u_weak"].shape == (MU * B, k, 3, 16, 16)
    assert not torch.equal(item["u_weak"][:, 0], item["u_weak"][:, 1])  # different augmentations


def test_config_round_trip_keeps_the_papers_defaults(tmp_path):
    model = _model()
    c = model.config
    assert (c.sharpen_temperature, c.mixup_alpha, c.lambda_u, c.guess_views) == (0.5, 0.75, 100.0, 2)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is MixMatchModel and loaded.config.lambda_u == 100.0 and loaded.config.mixup_alpha == 0.75
    assert _model(guess_views=3).config.guess_views == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"sharpen_temperature": 0.0}, "sharpen_temperature must be a sharpening temperature in"),
    ({"sharpen_temperature": True}, "sharpen_temperature must be a sharpening temperature in"),
    ({"mixup_alpha": 0.0}, "mixup_alpha must be a number > 0"),
    ({"mixup_alpha": "0.75"}, "mixup_alpha must be a number > 0"),
    ({"lambda_u": -1.0}, "lambda_u"),
    ({"guess_views": 0}, r"guess_views \(K, .*\) must be a whole number >= 1"),
    ({"guess_views": 2.0}, r"guess_views \(K, .*\) must be a whole number >= 1"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_wrong_view_count_is_one_clear_error():
    x = _inputs()
    x["u_weak"] = x["u_weak"][:, :1]
    with pytest.raises(ValueError, match=r"u_weak must be \[μB, 2, C, H, W\]"):
        _model()(**x)
    with pytest.raises(ValueError, match=r"u_weak must be \[μB, 3, C, H, W\]"):  # the config's K, not the class's
        _model(guess_views=3)(**_inputs())
