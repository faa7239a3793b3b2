"""Weak and strong image views for semi-supervised learning (FixMatch, UDA, ReMixMatch; Sohn et al. 2020, Sec. 2.3).

weak:   resize to S, random horizontal flip, random crop of S after reflect-padding 12.5% of S (FixMatch's
        "flip-and-shift").
strong: the weak ops, then torchvision's RandAugment (N = 2 ops at a fixed magnitude M = 15 of 30 bins;
        FixMatch's RA variant draws each op's magnitude uniformly over the whole range instead, whose mean
        is half the range: M = 15 matches that mean), then Cutout (DeVries & Taylor 2017) of a grey square whose
        side is a uniform fraction in cutout_range of S, centred anywhere and clipped at the border.

torchvision's RandomErasing is not Cutout: it keeps the whole box inside the image and draws an area fraction
and aspect ratio, so FixMatch's "square of side v·S centred anywhere" is written here (a few tensor ops).
Like the other image views, the PIL pipeline draws from torch's global RNG, which the batch source seeds per
micro-batch; Cutout alone also takes an explicit generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from multissl.modalities.image.transforms import MEAN, STD, to_rgb


class Cutout:
    """Set a square of side round(v * min(H, W)), v ~ U(size_range), centred uniformly, to `fill`, on [..., C, H, W].

    Leading dims are independent images (each gets its own square). The square is clipped at the border, so
    near an edge less than v^2 of the image is hidden, as in the original Cutout. Not in place.
    """

    def __init__(self, size_range: tuple[float, float] = (0.0, 0.5), fill: float = 0.5,
                 generator: torch.Generator | None = None):
        lo, hi = (float(v) for v in size_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"cutout size_range must satisfy 0 <= low <= high <= 1; got {tuple(size_range)}")
        self.size_range, self.fill, self.generator = (lo, hi), fill, generator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() < 3:
            raise ValueError(f"Cutout expects an image tensor [..., C, H, W]; got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        *lead, c, h, w = images.shape
        flat = images.reshape(-1, c, h, w)  # [N, C, H, W]
        n, g = flat.shape[0], self.generator
        lo, hi = self.size_range
        frac = lo + (hi - lo) * torch.rand(n, generator=g)  # [N]
        side = torch.round(frac * min(h, w)).long()  # [N]
        cy = torch.randint(0, h, (n,), generator=g)  # centres anywhere in the image
        cx = torch.randint(0, w, (n,), generator=g)
        top, left = cy - side // 2, cx - side // 2  # may be negative: clipped by the comparisons below
        rows = torch.arange(h)[None, :]  # [1, H]
        cols = torch.arange(w)[None, :]  # [1, W]
        in_rows = (rows >= top[:, None]) & (rows < (top + side)[:, None])  # [N, H]
        in_cols = (cols >= left[:, None]) & (cols < (left + side)[:, None])  # [N, W]
        hole = (in_rows[:, :, None] & in_cols[:, None, :]).to(flat.device)  # [N, H, W]
        out = flat.masked_fill(hole[:, None], self.fill)
        return out.reshape(*lead, c, h, w)


@dataclass
class SSLViewAugment:
    """FixMatch's weak and strong policies for images of side `image_size` (S)."""

    image_size: int = 32
    hflip_prob: float = 0.5
    crop_padding_fraction: float = 0.125
    randaugment_ops: int = 2
    randaugment_magnitude: int = 15
    cutout_range: tuple[float, float] = (0.0, 0.5)

    def _weak_ops(self) -> list:
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1; got {self.image_size}")
        if not 0.0 <= self.crop_padding_fraction < 1.0:
            raise ValueError(f"crop_padding_fraction must be in [0, 1); got {self.crop_padding_fraction}")
        pad = round(self.crop_padding_fraction * self.image_size)  # 4 px at S = 32, as in FixMatch
        return [
            v2.PILToTensor(),
            v2.Resize((self.image_size, self.image_size), antialias=True),
            v2.RandomHorizontalFlip(self.hflip_prob),
            # reflect padding needs pad < S; padding 0 means a plain (identity) crop
            v2.RandomCrop(self.image_size, padding=pad if pad else None, padding_mode="reflect"),
        ]

    def build_weak(self) -> v2.Compose:
        """PIL RGB -> normalised float tensor [3, S, S]: flip and shift only."""
        return v2.Compose([*self._weak_ops(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def build_strong(self) -> v2.Compose:
        """PIL RGB -> normalised float tensor [3, S, S]: flip and shift, RandAugment, Cutout (grey before normalising)."""
        return v2.Compose([
            *self._weak_ops(),
            v2.RandAugment(num_ops=self.randaugment_ops, magnitude=self.randaugment_magnitude, fill=128),
            v2.ToDtype(torch.float32, scale=True),
            Cutout(self.cutout_range, fill=0.5),  # 0.5 grey = 0 after Normalize(0.5, 0.5): the hole carries no signal
            v2.Normalize(MEAN, STD),
        ])


class WeakStrongCollator:
    """Rows with `image` -> {"weak": [B, Vw, 3, S, S], "strong": [B, Vs, 3, S, S]} (+ "labels" [B] if rows have `label`)."""

    def __init__(self, augment: SSLViewAugment | None = None, num_weak: int = 1, num_strong: int = 1):
        if num_weak < 0 or num_strong < 0 or num_weak + num_strong == 0:
            raise ValueError(f"num_weak and num_strong must be >= 0 and not both 0; got {num_weak}, {num_strong}")
        self.augment = augment or SSLViewAugment()
        self.weak, self.strong = self.augment.build_weak(), self.augment.build_strong()
        self.num_weak, self.num_strong = num_weak, num_strong

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        # torchvision's v2 transforms draw from the global RNG, which the batch source seeds per micro-batch.
        images = [to_rgb(r.get("image"), field=f"row {i}: 'image'") for i, r in enumerate(rows)]
        out: dict[str, torch.Tensor] = {}
        if self.num_weak:
            out["weak"] = torch.stack([torch.stack([self.weak(im) for _ in range(self.num_weak)]) for im in images])
        if self.num_strong:
            out["strong"] = torch.stack([torch.stack([self.strong(im) for _ in range(self.num_strong)])
                                         for im in images])
        if rows and all("label" in r for r in rows):
            out["labels"] = torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)
        return out
