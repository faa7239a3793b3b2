"""CLIP (Radford et al. 2021): a dual encoder from any HF vision + any HF text backbone, symmetric contrastive loss.

Locked towers give LiT (Zhai et al. 2022): a frozen pretrained tower that the other one learns to match.
The forward signature and outputs follow transformers' CLIPModel, so the `zero-shot-image-classification`
pipeline runs a trained multissl model as is.
"""
from __future__ import annotations

import copy
import inspect
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from multissl.modalities.image_text import ImageCaptionCollator
from multissl.modalities.text.sentences import load_tokenizer
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import (
    build_backbone,
    infer_feature_dim,
    load_pretrained_backbone,
    resolve_backbone_config,
    text_features,
    vision_features,
)
from multissl.models.common.vision import DEFAULT_RESNET, TINY_RESNET
from multissl.objectives import clip_loss
from multissl.paths import MINILM

TEXT_POOLERS = ("avg", "cls")
TINY_BERT = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64}


class ClipConfig(MethodConfig):
    """CLIP settings: two backbones (config dicts with model_type, or local folders), projection, loss scale, locks."""

    model_type = "multissl_clip"

    def __init__(self, vision_backbone_config: dict | None = None, vision_backbone_path: str | None = None,
                 text_backbone_config: dict | None = None, text_backbone_path: str | None = None,
                 tokenizer_path: str | None = None, image_size: int = 32, projection_dim: int = 128,
                 text_pooler: str = "avg", max_seq_length: int = 32,
                 logit_scale_init_value: float = math.log(1 / 0.07), max_logit_scale: float = 100.0,
                 lock_image_tower: bool = False, lock_text_tower: bool = False, gather_distributed: bool = True,
                 crop_scale: list[float] | None = (0.8, 1.0), caption_column: str = "caption", **kwargs):
        if text_backbone_config is None and text_backbone_path is None:
            text_backbone_path = MINILM  # offline default: the real all-MiniLM-L6-v2 from its pip package
        self.vision_backbone_config = resolve_backbone_config(vision_backbone_config, vision_backbone_path, DEFAULT_RESNET)
        self.vision_backbone_path = vision_backbone_path
        self.text_backbone_config = resolve_backbone_config(text_backbone_config, text_backbone_path, {})
        self.text_backbone_path = text_backbone_path
        self.tokenizer_path = tokenizer_path or text_backbone_path or MINILM
        if text_pooler not in TEXT_POOLERS:
            raise ValueError(f"text_pooler must be one of {TEXT_POOLERS}; got {text_pooler!r}")
        max_pos = self.text_backbone_config.get("max_position_embeddings")
        if max_seq_length < 2 or (max_pos is not None and max_seq_length > max_pos):
            raise ValueError(f"max_seq_length must be in [2, {max_pos}] (the text tower's context); got {max_seq_length}")
        if not 0 < math.exp(logit_scale_init_value) <= max_logit_scale:
            raise ValueError(f"exp(logit_scale_init_value) must be in (0, max_logit_scale={max_logit_scale}]; "
                             f"got {math.exp(logit_scale_init_value):.3g}")
        if image_size < 1 or projection_dim < 1:
            raise ValueError(f"image_size and projection_dim must be >= 1; got {image_size}, {projection_dim}")
        self.image_size, self.projection_dim, self.text_pooler = image_size, projection_dim, text_pooler
        self.max_seq_length = max_seq_length
        self.logit_scale_init_value, self.max_logit_scale = float(logit_scale_init_value), float(max_logit_scale)
        self.lock_image_tower, self.lock_text_tower = bool(lock_image_tower), bool(lock_text_tower)
        self.gather_distributed = gather_distributed
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        self.caption_column = caption_column
        super().__init__(**kwargs)


@dataclass
class ClipOutput(ModelOutput):
    """CLIPModel-compatible output; logit_scale and image_to_text_accuracy (this batch) are logged by the loop."""

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None  # [Bi, Bt]
    logits_per_text: torch.Tensor | None = None  # [Bt, Bi]
    text_embeds: torch.Tensor | None = None  # [Bt, P], L2-normalised
    image_embeds: torch.Tensor | None = None  # [Bi, P], L2-normalised
    logit_scale: torch.Tensor | None = None
    image_to_text_accuracy: torch.Tensor | None = None


def make_clip_collator(config: ClipConfig, train: bool = True) -> ImageCaptionCollator:
    """Training: images (light random crops) + tokenised captions; eval: resized images only (for embed / k-NN)."""
    return ImageCaptionCollator(config.tokenizer_path, config.image_size, config.max_seq_length, train=train,
                                crop_scale=tuple(config.crop_scale) if config.crop_scale else None,
                                caption_column=config.caption_column, include_text=train)


def make_image_processor(config: ClipConfig):
    """A transformers image processor doing what the eval collator does: RGB, resize to S x S, scale, normalise."""
    from multissl.models.processors import image_processor

    return image_processor(config.image_size)


def tiny_clip_config() -> ClipConfig:
    """Tiny ResNet + 2-layer random BERT over the MiniLM tokenizer (tests)."""
    return ClipConfig(vision_backbone_config=TINY_RESNET, text_backbone_config=TINY_BERT, tokenizer_path=MINILM,
                             image_size=16, projection_dim=8, max_seq_length=16)


class ClipModel(MethodModel):
    """Vision tower + text tower + linear projections to a shared L2-normalised space, learnable logit scale."""

    config_class = ClipConfig
    tiny_config = staticmethod(tiny_clip_config)
    make_collator = staticmethod(make_clip_collator)
    base_model_prefix = "clip"
    main_input_name = "pixel_values"

    def __init__(self, config: ClipConfig):
        super().__init__(config)
        self.vision_model = build_backbone(config.vision_backbone_config)
        vision_dim = infer_feature_dim(self.vision_model, config.image_size, config.vision_backbone_config.get("num_channels", 3))
        self.text_model = build_backbone(config.text_backbone_config)
        if getattr(self.text_model, "pooler", None) is not None:
            self.text_model.pooler.requires_grad_(False)  # we pool last_hidden_state; an unused trainable pooler breaks DDP
        self.visual_projection = nn.Linear(vision_dim, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_model.config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.post_init()
        # LiT: a locked tower has no trainable parameters and always runs in eval mode (no dropout, frozen BN stats).
        if config.lock_image_tower:
            self.vision_model.requires_grad_(False)
        if config.lock_text_tower:
            self.text_model.requires_grad_(False)
        self._text_takes_token_types = "token_type_ids" in inspect.signature(self.text_model.forward).parameters

    @classmethod
    def build(cls, config: ClipConfig) -> ClipModel:
        """A fresh model for training, each tower loaded from its local folder when a path is set."""
        model = cls(config)
        for tower, path in ((model.vision_model, config.vision_backbone_path), (model.text_model, config.text_backbone_path)):
            if path:
                load_pretrained_backbone(tower, path)
        return model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            init.constant_(self.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, nn.Linear):  # the projections: CLIP's width^-1/2 normal
            init.normal_(module.weight, mean=0.0, std=module.in_features ** -0.5)

    def train(self, mode: bool = True) -> ClipModel:
        super().train(mode)
        if self.config.lock_image_tower:
            self.vision_model.eval()
        if self.config.lock_text_tower:
            self.text_model.eval()
        return self

    def image_backbone_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled vision-tower features [B, Dv] (before the projection)."""
        with torch.no_grad() if self.config.lock_image_tower else nullcontext():
            return vision_features(self.vision_model, pixel_values)

    def text_backbone_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled text-tower features [B, Dt] ('avg' over unmasked tokens or the first token)."""
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None and self._text_takes_token_types else {}
        with torch.no_grad() if self.config.lock_text_tower else nullcontext():
            out = self.text_model(input_ids=input_ids, attention_mask=mask, **extra)
            return text_features(out, mask, self.config.text_pooler)

    def get_image_features(self, pixel_values: torch.Tensor, **_: object) -> torch.Tensor:
        """Projected image features [B, P], not normalised (as transformers' CLIPModel's pooled output)."""
        return self.visual_projection(self.image_backbone_features(pixel_values))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          token_type_ids: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Projected text features [B, P], not normalised."""
        return self.text_projection(self.text_backbone_features(input_ids, attention_mask, token_type_ids))

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped to max_logit_scale (CLIP's 100) so the logits cannot blow up."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def embed(self, pixel_values: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
              attention_mask: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Frozen features for probes: vision-tower features [B, Dv] for images, else text-tower features [B, Dt]."""
        if pixel_values is not None:
            return self.image_backbone_features(pixel_values)
        if input_ids is not None:
            return self.text_backbone_features(input_ids, attention_mask)
        raise ValueError("embed needs pixel_values [B, 3, S, S] or input_ids [B, T]")

    def forward(self, pixel_values: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                return_loss: bool | None = None, **_: object) -> ClipOutput:
        """Similarities of Bi images and Bt texts; the loss (default: in training mode) needs Bi == Bt pairs."""
        if pixel_values is None or input_ids is None:
            raise ValueError("forward needs both pixel_values [B, 3, S, S] and input_ids [B, T] (+ attention_mask)")
        if pixel_values.dim() != 4 or input_ids.dim() != 2:
            raise ValueError(f"pixel_values must be [B, C, H, W] and input_ids [B, T]; got {tuple(pixel_values.shape)} "
                             f"and {tuple(input_ids.shape)}")
        image_embeds = F.normalize(self.get_image_features(pixel_values), dim=-1)  # [Bi, P]
        text_embeds = F.normalize(self.get_text_features(input_ids, attention_mask, token_type_ids), dim=-1)  # [Bt, P]
        scale = self.scale()
        logits_per_image = scale * image_embeds @ text_embeds.T  # [Bi, Bt], this process's pairs only
        loss = acc = None
        want_loss = self.training if return_loss is None else return_loss
        if want_loss:
            if image_embeds.shape[0] != text_embeds.shape[0]:
                raise ValueError(f"the loss needs paired inputs; got {image_embeds.shape[0]} images "
                                 f"and {text_embeds.shape[0]} texts")
            # Across processes: local rows against all-gathered columns (open_clip's local_loss + gather_with_grad).
            loss = clip_loss(image_embeds, text_embeds, scale, gather_distributed=self.config.gather_distributed)
            target = torch.arange(image_embeds.shape[0], device=image_embeds.device)
            acc = (logits_per_image.argmax(1) == target).float().mean().detach()
        return ClipOutput(loss=loss, logits_per_image=logits_per_image, logits_per_text=logits_per_image.T,
                                 text_embeds=text_embeds, image_embeds=image_embeds, logit_scale=scale.detach(),
                                 image_to_text_accuracy=acc)

    @torch.no_grad()
    def on_step_end(self, step: int, max_steps: int) -> None:
        """Keep the stored log-scale in [0, log max_logit_scale] (open_clip's in-place clamp) so it can move back."""
        self.logit_scale.clamp_(0.0, math.log(self.config.max_logit_scale))

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision tower (use save_tower(model, dir, "text") for the text tower)."""
        return self.vision_model

    def save_export_extras(self, out_dir: Path) -> None:
        """Ship the image processor with the exported vision tower."""
        make_image_processor(self.config).save_pretrained(out_dir)

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """save_pretrained + tokenizer + image processor (+ a CLIPProcessor holding both, for AutoProcessor), so
        pipeline(..., model=DIR) and AutoProcessor.from_pretrained(DIR) find everything in DIR."""
        from transformers import CLIPProcessor

        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            tokenizer, images = load_tokenizer(self.config.tokenizer_path), make_image_processor(self.config)
            tokenizer.save_pretrained(save_directory)
            images.save_pretrained(save_directory)
            # a copy: saving a processor marks its tokenizer (processor_class), and load_tokenizer's object is shared
            CLIPProcessor(image_processor=images, tokenizer=copy.deepcopy(tokenizer)).save_pretrained(save_directory)


def save_tower(model: ClipModel, out_dir: str | Path, tower: str = "text", context=None) -> Path:
    """Write one tower as a plain HF folder (text: + tokenizer + the sentence-transformers layout with text_pooler;
    vision: + image processor) and its model card, atomically. `context`: a model_card.CardContext (recipe, eval.json)."""
    from multissl.models.export import save_encoder

    if tower not in ("text", "vision"):
        raise ValueError(f"tower must be 'text' or 'vision'; got {tower!r}")
    if tower == "vision":
        return save_encoder(model, out_dir, context)
    return save_encoder(model, out_dir, context, encoder=model.text_model,
                        extras=lambda tmp: load_tokenizer(model.config.tokenizer_path).save_pretrained(tmp))


def _register_zero_shot_auto() -> None:
    """Let pipeline("zero-shot-image-classification", model=DIR) build our model from a saved folder."""
    from transformers import AutoModelForZeroShotImageClassification

    try:
        AutoModelForZeroShotImageClassification.register(ClipConfig, ClipModel)
    except ValueError:  # already registered (module re-imported)
        pass


_register_zero_shot_auto()
