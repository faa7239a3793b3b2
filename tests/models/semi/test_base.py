"""The semi-supervised family's shared base: recipe keys through the config MRO, λ_u ramp-up, the entropy term, the
progress buffers (saved, so a resume continues ramp-ups), view-shape checks, the row index, and the classifier metric."""
import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from multissl.evaluation.classifier import classifier_accuracy
from multissl.models.base import config_keys
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import INDEX_COLUMN, SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig
from multissl.models.semi.fixmatch import FixMatchConfig
from multissl.objectives.pseudo_label import entropy_loss

C, B, MU = 4, 3, 2


class ToyConfig(SemiSupervisedConfig):
    model_type = "multissl_semi_toy_test"

    def __init__(self, unsup_scale: float = 1.0, **kwargs):
        self.unsup_scale = unsup_scale
        super().__init__(**kwargs)


class ToyModel(SemiSupervisedModel):
    """Unsupervised loss = unsup_scale * mean squared logit of the first weak view (any differentiable number)."""

    config_class = ToyConfig
    unlabeled_views = (2, 1)
    unlabeled_index = True

    def __init__(self, config):
        super().__init__(config)
        self.post_init()

    def semi_step(self, x_l, labels, u_weak, u_strong, u_index):
        self.seen = (u_weak.shape, u_strong.shape, u_index)
        lab, weak = self.logits_of(x_l, u_weak[:, 0])
        return SemiStep(F.cross_entropy(lab, labels), self.config.unsup_scale * weak.pow(2).mean(), lab, weak)


def _model(**kw):
    torch.manual_seed(0)
    return ToyModel(ToyConfig(**{"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C,
                                 "labels_per_class": 1, "mu": MU, **kw})).eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.tensor([0, 1, 3]),
            "u_weak": torch.randn(MU * B, 2, 3, 16, 16, generator=g),
            "u_strong": torch.randn(MU * B, 1, 3, 16, 16, generator=g), "u_index": torch.arange(MU * B)}


def test_a_subclass_config_accepts_its_parents_recipe_keys():
    keys = config_keys(FixMatchConfig)
    assert {"threshold", "freematch_momentum", "mu", "labels_per_class", "backbone_config", "entropy_weight"} <= keys
    assert "kwargs" not in keys and {"unsup_scale", "lambda_u"} <= config_keys(ToyConfig)


def test_loss_is_supervised_plus_ramped_lambda_u_times_unsupervised_plus_weighted_entropy():
    model = _model(lambda_u=0.5, rampup_steps=10, entropy_weight=0.3)
    x = _inputs()
    out = model(**x)
    with torch.no_grad():
        logits = model.classify(torch.cat([x["x_l"], x["u_weak"][:, 0]]))
    lab, weak = logits[:B], logits[B:]
    ramp = float(np.exp(-5.0))  # step 0 of a 10-step sigmoid ramp-up: exp(-5 (1 - 0)^2)
    expected = F.cross_entropy(lab, x["labels"]) + 0.5 * ramp * weak.pow(2).mean() + 0.3 * entropy_loss(weak)
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.unsup_weight, torch.tensor(0.5 * ramp))
    torch.testing.assert_close(out.entropy, entropy_loss(weak))
    torch.testing.assert_close(out.accuracy, (lab.argmax(-1) == x["labels"]).float().mean())
    model.on_step_end(4, 20)  # 5 steps done: t = 0.5
    torch.testing.assert_close(model(**x).unsup_weight, torch.tensor(0.5 * float(np.exp(-5 * 0.25))))
    assert model.progress() == 0.25
    without = _model(lambda_u=0.5, rampup_steps=10, entropy_weight=0.0)(**x)
    torch.testing.assert_close(out.loss - without.loss, 0.3 * entropy_loss(weak))  # the term is there only when asked


def test_progress_is_saved_with_the_model(tmp_path):
    model = _model(rampup_steps=10)
    model.on_step_end(6, 30)
    model.save_pretrained(tmp_path / "m")
    loaded = ToyModel.from_pretrained(tmp_path / "m")
    assert int(loaded.steps_done) == 7 and int(loaded.total_steps) == 30
    assert loaded.unsup_weight() == model.unsup_weight() != 1.0


def test_the_algorithm_gets_the_views_it_asked_for_and_a_wrong_shape_is_one_clear_error():
    model = _model()
    x = _inputs()
    model(**x)
    assert model.seen[0] == (MU * B, 2, 3, 16, 16) and model.seen[1] == (MU * B, 1, 3, 16, 16)
    x["u_weak"] = x["u_weak"][:, :1]
    with pytest.raises(ValueError, match=r"u_weak must be \[μB, 2, C, H, W\]"):
        model(**x)
    x = _inputs()
    del x["u_index"]
    with pytest.raises(ValueError, match="needs u_index"):
        model(**x)


def test_labeled_rows_only_is_plain_cross_entropy():
    model = _model(lambda_u=0.0)
    x = _inputs()
    out = model(x["x_l"], x["labels"])
    with torch.no_grad():
        expected = F.cross_entropy(model.classify(x["x_l"]), x["labels"])
    torch.testing.assert_close(out.loss, expected)
    assert out.unsupervised_loss is None and model(x["x_l"]).loss is None


def _dataset():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(16)]
    return datasets.Dataset.from_dict({"image": images, "label": [i % C for i in range(16)]},
                                      features=datasets.Features({"image": datasets.Image(),
                                                                  "label": datasets.ClassLabel(num_classes=C)}))


class _Data:
    def load(self):
        return _dataset()


def test_the_data_hook_passes_each_unlabeled_rows_index_into_the_unlabeled_set():
    config = _model(labels_per_class=2).config
    source = ToyModel.make_batch_source(config, _Data(), batch_size=2, seed=0)
    item = source[0]
    _, unlabeled_rows = source.rows(0)
    assert item["u_index"].tolist() == list(unlabeled_rows)
    assert source.unlabeled.dataset[INDEX_COLUMN] == list(range(len(source.unlabeled.dataset)))
    assert item["u_weak"].shape == (MU * 2, 2, 3, 16, 16) and item["u_strong"].shape == (MU * 2, 1, 3, 16, 16)


def test_classifier_accuracy_is_the_argmax_agreement_of_classify():
    model = _model()
    ds = _dataset()
    collate = ToyModel.make_collator(model.config, train=False)
    result = classifier_accuracy(model, ds, collate)
    with torch.no_grad():
        logits = model.classify(**collate([{"image": r["image"]} for r in ds]))
    expected = float((logits.argmax(-1) == torch.tensor(ds["label"])).float().mean())
    assert result == {"accuracy": pytest.approx(expected), "n": 16}
    with pytest.raises(TypeError, match="has no classify"):
        classifier_accuracy(torch.nn.Linear(2, 2), ds, collate)


def test_label_fraction_one_with_lambda_u_zero_is_the_all_labels_bound_on_the_same_data_hook():
    config = _model(labels_per_class=None, label_fraction=1.0, lambda_u=0.0).config
    source = ToyModel.make_batch_source(config, _Data(), batch_size=4, seed=0)
    assert len(source.labeled.dataset) == 16 and source.unlabeled is None
    assert set(source[0]) == {"x_l", "labels"}
    with pytest.raises(ValueError, match="label_fraction"):
        _model(labels_per_class=None, label_fraction=1.5)
