"""Views per second: batched on-device views vs today's per-image PIL pipeline on the same images; prints the ratio.

Goal: batched / PIL >= 3x on CPU.   Run: OMP_NUM_THREADS=1 python benchmarks/bench_batched_augment.py [--repeats 7]

Cases: SimCLR's two views of 256 images of 32 px (S = 32) and of 96 px (S = 96), and DINO multi-crop
(2 global 32 px + 4 local 16 px crops, MultiCropAugment's defaults) of 128 images of 32 px.
PIL path = what the collators do today: `SimCLRAugment(image_size=S).build()` applied to every PIL image once
per view and stacked (ImageViewsCollator), or MultiCropCollator itself. Batched path = BatchedViewAugment /
BatchedMultiCrop built from the same policy dataclass, on the same pixels as one uint8 tensor [B, 3, H, W];
"+stack" also counts turning the PIL images into that tensor (what a uint8 collator would do). All paths are
timed alternately (PIL, batched, +stack, ...) so load from other jobs hits them alike; each figure is the median
over the repeats. With CUDA available the batched path is also timed on the GPU (synchronised) against the same
CPU PIL median. One CPU thread.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from PIL import Image

from multissl.modalities.image.batched_augment import BatchedMultiCrop, BatchedViewAugment
from multissl.modalities.image.multicrop import MultiCropAugment, MultiCropCollator
from multissl.modalities.image.transforms import SimCLRAugment

NUM_VIEWS = 2


def pil_views(transform, images: list[Image.Image]) -> torch.Tensor:
    """Today's ImageViewsCollator: every image through the v2 pipeline once per view -> [B, V, 3, S, S]."""
    return torch.stack([torch.stack([transform(im) for _ in range(NUM_VIEWS)]) for im in images])


def to_uint8(images: list[Image.Image]) -> torch.Tensor:
    """PIL RGB images -> uint8 [B, 3, H, W] (what a uint8 collator hands the model)."""
    return torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).contiguous()


def stacked(batched: Callable, images: list[Image.Image], gen: torch.Generator):
    """The batched path including the PIL -> uint8 stack."""
    return batched(to_uint8(images), gen)


def timed(fn: Callable, sync: bool) -> float:
    """Seconds of one call (GPU work waited for when sync)."""
    if sync:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def cases() -> list[tuple[str, int, int, Callable, Callable, int]]:
    """(name, images, side, PIL path over PIL images, batched path over (uint8, generator), views per image)."""
    out = []
    for b, side in [(256, 32), (256, 96)]:
        policy = SimCLRAugment(image_size=side)
        out.append((f"SimCLR S={side}", b, side, partial(pil_views, policy.build()),
                    BatchedViewAugment.from_policy(policy, num_views=NUM_VIEWS), NUM_VIEWS))
    mc = MultiCropAugment(global_size=32)
    collate = MultiCropCollator(mc)
    out.append(("DINO 2x32+4x16", 128, 32, lambda ims: collate([{"image": im} for im in ims]),
                BatchedMultiCrop.from_policy(mc), 2 + mc.num_local))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), median of {args.repeats} alternated "
          f"repeats; CUDA: {torch.cuda.get_device_name() if cuda else 'no'}")
    print(f"{'case':<16} {'B':>4} {'side':>5} {'PIL views/s':>12} {'batched views/s':>16} {'ratio':>6} "
          f"{'+stack views/s':>15} {'ratio':>6}" + (f" {'CUDA views/s':>13} {'ratio':>7}" if cuda else ""))
    for name, b, side, pil, batched, views in cases():
        rng = np.random.default_rng(0)
        images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(b)]
        pixels, gen = to_uint8(images), torch.Generator().manual_seed(0)
        runs = {"pil": partial(pil, images), "batched": partial(batched, pixels, gen),
                "stack": partial(stacked, batched, images, gen)}
        if cuda:
            runs["cuda"] = partial(batched, pixels.cuda(), torch.Generator(device="cuda").manual_seed(0))
        for fn in runs.values():  # warm-up (allocator, lazy init, CUDA context)
            fn()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for key, fn in runs.items():
                times[key].append(timed(fn, sync=key == "cuda"))
        rate = {k: b * views / statistics.median(v) for k, v in times.items()}
        row = (f"{name:<16} {b:>4} {side:>5} {rate['pil']:>12.0f} {rate['batched']:>16.0f} "
               f"{rate['batched'] / rate['pil']:>5.1f}x {rate['stack']:>15.0f} {rate['stack'] / rate['pil']:>5.1f}x")
        if cuda:
            row += f" {rate['cuda']:>13.0f} {rate['cuda'] / rate['pil']:>6.0f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
