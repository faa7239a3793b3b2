"""Rotation prediction (Gidaris et al. 2018): all four rotations of each image in the batch, 4-way classifier."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.rotation import NUM_ROTATIONS, four_rotations
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields


class RotationConfig(MethodConfig):
    """Backbone (any HF vision config dict), image size, classifier hidden width (0 = linear head), crop scale."""

    model_type = "multissl_rotation"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 head_hidden_dim: int = 0, crop_scale: list[float] | None = (0.6, 1.0), **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        self.head_hidden_dim = head_hidden_dim
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)


@dataclass
class RotationOutput(ModelOutput):
    """loss: 4-way cross-entropy; accuracy: fraction of rotations recognised."""

    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class RotationCollator:
    """Train: {"pixel_values": [B, 4, 3, S, S], "rotation_labels": [B, 4]}; eval: {"pixel_values": [B, 3, S, S]}."""

    def __init__(self, config: RotationConfig):
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        rotated, labels = four_rotations(self.batch(rows))
        return {"pixel_values": rotated, "rotation_labels": labels}


def make_rotation_collator(config: RotationConfig, train: bool = True):
    """All four rotations for training; plain resized images for embed()."""
    return RotationCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_rotation_config() -> RotationConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return RotationConfig(backbone_config=TINY_RESNET, image_size=16, head_hidden_dim=8)


class RotationModel(MethodModel):
    """Backbone + rotation classifier; forward(pixel_values [B, 4, 3, S, S], rotation_labels [B, 4]) -> CE loss."""

    config_class = RotationConfig
    tiny_config = staticmethod(tiny_rotation_config)
    make_collator = staticmethod(make_rotation_collator)
    base_model_prefix = "rotation"
    main_input_name = "pixel_values"

    def __init__(self, config: RotationConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        h = config.head_hidden_dim
        self.classifier = (nn.Sequential(nn.Linear(dim, h), nn.ReLU(inplace=True), nn.Linear(h, NUM_ROTATIONS))
                           if h else nn.Linear(dim, NUM_ROTATIONS))
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] of upright images [B, 3, S, S]."""
        return vision_features(self.backbone, pixel_values)

    def forward(self, pixel_values: torch.Tensor, rotation_labels: torch.Tensor | None = None, **_: object) -> RotationOutput:
        check_pixels(pixel_values, 5, "pixel_values", "[B, 4, C, H, W] (the four rotations of each image)")
        b, r = pixel_values.shape[:2]
        if rotation_labels is None:  # the collator's layout: view k is rotated by k*90 degrees
            rotation_labels = torch.arange(r, device=pixel_values.device).expand(b, r)
        logits = self.classifier(self.embed(pixel_values.flatten(0, 1)))  # [B*4, 4]
        labels = rotation_labels.reshape(-1)  # [B*4]
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean().detach()
        return RotationOutput(loss=loss, accuracy=acc, logits=logits)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
