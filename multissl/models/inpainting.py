"""Inpainting / context encoder (Pathak et al. 2016): hide a square region, reconstruct its pixels from the context.

Optional adversarial term (the paper's joint loss): with adversarial_weight = w > 0 a small conv discriminator is
trained in the same backward pass,
    loss = (1 - w) * rec_loss + w * adv_loss + disc_loss       (the paper: w = 0.001, i.e. 0.999 / 0.001)
where adv_loss = BCE(D(filled), real) reaches only the generator (D's parameters are detached in that call) and
disc_loss = (BCE(D(real), real) + BCE(D(filled.detach()), fake)) / 2 reaches only D (its input is detached).
"filled" is the image with the hole replaced by the prediction, so D can only tell real from fake by the hole.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.masks import inpainting_mask
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields
from multissl.objectives import masked_reconstruction_loss


class InpaintingConfig(MethodConfig):
    """Hole type ('center' | 'random_block') and size (fraction of the side), decoder width, adversarial option.

    adversarial_weight = 0 (default): L2 reconstruction of the hidden pixels only, no discriminator.
    adversarial_weight = w in (0, 1): the paper's joint loss (1 - w) * L_rec + w * L_adv (+ the discriminator's own
    loss), with a conv discriminator of width disc_hidden_dim.
    """

    model_type = "multissl_inpainting"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 mask_type: str = "random_block", mask_fraction: float = 0.5, decoder_hidden_dim: int = 256,
                 crop_scale: list[float] | None = (0.7, 1.0), adversarial_weight: float = 0.0,
                 disc_hidden_dim: int = 32, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if not 0.0 <= adversarial_weight < 1.0:
            raise ValueError(f"adversarial_weight must be in [0, 1) (the paper uses 0.001); got {adversarial_weight}")
        self.mask_type, self.mask_fraction, self.decoder_hidden_dim = mask_type, mask_fraction, decoder_hidden_dim
        self.adversarial_weight, self.disc_hidden_dim = adversarial_weight, disc_hidden_dim
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)


@dataclass
class InpaintingOutput(ModelOutput):
    """loss: the total; rec_loss: MSE on the hidden pixels; adv_loss / disc_loss (adversarial option only);
    reconstruction: the predicted image [B, C, S, S]."""

    loss: torch.Tensor | None = None
    rec_loss: torch.Tensor | None = None
    adv_loss: torch.Tensor | None = None
    disc_loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None


class Discriminator(nn.Module):
    """Small conv net (two stride-2 convs, global pooling, linear): images [B, C, S, S] -> real/fake logits [B]."""

    def __init__(self, channels: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden_dim, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(hidden_dim, 2 * hidden_dim, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * hidden_dim, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, S, S] -> logits [B] (> 0: real)."""
        return self.net(images).squeeze(-1)


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
    """A config that runs forward+backward in milliseconds (tests); includes the adversarial term so it is tested too."""
    return InpaintingConfig(backbone_config=TINY_RESNET, image_size=16, decoder_hidden_dim=16, adversarial_weight=0.001,
                            disc_hidden_dim=8)


class InpaintingModel(MethodModel):
    """Encoder (backbone, pooled) -> MLP decoder -> all pixels; only the hidden ones enter the loss."""

    config_class = InpaintingConfig
    tiny_config = staticmethod(tiny_inpainting_config)
    make_collator = staticmethod(make_inpainting_collator)
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
        # Built only when used: with weight 0 the checkpoint and the parameter list are those of the plain encoder.
        self.discriminator = Discriminator(self.channels, config.disc_hidden_dim) if config.adversarial_weight > 0 else None
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
        rec = masked_reconstruction_loss(pred.flatten(2).transpose(1, 2), pixel_values.flatten(2).transpose(1, 2),
                                         mask.flatten(1))
        if self.discriminator is None:
            return InpaintingOutput(loss=rec, rec_loss=rec.detach(), reconstruction=pred.detach())
        w = self.config.adversarial_weight
        filled = context + pred * mask[:, None]  # the real context with the hole filled in: [B, C, S, S]
        adv, disc = self._adversarial_terms(pixel_values, filled)
        loss = (1.0 - w) * rec + w * adv + disc
        return InpaintingOutput(loss=loss, rec_loss=rec.detach(), adv_loss=adv.detach(), disc_loss=disc.detach(),
                                reconstruction=pred.detach())

    def _adversarial_terms(self, real: torch.Tensor, filled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator adv_loss, discriminator disc_loss) for real and filled images [B, C, S, S]; scalars."""
        # Generator term through a copy of D whose parameters are detached: it moves the generator only, so the
        # one backward pass cannot also push D towards calling fakes real.
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        fake_logits = functional_call(self.discriminator, frozen, (filled,))  # [B]
        adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))  # non-saturating
        # Discriminator term on detached fakes: it moves D only.
        logits = self.discriminator(torch.cat([real, filled.detach()]))  # [2B]
        labels = torch.cat([torch.ones_like(fake_logits), torch.zeros_like(fake_logits)])
        disc = F.binary_cross_entropy_with_logits(logits, labels)  # mean over 2B = (real term + fake term) / 2
        return adv, disc

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
