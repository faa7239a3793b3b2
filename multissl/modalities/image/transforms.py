"""Image views: SimCLR's augmentation policy, a deterministic eval transform, and input validation."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def to_rgb(image, field: str = "image", min_size: int = 1) -> Image.Image:
    """A PIL RGB image from a row value (PIL image of any mode, or HxW/HxWxC array); clear error otherwise."""
    if image is None:
        raise ValueError(f"{field}: missing image (None)")
    if not isinstance(image, Image.Image):
        try:
            import numpy as np

            image = Image.fromarray(np.asarray(image))
        except Exception as err:  # noqa: BLE001 - report what we got
            raise ValueError(f"{field}: expected a PIL image or an HxW(xC) array, got {type(image).__name__}") from err
    if min(image.size) < min_size:
        raise ValueError(f"{field}: image is {image.size[0]}x{image.size[1]}, smaller than the required {min_size}x{min_size}")
    # Grayscale, palette, RGBA and CMYK inputs are all converted (documented): models see 3 channels.
    return image if image.mode == "RGB" else image.convert("RGB")


@dataclass
class SimCLRAugment:
    """SimCLR policy (Chen et al. 2020, App. A): random resized crop, flip, colour jitter, grayscale, blur."""

    image_size: int = 32
    crop_scale: tuple[float, float] = (0.2, 1.0)
    hflip_prob: float = 0.5
    jitter_strength: float = 0.5
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5

    def build(self) -> v2.Compose:
        """The torchvision v2 pipeline: PIL RGB -> normalised float tensor [3, S, S]."""
        s = self.jitter_strength
        kernel = max(3, int(0.1 * self.image_size) // 2 * 2 + 1)  # ~10% of the side, odd
        return v2.Compose([
            v2.PILToTensor(),
            v2.RandomResizedCrop(self.image_size, scale=tuple(self.crop_scale), antialias=True),
            v2.RandomHorizontalFlip(self.hflip_prob),
            v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=self.jitter_prob),
            v2.RandomGrayscale(self.grayscale_prob),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=self.blur_prob),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ])


def eval_transform(image_size: int) -> v2.Compose:
    """Deterministic resize + normalise: PIL RGB -> float tensor [3, S, S]."""
    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(MEAN, STD),
    ])
