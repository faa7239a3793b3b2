"""Image views: SimCLR's augmentation policy, a deterministic eval transform, and input conversion.

`to_rgb` turns whatever a dataset row holds into an 8-bit PIL RGB image, never clipping:

* PIL modes 1, L, P, CMYK, YCbCr, LAB, HSV, RGBX: Pillow's own conversion (LAB through its sRGB
  colour profile, CMYK naively, YCbCr with the JPEG matrix).
* Transparency (RGBA, LA, PA, RGBa, La, P or L/RGB with a transparent colour, HxWx4 arrays) is
  composited over WHITE, what browsers and viewers show and what transformers' image processors
  (and `image_text.flatten_alpha`) do, so training, zero-shot and a person looking at the file agree:
  out = round((c * a + 255 * (255 - a)) / 255).
* 16 bits (PIL I;16/I;16B/I;16L, uint16 arrays): the full range maps to 8 bits, round(v / 257),
  so 65535 -> 255 and 32768 -> 128 (Pillow's own convert("RGB") clips at 255 instead).
* Other integers (PIL "I", int8..int64/uint32/uint64 arrays, e.g. lists from an Array2D column):
  the values decide, since the dtype says nothing about the range: all in 0..255 -> kept as 8-bit,
  all in 0..65535 -> 16-bit (/ 257). Anything else: an array is a ValueError naming the observed
  range; a PIL "I" image (a 32-bit TIFF has no conventional range) is min-max scaled per image.
* Floats: all in [0, 1] -> round(v * 255), the torchvision/scikit-image convention. Outside it an
  array is a ValueError (it is most often an already-normalised tensor or 0..255 data in floats, and
  guessing would silently change contrast; the message says to cast 0..255 data to uint8); a PIL "F"
  image (float TIFF: depth, HDR) has no conventional range, so it is min-max scaled per image
  (a constant one becomes black). NaN/inf are always an error.
* bool -> 0 / 255.
* Array layouts: HxW, HxWx1, HxWx3, HxWx4, and CxHxW (torch layout, C in 1/3/4), transposed only when
  unambiguous: a last axis of 1, 3 or 4 is always read as channels (HxWxC wins a tie such as 3x4x4).
  Two channels (gray+alpha or not?), other ranks, empty arrays and non-numeric data are ValueErrors.
Every error is one ValueError line starting with `field`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
CHANNELS = (1, 3, 4)  # gray, RGB, RGBA
EXPECTED = "an HxW, HxWxC or CxHxW array with C = 1 (gray), 3 (RGB) or 4 (RGBA)"


def _from_16bit(arr: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 as round(v / 257) in integers (exact, half up): any shape, uint8 out."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _min_max(arr: np.ndarray) -> np.ndarray:
    """Per-image min-max stretch to 0..255 (a constant image becomes 0): any shape, uint8 out."""
    a = arr.astype(np.float64)
    lo, hi = a.min(), a.max()
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    return np.floor((a - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _to_uint8(arr: np.ndarray, field: str, stretch: bool) -> np.ndarray:
    """Pixel values of any numeric dtype -> uint8 by the module's rules; `stretch` = min-max instead of an error."""
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if kind == "u" and arr.dtype.itemsize == 2:  # uint16 (any byte order): the dtype fixes the range
        return _from_16bit(arr)
    if kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return _from_16bit(arr)
        if stretch:
            return _min_max(arr)
        raise ValueError(
            f"{field}: integer pixel values span {lo}..{hi}; expected 0..255 (8-bit) or 0..65535 (16-bit); "
            f"rescale the image to one of those ranges"
        )
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{field}: image holds NaN or infinite values; expected finite pixel values")
        a = arr.astype(np.float32) if arr.dtype.itemsize < 4 else arr  # float16 * 255 loses precision
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.floor(a * 255.0 + 0.5).astype(np.uint8)
        if stretch:
            return _min_max(a)
        raise ValueError(
            f"{field}: float pixel values span {lo:g}..{hi:g}; expected floats in [0, 1] "
            f"(cast 0..255 data to uint8, or undo the normalisation first)"
        )
    raise ValueError(f"{field}: expected numeric pixel values, got an array of dtype {arr.dtype}")


def _to_hwc(arr: np.ndarray, field: str) -> np.ndarray:
    """[H, W] / [H, W, C] / [C, H, W] -> [H, W, C] with C in 1, 3, 4; ValueError for anything else."""
    if arr.size == 0:
        raise ValueError(f"{field}: empty image array of shape {arr.shape}; expected at least 1x1 pixels")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        if arr.shape[-1] == 2:
            raise ValueError(f"{field}: array of shape {arr.shape} has 2 channels; expected {EXPECTED} "
                             f"(for gray + alpha pass a PIL 'LA' image)")
        if arr.shape[-1] not in CHANNELS:
            if arr.shape[0] not in CHANNELS:
                raise ValueError(f"{field}: array of shape {arr.shape} has no channel axis of size 1, 3 or 4; "
                                 f"expected {EXPECTED}")
            arr = arr.transpose(1, 2, 0)  # CxHxW (torch layout) -> HxWxC
    else:
        raise ValueError(f"{field}: array of shape {arr.shape} has {arr.ndim} dimensions; expected {EXPECTED}")
    return arr


def _composite_white(rgba: Image.Image) -> Image.Image:
    """RGBA -> RGB over opaque white: round((c * a + 255 * (255 - a)) / 255) per channel.

    Pillow's alpha_composite gives exactly this rounding for every (c, a) pair, about 3x faster than numpy.
    """
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _hwc_to_image(arr: np.ndarray) -> Image.Image:
    """[H, W, C] uint8 with C in 1, 3, 4 -> PIL RGB (alpha composited over white)."""
    if arr.shape[-1] == 1:
        return Image.fromarray(np.ascontiguousarray(arr[..., 0]), "L").convert("RGB")
    if arr.shape[-1] == 4:
        return _composite_white(Image.fromarray(np.ascontiguousarray(arr), "RGBA"))
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def _pil_to_rgb(image: Image.Image, field: str) -> Image.Image:
    """A PIL image of any mode -> RGB by the module's rules."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ALPHA_MODES or (mode in ("1", "L", "P", "RGB") and "transparency" in image.info):
        rgba = image.convert("LA") if mode == "La" else image  # Pillow has no La -> RGBA path
        return _composite_white(rgba.convert("RGBA"))
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's own convert clips these at 255; scale their real range instead.
        return _hwc_to_image(_to_uint8(np.asarray(image)[:, :, None], field, stretch=True))
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise ValueError(f"{field}: cannot convert a PIL image of mode {mode!r} to RGB ({err})") from err


def to_rgb(image, field: str = "image", min_size: int = 1) -> Image.Image:
    """An 8-bit PIL RGB image from a row value (PIL image of any mode, HxW(xC)/CxHxW array or tensor).

    Conversion rules (scaling, alpha over white, layouts) are in this module's docstring; bad input is
    a ValueError starting with `field` that says what was expected.
    """
    if image is None:
        raise ValueError(f"{field}: missing image (None)")
    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise ValueError(f"{field}: empty image ({image.size[0]}x{image.size[1]}); expected at least 1x1 pixels")
        try:
            image.load()  # decode now (a no-op if done) so a bad file fails here, naming the field
            rgb = _pil_to_rgb(image, field)
        except OSError as err:  # truncated/corrupt file behind a lazily decoded image
            raise ValueError(f"{field}: cannot decode the image ({err})") from err
    else:
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu()
            image = (image.float() if image.dtype == torch.bfloat16 else image).numpy()  # numpy has no bfloat16
        try:
            arr = np.asarray(image)
        except (ValueError, TypeError) as err:  # e.g. ragged nested lists
            raise ValueError(f"{field}: expected a PIL image or {EXPECTED}, got {type(image).__name__} ({err})") from err
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{field}: expected a PIL image or {EXPECTED}, got {type(image).__name__} of dtype {arr.dtype}")
        arr = _to_hwc(arr, field)
        rgb = _hwc_to_image(_to_uint8(arr, field, stretch=False))
    if min(rgb.size) < min_size:
        raise ValueError(f"{field}: image is {rgb.size[0]}x{rgb.size[1]}, smaller than the required {min_size}x{min_size}")
    return rgb


@dataclass
class SimCLRAugment:
    """SimCLR policy (Chen et al. 2020, App. A): random resized crop, flip, colour jitter, grayscale, blur.

    invert_prob (default 0, off): invert the whole view (v2.RandomInvert) after blur. Not in SimCLR's policy;
    for data whose light-on-dark vs dark-on-light polarity is a nuisance that every other op keeps (glyphs: a coin
    flip per image), which BYOL and DINO otherwise learn as their dominant feature (docs/results.md).
    """

    image_size: int = 32
    crop_scale: tuple[float, float] = (0.2, 1.0)
    hflip_prob: float = 0.5
    jitter_strength: float = 0.5
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    invert_prob: float = 0.0

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
            # Only when used: RandomInvert draws from torch's RNG even at p = 0, which would move every later draw.
            *([v2.RandomInvert(self.invert_prob)] if self.invert_prob > 0 else []),
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
