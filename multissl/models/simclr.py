"""SimCLR (Chen et al. 2020): two augmented views, any HF vision backbone, MLP projection head, NT-Xent."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.views import DeviceViews, ImageViewsCollator, views_from
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, mlp, set_backbone_fields
from multissl.objectives import nt_xent


class SimCLRConfig(MethodConfig):
    """SimCLR hyper-parameters; `backbone_config` is any HF vision config as a dict (model_type required)."""

    model_type = "multissl_simclr"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 projection_hidden_dim: int = 256, projection_dim: int = 64, loss_temperature: float = 0.5,
                 gather_distributed: bool = True, augment: dict | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
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


def make_simclr_collator(config: SimCLRConfig, train: bool = True) -> ImageViewsCollator:
    """Two SimCLR views per image for training, one resized image for evaluation."""
    return ImageViewsCollator(config.image_size, config.augment, num_views=2, train=train)


def tiny_simclr_config() -> SimCLRConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return SimCLRConfig(backbone_config=TINY_RESNET, image_size=16, projection_hidden_dim=16, projection_dim=8)


class SimCLRModel(MethodModel):
    """Backbone f (any HF vision model) + projection g; forward(pixel_values [B, 2, 3, S, S]) -> NT-Xent loss."""

    config_class = SimCLRConfig
    tiny_config = staticmethod(tiny_simclr_config)
    make_collator = staticmethod(make_simclr_collator)
    base_model_prefix = "simclr"
    main_input_name = "pixel_values"

    def __init__(self, config: SimCLRConfig):
        super().__init__(config)
        self.backbone, feat_dim = backbone_and_dim(config)
        self.projection = mlp(feat_dim, config.projection_hidden_dim, config.projection_dim)  # g(.): Linear-BN-ReLU-Linear
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features h [B, D] (what downstream tasks use; the projection is thrown away)."""
        return vision_features(self.backbone, pixel_values)

    def _device_views(self) -> DeviceViews:
        """augment.backend: device: the view policy on the model's device (cached; not a module, not saved)."""
        if getattr(self, "_views", None) is None:
            self._views = DeviceViews(self.config.image_size, self.config.augment, num_views=2)
        return self._views

    def forward(self, pixel_values: torch.Tensor | None = None, images: torch.Tensor | None = None,
                **_: object) -> SimCLROutput:
        pixel_values = views_from(pixel_values, images, self._device_views)  # [B, 2, C, H, W]
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
