"""Per-sample image kernels for batched augmentation: float images in [0, 1], one parameter per sample, no batch loop.

Every colour op takes `x` [N, 3, H, W] and a per-sample parameter [N]; the formulas are those of
torchvision.transforms.v2.functional applied to a float image (tested against it one sample at a time).
`resized_crop` samples every (image, view) box with one `grid_sample` call.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma weights: what torchvision's rgb_to_grayscale (and so contrast/saturation) uses.
LUMA = (0.2989, 0.587, 0.114)
MAX_TAPS = 8  # antialiasing taps per axis; enough for a 4x downscale (see crop_taps)


def _col(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample values [N] -> [N, 1, 1, 1] in x's dtype, ready to broadcast."""
    return t.to(dtype=x.dtype).view(-1, 1, 1, 1)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Grayscale [N, 1, H, W] of RGB x [N, 3, H, W]."""
    r, g, b = x.unbind(1)
    return (r * LUMA[0] + g * LUMA[1] + b * LUMA[2]).unsqueeze(1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x [N, 3, H, W] scaled by factor [N], clamped to [0, 1] (a blend with black)."""
    return (x * _col(factor, x)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend of x [N, 3, H, W] with its mean luma (one scalar per image) by factor [N], clamped."""
    f = _col(factor, x)
    mean = luma(x).mean(dim=(1, 2, 3), keepdim=True)  # [N, 1, 1, 1]
    return (x * f).add_(mean * (1 - f)).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend of x [N, 3, H, W] with its per-pixel luma by factor [N], clamped."""
    f = _col(factor, x)
    return (x * f).add_(luma(x) * (1 - f)).clamp_(0, 1)


def select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a where mask [N] (bool) else b, per sample of [N, ...] tensors.

    A lerp with weight 0/1 (exactly b / exactly a): on CPU it is several times faster than torch.where.
    """
    return torch.lerp(b, a, mask.to(a.dtype).view(-1, *([1] * (a.dim() - 1))))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of x [N, 3, H, W] by shift [N] (a fraction of the circle); value and saturation kept."""
    r, g, b = x.unbind(1)  # [N, H, W] each
    vmax = x.amax(dim=1)
    delta = vmax - x.amin(dim=1)  # chroma = v * s
    # Which channel is the maximum picks the hue sector (red first, then green, as the usual RGB -> HSV);
    # 0/1 float masks instead of nested torch.where, which is slow on CPU.
    rmax = (vmax == r).to(x.dtype)
    gmax = (vmax == g).to(x.dtype).mul_(1 - rmax)
    bmax = 1 - rmax - gmax
    h6 = rmax * (g - b) + gmax * (b - r) + bmax * (r - g) + (2 * gmax + 4 * bmax) * delta  # hue * 6 * chroma
    # Grey pixels (chroma 0) get hue 0 and, below, the output v - 0 = v whatever the hue.
    h6 = h6.div_(delta + (delta == 0).to(x.dtype)).add_(6 * shift.to(x.dtype).view(-1, 1, 1))
    h6 = torch.remainder(h6, 6.0)  # [N, H, W] hue in sixths of the circle, [0, 6)
    # HSV -> RGB without branches: channel n in (R, G, B) = (5, 3, 1) is v - chroma * clamp(min(k, 4 - k), 0, 1)
    # with k = (n + h6) mod 6 (the standard piecewise-linear hue ramps).
    out = torch.empty_like(x)
    for c, n in enumerate((5.0, 3.0, 1.0)):  # three channels, not a batch loop
        k = torch.remainder(h6 + n, 6.0)
        torch.sub(vmax, torch.minimum(k, 4 - k).clamp_(0, 1).mul_(delta), out=out[:, c])
    return out


def grayscale(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """x [N, 3, H, W] with the samples where apply [N] (bool) replaced by their luma on all three channels."""
    return select(apply, luma(x).expand_as(x), x)


def invert(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """1 - x for the samples where apply [N] (v2.RandomInvert on [0, 1] pixels); others unchanged. x [N, 3, S, S]."""
    return torch.lerp(x, 1 - x, apply.view(-1, 1, 1, 1).to(x.dtype))


def solarize(x: torch.Tensor, apply: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert (1 - x) the pixels >= threshold [N] of the samples where apply [N]; others unchanged."""
    hit = (x >= _col(threshold, x)).mul_(apply.view(-1, 1, 1, 1)).to(x.dtype)
    return torch.lerp(x, 1 - x, hit)


def gaussian_kernels(sigma: torch.Tensor, kernel_size: torch.Tensor, apply: torch.Tensor, width: int) -> torch.Tensor:
    """Normalised 1-D Gaussians [N, width] with per-sample sigma [N] truncated to kernel_size [N] (odd) taps.

    Samples where apply [N] is False get a unit impulse, so blurring them is an exact identity and the whole
    batch goes through one convolution without gathering the blurred subset (no host sync on CUDA).
    """
    d = torch.arange(width, device=sigma.device, dtype=torch.float32) - width // 2  # [K] tap offsets
    s = sigma.float().view(-1, 1)
    w = torch.exp(-0.5 * (d / s) ** 2) * (d.abs() <= (kernel_size.view(-1, 1) // 2))
    w = w / w.sum(dim=1, keepdim=True)
    return torch.where(apply.view(-1, 1), w, (d == 0).float().expand_as(w))


def gaussian_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable blur of x [N, C, H, W] with per-sample 1-D kernels [N, K] (odd K), reflect padding.

    The reflect-padded K x K convolution torchvision runs, split into a row pass and a column pass; each pass
    sums K shifted copies weighted per sample (a loop over the kernel taps, never over the batch). On CPU this
    beats a grouped convolution with one group per (sample, channel).
    """
    n, _, h, w = x.shape
    k = kernels.shape[1]
    if k == 1:
        return x
    p = k // 2
    wt = kernels.to(x.dtype).view(n, 1, 1, k)  # [N, 1, 1, K]
    xp = F.pad(x, (p, p, 0, 0), mode="reflect")  # [N, C, H, W + 2p]
    rows = xp[..., 0:w] * wt[..., 0:1]
    for t in range(1, k):
        rows.addcmul_(xp[..., t:t + w], wt[..., t:t + 1])
    yp = F.pad(rows, (0, 0, p, p), mode="reflect")  # [N, C, H + 2p, W]
    out = yp[..., 0:h, :] * wt[..., 0:1]
    for t in range(1, k):
        out.addcmul_(yp[..., t:t + h, :], wt[..., t:t + 1])
    return out


def random_resized_boxes(h: int, w: int, scale: torch.Tensor, ratio: torch.Tensor,
                         u: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's RandomResizedCrop boxes, vectorised: scale/ratio [V, 2], u [4, B, V, 10] -> top, left, height,
    width [B, V] (int64). Ten tries per view; the first that fits wins, else the ratio-clamped centre crop."""
    lo_s, hi_s = scale[:, 0, None], scale[:, 1, None]  # [V, 1]: broadcast over the tries
    area = lo_s + (hi_s - lo_s) * u[0]  # [B, V, 10] fraction of the image
    lo_r, hi_r = ratio.log()[:, 0, None], ratio.log()[:, 1, None]
    aspect = torch.exp(lo_r + (hi_r - lo_r) * u[1])
    cw = torch.round(torch.sqrt(area * (h * w) * aspect))  # round half to even, as Python's round
    ch = torch.round(torch.sqrt(area * (h * w) / aspect))
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = ok.int().argmax(dim=-1, keepdim=True)  # index of the first try that fits
    cw, ch = cw.gather(-1, first).squeeze(-1), ch.gather(-1, first).squeeze(-1)
    # Fallback (no try fits): whole image, cut to the nearest allowed aspect ratio.
    lo, hi = ratio[:, 0], ratio[:, 1]
    fw = torch.where(w / h > hi, torch.round(h * hi), torch.full_like(hi, w))
    fh = torch.where(w / h < lo, torch.round(w / lo), torch.full_like(lo, h))
    hit = ok.any(dim=-1)
    cw, ch = torch.where(hit, cw, fw), torch.where(hit, ch, fh)
    # Uniform integer offsets in [0, H - h]; the fallback is centred.
    top = torch.where(hit, torch.floor(u[2, ..., 0] * (h - ch + 1)).clamp(max=h - ch), torch.floor((h - ch) / 2))
    left = torch.where(hit, torch.floor(u[3, ..., 0] * (w - cw + 1)).clamp(max=w - cw), torch.floor((w - cw) / 2))
    return [t.long() for t in (top, left, ch, cw)]


def crop_taps(in_size: int, out_size: int) -> int:
    """Taps per axis that antialias the largest possible downscale in_size -> out_size (1 when none can occur)."""
    f = in_size / out_size
    return 1 if f <= 1 else min(MAX_TAPS, max(1, math.ceil(2 * math.sqrt(f * f - 1))))


def _axis(start: torch.Tensor, length: torch.Tensor, out: int, full: int, taps: int,
          flip: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid coordinates [B, V, out, taps] along one axis and the tap weights [taps].

    Output pixel o of a crop [start, start + length) has its centre at (o + 0.5) * length / out in crop units
    (align_corners=False, as torchvision's resize). Downscaling by f = length / out > 1 spreads the taps
    triangularly over +-sqrt(f^2 - 1) pixels: each tap is bilinear (a triangle of half-width 1), so the sum has
    the variance of a triangle of half-width f, the filter torchvision's antialiased resize uses. f <= 1 collapses
    the taps to the centre: plain bilinear, exactly torchvision's upsampling.
    """
    dev = start.device
    dst = torch.arange(out, device=dev, dtype=torch.float32) + 0.5  # [out] output pixel centres
    if flip is not None:  # horizontal flip after the crop = read the output columns mirrored
        dst = torch.where(flip.unsqueeze(-1), out - dst, dst)  # [B, V, out]
    scale = (length / out).unsqueeze(-1)  # [B, V, 1]
    centre = scale * dst  # [B, V, out]
    u = (2 * torch.arange(taps, device=dev, dtype=torch.float32) + 1) / taps - 1  # [taps] in (-1, 1)
    spread = torch.sqrt((scale * scale - 1).clamp(min=0)).unsqueeze(-1)  # [B, V, 1, 1]
    pos = centre.unsqueeze(-1) + spread * u - 0.5  # [B, V, out, taps] in crop pixel-index units
    # Clamp inside the crop: bilinear reads never leak pixels from outside the box (torchvision crops first).
    lim = (length - 1).view(*length.shape, 1, 1)
    pos = torch.minimum(pos.clamp(min=0), lim) + start.view(*start.shape, 1, 1)
    weights = 1 - u.abs()
    return (2 * pos + 1) / full - 1, weights / weights.sum()


def crop_coords(boxes: torch.Tensor, size: int, height: int, width: int,
                flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampling coordinates of boxes [B, V, 4] (top, left, height, width in pixels) of height x width images,
    resized to size x size and mirrored where flip [B, V]: (gy [B, V, S, ky], wy [ky], gx [B, V, S, kx], wx [kx])."""
    top, left, bh, bw = boxes.float().unbind(-1)  # [B, V] each
    gy, wy = _axis(top, bh, size, height, crop_taps(height, size), None)
    gx, wx = _axis(left, bw, size, width, crop_taps(width, size), flip)
    return gy, wy, gx, wx


def sample_crops(x: torch.Tensor, gy: torch.Tensor, wy: torch.Tensor, gx: torch.Tensor,
                 wx: torch.Tensor) -> torch.Tensor:
    """Float images x [B, C, H, W] read at crop_coords' coordinates: views [B, V, C, S, S], one grid_sample call."""
    b, c = x.shape[:2]
    v, size, ky, kx = gy.shape[1], gy.shape[2], wy.numel(), wx.numel()
    # The views of an image are stacked along the grid's height, so every image is read once: [B, V*S*ky, S*kx, 2].
    grid = torch.stack([gx.reshape(b, v, 1, size * kx).expand(b, v, size * ky, size * kx),
                        gy.reshape(b, v, size * ky, 1).expand(b, v, size * ky, size * kx)], dim=-1)
    out = F.grid_sample(x, grid.view(b, v * size * ky, size * kx, 2), mode="bilinear",
                        padding_mode="border", align_corners=False)  # [B, C, V*S*ky, S*kx]
    if ky > 1 or kx > 1:  # antialiasing taps: weighted sum over each output pixel's ky x kx samples
        out = torch.einsum("bcvyjxk,j,k->bcvyx", out.view(b, c, v, size, ky, size, kx), wy.to(x.dtype), wx.to(x.dtype))
    return out.view(b, c, v, size, size).transpose(1, 2)  # [B, V, C, S, S]


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor) -> torch.Tensor:
    """Crop boxes [B, V, 4] (top, left, height, width) of x [B, C, H, W], resize each to size x size, mirror where
    flip [B, V]: float views [B, V, C, size, size] (torchvision's resized_crop then horizontal_flip, per view)."""
    return sample_crops(x, *crop_coords(boxes, size, x.shape[2], x.shape[3], flip))
