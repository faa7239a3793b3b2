"""The `glyphs` renderer: letters from TrueType fonts, randomly coloured, textured, warped, blurred and noised.

Everything random is drawn from one numpy Generator in a fixed order, and every drawn parameter is a
fraction of the image side, so a build is a pure function of (fonts, letters, seed, style, image size)
and the 64 px build shows the same letters, colours and poses as the 32 px build. Glyph outlines are
rasterised once per (font, letter) with PIL/FreeType; the per-image work is one PIL affine warp (a C
call) plus numpy that is vectorised over the whole batch.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
TEXTURES = ("smooth_noise", "gradient", "stripes")
_LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 luminance weights for RGB in [0, 1]


@dataclass(frozen=True)
class GlyphStyle:
    """The difficulty knobs. Lengths are fractions of the image side; blur is in pixels at 32 px (scaled with size).

    The defaults were tuned on the validation split only (data_cards/glyphs.md lists what was tried): the
    geometric knobs (rotation, shear, scale, aspect, translation) are what keeps random-init features low.
    """

    cap_height: float = 0.55  # height of the font's "H" before scaling
    scale: tuple[float, float] = (0.8, 1.1)  # uniform glyph scale
    aspect: tuple[float, float] = (0.85, 1.2)  # extra horizontal stretch
    rotation_deg: float = 20.0  # rotation uniform in [-r, r]
    shear: float = 0.25  # horizontal shear uniform in [-s, s]
    translate: float = 0.1  # centre offset uniform in [-t, t] per axis
    min_contrast: float = 0.3  # luminance gap between the letter and every background pixel
    texture_contrast: float = 0.3  # luminance spread of the background texture
    stripe_cycles: tuple[float, float] = (1.5, 4.0)  # stripe frequency, cycles per image side
    blur_sigma: tuple[float, float] = (0.0, 0.9)
    noise_std: tuple[float, float] = (0.0, 0.08)  # Gaussian pixel noise, on the [0, 1] scale
    supersample: int = 2  # glyphs are warped at supersample x size, then box-averaged (anti-aliasing)


def matplotlib_font_dir() -> Path:
    """matplotlib's bundled TrueType folder (mpl-data/fonts/ttf), found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the glyphs dataset renders matplotlib's bundled fonts: `pip install matplotlib`")
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


def glyph_masks(font_path: str | Path, letters: tuple[str, ...], canvas: int, cap_height: float) -> np.ndarray:
    """Anti-aliased coverage masks [L, canvas, canvas] (uint8) of `letters`, each centred on its ink box.

    The font size makes this font's "H" `cap_height * canvas` pixels tall, so letters keep their
    relative sizes within a font and fonts with different em proportions come out the same size.
    """
    from PIL import Image, ImageDraw, ImageFont

    probe = ImageFont.truetype(str(font_path), 200)
    _, top, _, bottom = probe.getbbox("H")
    font = ImageFont.truetype(str(font_path), max(1, round(200 * cap_height * canvas / (bottom - top))))
    big = 3 * canvas  # room for wide letters (W, M) before cropping to the ink box
    out = np.zeros((len(letters), canvas, canvas), np.uint8)
    for i, ch in enumerate(letters):  # 26 rasterisations per font, once per build
        img = Image.new("L", (big, big), 0)
        ImageDraw.Draw(img).text((big // 3, big // 3), ch, font=font, fill=255)
        box = img.getbbox()
        if box is None:
            raise ValueError(f"font {Path(font_path).name} has no visible glyph for {ch!r}")
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        # Integer shift that puts the ink centre on the canvas centre; anything beyond the canvas is cut.
        left, upper = round(cx - canvas / 2), round(cy - canvas / 2)
        out[i] = np.asarray(img.crop((left, upper, left + canvas, upper + canvas)))
    return out


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def sample_params(rng: np.random.Generator, n: int, style: GlyphStyle) -> dict[str, np.ndarray]:
    """Draw every size-independent random choice for n images (always in this order, so builds repeat)."""
    p = {
        "scale": _uniform(rng, style.scale, n),
        "aspect": _uniform(rng, style.aspect, n),
        "rotation": np.deg2rad(rng.uniform(-style.rotation_deg, style.rotation_deg, n)),
        "shear": rng.uniform(-style.shear, style.shear, n),
        "shift": rng.uniform(-style.translate, style.translate, (n, 2)),
        "texture": rng.integers(0, len(TEXTURES), n),
        "noise_grid": rng.uniform(0.0, 1.0, (n, 4, 4)),
        "angle": rng.uniform(0.0, 2 * np.pi, n),
        "cycles": _uniform(rng, style.stripe_cycles, n),
        "phase": rng.uniform(0.0, 2 * np.pi, n),
        "colours": rng.uniform(0.0, 1.0, (n, 3, 3)),  # raw RGB of letter, background end 1, end 2
        "blur": _uniform(rng, style.blur_sigma, n),
        "noise_std": _uniform(rng, style.noise_std, n),
    }
    # Luminances: a dark/light pair at least `gap` apart; a coin flip says which one the letter takes,
    # and the background texture spans `texture_contrast` around the other, never nearer than min_contrast.
    gap = style.min_contrast + style.texture_contrast / 2
    if gap >= 1:
        raise ValueError(f"style: min_contrast + texture_contrast / 2 must be < 1; got {gap}")
    dark = rng.uniform(0.0, 1.0 - gap, n)
    light = dark + gap + rng.uniform(0.0, 1.0, n) * (1.0 - gap - dark)
    letter_dark = rng.random(n) < 0.5
    p["fg_luma"] = np.where(letter_dark, dark, light)
    centre = np.where(letter_dark, light, dark)
    half = style.texture_contrast / 2
    p["bg_luma"] = np.clip(np.stack([centre - half, centre + half], 1), 0.0, 1.0)  # [n, 2]
    return p


def with_luma(rgb: np.ndarray, luma: np.ndarray) -> np.ndarray:
    """Move colours [..., 3] to luminance `luma` [...] by mixing toward black or white (keeps the hue)."""
    cur = rgb @ _LUMA
    up = rgb + (1.0 - rgb) * ((luma - cur) / np.maximum(1.0 - cur, 1e-6))[..., None]
    down = rgb * (luma / np.maximum(cur, 1e-6))[..., None]
    return np.clip(np.where((luma > cur)[..., None], up, down), 0.0, 1.0)


def textures(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Background mixing weights t in [0, 1], [N, S, S]: smooth noise, a linear gradient or stripes."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    y, x = coords[None, :, None], coords[None, None, :]
    # Bilinear upsampling of the 4x4 noise grid as two matrix products (exact, vectorised over N).
    pos = np.clip((coords + 1) / 2 * 3, 0, 3)
    lo = np.minimum(np.floor(pos).astype(int), 2)
    interp = np.zeros((size, 4))
    interp[np.arange(size), lo] = 1 - (pos - lo)
    interp[np.arange(size), lo + 1] = pos - lo
    noise = np.einsum("ia,nab,jb->nij", interp, p["noise_grid"], interp)
    cos, sin = np.cos(p["angle"])[:, None, None], np.sin(p["angle"])[:, None, None]
    along = x * cos + y * sin  # [N, S, S], in [-sqrt2, sqrt2]
    stripes = 0.5 + 0.5 * np.sin(np.pi * p["cycles"][:, None, None] * along + p["phase"][:, None, None])
    out = np.choose(p["texture"][:, None, None], [noise, along, stripes])
    lo_v, hi_v = out.min(axis=(1, 2), keepdims=True), out.max(axis=(1, 2), keepdims=True)
    return (out - lo_v) / np.maximum(hi_v - lo_v, 1e-6)  # each image spans its full texture contrast


def warp_alpha(masks: np.ndarray, which: np.ndarray, p: dict[str, np.ndarray], size: int, factor: int) -> np.ndarray:
    """Letter coverage [N, S, S] in [0, 1]: masks[which] ([M, R, R], R = factor * S) warped by each image's affine."""
    from PIL import Image

    res = masks.shape[-1]
    if res != factor * size:
        raise ValueError(f"masks must be {factor * size}px (supersample x image_size); got {res}px")
    cos, sin = np.cos(p["rotation"]), np.sin(p["rotation"])
    sx, sy = p["scale"] * p["aspect"], p["scale"]
    # Forward map (about the centre) = rotate . shear . diag(sx, sy); PIL wants the inverse (output -> input).
    fwd = np.stack([np.stack([cos * sx, cos * p["shear"] * sy - sin * sy], -1),
                    np.stack([sin * sx, sin * p["shear"] * sy + cos * sy], -1)], -2)  # [N, 2, 2]
    inv = np.linalg.inv(fwd)
    centre = res / 2
    offset = centre - np.einsum("nij,nj->ni", inv, centre + p["shift"] * res)  # in = inv @ out + offset
    coeffs = np.concatenate([inv[:, 0], offset[:, :1], inv[:, 1], offset[:, 1:]], 1)  # [N, 6]: a b c d e f
    images = [Image.fromarray(m) for m in masks]
    warped = np.stack([  # one C-level warp per image; PIL has no batched affine
        np.asarray(images[k].transform((res, res), Image.AFFINE, tuple(c), resample=Image.BILINEAR))
        for k, c in zip(which.tolist(), coeffs.tolist())
    ])
    n = len(which)
    return warped.reshape(n, size, factor, size, factor).mean(axis=(2, 4)) / 255.0  # box-average down to S


def gaussian_blur(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur of [N, S, S, C] with a per-image sigma [N] in pixels (0 = unchanged), edges clamped."""
    radius = max(1, int(np.ceil(3 * sigma.max())))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps[None, :] / np.maximum(sigma, 1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdims=True)).astype(images.dtype)  # [N, K]
    for axis in (1, 2):  # rows then columns; each is one einsum over a [N, S, S, C, K] window view (no copy)
        pad = [(0, 0)] * images.ndim
        pad[axis] = (radius, radius)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(images, pad, mode="edge"), len(taps), axis=axis)
        images = np.einsum("nhwck,nk->nhwc", windows, kernel, optimize=True)
    return images


CHUNK = 512  # images composed at once: bounds memory at 64 px; fixed, because the noise stream is drawn per chunk


def _take(p: dict[str, np.ndarray], sl: slice) -> dict[str, np.ndarray]:
    return {k: v[sl] for k, v in p.items()}


def compose(alpha: np.ndarray, p: dict[str, np.ndarray], rng: np.random.Generator, size: int) -> np.ndarray:
    """RGB uint8 [N, S, S, 3]: letter coverage alpha [N, S, S] in its colour over the textured background, blurred, noised."""
    fg = with_luma(p["colours"][:, 0], p["fg_luma"]).astype(np.float32)  # [N, 3]
    ends = with_luma(p["colours"][:, 1:], p["bg_luma"]).astype(np.float32)  # [N, 2, 3]
    t = textures(p, size).astype(np.float32)[..., None]  # [N, S, S, 1]
    a = alpha.astype(np.float32)[..., None]
    background = ends[:, None, None, 0] + t * (ends[:, None, None, 1] - ends[:, None, None, 0])
    img = background + a * (fg[:, None, None, :] - background)
    img = gaussian_blur(img, (p["blur"] * size / 32.0).astype(np.float32))
    img += p["noise_std"].astype(np.float32)[:, None, None, None] * rng.standard_normal(img.shape, dtype=np.float32)
    return np.rint(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def render(masks: np.ndarray, which: np.ndarray, rng: np.random.Generator, size: int,
           style: GlyphStyle) -> np.ndarray:
    """RGB images uint8 [N, S, S, 3] of letters masks[which] (masks: [M, R, R] from glyph_masks at R = supersample*S).

    All size-independent parameters are drawn first for the N images, then the pixel noise chunk by chunk.
    """
    n = len(which)
    p = sample_params(rng, n, style)
    out = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, CHUNK):  # chunks of CHUNK images keep float buffers small at 64 px
        sl = slice(start, start + CHUNK)
        chunk = _take(p, sl)
        out[sl] = compose(warp_alpha(masks, which[sl], chunk, size, style.supersample), chunk, rng, size)
    return out
