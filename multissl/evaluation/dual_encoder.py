"""Batched image and text embeddings from a dual encoder (CLIP): the inputs of zero-shot and retrieval."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from multissl.modalities.image_text import ImageCaptionCollator


def _check_dual_encoder(model: Any) -> None:
    missing = [m for m in ("get_image_features", "get_text_features") if not hasattr(model, m)]
    if missing:
        raise TypeError(f"{type(model).__name__} is not a dual encoder: it has no {', '.join(missing)}")


def _device(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def eval_collator(model: Any, include_text: bool = False) -> ImageCaptionCollator:
    """The deterministic collator (resize, no crop) matching `model.config` (image_size, tokenizer, max_seq_length)."""
    cfg = model.config
    return ImageCaptionCollator(cfg.tokenizer_path, cfg.image_size, cfg.max_seq_length, train=False, include_text=include_text)


@torch.no_grad()
def encode_images(model: Any, images: Sequence[Any] | torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised image embeddings [N, P] of PIL images / arrays (any size or mode) or pixel_values [N, 3, S, S]."""
    _check_dual_encoder(model)
    if len(images) == 0:
        raise ValueError("encode_images got no images")
    collate, device, was_training = eval_collator(model), _device(model), model.training
    model.eval()
    try:
        out = []
        for start in range(0, len(images), batch_size):  # batches, not rows
            chunk = images[start : start + batch_size]
            pixels = chunk if isinstance(chunk, torch.Tensor) else collate.pixels(list(chunk))
            out.append(F.normalize(model.get_image_features(pixels.to(device)), dim=-1).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def encode_texts(model: Any, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text embeddings [N, P]; texts longer than config.max_seq_length tokens are truncated."""
    _check_dual_encoder(model)
    if len(texts) == 0:
        raise ValueError("encode_texts got no texts")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"encode_texts: text {bad[0]} is not a non-blank string: {texts[bad[0]]!r}")
    collate, device, was_training = eval_collator(model, include_text=True), _device(model), model.training
    model.eval()
    try:
        out = []
        for start in range(0, len(texts), batch_size):
            enc = {k: v.to(device) for k, v in collate.tokenize(list(texts[start : start + batch_size])).items()}
            out.append(F.normalize(model.get_text_features(**enc), dim=-1).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)
