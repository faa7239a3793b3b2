"""SimCLR (Chen et al. 2020): two augmented views, any HF vision backbone, MLP projection head, NT-Xent."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from multissl.models._backbones import build_backbone, infer_feature_dim, resolve_backbone_config, vision_features
from multissl.modalities.image.transforms import SimCLRAugment, eval_transform, to_rgb
from multissl.objectives import nt_xent
from multissl.registry import register_method

# A small ResNet that trains on one CPU core in minutes on 32x32 images.
DEFAULT_VISION_BACKBONE = {
    "model_type": "resnet", "num_channels": 3, "embedding_size": 32, "hidden_sizes": [32, 64, 128],
    "depths": [1, 1, 1], "layer_type": "basic", "downsample_in_first_stage": False,
}


class SimCLRConfig(PretrainedConfig):
    """SimCLR hyper-parameters; `backbone_config` is any HF vision config as a dict (model_type required)."""

    model_type = "multissl_simclr"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 projection_hidden_dim: int = 256, projection_dim: int = 64, loss_temperature: float = 0.5,
                 gather_distributed: bool = True, augment: dict | None = None, **kwargs):
        self.backbone_config = resolve_backbone_config(backbone_config, backbone_path, DEFAULT_VISION_BACKBONE)
        self.backbone_path = backbone_path
        self.image_size = image_size
        self.projection_hidden_dim = projection_hidden_dim
        self.projection_dim = projection_dim
        self.loss_temperature = loss_temperature
        self.gather_distributed = gather_distributed
        self.augment = dict(augment or {})
        super().__init__(**kwargs)


@dataclass
class SimCLROutput(ModelOutput):
    """loss: NT-Xent; pos_similarity: mean cosine of the two views' projections (a collapse/learning signal)."""

    loss: torch.Tensor | None = None
    pos_similarity: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR's g(.): Linear -> BN -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class ImageViewsCollator:
    """Rows with `image` -> {"pixel_values": [B, V, 3, S, S]} (V augmented views) or [B, 3, S, S] for eval."""

    def __init__(self, image_size: int, augment: dict | None = None, num_views: int = 2, train: bool = True):
        valid = {f.name for f in fields(SimCLRAugment)} - {"image_size"}
        unknown = set(augment or {}) - valid
        if unknown:
            raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; allowed: {sorted(valid)}")
        self.train, self.num_views = train, num_views
        self.transform = SimCLRAugment(image_size=image_size, **(augment or {})).build() if train else eval_transform(image_size)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        images = [to_rgb(r.get("image"), field=f"row {i}: 'image'") for i, r in enumerate(rows)]
        if not self.train:
            return {"pixel_values": torch.stack([self.transform(im) for im in images])}
        views = [torch.stack([self.transform(im) for _ in range(self.num_views)]) for im in images]
        return {"pixel_values": torch.stack(views)}  # [B, V, 3, S, S]


def make_simclr_collator(config: SimCLRConfig, train: bool = True) -> ImageViewsCollator:
    """Two SimCLR views per image for training, one resized image for evaluation."""
    return ImageViewsCollator(config.image_size, config.augment, num_views=2, train=train)


def tiny_simclr_config() -> SimCLRConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    backbone = dict(DEFAULT_VISION_BACKBONE, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    return SimCLRConfig(backbone_config=backbone, image_size=16, projection_hidden_dim=16, projection_dim=8)


@register_method("simclr", config_class=SimCLRConfig, make_collator=make_simclr_collator, tiny_config=tiny_simclr_config,
                 modality="image", description="SimCLR: two augmented views, MLP projection head, NT-Xent", default_dataset="digits")
class SimCLRModel(PreTrainedModel):
    """Backbone f (any HF vision model) + projection g; forward(pixel_values [B, 2, 3, S, S]) -> NT-Xent loss."""

    config_class = SimCLRConfig
    base_model_prefix = "simclr"
    main_input_name = "pixel_values"

    def __init__(self, config: SimCLRConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        feat_dim = infer_feature_dim(self.backbone, config.image_size, config.backbone_config.get("num_channels", 3))
        self.projection = projection_head(feat_dim, config.projection_hidden_dim, config.projection_dim)
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features h [B, D] (what downstream tasks use; the projection is thrown away)."""
        return vision_features(self.backbone, pixel_values)

    def forward(self, pixel_values: torch.Tensor, **_: object) -> SimCLROutput:
        if pixel_values.dim() != 5 or pixel_values.shape[1] != 2:
            raise ValueError(f"pixel_values must be [B, 2, C, H, W] (two views); got {tuple(pixel_values.shape)}")
        b = pixel_values.shape[0]
        h = self.embed(pixel_values.flatten(0, 1))  # both views in one pass: [2B, D]
        z = self.projection(h).view(b, 2, -1)  # [B, 2, P]
        loss = nt_xent(z[:, 0], z[:, 1], temperature=self.config.loss_temperature, gather_distributed=self.config.gather_distributed)
        pos = nn.functional.cosine_similarity(z[:, 0], z[:, 1], dim=-1).mean().detach()
        return SimCLROutput(loss=loss, pos_similarity=pos, embeddings=h.view(b, 2, -1)[:, 0])

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
