"""Write image grids (e.g. MAE original / masked / reconstruction rows) as a PNG, atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from multissl.modalities.image.transforms import MEAN, STD


def save_reconstruction_grid(rows: list[torch.Tensor], path: str | Path, upscale: int = 4) -> Path:
    """rows: equal-shape normalised batches [B, C, S, S]; one grid row each, written to `path` via temp file + rename."""
    mean = torch.tensor(MEAN).view(1, -1, 1, 1)
    std = torch.tensor(STD).view(1, -1, 1, 1)
    images = torch.cat([r.detach().float().cpu() * std + mean for r in rows]).clamp(0, 1)  # [R*B, C, S, S]
    grid = make_grid(images, nrow=rows[0].shape[0], padding=1, pad_value=1.0)  # [C, H, W]
    array = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array)
    image = image.resize((image.width * upscale, image.height * upscale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
