"""Batched multi-view augmentation on the training device: uint8 [B, 3, H, W] -> float views [B, V, 3, S, S].

The same SimCLR / BYOL / DINO policy as the per-image PIL path (`SimCLRAugment`, `MultiCropAugment`): random
resized crop (scale, ratio (3/4, 4/3), torchvision's 10-try rejection sampling with its centre-crop fallback),
horizontal flip, colour jitter, random grayscale, Gaussian blur, inversion, solarisation, then normalisation with the same
MEAN/STD. Every (image, view) draws its own parameters from one `torch.Generator`; the draws are exposed as
`ViewParams` ([B, V] tensors) so they can be inspected and tested, and `apply` is a pure function of them.

Why own kernels rather than torchvision.transforms.v2.functional: each v2 functional op takes ONE parameter
set per call (checked on torchvision 0.26: a [B, 1, 1, 1] tensor as brightness/contrast/saturation/hue factor,
blur sigma, crop top or solarise threshold raises "Boolean value of Tensor with more than one value is
ambiguous", because the ops validate and use their arguments as Python scalars). Per-sample parameters would
then cost a Python loop of B * V calls, the per-image cost this module removes. kornia is not a dependency.
The kernels (batched_ops.py) are pure torch with the v2 formulas and are tested against v2 one sample at a time.

Colour jitter runs in a FIXED order: brightness, contrast, saturation, hue (the order ColorJitter lists its
factors in). The PIL path draws a random order per image; vectorising that needs every op evaluated at each of
the 4 positions and selected per sample (4x the jitter cost, hue the dearest op) for a second-order change in
the view distribution (not measured here). The factors' ranges and the application probability are the
policy's exactly.

Known differences from the PIL path, all small: pixels stay float from the crop on (the PIL path rounds to
uint8 after every op, up to 1/255 each); downscaling crops (crop larger than S, e.g. DINO's local crops) are
antialiased with variance-matched bilinear taps instead of torchvision's exact triangle filter; upscaling
crops are exactly torchvision's bilinear resize.

Use: a collator yields raw pixels {"images": uint8 [B, 3, H, W]}; the model (or the loop) makes the views on
the device, `views = BatchedViewAugment.from_policy(SimCLRAugment(**augment))(images, generator)`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

from multissl.modalities.image import batched_ops as ops
from multissl.modalities.image.multicrop import MultiCropAugment
from multissl.modalities.image.transforms import MEAN, STD, SimCLRAugment

CROP_RATIO = (3 / 4, 4 / 3)  # v2.RandomResizedCrop's default, which both PIL policies use
BLUR_SIGMA = (0.1, 2.0)  # both PIL policies' GaussianBlur sigma range
# BYOL's asymmetric pair (Grill et al. 2020, Table 6): view 1 always blurred, view 2 rarely, and solarised.
BYOL_VIEWS = {"blur_prob": (1.0, 0.1), "solarize_prob": (0.0, 0.2)}


def blur_kernel_size(image_size: int) -> int:
    """The PIL policies' Gaussian kernel: ~10% of the side, odd, at least 3."""
    return max(3, int(0.1 * image_size) // 2 * 2 + 1)


@dataclass(frozen=True)
class ViewPolicy:
    """One view's augmentation parameters; jitter fields are factor ranges as torchvision's ColorJitter stores them."""

    size: int
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = CROP_RATIO
    hflip_prob: float = 0.5
    brightness: tuple[float, float] = (0.6, 1.4)
    contrast: tuple[float, float] = (0.6, 1.4)
    saturation: tuple[float, float] = (0.6, 1.4)
    hue: tuple[float, float] = (-0.1, 0.1)
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    invert_prob: float = 0.0
    blur_prob: float = 0.5
    blur_kernel: int = 3
    blur_sigma: tuple[float, float] = BLUR_SIGMA
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.5  # on [0, 1] pixels (128 of 255)

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"size must be >= 1; got {self.size}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1; got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max; got {self.crop_ratio}")
        for name in ("hflip_prob", "jitter_prob", "grayscale_prob", "invert_prob", "blur_prob", "solarize_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0 or self.blur_kernel // 2 >= max(self.size, 2):
            raise ValueError(f"blur_kernel must be odd, >= 1 and its half-width below size {self.size}; "
                             f"got {self.blur_kernel}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name)[0] <= getattr(self, name)[1]:
                raise ValueError(f"{name} must be a factor range 0 <= min <= max; got {getattr(self, name)}")
        if not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"hue must satisfy -0.5 <= min <= max <= 0.5; got {self.hue}")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must satisfy 0 < min <= max; got {self.blur_sigma}")

    @classmethod
    def jittered(cls, size: int, b: float, c: float, s: float, h: float, **kwargs) -> ViewPolicy:
        """ColorJitter(b, c, s, h)'s factor ranges: [max(0, 1 - x), 1 + x] and [-h, h] for hue."""
        def rng(x: float) -> tuple[float, float]:
            return max(0.0, 1.0 - x), 1.0 + x

        return cls(size=size, brightness=rng(b), contrast=rng(c), saturation=rng(s), hue=(-h, h),
                   blur_kernel=blur_kernel_size(size), **kwargs)

    @classmethod
    def from_simclr(cls, aug: SimCLRAugment, **overrides) -> ViewPolicy:
        """The view `aug.build()` makes: jitter (0.8s, 0.8s, 0.8s, 0.2s) for s = jitter_strength."""
        s = aug.jitter_strength
        base = cls.jittered(aug.image_size, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, crop_scale=tuple(aug.crop_scale),
                            hflip_prob=aug.hflip_prob, jitter_prob=aug.jitter_prob,
                            grayscale_prob=aug.grayscale_prob, invert_prob=aug.invert_prob,
                            blur_prob=aug.blur_prob)
        return replace(base, **overrides)

    @classmethod
    def from_multicrop(cls, aug: MultiCropAugment) -> tuple[ViewPolicy, ViewPolicy]:
        """(global, local) views of `aug.build()`: jitter (s, s, 0.5s, 0.25s), sizes and scales per crop kind."""
        s = aug.jitter_strength

        def make(size: int, scale: tuple[float, float]) -> ViewPolicy:
            return cls.jittered(size, s, s, 0.5 * s, 0.25 * s, crop_scale=tuple(scale), hflip_prob=aug.hflip_prob,
                                jitter_prob=aug.jitter_prob, grayscale_prob=aug.grayscale_prob,
                                invert_prob=aug.invert_prob, blur_prob=aug.blur_prob)

        return make(aug.global_size, aug.global_scale), make(aug.local_size, aug.local_scale)


@dataclass
class ViewParams:
    """Per-(image, view) draws, every field [B, V]: crop box in pixels, flags, and the raw jitter/blur values
    (drawn for every view; the flags say whether the op is applied)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    grayscale: torch.Tensor
    invert: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor
    solarize: torch.Tensor

    def to(self, device: torch.device | str) -> ViewParams:
        """The same draws on another device (self when already there)."""
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)}
        return self if self.flip.device == torch.device(device) else ViewParams(**moved)


class BatchedViewAugment:
    """V views of every image, each view its own ViewPolicy (one output size): uint8 [B, 3, H, W] -> [B, V, 3, S, S]."""

    cpu_block_elems = 2 ** 18  # floats per CPU block (1 MiB), see apply

    def __init__(self, views: Sequence[ViewPolicy], mean: Sequence[float] = MEAN, std: Sequence[float] = STD):
        views = list(views)
        if not views or any(not isinstance(v, ViewPolicy) for v in views):
            raise ValueError(f"views must be a non-empty sequence of ViewPolicy; got {views!r}")
        if len({v.size for v in views}) != 1:
            raise ValueError(f"views must share one output size (stack them); got sizes {[v.size for v in views]}")
        self.views, self.size = views, views[0].size
        self.mean, self.std = tuple(mean), tuple(std)
        self.blur_width = max(vp.blur_kernel for vp in views)
        # Ops that no view can apply are skipped: a fact of the policy, never a data-dependent branch.
        self.uses = {op: any(getattr(vp, f"{op}_prob") > 0 for vp in views)
                     for op in ("jitter", "grayscale", "invert", "blur", "solarize")}
        self.uses["blur"] &= self.blur_width > 1

    @classmethod
    def from_policy(cls, policy: SimCLRAugment, num_views: int = 2, **per_view: Sequence) -> BatchedViewAugment:
        """num_views views of a SimCLR policy; per_view gives a ViewPolicy field one value per view, e.g. BYOL_VIEWS."""
        for name, values in per_view.items():
            if name not in ViewPolicy.__dataclass_fields__ or len(values) != num_views:
                raise ValueError(f"{name}: expected a ViewPolicy field with {num_views} per-view values; "
                                 f"got {values!r}")
        return cls([ViewPolicy.from_simclr(policy, **{k: v[i] for k, v in per_view.items()}) for i in range(num_views)])

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        """One policy field over the views: [V] or [V, 2]."""
        return torch.tensor([getattr(v, name) for v in self.views], dtype=torch.float32, device=device)

    def sample(self, batch: int, height: int, width: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> ViewParams:
        """Draw ViewParams [B, V] for images of height x width on the generator's device; returned on `device`."""
        gdev = generator.device if generator is not None else torch.device(device or "cpu")
        v = len(self.views)
        tries = torch.rand(4, batch, v, 10, generator=generator, device=gdev)
        top, left, ch, cw = ops.random_resized_boxes(height, width, self._table("crop_scale", gdev),
                                                     self._table("crop_ratio", gdev), tries)
        u = torch.rand(10, batch, v, generator=generator, device=gdev)  # one uniform per op and (image, view)
        # Inversion came later: its uniforms are drawn only by policies that use it, so every other policy's draws
        # (and so its runs) stay what they were.
        u_invert = (torch.rand(batch, v, generator=generator, device=gdev) if self.uses["invert"]
                    else torch.ones(batch, v, device=gdev))

        def p(name: str) -> torch.Tensor:
            return self._table(name, gdev)

        def between(name: str, x: torch.Tensor) -> torch.Tensor:
            lo, hi = p(name).unbind(-1)
            return lo + (hi - lo) * x

        params = ViewParams(
            top=top, left=left, height=ch, width=cw, flip=u[0] < p("hflip_prob"), jitter=u[1] < p("jitter_prob"),
            brightness=between("brightness", u[2]), contrast=between("contrast", u[3]),
            saturation=between("saturation", u[4]), hue=between("hue", u[5]), grayscale=u[6] < p("grayscale_prob"),
            invert=u_invert < p("invert_prob"),
            blur=u[7] < p("blur_prob"), sigma=between("blur_sigma", u[8]), solarize=u[9] < p("solarize_prob"))
        return params if device is None or torch.device(device) == gdev else params.to(device)

    def apply(self, images: torch.Tensor, params: ViewParams) -> torch.Tensor:
        """uint8 images [B, 3, H, W] and draws [B, V] -> normalised float views [B, V, 3, S, S]."""
        _check_images(images)
        b, v, s, dev = images.shape[0], len(self.views), self.size, images.device
        if tuple(params.flip.shape) != (b, v):
            raise ValueError(f"params: expected draws for [B, V] = {[b, v]}; got {list(params.flip.shape)}")
        per_view, wy, wx = self._plan(params.to(dev), images.shape[2], images.shape[3])
        out = torch.empty(b, v, 3, s, s, device=dev)
        # Cache blocking on CPU: elementwise ops over a ~1 MiB block stay in cache and reuse freed buffers, several
        # times faster than one pass per op over a batch that lives in DRAM. Each block is vectorised and the draws
        # were made for the whole batch, so the output does not depend on the block size. One block on accelerators.
        step = max(1, self.cpu_block_elems // (v * 3 * s * s)) if dev.type == "cpu" else b
        for i in range(0, b, step):
            rows = {k: t[i:i + step] for k, t in per_view.items()}
            self._views(images[i:i + step], rows, wy, wx, out[i:i + step])
        return out

    def _plan(self, p: ViewParams, height: int,
              width: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """What the pixel pipeline needs per (image, view), [B, V, ...], once per batch; and the crop tap weights."""
        dev, shape = p.flip.device, p.flip.shape
        boxes = torch.stack([p.top, p.left, p.height, p.width], dim=-1)  # [B, V, 4]
        gy, wy, gx, wx = ops.crop_coords(boxes, self.size, height, width, p.flip)
        kernel_size = self._table("blur_kernel", dev).expand(shape)
        kernels = ops.gaussian_kernels(p.sigma.flatten(), kernel_size.flatten(), p.blur.flatten(), self.blur_width)
        on = p.jitter  # views without jitter get identity factors (exact no-ops): no gather/scatter of a subset
        per_view = {"gy": gy, "gx": gx, "brightness": torch.where(on, p.brightness, 1.0),
                    "contrast": torch.where(on, p.contrast, 1.0), "saturation": torch.where(on, p.saturation, 1.0),
                    "hue": p.hue, "jitter": on, "grayscale": p.grayscale, "invert": p.invert,
                    "kernels": kernels.view(*shape, -1),
                    "solarize": p.solarize, "threshold": self._table("solarize_threshold", dev).expand(shape)}
        return per_view, wy, wx

    def _views(self, images: torch.Tensor, rows: dict[str, torch.Tensor], wy: torch.Tensor, wx: torch.Tensor,
               out: torch.Tensor) -> None:
        """The pixel pipeline on one block: uint8 [b, 3, H, W] -> written into out [b, V, 3, S, S]."""
        b, v, s, dev = images.shape[0], len(self.views), self.size, images.device
        x = ops.sample_crops(images.float().div_(255), rows["gy"], wy, rows["gx"], wx)  # [b, V, 3, S, S]
        x = x.reshape(b * v, 3, s, s)  # [N, 3, S, S], N = b*V image-major
        n = {k: t.reshape(b * v, *t.shape[2:]) for k, t in rows.items()}  # per-view values [N, ...] in x's order
        if self.uses["jitter"]:  # fixed order: brightness, contrast, saturation, hue (module docstring)
            x = ops.adjust_brightness(x, n["brightness"])
            x = ops.adjust_contrast(x, n["contrast"])
            x = ops.adjust_saturation(x, n["saturation"])
            x = ops.select(n["jitter"], ops.adjust_hue(x, n["hue"]), x)
        if self.uses["grayscale"]:
            x = ops.grayscale(x, n["grayscale"])
        if self.uses["blur"]:
            x = ops.gaussian_blur(x, n["kernels"])
        if self.uses["invert"]:
            x = ops.invert(x, n["invert"])
        if self.uses["solarize"]:
            x = ops.solarize(x, n["solarize"], n["threshold"])
        # Normalise straight into the output: x / std - mean / std in one pass.
        scale = 1 / torch.tensor(self.std, device=dev).view(1, 3, 1, 1)
        shift = -torch.tensor(self.mean, device=dev).view(1, 3, 1, 1) * scale
        torch.addcmul(shift, x, scale, out=out.view(b * v, 3, s, s))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh draws + apply: uint8 [B, 3, H, W] -> float [B, V, 3, S, S] on images' device."""
        _check_images(images)
        b, _, h, w = images.shape
        return self.apply(images, self.sample(b, h, w, generator, device=images.device))


class BatchedMultiCrop:
    """DINO multi-crop on device: uint8 [B, 3, H, W] -> {"global_views": [B, 2, 3, G, G],
    "local_views": [B, N, 3, L, L]} (MultiCropCollator's keys and shapes)."""

    def __init__(self, global_views: BatchedViewAugment, local_views: BatchedViewAugment | None = None):
        self.global_views, self.local_views = global_views, local_views

    @classmethod
    def from_policy(cls, aug: MultiCropAugment, **global_per_view: Sequence) -> BatchedMultiCrop:
        """MultiCropCollator(aug)'s policy; global_per_view overrides the 2 global views (e.g. BYOL_VIEWS, DINO's)."""
        if aug.local_size > aug.global_size or aug.num_local < 0:
            raise ValueError(f"multicrop: need local_size <= global_size and num_local >= 0; got {aug}")
        g, loc = ViewPolicy.from_multicrop(aug)
        for name, values in global_per_view.items():
            if len(values) != 2:
                raise ValueError(f"{name}: expected 2 per-view values (global crops); got {values!r}")
        glob = BatchedViewAugment([replace(g, **{k: v[i] for k, v in global_per_view.items()}) for i in range(2)])
        return cls(glob, BatchedViewAugment([loc] * aug.num_local) if aug.num_local else None)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Both crop kinds from one generator (globals drawn first)."""
        out = {"global_views": self.global_views(images, generator)}
        if self.local_views is not None:
            out["local_views"] = self.local_views(images, generator)
        return out


def _check_images(images: object) -> None:
    """One clear ValueError unless images is a uint8 tensor [B, 3, H, W]."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images: expected a uint8 tensor [B, 3, H, W]; got {type(images).__name__}")  # noqa: TRY004
    if images.dtype != torch.uint8:
        raise ValueError(f"images: expected dtype uint8 (raw pixels 0..255); got {images.dtype}")
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images: expected shape [B, 3, H, W] with B >= 1; got {tuple(images.shape)}")
