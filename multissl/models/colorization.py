"""Colourisation (Zhang et al. 2016): predict the ab channels of Lab from L, as classification over quantised ab bins.

Input must be colour (RGB): a grey image's ab targets are all zero and the task is degenerate. grayscale_input decides:
'error' (default) raises; 'orient' colours a grey image by its local stroke orientation (hue = doubled gradient
angle: predictable from L, never the label; used for the digits results); 'tint' inks it with a palette colour picked
by a hash of the pixels (not predictable from L: a control that shows the task then teaches nothing); 'accept' trains
on them anyway (all-zero ab targets).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageChops
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.lab import in_gamut_ab_bins, quantize_ab, rgb_to_lab
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields

GRAYSCALE_POLICIES = ("error", "tint", "orient", "accept")
AB_SCALE = 110.0  # |a|, |b| < ~110 for sRGB colours
# Saturated, distinct ink colours for 'tint' (a fixed table: the same image always gets the same colour).
TINT_PALETTE = ((255, 64, 64), (64, 200, 64), (64, 96, 255), (255, 200, 0), (200, 64, 255), (0, 200, 200))


class ColorizationConfig(MethodConfig):
    """ab bin size (10 -> 261 in-gamut bins; the paper's gamut gives 313), target resolution, 'classification' | 'regression'."""

    model_type = "multissl_colorization"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 target_size: int = 8, objective: str = "classification", ab_bin_size: float = 10.0,
                 grayscale_input: str = "error", crop_scale: list[float] | None = (0.7, 1.0), **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if objective not in ("classification", "regression"):
            raise ValueError(f"colorization objective must be 'classification' or 'regression'; got {objective!r}")
        if grayscale_input not in GRAYSCALE_POLICIES:
            raise ValueError(f"grayscale_input must be one of {GRAYSCALE_POLICIES}; got {grayscale_input!r}")
        self.target_size, self.objective, self.ab_bin_size = target_size, objective, ab_bin_size
        self.grayscale_input = grayscale_input
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)


@dataclass
class ColorizationOutput(ModelOutput):
    """loss: CE over ab bins (or MSE on ab); ab_logits [B, Q, t, t] or ab [B, 2, t, t]."""

    loss: torch.Tensor | None = None
    prediction: torch.Tensor | None = None


def _rgb_is_grey(rgb: Image.Image) -> bool:
    """True when an RGB PIL image has R == G == B at every pixel (compared in C by PIL, no Python loop)."""
    r, g, b = rgb.split()
    return ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None


def grayscale_kind(image: object) -> str | None:
    """Why a PIL image is grey ('L', 'P with a grey palette', 'RGB with R=G=B everywhere', ...), or None if it has colour."""
    if not isinstance(image, Image.Image):
        return None
    if Image.getmodebase(image.mode) == "L":  # 1, L, LA, I, I;16*, F: the mode cannot carry colour at all
        return image.mode
    if image.mode == "P":
        # Only the palette entries the pixels use matter; converting applies the palette (and its transparency).
        return "P with a grey palette" if _rgb_is_grey(image.convert("RGB")) else None
    # RGB / RGBA / CMYK / ... whose content is grey: ab targets would be all zero, just as for an "L" image.
    return f"{image.mode} with R=G=B everywhere" if _rgb_is_grey(image.convert("RGB")) else None


def is_grayscale(image: object) -> bool:
    """True for PIL images without colour: grey modes (L, 1, I, F, ...), grey-palette P, and RGB with R=G=B."""
    return grayscale_kind(image) is not None


def tint(image: Image.Image) -> Image.Image:
    """A grey image as RGB with its ink in a palette colour chosen by a hash of its pixels (deterministic)."""
    grey = image.convert("L")
    colour = TINT_PALETTE[zlib.crc32(grey.tobytes()) % len(TINT_PALETTE)]
    return Image.merge("RGB", [grey.point(lambda v, c=c: v * c // 255) for c in colour])


def orientation_tint(image: Image.Image, size: int = 32) -> Image.Image:
    """A grey image as RGB [size x size] whose hue is the local stroke orientation (deterministic, label-free).

    Colour in natural images is predictable from the grey context; a hash tint is not. Here the hue of
    each pixel is twice the angle of the smoothed intensity gradient (orientation is defined modulo
    180 degrees, so both edges of a stroke get one hue), the saturation grows with the gradient
    strength and the value is the grey level: predicting ab from L means detecting oriented strokes.
    """
    import numpy as np

    grey = np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    gy, gx = np.gradient(grey)  # [S, S] each, central differences
    # structure tensor smoothed over a 3x3 box: a stable orientation even where one gradient is noisy
    def box(a):
        p = np.pad(a, 1, mode="edge")
        return sum(p[i:i + size, j:j + size] for i in range(3) for j in range(3)) / 9.0
    jxx, jyy, jxy = box(gx * gx), box(gy * gy), box(gx * gy)
    hue = (np.arctan2(2 * jxy, jxx - jyy) / (2 * np.pi)) % 1.0  # doubled angle in [0, 1)
    strength = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2)
    sat = np.clip(strength / (strength.max() + 1e-8) * 1.5, 0.0, 1.0)
    hsv = np.stack([hue, sat, grey], -1)  # value = the grey level: L stays close to the grey image's
    rgb = Image.fromarray((hsv * 255).astype(np.uint8), mode="HSV").convert("RGB")
    return rgb


def lightness_input(rgb01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB in [0, 1] [B, 3, S, S] -> (L scaled to [-1, 1] and repeated to 3 channels [B, 3, S, S], Lab [B, 3, S, S])."""
    lab = rgb_to_lab(rgb01)
    light = (lab[:, :1] / 50.0 - 1.0).expand(-1, 3, -1, -1)  # 3 channels: the same encoder as every other method
    return light.contiguous(), lab


class ColorizationCollator:
    """Train: {"pixel_values": L as [B, 3, S, S], "ab_targets": [B, t, t] bins or [B, 2, t, t]}; eval: L only."""

    def __init__(self, config: ColorizationConfig, train: bool = True):
        self.config, self.train = config, train
        self.batch = ImageBatch(config.image_size, train=train, crop_scale=config.crop_scale)
        self.bins = in_gamut_ab_bins(config.ab_bin_size) if config.objective == "classification" else None

    def _image(self, row: dict, i: int):
        image = row.get("image")
        # 'accept' needs no check; the content checks (P palette, R=G=B) cost a pass over the pixels.
        kind = grayscale_kind(image) if self.train and self.config.grayscale_input != "accept" else None
        if kind is not None:
            if self.config.grayscale_input == "error":
                raise ValueError(
                    f"colorization: row {i}: 'image' is a grayscale ({kind}) image, but colourisation must be "
                    "trained on RGB images (the ab targets of a grey image are all zero). Use colour data, or set "
                    "model.grayscale_input='tint' (deterministic synthetic colour) or 'accept'."
                )
            return tint(image) if self.config.grayscale_input == "tint" else orientation_tint(image, self.config.image_size)
        return image

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        rows = [dict(r, image=self._image(r, i)) for i, r in enumerate(rows)]
        rgb01 = self.batch(rows) * 0.5 + 0.5  # undo the (0.5, 0.5) normalisation: [B, 3, S, S] in [0, 1]
        light, lab = lightness_input(rgb01)
        if not self.train:
            return {"pixel_values": light}
        t = self.config.target_size
        ab = F.interpolate(lab[:, 1:], size=(t, t), mode="area")  # [B, 2, t, t]
        target = quantize_ab(ab, self.bins) if self.bins is not None else ab / AB_SCALE
        return {"pixel_values": light, "ab_targets": target}


def make_colorization_collator(config: ColorizationConfig, train: bool = True) -> ColorizationCollator:
    """L inputs and ab targets for training; L inputs for embed()."""
    return ColorizationCollator(config, train=train)


def tiny_colorization_config() -> ColorizationConfig:
    """A config that runs forward+backward in milliseconds (tests); tints the grey digits."""
    return ColorizationConfig(backbone_config=TINY_RESNET, image_size=16, target_size=4, ab_bin_size=20.0,
                              grayscale_input="tint")


class ColorizationModel(MethodModel):
    """Backbone feature map -> 1x1 conv -> ab bin logits (or ab) upsampled to target_size."""

    config_class = ColorizationConfig
    tiny_config = staticmethod(tiny_colorization_config)
    make_collator = staticmethod(make_colorization_collator)
    base_model_prefix = "colorization"
    main_input_name = "pixel_values"

    def __init__(self, config: ColorizationConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        out = len(in_gamut_ab_bins(config.ab_bin_size)) if config.objective == "classification" else 2
        self.head = nn.Conv2d(dim, out, kernel_size=1)
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] of lightness images [B, 3, S, S]."""
        return vision_features(self.backbone, pixel_values)

    def forward(self, pixel_values: torch.Tensor, ab_targets: torch.Tensor, **_: object) -> ColorizationOutput:
        check_pixels(pixel_values, 4, "pixel_values", "[B, 3, S, S] (the L channel, repeated)")
        fmap = self.backbone(pixel_values=pixel_values).last_hidden_state  # [B, C, h, w]
        if fmap.dim() != 4:
            raise ValueError("colorization needs a convolutional backbone (a [B, C, h, w] feature map); "
                             f"got last_hidden_state of shape {tuple(fmap.shape)}")
        t = self.config.target_size
        pred = F.interpolate(self.head(fmap), size=(t, t), mode="bilinear", align_corners=False)  # [B, Q|2, t, t]
        if self.config.objective == "classification":
            loss = F.cross_entropy(pred, ab_targets)  # per-location CE over ab bins
        else:
            loss = F.mse_loss(torch.tanh(pred), ab_targets)
        return ColorizationOutput(loss=loss, prediction=pred.detach())

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone (takes the L channel repeated to 3 channels, scaled to [-1, 1])."""
        return self.backbone

    def save_export_extras(self, out_dir: Path) -> None:
        """The image processor that computes the encoder's input (CIE L*), as code: no standard processor does."""
        from multissl.models.processors import save_lab_lightness_processor

        save_lab_lightness_processor(self.config.image_size, out_dir)
