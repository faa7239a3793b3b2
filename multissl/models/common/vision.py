"""Pieces the vision SSL methods share: backbone fields of their configs, heads, and the eval collator."""
from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from multissl.models.common.backbones import build_backbone, infer_feature_dim, resolve_backbone_config

# The same small ResNet SimCLR uses (so every method in the results table has the same encoder).
DEFAULT_RESNET = {
    "model_type": "resnet", "num_channels": 3, "embedding_size": 32, "hidden_sizes": [32, 64, 128],
    "depths": [1, 1, 1], "layer_type": "basic", "downsample_in_first_stage": False,
}
TINY_RESNET = dict(DEFAULT_RESNET, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])


def set_backbone_fields(config, backbone_config: dict | None, backbone_path: str | None, image_size: int,
                        default: dict = DEFAULT_RESNET) -> None:
    """Store backbone_config (a plain dict with model_type), backbone_path and image_size on a method config."""
    config.backbone_config = resolve_backbone_config(backbone_config, backbone_path, default)
    config.backbone_path = backbone_path
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1; got {image_size}")
    config.image_size = image_size


def backbone_and_dim(config, probe_size: int | None = None) -> tuple[PreTrainedModel, int]:
    """The randomly initialised HF backbone of `config` and the width D of its pooled features."""
    backbone = build_backbone(config.backbone_config)
    size = probe_size or config.image_size
    return backbone, infer_feature_dim(backbone, size, config.backbone_config.get("num_channels", 3))


def mlp(in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True) -> nn.Sequential:
    """Linear -> [BN] -> ReLU -> Linear: the projection/prediction head of SimCLR, MoCo v2, BYOL."""
    norm = nn.BatchNorm1d(hidden_dim) if batch_norm else nn.Identity()
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), norm, nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


def check_pixels(pixel_values: torch.Tensor, dims: int, name: str, shape_doc: str) -> None:
    """Raise a clear error when a forward input does not have the documented rank."""
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != dims:
        got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"{name} must be {shape_doc}; got {got}")
