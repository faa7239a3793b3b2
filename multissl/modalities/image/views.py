"""Collators that turn rows with `image` into augmented views (SimCLR, MoCo v2, BYOL) or deterministic eval batches."""
from __future__ import annotations

from dataclasses import fields

import torch

from multissl.modalities.image.image_batch import ImageBatch, uint8_batch
from multissl.modalities.image.transforms import SimCLRAugment, eval_transform, to_rgb

# Where the views are made: per image with PIL/v2 in the collator (default); the whole batch at once in the collator
# ("batched", CPU workers); or the whole batch on the training device ("device": the collator ships raw uint8 pixels
# as {"images": [B, 3, S, S]} and the model calls DeviceViews on them, so decoding stays on the CPU workers).
BACKENDS = ("pil", "batched", "device")


def split_backend(augment: dict | None, field: str = "augment") -> tuple[str, dict]:
    """(backend, the policy keys) of an augment dict whose optional `backend` key picks the implementation."""
    augment = dict(augment or {})
    backend = augment.pop("backend", "pil")
    if backend not in BACKENDS:
        raise ValueError(f"{field}.backend: expected one of {BACKENDS}; got {backend!r}")
    return backend, augment



class ImageViewsCollator:
    """Rows with `image` -> {"pixel_values": [B, V, 3, S, S]} (V augmented views) or [B, 3, S, S] for eval."""

    def __init__(self, image_size: int, augment: dict | None = None, num_views: int = 2, train: bool = True):
        backend, augment = split_backend(augment)
        valid = {f.name for f in fields(SimCLRAugment)} - {"image_size"}
        unknown = set(augment) - valid
        if unknown:
            raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; allowed: {sorted(valid | {'backend'})}")
        self.train, self.num_views, self.image_size, self.backend = train, num_views, image_size, backend
        policy = SimCLRAugment(image_size=image_size, **augment)
        self.transform = policy.build() if train else eval_transform(image_size)
        self.batched = None
        if train and backend == "batched":
            from multissl.modalities.image.batched_augment import BatchedViewAugment

            self.batched = BatchedViewAugment.from_policy(policy, num_views)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.train and self.backend == "device":
            return {"images": uint8_batch(rows, self.image_size)}
        if self.batched is not None:  # one vectorised pass over the batch; per-(image, view) draws from `generator`
            return {"pixel_values": self.batched(uint8_batch(rows, self.image_size), generator)}
        # torchvision's v2 transforms draw from the global RNG, which the batch source seeds per micro-batch.
        images = [to_rgb(r.get("image"), field=f"row {i}: 'image'") for i, r in enumerate(rows)]
        if not self.train:
            return {"pixel_values": torch.stack([self.transform(im) for im in images])}
        views = [torch.stack([self.transform(im) for _ in range(self.num_views)]) for im in images]
        return {"pixel_values": torch.stack(views)}  # [B, V, 3, S, S]


class EvalImageCollator:
    """Deterministic eval inputs for embed(): {"pixel_values": [B, 3, S, S]} (resize + normalise)."""

    def __init__(self, image_size: int):
        self.batch = ImageBatch(image_size, train=False)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.batch(rows)}


class DeviceViews:
    """The model-side half of `backend: device`: uint8 [B, 3, S, S] on the device -> views [B, V, 3, S, S] there.

    Draws come from the device's default generator, which the training loop seeds from (seed, step, rank)
    before every forward, so a resumed run makes the same views. Built lazily and cached by the model (it is
    not a module: it holds no weights and is not saved).
    """

    def __init__(self, image_size: int, augment: dict | None, num_views: int = 2):
        from multissl.modalities.image.batched_augment import BatchedViewAugment

        _, policy = split_backend(augment)
        self.augment = BatchedViewAugment.from_policy(SimCLRAugment(image_size=image_size, **policy), num_views)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.augment(images)


def views_from(pixel_values: torch.Tensor | None, images: torch.Tensor | None, make: object) -> torch.Tensor:
    """The views a multi-view forward trains on: pixel_values as given, or `make()(images)` for `backend: device`."""
    if images is not None:
        return make()(images)
    if pixel_values is None:
        raise ValueError("expected pixel_values [B, V, 3, S, S] (views made by the collator) or images uint8 [B, 3, S, S] "
                         "(augment.backend: device)")
    return pixel_values
