"""Masks for masked image modelling: inpainting regions (context encoder) and MAE's per-sample random patch masking."""
from __future__ import annotations

import torch

INPAINT_MASK_TYPES = ("center", "random_block")


def inpainting_mask(batch_size: int, image_size: int, mask_type: str = "random_block", fraction: float = 0.5,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Square hole masks [B, S, S] (1 = hidden pixel) of side round(fraction * S): centred or at a random place."""
    if mask_type not in INPAINT_MASK_TYPES:
        raise ValueError(f"mask_type must be one of {INPAINT_MASK_TYPES}; got {mask_type!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"mask fraction must be in (0, 1); got {fraction}")
    side = max(1, int(round(fraction * image_size)))
    if mask_type == "center":
        top = torch.full((batch_size,), (image_size - side) // 2, dtype=torch.long)
        left = top.clone()
    else:
        top = torch.randint(0, image_size - side + 1, (batch_size,), generator=generator)
        left = torch.randint(0, image_size - side + 1, (batch_size,), generator=generator)
    ar = torch.arange(image_size)
    rows = (ar >= top[:, None]) & (ar < top[:, None] + side)  # [B, S]
    cols = (ar >= left[:, None]) & (ar < left[:, None] + side)  # [B, S]
    return (rows[:, :, None] & cols[:, None, :]).float()  # [B, S, S]


def random_masking_noise(batch_size: int, num_patches: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Uniform noise [B, N] whose argsort decides which patches MAE keeps (the smallest values)."""
    return torch.rand(batch_size, num_patches, generator=generator, device=device)


def random_masking(tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE per-sample random masking of tokens [B, N, D].

    Returns (kept [B, K, D] with K = round(N * (1 - mask_ratio)), mask [B, N] with 1 = masked,
    ids_restore [B, N] that puts the kept+mask tokens back in patch order).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1); got {mask_ratio}")
    b, n, d = tokens.shape
    keep = max(1, int(round(n * (1.0 - mask_ratio))))
    if noise is None:
        noise = random_masking_noise(b, n, generator=generator).to(tokens.device)
    if noise.shape != (b, n):
        raise ValueError(f"noise must be [B, N] = {(b, n)}; got {tuple(noise.shape)}")
    ids_shuffle = noise.argsort(dim=1)  # ascending: the first `keep` are kept
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :keep]  # [B, K]
    kept = tokens.gather(1, ids_keep[..., None].expand(-1, -1, d))  # [B, K, D]
    mask = torch.ones(b, n, device=tokens.device, dtype=tokens.dtype)
    mask[:, :keep] = 0
    mask = mask.gather(1, ids_restore)  # back to patch order
    return kept, mask, ids_restore
