"""The shared base's knobs: view counts from the config (views_for) reach the collator, the data hook and forward's
check; the auxiliary loss is added without λ_u and its ramp-up; labeled_view: strong is the strong policy under the same
seed and leaves the unlabeled stream as it was; the linear ramp-up is min(1, t/T); bad values are one clear error."""
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.modalities.image.ssl_views import SSLViewAugment
from multissl.modalities.image.transforms import to_rgb
from multissl.models.base import config_keys
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedCollator, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig
from multissl.models.semi.rampup import RAMPUPS, linear_rampup
from multissl.objectives.consistency import sigmoid_rampup
from tests.models.semi._toy import toy_dataset

C, B, MU = 4, 2, 2


class KnobConfig(SemiSupervisedConfig):
    model_type = "multissl_semi_knob_test"

    def __init__(self, weak_views: int = 1, aux_scale: float | None = None, **kwargs):
        self.weak_views, self.aux_scale = weak_views, aux_scale
        super().__init__(**kwargs)


class KnobModel(SemiSupervisedModel):
    """Unsupervised loss = mean squared logit of the first weak view; auxiliary = aux_scale * mean squared labeled
    logit (None without aux_scale); the weak view count is the config's `weak_views`."""

    config_class = KnobConfig
    unlabeled_views = (1, 0)

    def __init__(self, config):
        super().__init__(config)
        self.post_init()

    @classmethod
    def views_for(cls, config):
        return (config.weak_views, 0)

    def semi_step(self, x_l, labels, u_weak, u_strong, u_index):
        self.seen = tuple(u_weak.shape)
        lab, weak = self.logits_of(x_l, u_weak[:, 0])
        aux = None if self.config.aux_scale is None else self.config.aux_scale * lab.pow(2).mean()
        return SemiStep(F.cross_entropy(lab, labels), weak.pow(2).mean(), lab, weak, auxiliary_loss=aux)


def _model(**kw):
    torch.manual_seed(0)
    return KnobModel(KnobConfig(**{"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C,
                                   "labels_per_class": 2, "mu": MU, "augment": {"hflip_prob": 0.0}, **kw}))


def _inputs(views=1):
    g = torch.Generator().manual_seed(1)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.tensor([0, 3]),
            "u_weak": torch.randn(MU * B, views, 3, 16, 16, generator=g)}


class _Data:
    def load(self):
        return toy_dataset()


def _rows(n=4):
    return [dict(r) for r in toy_dataset().select(range(n))]


def test_views_for_defaults_to_the_class_counts():
    config = SemiSupervisedConfig(num_classes=C, labels_per_class=1)
    assert SemiSupervisedModel.views_for(config) == SemiSupervisedModel.unlabeled_views == (1, 1)


def test_views_for_sets_the_collators_the_data_hooks_and_forwards_view_counts():
    model = _model(weak_views=3)
    assert KnobModel.views_for(model.config) == (3, 0) != KnobModel.unlabeled_views
    batch = KnobModel.make_collator(model.config)(_rows())
    assert batch["u_weak"].shape == (4, 3, 3, 16, 16) and "u_strong" not in batch
    item = KnobModel.make_batch_source(model.config, _Data(), batch_size=B, seed=0)[0]
    assert item["u_weak"].shape == (MU * B, 3, 3, 16, 16)
    model(**item)
    assert model.seen == (MU * B, 3, 3, 16, 16)
    item["u_weak"] = item["u_weak"][:, :1]  # the class attribute's count, not the config's
    with pytest.raises(ValueError, match=r"u_weak must be \[μB, 3, C, H, W\]"):
        model(**item)


def test_the_auxiliary_loss_is_added_without_lambda_u_or_the_ramp_up_and_logged_detached():
    x = _inputs()
    model = _model(aux_scale=0.7, lambda_u=3.0, rampup_steps=10).eval()
    out = model(**x)
    with torch.no_grad():
        logits = model.classify(torch.cat([x["x_l"], x["u_weak"][:, 0]]))
    lab, weak = logits[:B], logits[B:]
    w = 3.0 * math.exp(-5.0)  # λ_u · sigmoid ramp at step 0: far from 1, so a ramped auxiliary term would show
    aux = 0.7 * lab.pow(2).mean()
    torch.testing.assert_close(out.loss, F.cross_entropy(lab, x["labels"]) + w * weak.pow(2).mean() + aux)
    torch.testing.assert_close(out.auxiliary_loss, aux)
    assert not out.auxiliary_loss.requires_grad
    without = _model(lambda_u=3.0, rampup_steps=10).eval()(**x)
    assert without.auxiliary_loss is None
    torch.testing.assert_close(out.loss - without.loss, aux)


def test_the_auxiliary_loss_gradient_is_its_own_at_weight_one():
    x = _inputs()
    model = _model(aux_scale=0.7, lambda_u=3.0, rampup_steps=10).eval()
    model(**x).loss.backward()
    with_aux = model.classifier.weight.grad.clone()
    model.zero_grad()
    model.config.aux_scale = None
    model(**x).loss.backward()
    without = model.classifier.weight.grad.clone()
    model.zero_grad()
    (0.7 * model.classify(x["x_l"]).pow(2).mean()).backward()
    torch.testing.assert_close(with_aux - without, model.classifier.weight.grad)


def _labeled(labeled_view, seed=3):
    config = _model(labeled_view=labeled_view).config
    torch.manual_seed(seed)
    return SemiSupervisedCollator(config, (1, 0)).labeled(_rows())


def test_a_strong_labeled_view_is_the_strong_policy_under_the_same_seed():
    weak, strong = _labeled("weak"), _labeled("strong")
    augment = SSLViewAugment(image_size=16, hflip_prob=0.0)
    images = [to_rgb(r["image"]) for r in _rows()]
    for out, build in ((weak, augment.build_weak), (strong, augment.build_strong)):
        policy = build()
        torch.manual_seed(3)
        torch.testing.assert_close(out["x_l"], torch.stack([policy(im) for im in images]), rtol=0, atol=0)
    assert torch.equal(weak["labels"], strong["labels"])
    assert not torch.allclose(weak["x_l"], strong["x_l"])


def test_the_labeled_view_changes_only_x_l_in_the_data_hooks_batches():
    items = [KnobModel.make_batch_source(_model(labeled_view=v).config, _Data(), batch_size=B, seed=0)[1]
             for v in ("weak", "strong")]
    assert torch.equal(items[0]["labels"], items[1]["labels"])
    assert torch.equal(items[0]["u_weak"], items[1]["u_weak"])  # each stream is seeded on its own
    assert not torch.allclose(items[0]["x_l"], items[1]["x_l"])


@pytest.mark.parametrize("step, total", [(0, 8), (3, 8), (8, 8), (20, 8), (-2, 8), (5, 0)])
def test_linear_rampup_is_min_one_t_over_T(step, total):
    expected = 1.0 if total == 0 else min(1.0, max(0.0, step / total))
    assert linear_rampup(step, total) == pytest.approx(expected, rel=1e-15, abs=0)
    with pytest.raises(ValueError, match="rampup_steps must be >= 0"):
        linear_rampup(step, -1)


@pytest.mark.parametrize("rampup", ["linear", "sigmoid"])
def test_unsup_weight_follows_the_configured_ramp_up(rampup):
    model = _model(lambda_u=2.0, rampup_steps=8, rampup=rampup).eval()
    assert RAMPUPS[rampup] is (linear_rampup if rampup == "linear" else sigmoid_rampup)
    for done in (0, 2, 8, 12):
        if done:
            model.on_step_end(done - 1, 20)
        t = min(done / 8, 1.0)
        expected = 2.0 * (t if rampup == "linear" else math.exp(-5.0 * (1.0 - t) ** 2))
        assert model.unsup_weight() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    torch.testing.assert_close(model(**_inputs()).unsup_weight, torch.tensor(2.0))
    assert _model().config.rampup == "sigmoid" and _model().config.labeled_view == "weak"  # the defaults


def test_the_new_knobs_are_recipe_keys_and_survive_save_and_load(tmp_path):
    assert {"rampup", "labeled_view"} <= config_keys(KnobConfig)
    model = _model(rampup="linear", labeled_view="strong")
    model.save_pretrained(tmp_path / "m")
    loaded = KnobModel.from_pretrained(tmp_path / "m")
    assert (loaded.config.rampup, loaded.config.labeled_view) == ("linear", "strong")


@pytest.mark.parametrize("kwargs, match", [
    ({"rampup": "cosine"}, r"rampup must be one of \['sigmoid', 'linear'\]"),
    ({"rampup": None}, r"rampup must be one of \['sigmoid', 'linear'\]"),
    ({"labeled_view": "both"}, r"labeled_view must be one of \['weak', 'strong'\]"),
    ({"labeled_view": ["weak"]}, r"labeled_view must be one of \['weak', 'strong'\]"),
])
def test_bad_knob_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SemiSupervisedConfig(num_classes=C, labels_per_class=1, **kwargs)
