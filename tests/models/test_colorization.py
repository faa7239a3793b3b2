"""Colourisation: RGB required (clear error for grey input), deterministic tinting, Lab targets, both objectives."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from multissl.data import load_dataset_by_name
from multissl.models.colorization import (ColorizationConfig, ColorizationModel, make_colorization_collator, tint,
                                          tiny_colorization_config)
from multissl.modalities.image.lab import rgb_to_lab


def _rows(n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return [{"image": im} for im in ds["image"]]


def test_grayscale_training_input_is_a_clear_error_by_default():
    cfg = ColorizationConfig(backbone_config=tiny_colorization_config().backbone_config, image_size=16)
    with pytest.raises(ValueError, match=r"row 0: 'image' is a grayscale \(L\) image.*must be trained on RGB"):
        make_colorization_collator(cfg)(_rows())
    make_colorization_collator(cfg, train=False)(_rows())  # embedding grey images is fine
    with pytest.raises(ValueError, match="grayscale_input"):
        ColorizationConfig(grayscale_input="maybe")


def test_tint_is_deterministic_colour_with_the_same_lightness_pattern():
    grey = _rows(1)[0]["image"]
    a, b = tint(grey), tint(grey)
    assert a.mode == "RGB" and a.tobytes() == b.tobytes()
    rgb = torch.tensor(np.array(a), dtype=torch.float)
    assert (rgb.amax(-1) - rgb.amin(-1)).max() > 50  # really coloured
    assert torch.equal(rgb.sum(-1) == 0, torch.tensor(np.array(grey)) == 0)  # ink where the digit is


def test_targets_come_from_lab_of_the_rgb_image():
    cfg = ColorizationConfig(backbone_config=tiny_colorization_config().backbone_config, image_size=8, target_size=8,
                             objective="regression", crop_scale=None)
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    batch = make_colorization_collator(cfg)([{"image": red}])
    lab = rgb_to_lab(torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1))
    assert torch.allclose(batch["ab_targets"][0, :, 0, 0], lab[0, 1:, 0, 0] / 110.0, atol=1e-4)
    assert torch.allclose(batch["pixel_values"][0, :, 0, 0], (lab[0, 0, 0, 0] / 50 - 1).expand(3), atol=1e-4)


@pytest.mark.parametrize("objective", ["classification", "regression"])
def test_forward_both_objectives(objective):
    torch.manual_seed(0)
    cfg = tiny_colorization_config()
    cfg.objective = objective
    model = ColorizationModel(cfg)
    batch = make_colorization_collator(cfg)(_rows())
    out = model(**batch)
    if objective == "classification":
        assert out.prediction.shape[1] == model.head.out_channels
        assert torch.allclose(out.loss, F.cross_entropy(out.prediction, batch["ab_targets"]), atol=1e-6)
    else:
        assert torch.allclose(out.loss, F.mse_loss(torch.tanh(out.prediction), batch["ab_targets"]), atol=1e-6)
    out.loss.backward()
