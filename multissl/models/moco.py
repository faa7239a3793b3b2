"""MoCo v2 (He et al. 2020; Chen et al. 2020): momentum key encoder, FIFO queue of negatives, MLP head, InfoNCE."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.views import DeviceViews, ImageViewsCollator, views_from
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.ema import ema_update, make_teacher
from multissl.models.common.queue import KeyQueue
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, mlp, set_backbone_fields
from multissl.objectives import info_nce


class MoCoConfig(MethodConfig):
    """Queue size (independent of the batch; must be divisible by the global batch), key momentum, InfoNCE temperature
    (`loss_temperature`: transformers reserves `temperature` for generation), MLP head."""

    model_type = "multissl_moco"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 projection_hidden_dim: int = 256, projection_dim: int = 64, queue_size: int = 4096,
                 momentum: float = 0.999, loss_temperature: float = 0.2, symmetric: bool = False,
                 gather_distributed: bool = True, augment: dict | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        self.projection_hidden_dim, self.projection_dim = projection_hidden_dim, projection_dim
        self.queue_size, self.momentum, self.loss_temperature = queue_size, momentum, loss_temperature
        self.symmetric, self.gather_distributed = symmetric, gather_distributed
        self.augment = dict(augment or {})
        super().__init__(**kwargs)


@dataclass
class MoCoOutput(ModelOutput):
    """loss: InfoNCE of queries vs their keys and the queue; pos_similarity: mean cos(q, k)."""

    loss: torch.Tensor | None = None
    pos_similarity: torch.Tensor | None = None


def make_moco_collator(config: MoCoConfig, train: bool = True) -> ImageViewsCollator:
    """Two SimCLR-style views per image (MoCo v2's 'aug+') for training, one resized image for evaluation."""
    return ImageViewsCollator(config.image_size, config.augment, num_views=2, train=train)


def tiny_moco_config() -> MoCoConfig:
    """A config that runs forward+backward in milliseconds (tests); queue of 16 (divisible by the test batch of 4)."""
    return MoCoConfig(backbone_config=TINY_RESNET, image_size=16, projection_hidden_dim=16, projection_dim=8,
                      queue_size=16, momentum=0.99)


class MoCoModel(MethodModel):
    """Query encoder (backbone + MLP head), EMA key encoder, queue; forward(pixel_values [B, 2, 3, S, S])."""

    config_class = MoCoConfig
    tiny_config = staticmethod(tiny_moco_config)
    make_collator = staticmethod(make_moco_collator)
    base_model_prefix = "moco"
    main_input_name = "pixel_values"

    def __init__(self, config: MoCoConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.projection = mlp(dim, config.projection_hidden_dim, config.projection_dim, batch_norm=False)
        self.key_backbone = make_teacher(self.backbone)
        self.key_projection = make_teacher(self.projection)
        self.queue = KeyQueue(config.queue_size, config.projection_dim)
        self.post_init()
        self._sync_keys()

    @torch.no_grad()
    def _sync_keys(self) -> None:
        """Key encoder starts as an exact copy of the query encoder (post_init may have re-drawn its weights)."""
        ema_update(self.key_backbone, self.backbone, 0.0, copy_buffers=True)
        ema_update(self.key_projection, self.projection, 0.0)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Query-backbone features [B, D] (the head is discarded downstream)."""
        return vision_features(self.backbone, pixel_values)

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.embed(x)), dim=-1)  # [B, P]

    @torch.no_grad()
    def _key(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_projection(vision_features(self.key_backbone, x)), dim=-1)  # [B, P]

    def _device_views(self) -> DeviceViews:
        """augment.backend: device: the view policy on the model's device (cached; not a module, not saved)."""
        if getattr(self, "_views", None) is None:
            self._views = DeviceViews(self.config.image_size, self.config.augment, num_views=2)
        return self._views

    def forward(self, pixel_values: torch.Tensor | None = None, images: torch.Tensor | None = None,
                **_: object) -> MoCoOutput:
        pixel_values = views_from(pixel_values, images, self._device_views)  # [B, 2, C, H, W]
        check_pixels(pixel_values, 5, "pixel_values", "[B, 2, C, H, W] (two views)")
        v1, v2 = pixel_values[:, 0], pixel_values[:, 1]
        negatives = self.queue.negatives()  # snapshot: enqueueing below must not touch the autograd graph
        q1, k2 = self._query(v1), self._key(v2)
        loss = info_nce(q1, k2, negative_keys=negatives, temperature=self.config.loss_temperature, normalize=False)
        keys = [k2]
        if self.config.symmetric:
            q2, k1 = self._query(v2), self._key(v1)
            loss = 0.5 * (loss + info_nce(q2, k1, negative_keys=negatives, temperature=self.config.loss_temperature,
                                          normalize=False))
            keys.append(k1)
        if self.training:
            for k in keys:
                self.queue.enqueue(k, gather_distributed=self.config.gather_distributed)
        pos = (q1 * k2).sum(-1).mean().detach()
        return MoCoOutput(loss=loss, pos_similarity=pos)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """After each optimizer step: key encoder <- EMA of the query encoder (constant momentum, as MoCo)."""
        ema_update(self.key_backbone, self.backbone, self.config.momentum)
        ema_update(self.key_projection, self.projection, self.config.momentum)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone (query encoder)."""
        return self.backbone
