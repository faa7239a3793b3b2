"""Inpainting / context encoder (Pathak et al. 2016): hide a square region, reconstruct its pixels from the context."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from multissl.models._backbones import vision_features
from multissl.models._vision_common import (TINY_RESNET, EvalImageCollator, backbone_and_dim, check_pixels,
                                            set_backbone_fields)
from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.masks import inpainting_mask
from multissl.objectives import masked_reconstruction_loss
from multissl.registry import register_method


class InpaintingConfig(PretrainedConfig):
    """Hole type ('center' | 'random_block') and size (fraction of the side), decoder width.

    The adversarial term of the paper is not implemented: the loss is the L2 reconstruction of the hidden pixels only.
    """

    model_type = "multissl_inpainting"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 mask_type: str = "random_block", mask_fraction: float = 0.5, decoder_hidden_dim: int = 256,
                 crop_scale: list[float] | None = (0.7, 1.0), **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        self.mask_type, self.mask_fraction, self.decoder_hidden_dim = mask_type, mask_fraction, decoder_hidden_dim
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)


@dataclass
class InpaintingOutput(ModelOutput):
    """loss: mean squared error on the hidden pixels; reconstruction: the predicted image [B, 3, S, S]."""

    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None


class InpaintingCollator:
    """Train batch: {"pixel_values": [B, 3, S, S] (intact), "inpaint_mask": [B, S, S] (1 = hidden)}."""

    def __init__(self, config: InpaintingConfig):
        self.config = config
        inpainting_mask(1, config.image_size, config.mask_type, config.mask_fraction)  # validate once, early
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        pixels = self.batch(rows)
        c = self.config
        mask = inpainting_mask(pixels.shape[0], c.image_size, c.mask_type, c.mask_fraction, generator=generator)
        return {"pixel_values": pixels, "inpaint_mask": mask}


def make_inpainting_collator(config: InpaintingConfig, train: bool = True):
    """Images + hole masks for training; plain resized images for embed()."""
    return InpaintingCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_inpainting_config() -> InpaintingConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return InpaintingConfig(backbone_config=TINY_RESNET, image_size=16, decoder_hidden_dim=16)


@register_method("inpainting", config_class=InpaintingConfig, make_collator=make_inpainting_collator,
                 tiny_config=tiny_inpainting_config, modality="image", default_dataset="digits",
                 description="Context encoder: hide a square region, reconstruct its pixels (loss on the hole only)")
class InpaintingModel(PreTrainedModel):
    """Encoder (backbone, pooled) -> MLP decoder -> all pixels; only the hidden ones enter the loss."""

    config_class = InpaintingConfig
    base_model_prefix = "inpainting"
    main_input_name = "pixel_values"

    def __init__(self, config: InpaintingConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.channels = config.backbone_config.get("num_channels", 3)
        out = self.channels * config.image_size ** 2
        # A bottleneck through the pooled vector forces the encoder to summarise the whole context.
        self.decoder = nn.Sequential(nn.Linear(dim, config.decoder_hidden_dim), nn.ReLU(inplace=True),
                                     nn.Linear(config.decoder_hidden_dim, out))
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] of intact images [B, 3, S, S]."""
        return vision_features(self.backbone, pixel_values)

    def forward(self, pixel_values: torch.Tensor, inpaint_mask: torch.Tensor, **_: object) -> InpaintingOutput:
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, S, S]")
        b, c, s, _ = pixel_values.shape
        if inpaint_mask.shape != (b, s, s):
            raise ValueError(f"inpaint_mask must be [B, S, S] = {(b, s, s)}; got {tuple(inpaint_mask.shape)}")
        mask = inpaint_mask.to(pixel_values.dtype)
        context = pixel_values * (1.0 - mask[:, None])  # hole = 0 = the dataset mean after normalisation
        pred = self.decoder(self.embed(context)).view(b, c, s, s)  # [B, C, S, S]
        # Pixels as "patches" of C values: pred/target [B, S*S, C], mask [B, S*S].
        loss = masked_reconstruction_loss(pred.flatten(2).transpose(1, 2), pixel_values.flatten(2).transpose(1, 2),
                                          mask.flatten(1))
        return InpaintingOutput(loss=loss, reconstruction=pred.detach())

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
