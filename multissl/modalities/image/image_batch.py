"""Rows with `image` -> one normalised pixel batch [B, 3, S, S]; the common first step of the pretext-task collators."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from multissl.modalities.image.transforms import MEAN, STD, eval_transform, to_rgb


def light_augment(image_size: int, crop_scale: tuple[float, float] = (0.6, 1.0)) -> v2.Compose:
    """Random resized crop only (no flips/colour: they can leak or destroy a pretext task's signal): PIL -> [3, S, S]."""
    return v2.Compose([
        v2.PILToTensor(),
        v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), ratio=(0.9, 1.1), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(MEAN, STD),
    ])


class ImageBatch:
    """PIL rows -> pixel_values [B, 3, S, S]: light random crops when train and crop_scale is set, plain resize otherwise."""

    def __init__(self, image_size: int, train: bool = True, crop_scale: tuple[float, float] | None = (0.6, 1.0),
                 min_size: int = 1):
        self.min_size = min_size
        augment = train and crop_scale is not None
        self.transform = light_augment(image_size, crop_scale) if augment else eval_transform(image_size)

    def __call__(self, rows: list[dict]) -> torch.Tensor:
        images = [to_rgb(r.get("image"), field=f"row {i}: 'image'", min_size=self.min_size) for i, r in enumerate(rows)]
        return torch.stack([self.transform(im) for im in images])  # [B, 3, S, S]


def uint8_batch(rows: list[dict], size: int) -> torch.Tensor:
    """Rows with `image` -> raw pixels uint8 [B, 3, size, size] (resized only where an image is another size).

    The batched policies crop from this tensor, so images larger than `size` are first resized to it: for the
    built-in datasets (stored at the training size) the views are exactly the PIL path's distribution.
    """
    from torchvision.transforms.v2 import functional as F

    out = []
    for i, r in enumerate(rows):
        t = F.pil_to_tensor(to_rgb(r.get("image"), field=f"row {i}: 'image'"))
        out.append(t if t.shape[-2:] == (size, size) else F.resize(t, [size, size], antialias=True))
    return torch.stack(out)
