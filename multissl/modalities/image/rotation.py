"""Rotation prediction views (Gidaris et al. 2018): all four rotations of every image in the same batch."""
from __future__ import annotations

import torch

NUM_ROTATIONS = 4  # 0, 90, 180, 270 degrees


def four_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [B, C, H, W] (square) -> (rotated [B, 4, C, H, W], labels [B, 4]); label k means k*90 degrees anticlockwise."""
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"four_rotations needs square images [B, C, S, S]; got shape {tuple(images.shape)}")
    rotated = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(NUM_ROTATIONS)], dim=1)  # 4 ops, not per image
    labels = torch.arange(NUM_ROTATIONS, device=images.device).expand(images.shape[0], NUM_ROTATIONS)
    return rotated, labels
