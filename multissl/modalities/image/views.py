"""Collators that turn rows with `image` into augmented views (SimCLR, MoCo v2, BYOL) or deterministic eval batches."""
from __future__ import annotations

from dataclasses import fields

import torch

from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.transforms import SimCLRAugment, eval_transform, to_rgb


class ImageViewsCollator:
    """Rows with `image` -> {"pixel_values": [B, V, 3, S, S]} (V augmented views) or [B, 3, S, S] for eval."""

    def __init__(self, image_size: int, augment: dict | None = None, num_views: int = 2, train: bool = True):
        valid = {f.name for f in fields(SimCLRAugment)} - {"image_size"}
        unknown = set(augment or {}) - valid
        if unknown:
            raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; allowed: {sorted(valid)}")
        self.train, self.num_views = train, num_views
        self.transform = SimCLRAugment(image_size=image_size, **(augment or {})).build() if train else eval_transform(image_size)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        # torchvision's v2 transforms draw from the global RNG, which the batch source seeds per micro-batch.
        images = [to_rgb(r.get("image"), field=f"row {i}: 'image'") for i, r in enumerate(rows)]
        if not self.train:
            return {"pixel_values": torch.stack([self.transform(im) for im in images])}
        views = [torch.stack([self.transform(im) for _ in range(self.num_views)]) for im in images]
        return {"pixel_values": torch.stack(views)}  # [B, V, 3, S, S]


class EvalImageCollator:
    """Deterministic eval inputs for embed(): {"pixel_values": [B, 3, S, S]} (resize + normalise)."""

    def __init__(self, image_size: int):
        self.batch = ImageBatch(image_size, train=False)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.batch(rows)}
