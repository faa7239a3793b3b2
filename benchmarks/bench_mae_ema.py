"""MAE encoder on 25% visible patches vs the plain HF ViT on all patches (goal <= 0.35x), and the EMA update of a
ResNet-50-sized model: torch._foreach_* (ours) vs a per-parameter loop.

    OMP_NUM_THREADS=1 python benchmarks/bench_mae_ema.py
"""
from __future__ import annotations

import argparse
import time

import torch


def best_time(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls, seconds."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_mae(batch: int, repeats: int) -> None:
    """Forward+backward time of the MAE encoder (75% masked) vs ViTModel on every patch, same weights."""
    from multissl.models.mae import DEFAULT_VIT, MAEConfig, MAEModel

    vit = dict(DEFAULT_VIT, image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
               intermediate_size=1536)
    torch.manual_seed(0)
    model = MAEModel(MAEConfig(backbone_config=vit, mask_ratio=0.75)).train()
    x = torch.randn(batch, 3, 224, 224)

    def masked():
        model.encode_visible(x)[0].sum().backward()

    def full():
        model.backbone(pixel_values=x).last_hidden_state.sum().backward()

    t_masked, t_full = best_time(masked, repeats), best_time(full, repeats)
    print(f"MAE encoder (ViT 6x384, 196 patches, batch {batch}, fwd+bwd): 75% masked {t_masked * 1e3:.0f} ms, "
          f"all patches {t_full * 1e3:.0f} ms, ratio {t_masked / t_full:.2f}x (goal <= 0.35x)")


def bench_ema(repeats: int) -> None:
    """EMA update of a ResNet-50 (transformers ResNetModel, ~23.5M parameters): foreach vs per-parameter loop."""
    from transformers import ResNetConfig, ResNetModel

    from multissl.models.common.ema import ema_update, make_teacher

    @torch.no_grad()
    def ema_update_loop(target, online, momentum):  # the naive baseline: one multiply-add per tensor
        for t, o in zip(target.parameters(), online.parameters()):
            t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)

    online = ResNetModel(ResNetConfig())  # defaults = ResNet-50
    target = make_teacher(online)
    n = sum(p.numel() for p in online.parameters())
    t_foreach = best_time(lambda: ema_update(target, online, 0.996), repeats)
    t_loop = best_time(lambda: ema_update_loop(target, online, 0.996), repeats)
    print(f"EMA update ResNet-50 ({n / 1e6:.1f}M params, {len(list(online.parameters()))} tensors): "
          f"foreach {t_foreach * 1e3:.1f} ms, per-parameter loop {t_loop * 1e3:.1f} ms, ratio {t_foreach / t_loop:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_mae(args.batch, args.repeats)
    bench_ema(args.repeats * 4)


if __name__ == "__main__":
    main()
