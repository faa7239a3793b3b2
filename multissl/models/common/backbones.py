"""Building Hugging Face backbones from config dicts or local folders, and pooling their outputs."""
from __future__ import annotations

import difflib
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from multissl.paths import resolve_local_path


def resolve_backbone_config(backbone_config: dict | None, backbone_path: str | None, default: dict) -> dict:
    """The backbone's config as a plain dict (with model_type): given, read from a local folder, or default."""
    if backbone_config is not None:
        if isinstance(backbone_config, PretrainedConfig):
            return backbone_config.to_dict()
        if "model_type" not in backbone_config:
            raise ValueError(f"backbone_config must contain 'model_type' (e.g. 'resnet', 'vit', 'bert'); got keys {sorted(backbone_config)}")
        return dict(backbone_config)
    if backbone_path:
        return AutoConfig.from_pretrained(resolve_local_path(backbone_path)).to_dict()
    return dict(default)


def config_from_dict(cfg: dict) -> PretrainedConfig:
    """Rebuild a transformers config object from its dict (the inverse of to_dict)."""
    cfg = dict(cfg)
    model_type = cfg.pop("model_type")
    for key in ("transformers_version", "architectures", "_name_or_path"):
        cfg.pop(key, None)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:  # transformers' own error lists every model type: ~15,000 characters
        close = difflib.get_close_matches(str(model_type), list(CONFIG_MAPPING.keys()), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"backbone_config.model_type {model_type!r} is not a transformers model type{hint}; "
                         "e.g. 'resnet', 'vit', 'bert', 'gpt2'")
    if model_type == "timm_wrapper" and isinstance(cfg.get("model_args"), dict):  # see _timm_folder_fix
        cfg["model_args"] = {k: v for k, v in cfg["model_args"].items() if k != "num_classes"}
    return AutoConfig.for_model(model_type, **cfg)


def build_backbone(cfg: dict, auto_class: Any = AutoModel) -> PreTrainedModel:
    """A randomly initialised backbone from a config dict (weights come later from load_pretrained_backbone)."""
    return auto_class.from_config(config_from_dict(cfg))


def _timm_folder_fix(path: Any) -> dict:
    """{"config": ...} for a folder written by timm's own save_for_hf, else {}.

    timm records `num_classes` inside `model_args`, and transformers' TimmWrapperModel passes num_classes=0 itself,
    so such a folder fails to load with "multiple values for keyword argument 'num_classes'" (timm 1.0.31,
    transformers 5.24). Dropping the duplicate from model_args loads it as a headless feature extractor.
    """
    from pathlib import Path

    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        return {}
    import json

    raw = json.loads(cfg_file.read_text())
    if "architecture" not in raw or "num_classes" not in (raw.get("model_args") or {}):
        return {}
    config = AutoConfig.from_pretrained(path)
    config.model_args = {k: v for k, v in (config.model_args or {}).items() if k != "num_classes"}
    return {"config": config}


def load_pretrained_backbone(backbone: torch.nn.Module, backbone_path: str, auto_class: Any = AutoModel) -> None:
    """Copy the weights of a local pretrained folder into `backbone` (every tensor of the backbone must be there)."""
    path = resolve_local_path(backbone_path)
    pretrained = auto_class.from_pretrained(path, **_timm_folder_fix(path))
    missing, _ = backbone.load_state_dict(pretrained.state_dict(), strict=False)
    if missing:
        raise ValueError(f"backbone_path {backbone_path!r}: weights for {missing[:5]} are missing from {path}")


def vision_features(backbone: PreTrainedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Pooled image features [B, D] from any HF vision backbone (CNN pooler or ViT CLS token)."""
    out = backbone(pixel_values=pixel_values)
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)  # ResNet: [B, C, 1, 1] -> [B, C]
    hidden = out.last_hidden_state
    if hidden.dim() == 4:  # conv feature map [B, C, H, W]
        return hidden.mean(dim=(2, 3))
    return hidden[:, 0]  # transformer: CLS token [B, D]


def infer_feature_dim(backbone: PreTrainedModel, image_size: int, num_channels: int = 3) -> int:
    """Feature width D of vision_features, found with one tiny dummy forward (works for any backbone)."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        dim = vision_features(backbone, torch.zeros(1, num_channels, image_size, image_size)).shape[-1]
    backbone.train(was_training)
    return int(dim)


def text_features(outputs: Any, attention_mask: torch.Tensor, pooler: str) -> torch.Tensor:
    """Sentence embedding [B, D] from a text encoder's outputs: 'cls', 'cls_before_pooler' or 'avg'."""
    hidden = outputs.last_hidden_state  # [B, T, D]
    if pooler in ("cls", "cls_before_pooler"):
        return hidden[:, 0]
    if pooler == "avg":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    raise ValueError(f"pooler must be one of 'cls', 'cls_before_pooler', 'avg'; got {pooler!r}")
