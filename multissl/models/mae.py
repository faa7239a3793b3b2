"""MAE (He et al. 2022): mask 75% of patches per sample, the ViT encoder sees only the visible ones, a light decoder
with mask tokens reconstructs the pixels of the masked patches (loss on those only)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, ViTModel
from transformers.utils import ModelOutput

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.masks import random_masking
from multissl.modalities.image.patches import patchify, unpatchify
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import config_from_dict
from multissl.models.common.vision import set_backbone_fields
from multissl.objectives import masked_reconstruction_loss

DEFAULT_VIT = {"model_type": "vit", "image_size": 32, "patch_size": 4, "num_channels": 3, "hidden_size": 128,
               "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 256,
               "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TINY_VIT = dict(DEFAULT_VIT, image_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


class MAEConfig(MethodConfig):
    """A ViT backbone config (image size comes from it), mask ratio, decoder sizes, per-patch normalised targets."""

    model_type = "multissl_mae"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, mask_ratio: float = 0.75,
                 decoder_dim: int = 64, decoder_depth: int = 1, decoder_heads: int = 4, norm_pix_loss: bool = True,
                 crop_scale: list[float] | None = (0.7, 1.0), **kwargs):
        kwargs.pop("image_size", None)  # derived from the backbone (kept in config.json for readers)
        bc = backbone_config or (None if backbone_path else DEFAULT_VIT)
        set_backbone_fields(self, bc, backbone_path, 1, default=DEFAULT_VIT)
        if self.backbone_config.get("model_type") != "vit":
            raise ValueError(f"mae needs a ViT backbone (model_type 'vit'); got {self.backbone_config.get('model_type')!r}")
        self.image_size = int(self.backbone_config.get("image_size", 224))
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1); got {mask_ratio}")
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.decoder_dim, self.decoder_depth, self.decoder_heads = decoder_dim, decoder_depth, decoder_heads
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        super().__init__(**kwargs)


@dataclass
class MAEOutput(ModelOutput):
    """loss: MSE on masked patches; pred [B, N, p*p*C] (normalised-pixel space if norm_pix_loss); mask [B, N] 1 = masked."""

    loss: torch.Tensor | None = None
    pred: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class MAECollator:
    """{"pixel_values": [B, 3, S, S]} with light random crops (masking happens in forward, from `noise` or the RNG)."""

    def __init__(self, config: MAEConfig):
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.batch(rows)}


def make_mae_collator(config: MAEConfig, train: bool = True):
    """Images for training (masked inside forward); plain resized images for embed()."""
    return MAECollator(config) if train else EvalImageCollator(config.image_size)


def tiny_mae_config() -> MAEConfig:
    """A config that runs forward+backward in milliseconds (tests)."""
    return MAEConfig(backbone_config=TINY_VIT, decoder_dim=16, decoder_depth=1, decoder_heads=2)


class MAEModel(MethodModel):
    """HF ViTModel encoder (run on visible tokens only) + small Transformer decoder predicting patch pixels."""

    config_class = MAEConfig
    tiny_config = staticmethod(tiny_mae_config)
    make_collator = staticmethod(make_mae_collator)
    base_model_prefix = "mae"
    main_input_name = "pixel_values"

    def __init__(self, config: MAEConfig):
        super().__init__(config)
        vit_cfg = config_from_dict(config.backbone_config)
        self.backbone = ViTModel(vit_cfg, add_pooling_layer=False)  # no pooler: MAE never trains one
        self.patch_size, self.channels = vit_cfg.patch_size, vit_cfg.num_channels
        n = (vit_cfg.image_size // vit_cfg.patch_size) ** 2
        d = config.decoder_dim
        self.decoder_embed = nn.Linear(vit_cfg.hidden_size, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d).normal_(std=0.02))
        self.decoder_pos = nn.Parameter(torch.zeros(1, n + 1, d).normal_(std=0.02))
        self.decoder_layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, config.decoder_heads, 4 * d, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(config.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(d)
        self.decoder_pred = nn.Linear(d, self.patch_size ** 2 * self.channels)
        self.post_init()

    def encode_visible(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None,
                       mask_ratio: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ViT on the kept patches only: (latent [B, 1+K, H] incl. CLS, mask [B, N], ids_restore [B, N])."""
        emb = self.backbone.embeddings
        x = emb.patch_embeddings(pixel_values)  # [B, N, H]
        x = x + emb.position_embeddings[:, 1:]  # positions before masking: kept tokens keep their place
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        x, mask, ids_restore = random_masking(x, ratio, noise=noise)  # [B, K, H]
        cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(x.shape[0], -1, -1)
        h = emb.dropout(torch.cat([cls, x], dim=1))  # [B, 1+K, H]
        for layer in self.backbone.layers:
            h = layer(h)
        return self.backbone.layernorm(h), mask, ids_restore

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Latent [B, 1+K, H] + mask tokens -> per-patch pixel predictions [B, N, p*p*C]."""
        x = self.decoder_embed(latent)  # [B, 1+K, d]
        b, n = ids_restore.shape
        masks = self.mask_token.expand(b, n + 1 - x.shape[1], -1)  # [B, N-K, d]
        patches = torch.cat([x[:, 1:], masks], dim=1)  # kept first, then masked (shuffled order)
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))  # back to patch order
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos  # [B, 1+N, d]
        for layer in self.decoder_layers:
            x = layer(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # drop CLS: [B, N, p*p*C]

    def targets(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch pixels [B, N, p*p*C], per-patch normalised (mean 0, var 1) when norm_pix_loss."""
        target = patchify(pixel_values, self.patch_size)
        if self.config.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None, **_: object) -> MAEOutput:
        if pixel_values.dim() != 4:
            raise ValueError(f"pixel_values must be [B, C, S, S]; got {tuple(pixel_values.shape)}")
        latent, mask, ids_restore = self.encode_visible(pixel_values, noise)
        pred = self.decode(latent, ids_restore)  # [B, N, P]
        loss = masked_reconstruction_loss(pred, self.targets(pixel_values), mask)
        return MAEOutput(loss=loss, pred=pred.detach(), mask=mask)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Mean of the encoder's patch tokens [B, H] on the full (unmasked) image."""
        return self.backbone(pixel_values=pixel_values).last_hidden_state[:, 1:].mean(1)

    @torch.no_grad()
    def reconstruct(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked input, reconstruction with visible patches pasted back), both [B, C, S, S] in input space."""
        latent, mask, ids_restore = self.encode_visible(pixel_values, noise)
        pred = self.decode(latent, ids_restore)
        target = patchify(pixel_values, self.patch_size)
        if self.config.norm_pix_loss:  # undo the per-patch normalisation with the true patch statistics
            pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
        m = mask[..., None]
        masked = unpatchify(target * (1 - m), self.patch_size, self.channels)
        recon = unpatchify(target * (1 - m) + pred * m, self.patch_size, self.channels)
        return masked, recon

    def on_train_end(self, output_dir: str | Path, batch: dict) -> Path:
        """Save reconstructions.png (rows: original / masked / reconstruction) for up to 8 images of `batch`."""
        from multissl.modalities.image.recon_grid import save_reconstruction_grid

        was_training = self.training
        self.eval()
        images = batch["pixel_values"][:8]
        masked, recon = self.reconstruct(images)
        self.train(was_training)
        return save_reconstruction_grid([images, masked, recon], Path(output_dir) / "reconstructions.png")

    def encoder_for_export(self) -> PreTrainedModel:
        """A plain HF ViTModel: the encoder, with an identity pooler (pooler_output = the CLS state; MAE trains no
        pooler, and ViTModel always builds one, so a missing one would load as random weights). `embed` is the mean of
        last_hidden_state[:, 1:] (the patch tokens)."""
        from multissl.models.export import vit_with_identity_pooler

        return vit_with_identity_pooler(self.backbone)
