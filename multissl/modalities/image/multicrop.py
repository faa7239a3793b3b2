"""DINO multi-crop (Caron et al. 2021): 2 large global crops + N small local crops of every image."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from multissl.modalities.image.image_batch import uint8_batch
from multissl.modalities.image.transforms import MEAN, STD, to_rgb


@dataclass
class MultiCropAugment:
    """Crop sizes/scales of DINO's policy, shrunk for small images; colour jitter/blur as in BYOL."""

    global_size: int = 32
    local_size: int = 16
    num_local: int = 4
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.1, 0.4)
    hflip_prob: float = 0.5
    jitter_strength: float = 0.4
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    invert_prob: float = 0.0  # as SimCLRAugment.invert_prob: off unless polarity is a nuisance of the data

    def _view(self, size: int, scale: tuple[float, float]) -> v2.Compose:
        s = self.jitter_strength
        kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
        return v2.Compose([
            v2.PILToTensor(),
            v2.RandomResizedCrop(size, scale=tuple(scale), antialias=True),
            v2.RandomHorizontalFlip(self.hflip_prob),
            v2.RandomApply([v2.ColorJitter(s, s, 0.5 * s, 0.25 * s)], p=self.jitter_prob),
            v2.RandomGrayscale(self.grayscale_prob),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=self.blur_prob),
            # Only when used: RandomInvert draws from torch's RNG even at p = 0, which would move every later draw.
            *([v2.RandomInvert(self.invert_prob)] if self.invert_prob > 0 else []),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ])

    def build(self) -> tuple[v2.Compose, v2.Compose]:
        """(global transform, local transform): PIL RGB -> float tensors [3, G, G] and [3, L, L]."""
        if self.local_size > self.global_size:
            raise ValueError(f"local_size ({self.local_size}) must not exceed global_size ({self.global_size})")
        if self.num_local < 0:
            raise ValueError(f"num_local must be >= 0; got {self.num_local}")
        return self._view(self.global_size, self.global_scale), self._view(self.local_size, self.local_scale)


class MultiCropCollator:
    """Rows with `image` -> {"global_views": [B, 2, 3, G, G], "local_views": [B, N, 3, L, L]}."""

    def __init__(self, augment: MultiCropAugment, backend: str = "pil", batched: Callable | None = None):
        """backend "batched" needs `batched`: a BatchedMultiCrop of the same policy (built by the caller, because
        batched_augment.py imports this module); "device" ships raw uint8 pixels for the model to crop."""
        self.augment = augment
        self.global_tf, self.local_tf = augment.build()
        self.batched, self.backend = batched, backend
        if backend not in ("pil", "batched", "device"):
            raise ValueError(f"multicrop.backend: expected 'pil', 'batched' or 'device'; got {backend!r}")
        if backend == "batched" and batched is None:
            raise ValueError("multicrop.backend 'batched' needs the batched policy (BatchedMultiCrop.from_policy(augment))")

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.backend == "device":  # the model makes the crops on its device (DINOModel.forward)
            return {"images": uint8_batch(rows, self.augment.global_size)}
        if self.backend == "batched":
            return self.batched(uint8_batch(rows, self.augment.global_size), generator)
        images = [to_rgb(r.get("image"), field=f"row {i}: 'image'") for i, r in enumerate(rows)]
        out = {"global_views": torch.stack([torch.stack([self.global_tf(im) for _ in range(2)]) for im in images])}
        if self.augment.num_local:
            out["local_views"] = torch.stack([torch.stack([self.local_tf(im) for _ in range(self.augment.num_local)])
                                              for im in images])
        return out
