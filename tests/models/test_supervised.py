"""The supervised bound: loss = cross-entropy of a linear head on backbone features, clear errors on bad labels,
training lowers the loss, save/load round trip (the registry-wide tests cover forward/backward, export and the loop)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from multissl.models.supervised import (
    SupervisedConfig,
    SupervisedModel,
    make_supervised_collator,
    tiny_supervised_config,
)


def _rows(n: int, num_classes: int = 4, size: int = 20, seed: int = 0, column: str = "label") -> list[dict]:
    """n random RGB images with labels 0..num_classes-1 cycling."""
    rng = np.random.default_rng(seed)
    return [{"image": Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)), column: i % num_classes}
            for i in range(n)]


def _naive_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """(1 - eps) * -log p_y + eps * mean_c(-log p_c), p = softmax(logits), averaged over rows; written out by hand."""
    lse = torch.log(torch.exp(logits.double()).sum(-1))  # [B]
    nll_true = lse - logits.double()[torch.arange(len(labels)), labels]  # [B]
    nll_uniform = lse - logits.double().mean(-1)  # [B]
    return ((1 - eps) * nll_true + eps * nll_uniform).mean()


# ---- the loss --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_equals_cross_entropy_on_hand_built_logits(smoothing):
    # A zero weight makes the head's output its bias for every row: logits we choose, through the real forward.
    torch.manual_seed(0)
    model = SupervisedModel(SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": 5,
                                                "label_smoothing": smoothing})).eval()
    bias = torch.tensor([2.0, -1.0, 0.5, 3.0, -2.5])
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(bias)
    batch = make_supervised_collator(model.config)(_rows(6, num_classes=5))
    labels = torch.tensor([0, 1, 2, 3, 4, 3])
    out = model(pixel_values=batch["pixel_values"], labels=labels)
    logits = bias.expand(6, 5)
    assert torch.allclose(out.logits, logits)
    assert torch.allclose(out.loss, F.cross_entropy(logits, labels, label_smoothing=smoothing), atol=1e-6)
    assert math.isclose(out.loss.item(), _naive_cross_entropy(logits, labels, smoothing).item(), rel_tol=1e-6)
    assert out.accuracy.dim() == 0 and out.accuracy.item() == pytest.approx(2 / 6)  # argmax is class 3: rows 3 and 5


def test_logits_are_the_linear_head_on_the_backbone_features():
    torch.manual_seed(0)
    model = SupervisedModel(tiny_supervised_config()).eval()
    batch = make_supervised_collator(model.config)(_rows(8, num_classes=26))
    out = model(**batch)
    feats = model.embed(batch["pixel_values"])  # [B, D]
    assert feats.shape == (8, model.classifier.in_features)
    expected = feats @ model.classifier.weight.T + model.classifier.bias  # [B, C]
    assert torch.allclose(out.logits, expected, atol=1e-5)
    assert math.isclose(out.loss.item(), _naive_cross_entropy(expected, batch["labels"], 0.0).item(), rel_tol=1e-5)
    acc = (expected.argmax(-1) == batch["labels"]).float().mean()
    assert out.accuracy.item() == pytest.approx(acc.item())


def test_forward_without_labels_predicts_only():
    model = SupervisedModel(tiny_supervised_config()).eval()
    out = model(pixel_values=torch.randn(3, 3, 16, 16))
    assert out.loss is None and out.accuracy is None and out.logits.shape == (3, 26)


# ---- the collators ---------------------------------------------------------------------------------------


def test_collators_shapes_and_augmentation_switch():
    config = tiny_supervised_config()
    rows = _rows(5)
    torch.manual_seed(0)  # the crops draw from the global RNG (BatchSource seeds it per micro-batch)
    batch = make_supervised_collator(config, train=True)(rows)
    assert batch["pixel_values"].shape == (5, 3, 16, 16) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1, 2, 3, 0]
    evaluated = make_supervised_collator(config, train=False)(rows)
    assert set(evaluated) == {"pixel_values"} and evaluated["pixel_values"].shape == (5, 3, 16, 16)
    # Random crops change the pixels; crop_scale null trains on exactly the eval inputs.
    assert not torch.allclose(batch["pixel_values"], evaluated["pixel_values"])
    plain = SupervisedConfig(**{**config.to_diff_dict(), "crop_scale": None})
    assert torch.equal(make_supervised_collator(plain)(rows)["pixel_values"], evaluated["pixel_values"])


def test_another_label_column_is_read():
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "label_column": "letter"})
    batch = make_supervised_collator(config)(_rows(3, column="letter"))
    assert batch["labels"].tolist() == [0, 1, 2]


# ---- bad input -------------------------------------------------------------------------------------------


def test_missing_label_column_names_it():
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "label_column": "letter"})
    with pytest.raises(ValueError, match=r"no label column 'letter'.*label_column"):
        make_supervised_collator(config)(_rows(3))  # rows hold 'label', not 'letter'


def test_label_at_or_above_num_classes_is_a_clear_error():
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": 3})
    with pytest.raises(ValueError, match=r"label 3 is outside \[0, num_classes = 3\)"):
        make_supervised_collator(config)(_rows(4, num_classes=4))  # labels 0..3
    model = SupervisedModel(config)
    for bad in (3, -1):
        with pytest.raises(ValueError, match=rf"label {bad} is outside \[0, num_classes = 3\)"):
            model(pixel_values=torch.randn(2, 3, 16, 16), labels=torch.tensor([0, bad]))


def test_labels_that_are_not_class_ids_are_refused():
    config = tiny_supervised_config()
    rows = _rows(2)
    rows[1]["label"] = "B"
    with pytest.raises(ValueError, match=r"'label' must hold integer class ids; row 1 has 'B'"):
        make_supervised_collator(config)(rows)
    model = SupervisedModel(config)
    with pytest.raises(ValueError, match="labels must be integer class ids"):
        model(pixel_values=torch.randn(2, 3, 16, 16), labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="must match pixel_values' batch 2"):
        model(pixel_values=torch.randn(2, 3, 16, 16), labels=torch.tensor([0, 1, 2]))


def test_num_classes_is_required_to_build_the_model():
    config = SupervisedConfig(backbone_config=tiny_supervised_config().backbone_config, image_size=16)
    with pytest.raises(ValueError, match=r"num_classes is required.*model\.num_classes"):
        SupervisedModel(config)


@pytest.mark.parametrize("kwargs, needle", [
    ({"num_classes": 1}, "num_classes must be a whole number >= 2"),
    ({"num_classes": 2.5}, "num_classes must be a whole number >= 2"),
    ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
    ({"crop_scale": [0.9, 0.5]}, "crop_scale must be"),
    ({"crop_scale": [0.5]}, "crop_scale must be"),
    ({"label_column": ""}, "label_column must be"),
])
def test_bad_config_values_name_the_key(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SupervisedConfig(**kwargs)


# ---- training and saving ---------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": 4, "crop_scale": None})
    model = SupervisedModel(config).train()
    batch = make_supervised_collator(config)(_rows(8, num_classes=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(**batch).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = model(**batch)
    assert final.loss.item() < 0.5 * losses[0], losses
    assert final.accuracy.item() > 0.5


def test_save_load_round_trip_keeps_config_and_outputs(tmp_path):
    from transformers import AutoModel

    torch.manual_seed(0)
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": 7, "label_column": "letter",
                                 "label_smoothing": 0.1, "crop_scale": [0.5, 0.9]})
    model = SupervisedModel(config).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        before_logits, before_feats = model(pixel_values=x).logits, model.embed(x)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m").eval()
    assert type(loaded) is SupervisedModel
    c = loaded.config
    assert (c.num_classes, c.label_column, c.label_smoothing, c.crop_scale) == (7, "letter", 0.1, [0.5, 0.9])
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values=x).logits, before_logits, atol=1e-6)
        assert torch.allclose(loaded.embed(x), before_feats, atol=1e-6)
    assert loaded.encoder_for_export() is loaded.backbone


# ---- the registry-wide checks, run for this method --------------------------------------------------------
