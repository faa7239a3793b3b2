"""BYOL (Grill et al. 2020): online network + predictor, EMA target (cosine momentum base -> 1), symmetric negative cosine."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.views import DeviceViews, ImageViewsCollator, views_from
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.ema import ema_update, make_teacher
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, mlp, set_backbone_fields
from multissl.objectives.distillation import byol_loss
from multissl.schedules import cosine_ramp


class BYOLConfig(MethodConfig):
    """Projector/predictor sizes, the target momentum schedule (cosine from base_momentum to 1) and the predictor's
    learning-rate multiplier (BYOL's appendix and SimSiam train the predictor faster than the rest)."""

    model_type = "multissl_byol"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 projection_hidden_dim: int = 256, projection_dim: int = 64, predictor_hidden_dim: int = 256,
                 base_momentum: float = 0.996, predictor_lr_scale: float = 1.0, augment: dict | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if not predictor_lr_scale > 0:
            raise ValueError(f"predictor_lr_scale must be > 0 (the predictor's lr = learning_rate x it); got {predictor_lr_scale}")
        self.predictor_lr_scale = float(predictor_lr_scale)
        self.projection_hidden_dim, self.projection_dim = projection_hidden_dim, projection_dim
        self.predictor_hidden_dim, self.base_momentum = predictor_hidden_dim, base_momentum
        self.augment = dict(augment or {})
        super().__init__(**kwargs)


@dataclass
class BYOLOutput(ModelOutput):
    """loss: symmetrised negative cosine (in [-2, 2]; -2 = perfect); embedding std to watch for collapse."""

    loss: torch.Tensor | None = None
    projection_std: torch.Tensor | None = None


def make_byol_collator(config: BYOLConfig, train: bool = True) -> ImageViewsCollator:
    """Two augmented views per image for training, one resized image for evaluation."""
    return ImageViewsCollator(config.image_size, config.augment, num_views=2, train=train)


def tiny_byol_config() -> BYOLConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return BYOLConfig(backbone_config=TINY_RESNET, image_size=16, projection_hidden_dim=16, projection_dim=8,
                      predictor_hidden_dim=16)


class BYOLModel(MethodModel):
    """Online (backbone, projector, predictor) and target (EMA backbone, projector); forward(pixel_values [B, 2, 3, S, S])."""

    config_class = BYOLConfig
    tiny_config = staticmethod(tiny_byol_config)
    make_collator = staticmethod(make_byol_collator)
    base_model_prefix = "byol"
    main_input_name = "pixel_values"

    def __init__(self, config: BYOLConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.projector = mlp(dim, config.projection_hidden_dim, config.projection_dim)
        self.predictor = mlp(config.projection_dim, config.predictor_hidden_dim, config.projection_dim)
        self.target_backbone = make_teacher(self.backbone)
        self.target_projector = make_teacher(self.projector)
        self.post_init()
        self._sync_target()

    @torch.no_grad()
    def _sync_target(self) -> None:
        """The target starts as an exact copy of the online network."""
        ema_update(self.target_backbone, self.backbone, 0.0, copy_buffers=True)
        ema_update(self.target_projector, self.projector, 0.0, copy_buffers=True)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Online backbone features y [B, D]."""
        return vision_features(self.backbone, pixel_values)

    def _device_views(self) -> DeviceViews:
        """augment.backend: device: the view policy on the model's device (cached; not a module, not saved)."""
        if getattr(self, "_views", None) is None:
            self._views = DeviceViews(self.config.image_size, self.config.augment, num_views=2)
        return self._views

    def forward(self, pixel_values: torch.Tensor | None = None, images: torch.Tensor | None = None,
                **_: object) -> BYOLOutput:
        pixel_values = views_from(pixel_values, images, self._device_views)  # [B, 2, C, H, W]
        check_pixels(pixel_values, 5, "pixel_values", "[B, 2, C, H, W] (two views)")
        b = pixel_values.shape[0]
        views = torch.cat([pixel_values[:, 0], pixel_values[:, 1]])  # [2B, C, H, W]: both views in one pass
        z = self.projector(self.embed(views))  # [2B, P]
        p = self.predictor(z)  # [2B, P]
        with torch.no_grad():
            t = self.target_projector(vision_features(self.target_backbone, views))  # [2B, P]
        # Symmetric: view 1 predicts the target of view 2 and vice versa (the target halves are swapped).
        loss = byol_loss(p[:b], t[b:]) + byol_loss(p[b:], t[:b])
        std = nn.functional.normalize(z.detach(), dim=-1).std(0).mean()
        return BYOLOutput(loss=loss, projection_std=std)

    def lr_scales(self) -> dict[str, float]:
        """The predictor trains at learning_rate x predictor_lr_scale (same schedule; 1 = the shared groups)."""
        return {"predictor.": self.config.predictor_lr_scale}

    def on_step_end(self, step: int, max_steps: int) -> None:
        """After each optimizer step: target <- EMA of online with momentum cosine_ramp(base -> 1)."""
        m = cosine_ramp(step, max_steps, self.config.base_momentum, 1.0)
        ema_update(self.target_backbone, self.backbone, m)
        ema_update(self.target_projector, self.projector, m)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone (online)."""
        return self.backbone
