"""Patches of images: a 3x3-style grid of tiles with gaps and jitter (jigsaw, relative patch), and ViT patchify."""
from __future__ import annotations

import torch

# Doersch et al. 2015: the 8 neighbours of the centre tile of a 3x3 grid, in reading order (label 0..7).
NEIGHBOURS_3X3 = (0, 1, 2, 3, 5, 6, 7, 8)


def tile_size(image_size: int, grid: int, gap: int) -> int:
    """Side of one tile: the grid cell minus 2 * gap, room for a jitter of `gap` that still leaves >= gap between tiles."""
    # Neighbours are (cell - tile) + (offset difference) apart; with offsets in a window `gap` wide that is
    # >= 2*gap - gap = gap, so tiles never share an edge (a trivial low-level continuity cue).
    return image_size // grid - 2 * gap


def check_grid(image_size: int, grid: int, gap: int, min_tile: int = 2, field: str = "image_size") -> int:
    """Validate that a grid x grid layout with `gap` fits; return the tile side or raise a clear error."""
    if grid < 2:
        raise ValueError(f"grid must be >= 2; got {grid}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0; got {gap}")
    tile = tile_size(image_size, grid, gap)
    if tile < min_tile:
        need = grid * (2 * gap + min_tile)
        raise ValueError(
            f"Image too small for the crop or jigsaw grid: {field}={image_size} with a {grid}x{grid} grid and gap {gap} "
            f"leaves {max(tile, 0)}-pixel tiles (need >= {min_tile}; a tile is the cell minus 2*gap); "
            f"use {field} >= {need} or a smaller gap/grid"
        )
    return tile


def grid_tiles(images: torch.Tensor, grid: int = 3, gap: int = 2, jitter: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut each image [B, C, H, W] into grid*grid tiles [B, grid*grid, C, t, t] with gaps and per-tile random jitter.

    A tile is t = cell - 2*gap (cell = min(H, W) // grid). Its offset inside the cell is gap // 2 + U{0..gap} (a
    window of gap + 1 positions around the centred offset gap), or exactly gap (centred) when jitter=False. So the
    pixels between neighbouring tiles number 2*gap + (difference of offsets), i.e. between gap and 3*gap
    (exactly 2*gap without jitter): neighbouring tiles never touch and low-level continuity cannot solve the task.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W]; got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    side = min(h, w)
    tile = check_grid(side, grid, gap)
    cell = side // grid
    n = grid * grid
    if jitter and gap > 0:
        off = gap // 2 + torch.randint(0, gap + 1, (b, n, 2), generator=generator)  # [B, n, (y, x)]
    else:
        off = torch.full((b, n, 2), gap, dtype=torch.long)  # centred: gap on each side of the tile
    cell_idx = torch.arange(n)
    top = (cell_idx // grid) * cell + off[..., 0]  # [B, n]
    left = (cell_idx % grid) * cell + off[..., 1]  # [B, n]
    ar = torch.arange(tile)
    rows = (top[..., None] + ar).to(images.device)  # [B, n, t]
    cols = (left[..., None] + ar).to(images.device)  # [B, n, t]
    bidx = torch.arange(b, device=images.device)[:, None, None, None]
    # Advanced indexing with the channel slice in the middle puts it last: [B, n, t, t, C].
    tiles = images[bidx, :, rows[:, :, :, None], cols[:, :, None, :]]
    return tiles.permute(0, 1, 4, 2, 3).contiguous()  # [B, n, C, t, t]


def relative_patch_pairs(images: torch.Tensor, gap: int = 2, jitter: bool = True,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Doersch's task: centre tile, one random neighbour and its position label 0..7.

    images [B, C, H, W] -> (centre [B, C, t, t], neighbour [B, C, t, t], label [B]).
    """
    tiles = grid_tiles(images, grid=3, gap=gap, jitter=jitter, generator=generator)  # [B, 9, C, t, t]
    b = tiles.shape[0]
    label = torch.randint(0, 8, (b,), generator=generator)  # [B]
    which = torch.tensor(NEIGHBOURS_3X3)[label].to(images.device)  # grid index of the chosen neighbour
    ar = torch.arange(b, device=images.device)
    return tiles[:, 4], tiles[ar, which], label.to(images.device)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images [B, C, H, W] -> patches [B, N, p*p*C] in row-major patch order (pixels ordered (py, px, c), as MAE)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, h', w', p, p, C]
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """Inverse of patchify for square images: [B, N, p*p*C] -> [B, C, H, W]."""
    b, n, _ = patches.shape
    g = int(round(n ** 0.5))
    if g * g != n:
        raise ValueError(f"unpatchify needs a square number of patches; got {n}")
    p = patch_size
    x = patches.reshape(b, g, g, p, p, channels).permute(0, 5, 1, 3, 2, 4)  # [B, C, g, p, g, p]
    return x.reshape(b, channels, g * p, g * p)
