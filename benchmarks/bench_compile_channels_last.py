"""Step time of `train: compile: true` and `channels_last: true` against eager, on the CPU: one SimCLR step
(two views of a batch through the results-table ResNet, NT-Xent, backward, AdamW) built with the loop's own
set-up (multissl.training.performance), so the figures are what a recipe gets.

Variants: eager | channels_last | compile (inductor) | compile + channels_last. Every variant is built from the
same seed; their losses are checked equal (to 1e-4) before timing. Steps are timed round-robin (one step of
each variant per round) so load from other jobs hits all alike; figures are medians; compile time (first step)
is printed apart. Ratio = eager median / variant median (> 1: faster than eager).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_compile_channels_last.py [--batch 32] [--image-size 32] [--rounds 20]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from multissl.models.common.vision import DEFAULT_RESNET
from multissl.models.simclr import SimCLRConfig, SimCLRModel
from multissl.training.config import TrainArgs
from multissl.training.performance import apply_model_settings, compile_backbones, make_optimizer

VARIANTS = {"eager": {}, "channels_last": {"channels_last": True}, "compile": {"compile": True},
            "compile+channels_last": {"compile": True, "channels_last": True}}


def build(knobs: dict, image_size: int):
    """A SimCLR model + optimizer set up exactly as the loop does for these `train:` knobs; returns step()."""
    torch.manual_seed(0)
    model = SimCLRModel(SimCLRConfig(backbone_config=DEFAULT_RESNET, image_size=image_size, projection_dim=64,
                                     projection_hidden_dim=256, gather_distributed=False))
    args = TrainArgs(learning_rate=1e-3, **knobs)
    apply_model_settings(model, args, torch.device("cpu"))
    opt = make_optimizer(model, args)
    compile_backbones(model, args)

    def step(views: torch.Tensor) -> float:
        loss = model(pixel_values=views).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    views = torch.randn(a.batch, 2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(1))
    steps, first, losses = {}, {}, {}
    for name, knobs in VARIANTS.items():
        steps[name] = build(knobs, a.image_size)
        start = time.perf_counter()
        losses[name] = steps[name](views)  # compiles here
        first[name] = time.perf_counter() - start
        print(f"{name}: first step {first[name]:.1f} s (loss {losses[name]:.5f})", flush=True)
    for name, loss in losses.items():
        assert abs(loss - losses["eager"]) <= 1e-4 * max(1.0, abs(losses["eager"])), f"{name}: loss {loss} != eager"
    for _ in range(a.warmup):
        for step in steps.values():
            step(views)
    times = {name: [] for name in steps}
    for _ in range(a.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step(views)
            times[name].append(time.perf_counter() - start)
    eager = statistics.median(times["eager"])
    print(f"\nSimCLR step, ResNet {DEFAULT_RESNET['hidden_sizes']}, batch {a.batch} x 2 views at {a.image_size} px, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, median of {a.rounds}")
    print(f"{'variant':<22} {'ms/step':>9} {'vs eager':>9} {'first step s':>13}")
    for name in steps:
        median = statistics.median(times[name])
        print(f"{name:<22} {1000 * median:>9.1f} {eager / median:>8.2f}x {first[name]:>13.1f}")


if __name__ == "__main__":
    main()
