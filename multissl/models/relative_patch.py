"""Relative patch location (Doersch et al. 2015): centre patch + one of its 8 neighbours (gaps, jitter), 8-way head."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.patches import check_grid, relative_patch_pairs
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields

NUM_POSITIONS = 8


class RelativePatchConfig(MethodConfig):
    """Image size (cut into a 3x3 grid), gap (min blank pixels between neighbouring patches), jitter, head width.

    A patch is (image_size // 3) - 2 * gap pixels, so the jittered centre and neighbour never touch.
    """

    model_type = "multissl_relative_patch"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 48,
                 gap: int = 2, jitter: bool = True, head_hidden_dim: int = 256,
                 crop_scale: list[float] | None = (0.7, 1.0), **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        self.gap, self.jitter, self.head_hidden_dim = gap, jitter, head_hidden_dim
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)

    @property
    def patch_size(self) -> int:
        """Side of one patch in pixels, cell - 2 * gap (raises when the image is too small for the 3x3 grid)."""
        return check_grid(self.image_size, 3, self.gap)


@dataclass
class RelativePatchOutput(ModelOutput):
    """loss: 8-way cross-entropy on the neighbour's position; accuracy of that prediction."""

    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class RelativePatchCollator:
    """Train batch: {"patches": [B, 2, 3, t, t] (centre, neighbour), "position_labels": [B] in 0..7}."""

    def __init__(self, config: RelativePatchConfig):
        config.patch_size  # noqa: B018 - validate the grid before any data is read
        self.config = config
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        centre, neighbour, labels = relative_patch_pairs(self.batch(rows), self.config.gap, self.config.jitter, generator)
        return {"patches": torch.stack([centre, neighbour], dim=1), "position_labels": labels}


def make_relative_patch_collator(config: RelativePatchConfig, train: bool = True):
    """Patch pairs for training; plain resized images for embed()."""
    return RelativePatchCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_relative_patch_config() -> RelativePatchConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return RelativePatchConfig(backbone_config=TINY_RESNET, image_size=18, gap=1, head_hidden_dim=16)


class RelativePatchModel(MethodModel):
    """Shared patch encoder; concat(centre, neighbour) features -> MLP -> 8 position logits."""

    config_class = RelativePatchConfig
    tiny_config = staticmethod(tiny_relative_patch_config)
    make_collator = staticmethod(make_relative_patch_collator)
    base_model_prefix = "relative_patch"
    main_input_name = "patches"

    def __init__(self, config: RelativePatchConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config, probe_size=config.patch_size)
        h = config.head_hidden_dim
        self.classifier = nn.Sequential(nn.Linear(2 * dim, h), nn.ReLU(inplace=True), nn.Linear(h, NUM_POSITIONS))
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] of whole images [B, 3, S, S]."""
        return vision_features(self.backbone, pixel_values)

    def forward(self, patches: torch.Tensor, position_labels: torch.Tensor, **_: object) -> RelativePatchOutput:
        check_pixels(patches, 5, "patches", "[B, 2, C, t, t] (centre patch, neighbour patch)")
        b = patches.shape[0]
        h = vision_features(self.backbone, patches.flatten(0, 1)).view(b, -1)  # both patches, shared weights: [B, 2D]
        logits = self.classifier(h)  # [B, 8]
        loss = F.cross_entropy(logits, position_labels)
        acc = (logits.argmax(-1) == position_labels).float().mean().detach()
        return RelativePatchOutput(loss=loss, accuracy=acc, logits=logits)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
