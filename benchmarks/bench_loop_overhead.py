"""Training-loop overhead: multissl.training.train vs a bare PyTorch loop doing the same SimCLR steps.

Both build the same model from the same config, read the same digits rows through the same
collator and run AdamW with the same warm-up/cosine schedule; the ratio is multissl / bare.
Goal: <= 1.05x.   Run: python benchmarks/bench_loop_overhead.py [--steps 60] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from multissl.data import load_dataset_by_name
from multissl.data.batches import BatchSource, RangeSampler
from multissl.registry import get_method
from multissl.schedules import warmup_cosine
from multissl.training import build_config, build_model, recipe_from_dict, train
from multissl.training.loop import make_optimizer

RECIPE = {"method": "simclr", "dataset": "digits", "model": {"image_size": 32},
          "train": {"batch_size": 128, "learning_rate": 1e-3, "warmup_steps": 5, "log_every": 10, "progress": False}}


def bare(steps: int) -> float:
    """The same steps written as a plain loop (no Accelerate, no logging, no checkpoints)."""
    t0 = time.perf_counter()
    recipe = recipe_from_dict({**RECIPE, "train": {**RECIPE["train"], "max_steps": steps}})
    spec = get_method("simclr")
    torch.manual_seed(0)
    config = build_config(spec, recipe.model)
    model = build_model(spec, config)
    data = load_dataset_by_name("digits", split="train")
    loader = DataLoader(BatchSource(data, spec.model_class.make_collator(config), 128, 0), batch_size=None, sampler=RangeSampler(0, steps))
    opt = make_optimizer(model, recipe.train)
    sched = LambdaLR(opt, lambda s: warmup_cosine(s, steps, 5))
    model.train()
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def ours(steps: int) -> float:
    """multissl's loop on the same recipe (final save included, no end-of-run evaluation)."""
    recipe = recipe_from_dict({**RECIPE, "train": {**RECIPE["train"], "max_steps": steps}})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(recipe, tmp)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    b, o = [], []
    for _ in range(args.repeats):  # interleaved so drift on a shared machine hits both
        b.append(bare(args.steps))
        o.append(ours(args.steps))
    mb, mo = statistics.median(b), statistics.median(o)
    print(f"steps={args.steps} batch=128 threads={torch.get_num_threads()}")
    print(f"bare PyTorch loop : {mb:7.2f} s (median of {args.repeats})")
    print(f"multissl train()  : {mo:7.2f} s (median of {args.repeats})")
    print(f"ratio multissl/bare: {mo / mb:.3f}x  (goal <= 1.05x)")


if __name__ == "__main__":
    main()
