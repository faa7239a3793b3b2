"""ReMixMatch: the loss against its formula (distribution-aligned, sharpened weak-view guess; MixUp over labeled + weak +
K strong views; soft CE on the mixed rows, the pre-mixup strong-view term and the rotation term) from the model's own
logits; the model marginal p~(y) follows its EMA in training only and is saved and resumed; the gradient is the
formula's with constant targets; K = strong_views (default 2) reaches the data hook and the formula; clear config
errors."""
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

import multissl.models.semi.remixmatch as remixmatch_module
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.remixmatch import ReMixMatchConfig, ReMixMatchModel
from multissl.registry import DATASETS, METHODS, register_dataset, register_method
from multissl.training import recipe_from_dict, train
from tests.models.semi._toy import toy_dataset

C, B, MU, K = 5, 4, 2, 2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return ReMixMatchModel(ReMixMatchConfig(**kw))


def _train_with_frozen_batchnorm(model):
    """Training mode (p~(y) updates) with BatchNorm on running statistics, so each row's logits stand alone."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    return model


def _inputs(seed=1, k=K):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 1, 3, 16, 16, generator=g),
            "u_strong": torch.randn(MU * B, k, 3, 16, 16, generator=g)}


def _logits(model, x):
    return model.classifier(model.embed(x))  # [N, C]


@pytest.fixture
def recorded(monkeypatch):
    """The Mixed of every mixmatch_mixup call and the rotations r of every random_rotations call."""
    calls = {"mixed": [], "r": []}
    real_mix, real_rot = remixmatch_module.mixmatch_mixup, remixmatch_module.random_rotations

    def mix(*args, **kwargs):
        calls["mixed"].append(real_mix(*args, **kwargs))
        return calls["mixed"][-1]

    def rot(*args, **kwargs):
        rotated, r = real_rot(*args, **kwargs)
        calls["r"].append(r)
        return rotated, r

    monkeypatch.setattr(remixmatch_module, "mixmatch_mixup", mix)
    monkeypatch.setattr(remixmatch_module, "random_rotations", rot)
    return calls


def _naive(model, x, mixed, r, marginal_before, momentum, t=0.5, detach=True):
    """Every term written out: (marginal, guess, L_X, L_U, L_U1, L_rot, mixed inputs, mixed targets)."""
    p = torch.softmax(_logits(model, x["u_weak"][:, 0]), -1)  # [μB, C]
    marginal = momentum * marginal_before + (1 - momentum) * p.mean(0)
    aligned = p * (1 / C) / marginal  # p(y) uniform
    aligned = aligned / aligned.sum(-1, keepdim=True)
    guess = aligned ** (1 / t) / (aligned ** (1 / t)).sum(-1, keepdim=True)
    if detach:
        guess = guess.detach()
    strong = [x["u_strong"][:, k] for k in range(x["u_strong"].shape[1])]  # the K strong views
    inputs = torch.cat([x["x_l"], x["u_weak"][:, 0], *strong])
    targets = torch.cat([torch.eye(C)[x["labels"]], guess, *[guess] * len(strong)])
    lam = mixed.lam[:, None]
    mixed_x = lam[:, :, None, None] * inputs + (1 - lam[:, :, None, None]) * inputs[mixed.partner]
    mixed_p = lam * targets + (1 - lam) * targets[mixed.partner]
    logits = _logits(model, mixed_x)
    soft_ce = lambda lg, tg: -(tg * torch.log_softmax(lg, -1)).sum(-1).mean()  # noqa: E731
    l_x, l_u = soft_ce(logits[:B], mixed_p[:B]), soft_ce(logits[B:], mixed_p[B:])
    l_u1 = soft_ce(_logits(model, strong[0]), guess)
    l_rot = torch.zeros(())
    if r is not None:
        rotated = torch.stack([torch.rot90(img, int(k), dims=(1, 2)) for img, k in zip(strong[0], r)])  # per row
        rot_logits = model.rotation_head(model.embed(rotated))
        l_rot = -torch.log_softmax(rot_logits, -1)[torch.arange(len(r)), r].mean()
    return marginal, guess, l_x, l_u, l_u1, l_rot, mixed_x, mixed_p


@pytest.mark.parametrize("k", [K, 3])
def test_loss_and_marginal_follow_the_formula(recorded, k):
    model = _train_with_frozen_batchnorm(_model(lambda_u=2.0, pre_mixup_weight=0.3, rotation_weight=0.7,
                                                alignment_momentum=0.5, strong_views=k))
    with torch.no_grad():
        model.model_marginal.copy_(torch.tensor([0.4, 0.1, 0.2, 0.2, 0.1]))  # a skewed marginal: alignment matters
    before = model.model_marginal.clone()
    x = _inputs(k=k)
    out = model(**x)
    (mixed,), (r,) = recorded["mixed"], recorded["r"]
    assert mixed.inputs.shape == (B + (1 + k) * MU * B, 3, 16, 16) and r.shape == (MU * B,)
    with torch.no_grad():
        marginal, guess, l_x, l_u, l_u1, l_rot, mixed_x, mixed_p = _naive(model, x, mixed, r, before, 0.5)
    torch.testing.assert_close(model.model_marginal, marginal)
    torch.testing.assert_close(mixed.inputs, mixed_x)
    torch.testing.assert_close(mixed.targets, mixed_p)  # one-hot labels, then the guess for the weak and K strong views
    torch.testing.assert_close(out.supervised_loss, l_x)
    torch.testing.assert_close(out.unsupervised_loss, l_u + (0.3 * l_u1 + 0.7 * l_rot) / 2.0)
    torch.testing.assert_close(out.loss, l_x + 2.0 * l_u + 0.3 * l_u1 + 0.7 * l_rot)
    assert out.accuracy is None and out.entropy is not None


def test_alignment_pushes_the_guess_towards_the_uniform_label_marginal(recorded):
    model = _train_with_frozen_batchnorm(_model(alignment_momentum=0.0, rotation_weight=0.0))
    x = _inputs()
    with torch.no_grad():
        p = torch.softmax(_logits(model, x["u_weak"][:, 0]), -1)
        guess = model.guess(_logits(model, x["u_weak"][:, 0]))
    torch.testing.assert_close(model.model_marginal, p.mean(0))  # momentum 0: the batch mean
    aligned = p / p.mean(0)
    aligned = aligned / aligned.sum(-1, keepdim=True)
    # the aligned guesses' marginal is closer to uniform than the raw predictions'
    assert (aligned.mean(0) - 1 / C).abs().sum() < (p.mean(0) - 1 / C).abs().sum()
    torch.testing.assert_close(guess, aligned ** 2 / (aligned ** 2).sum(-1, keepdim=True))


def test_the_marginal_is_frozen_in_eval_and_saved_with_the_model(tmp_path):
    model = _model(alignment_momentum=0.5).train()
    model(**_inputs())
    moved = model.model_marginal.clone()
    assert not torch.allclose(moved, torch.full((C,), 1 / C))
    model.eval()(**_inputs(seed=2))
    assert torch.equal(model.model_marginal, moved)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is ReMixMatchModel and torch.equal(loaded.model_marginal, moved)
    assert (loaded.config.lambda_u, loaded.config.pre_mixup_weight, loaded.config.rotation_weight) == (1.5, 0.5, 0.5)
    assert loaded.config.strong_views == K == 2  # the default


def test_the_gradient_is_the_formulas_with_constant_targets(recorded):
    model = _train_with_frozen_batchnorm(_model(lambda_u=2.0, pre_mixup_weight=0.3, rotation_weight=0.7))
    before = model.model_marginal.clone()
    x = _inputs()
    model(**x).loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert torch.count_nonzero(ours["rotation_head.weight"]) > 0
    for detach in (True, False):
        model.zero_grad()
        _, _, l_x, l_u, l_u1, l_rot, _, _ = _naive(model, x, recorded["mixed"][0], recorded["r"][0], before,
                                                model.config.alignment_momentum, detach=detach)
        (l_x + 2.0 * l_u + 0.3 * l_u1 + 0.7 * l_rot).backward()
        same = all(torch.allclose(ours[n], p.grad, atol=1e-6) for n, p in model.named_parameters())
        assert same == detach  # equal to the constant-target formula, and a guess with a gradient would differ


def test_without_rotation_there_is_no_rotation_head_and_no_rotation_draw(recorded):
    model = _model(rotation_weight=0.0)
    assert model.rotation_head is None and not any("rotation" in n for n, _ in model.named_parameters())
    model(**_inputs())
    assert recorded["r"] == [] and len(recorded["mixed"]) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"sharpen_temperature": 1.5}, "sharpen_temperature must be a sharpening temperature in"),
    ({"mixup_alpha": -1}, "mixup_alpha must be a number > 0"),
    ({"pre_mixup_weight": -0.5}, r"pre_mixup_weight \(λ_Û1"),
    ({"rotation_weight": None}, r"rotation_weight \(λ_r"),
    ({"alignment_momentum": 1.0}, "alignment_momentum must be a number in"),
    ({"strong_views": 0}, r"strong_views \(K, .*\) must be a whole number >= 1"),
    ({"strong_views": "2"}, r"strong_views \(K, .*\) must be a whole number >= 1"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


@pytest.fixture
def registered():
    """Register `remixmatch` (if the registry lacks it) and a toy dataset for the loop; undo only what was added."""
    added = "remixmatch" not in METHODS
    if added:
        register_method("remixmatch", "multissl.models.semi.remixmatch:ReMixMatchModel", modality="image",
                        description="ReMixMatch", default_dataset="digits")
    register_dataset("remixmatch_toy", f"{__name__}:toy_dataset", modality="image", description="test only")
    yield
    DATASETS.pop("remixmatch_toy", None)
    if added:
        METHODS.pop("remixmatch")




@pytest.mark.parametrize("k", [K, 3])
def test_the_data_hook_gives_one_weak_and_strong_views_strong_views(k):
    config = _model(num_classes=4, labels_per_class=2, strong_views=k).config
    assert ReMixMatchModel.views_for(config) == (1, k)

    class Data:
        def load(self):
            return toy_dataset()

    item = ReMixMatchModel.make_batch_source(config, Data(), batch_size=B, seed=0)[0]
    assert set(item) == {"x_l", "labels", "u_weak", "u_strong"}
    assert item["u_weak"].shape == (MU * B, 1, 3, 16, 16) and item["u_strong"].shape == (MU * B, k, 3, 16, 16)
    with pytest.raises(ValueError, match=rf"u_strong must be \[μB, {k}, C, H, W\]"):  # forward checks the config's K
        _model(strong_views=k)(**_inputs(k=5 - k))


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one_marginal_included(registered, tmp_path):
    model = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": 4, "labels_per_class": 2, "mu": 1,
             "alignment_momentum": 0.5, "augment": {"hflip_prob": 0.0}}
    recipe = {"method": "remixmatch", "dataset": "remixmatch_toy", "model": model,
              "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "log_every": 1, "progress": False,
                        "save_every": 2}}
    full = train(recipe_from_dict(recipe), tmp_path / "full")
    recipe["train"]["stop_after_steps"] = 2
    train(recipe_from_dict(recipe), tmp_path / "cut")
    saved = load_file(str(tmp_path / "cut" / "checkpoints" / "step_2" / "model.safetensors"))
    assert not torch.allclose(saved["model_marginal"], torch.full((4,), 0.25))  # moved, and in the checkpoint
    recipe["train"]["stop_after_steps"] = None
    resumed = train(recipe_from_dict(recipe), tmp_path / "cut", resume=True)
    assert resumed.losses == full.losses[2:]
    a = load_file(str(full.final_dir / "model.safetensors"))
    b = load_file(str(resumed.final_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"supervised_loss", "unsupervised_loss", "unsup_weight"} <= set(rows[0])
