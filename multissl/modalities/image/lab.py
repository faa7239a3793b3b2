"""CIE Lab colour space (sRGB, D65) and the quantised ab bins of colourisation (Zhang et al. 2016)."""
from __future__ import annotations

from functools import lru_cache

import torch

# sRGB (linear) -> XYZ, D65 reference white (IEC 61966-2-1).
_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = torch.tensor([0.950456, 1.0, 1.088754])
_EPS, _KAPPA = 216.0 / 24389.0, 24389.0 / 27.0  # CIE constants for the f(t) knee


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], [..., 3, H, W] -> Lab [..., 3, H, W] (L in [0, 100], a/b roughly in [-110, 110])."""
    if rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_lab needs 3 channels at dim -3; got shape {tuple(rgb.shape)}")
    rgb = rgb.clamp(0, 1)
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,...jhw->...ihw", _RGB_TO_XYZ.to(rgb), linear)
    xyz = xyz / _WHITE_D65.to(rgb)[:, None, None]
    f = torch.where(xyz > _EPS, xyz.clamp_min(1e-12) ** (1.0 / 3.0), (_KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab [..., 3, H, W] -> sRGB [..., 3, H, W] clipped to [0, 1] (inverse of rgb_to_lab inside the gamut)."""
    l, a, b = lab.unbind(-3)
    fy = (l + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=-3)
    xyz = torch.where(f ** 3 > _EPS, f ** 3, (116.0 * f - 16.0) / _KAPPA) * _WHITE_D65.to(lab)[:, None, None]
    linear = torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(_RGB_TO_XYZ).to(lab), xyz).clamp(0, 1)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * linear).clamp(0, 1)


@lru_cache(maxsize=4)
def in_gamut_ab_bins(bin_size: float = 10.0, resolution: int = 32) -> torch.Tensor:
    """Centres [Q, 2] of the ab grid cells (side bin_size) that some sRGB colour falls into.

    Q = 261 for bin_size 10 (sRGB cube sampled at `resolution` levels; Zhang et al. report 313 with their gamut).
    """
    levels = torch.linspace(0, 1, resolution)
    cube = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij")).reshape(3, -1, 1)  # [3, R^3, 1]
    ab = rgb_to_lab(cube)[1:].reshape(2, -1).T  # [R^3, 2]
    cells = torch.unique(torch.floor(ab / bin_size), dim=0)  # occupied grid cells
    return (cells + 0.5) * bin_size  # [Q, 2]


def quantize_ab(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Hard-assign ab [B, 2, H, W] to the nearest bin centre of bins [Q, 2]: class indices [B, H, W]."""
    b, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)  # [B*H*W, 2]
    return torch.cdist(flat, bins.to(ab)).argmin(dim=1).view(b, h, w)
