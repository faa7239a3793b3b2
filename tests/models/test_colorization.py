"""Colourisation: RGB required (clear error for grey input), deterministic tinting, Lab targets, both objectives."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from multissl.data import load_dataset_by_name
from multissl.modalities.image.lab import rgb_to_lab
from multissl.models.colorization import (
    ColorizationConfig,
    ColorizationModel,
    is_grayscale,
    make_colorization_collator,
    orientation_tint,
    tint,
    tiny_colorization_config,
)


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


def _grey_palette_image():
    """A "P" image whose palette is grey (entry i = (i, i, i)) and a copy with a colour palette."""
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).convert("P")
    grey.putpalette([v for i in range(256) for v in (i, i, i)])
    colour = grey.copy()
    colour.putpalette([v for i in range(256) for v in (i, 255 - i, 40)])
    return grey, colour


def test_grey_palette_and_grey_rgb_content_count_as_grayscale():
    grey_p, colour_p = _grey_palette_image()
    grey_rgb = Image.merge("RGB", [_rows(1)[0]["image"]] * 3)  # R = G = B everywhere
    almost = grey_rgb.copy()
    almost.putpixel((3, 3), (10, 11, 10))  # one coloured pixel is colour
    assert is_grayscale(grey_p) and is_grayscale(grey_rgb) and is_grayscale(grey_rgb.convert("RGBA"))
    assert not is_grayscale(colour_p) and not is_grayscale(almost) and not is_grayscale(Image.new("RGB", (4, 4), (255, 0, 0)))
    assert is_grayscale(Image.new("F", (4, 4))) and is_grayscale(Image.new("LA", (4, 4)))

    cfg = ColorizationConfig(backbone_config=tiny_colorization_config().backbone_config, image_size=16,
                             crop_scale=None)  # no random crop: the tint comparison below is exact
    collate = make_colorization_collator(cfg)
    with pytest.raises(ValueError, match=r"row 1: 'image' is a grayscale \(P with a grey palette\) image.*must be trained on RGB"):
        collate([{"image": colour_p}, {"image": grey_p}])
    with pytest.raises(ValueError, match=r"row 0: 'image' is a grayscale \(RGB with R=G=B everywhere\) image"):
        collate([{"image": grey_rgb}])
    assert collate([{"image": colour_p}, {"image": almost}])["ab_targets"].shape == (2, cfg.target_size, cfg.target_size)

    cfg.grayscale_input = "tint"  # tinting applies to every kind of grey input
    tinted = make_colorization_collator(cfg)([{"image": grey_p}, {"image": grey_rgb}])
    plain = make_colorization_collator(cfg)([{"image": tint(grey_p)}, {"image": tint(grey_rgb)}])
    assert torch.equal(tinted["ab_targets"], plain["ab_targets"])
    cfg.grayscale_input = "accept"
    assert make_colorization_collator(cfg)([{"image": grey_p}, {"image": grey_rgb}])["ab_targets"].shape[0] == 2


def test_tint_is_deterministic_colour_with_the_same_lightness_pattern():
    grey = _rows(1)[0]["image"]
    a, b = tint(grey), tint(grey)
    assert a.mode == "RGB" and a.tobytes() == b.tobytes()
    rgb = torch.tensor(np.array(a), dtype=torch.float)
    assert (rgb.amax(-1) - rgb.amin(-1)).max() > 50  # really coloured
    assert torch.equal(rgb.sum(-1) == 0, torch.tensor(np.array(grey)) == 0)  # ink where the digit is


def _bar(vertical: bool) -> Image.Image:
    a = np.zeros((16, 16), np.uint8)
    if vertical:
        a[2:14, 7:9] = 255
    else:
        a[7:9, 2:14] = 255
    return Image.fromarray(a, mode="L")


def test_orientation_tint_colours_by_stroke_orientation_and_keeps_the_grey_level():
    def edge_hues(image):
        hsv = np.asarray(orientation_tint(image, 16).convert("HSV"), dtype=np.float32) / 255
        strong = hsv[..., 1] > 0.5  # saturated pixels: the strokes' edges
        return hsv[..., 0][strong], hsv[..., 2]

    v_hue, v_val = edge_hues(_bar(True))
    h_hue, _ = edge_hues(_bar(False))
    assert v_hue.size and h_hue.size
    # one orientation -> one hue (both edges of a bar agree: orientation is modulo 180 degrees) ...
    assert np.ptp(v_hue) < 0.05 and np.ptp(h_hue) < 0.05
    # ... and a perpendicular stroke gets the opposite hue (the doubled angle turns by 180 degrees)
    gap = abs(float(np.median(v_hue)) - float(np.median(h_hue)))
    assert min(gap, 1 - gap) == pytest.approx(0.5, abs=0.05)
    grey = np.asarray(_bar(True).resize((16, 16)), dtype=np.float32) / 255
    assert np.abs(v_val - grey).max() < 0.01  # HSV value is the grey level: ink where the digit is
    digit = _rows(1)[0]["image"]
    assert orientation_tint(digit).tobytes() == orientation_tint(digit).tobytes()  # deterministic, label-free


def test_orient_policy_gives_non_trivial_ab_targets():
    cfg = ColorizationConfig(backbone_config=tiny_colorization_config().backbone_config, image_size=16,
                             grayscale_input="orient")
    torch.manual_seed(0)
    targets = make_colorization_collator(cfg)(_rows(8))["ab_targets"]
    assert targets.unique().numel() > 5  # many ab bins, not only the neutral one


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
