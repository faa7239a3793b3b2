"""CPC training throughput: the multissl Accelerate loop vs the same model in a bare PyTorch loop; K-step InfoNCE vs a per-step loop.

(1) Seconds of audio trained per second of wall time (batch_size x crop_seconds per step), median
    over logging intervals after the first (warm-up), same recipe, model, collator and data; goal >= 0.95x.
(2) The vectorised K-step InfoNCE (multissl.objectives.cpc.cpc_loss) vs a Python loop over the K
    steps calling the shared info_nce per step, forward + backward on the same tensors.

    OMP_NUM_THREADS=1 python benchmarks/bench_cpc_throughput.py --steps 60
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def multissl_loop(recipe, steps: int, interval: int) -> list[float]:
    """Training samples/s per logging interval of multissl.training.train (first interval dropped)."""
    from multissl.training.loop import train

    recipe.train.max_steps, recipe.train.log_every, recipe.train.progress, recipe.eval = steps, interval, False, {}
    with tempfile.TemporaryDirectory() as out:
        train(recipe, out)
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [r["samples_per_s"] for r in rows[1:]]


def bare_loop(recipe, steps: int, interval: int) -> list[float]:
    """The same step written by hand: index draw, collate, forward, backward, clip, AdamW, LR schedule."""
    from multissl.data import load_dataset_by_name
    from multissl.models.cpc import CPCConfig, CPCModel, make_cpc_collator
    from multissl.schedules import warmup_cosine

    args = recipe.train
    torch.manual_seed(args.seed)
    config = CPCConfig(**recipe.model)
    model = CPCModel(config).train()
    data = load_dataset_by_name(recipe.dataset or "spoken_digits", split=recipe.dataset_split, **recipe.dataset_args)
    collate = make_cpc_collator(config, train=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, args.warmup_steps, args.min_lr_ratio))
    g = torch.Generator().manual_seed(args.seed)
    rates, t_last = [], time.perf_counter()
    for step in range(steps):
        idx = torch.randperm(len(data), generator=g)[: args.batch_size].tolist()
        columns = data[idx]
        batch = collate([dict(zip(columns, v)) for v in zip(*columns.values())], generator=g)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % interval == 0:
            now = time.perf_counter()
            rates.append(args.batch_size * interval / (now - t_last))
            t_last = now
    return rates[1:]


def infonce_timing(B: int, T: int, K: int, D: int, N: int, repeats: int) -> tuple[float, float]:
    """Median seconds of forward+backward: all-K-at-once cpc_loss vs a loop over k of info_nce."""
    from multissl.objectives.contrastive import info_nce
    from multissl.objectives.cpc import cpc_loss, sample_negative_indices

    g = torch.Generator().manual_seed(0)
    pred = torch.randn(B, T, K, D, generator=g, requires_grad=True)
    z = torch.randn(B, T, D, generator=g, requires_grad=True)
    lengths = torch.full((B,), T)
    noise = torch.rand(B, T, N, generator=g)

    def vectorised() -> None:
        cpc_loss(pred, z, lengths, N, "batch", noise=noise).loss.backward()

    def per_step() -> None:
        negs = z.reshape(B * T, D)[sample_negative_indices(lengths, T, N, "batch", noise=noise)]  # [B, T, N, D]
        losses = []
        for k in range(1, K + 1):  # the loop the vectorised version avoids
            q = pred[:, : T - k, k - 1].reshape(-1, D)
            pos = z[:, k:].reshape(-1, D)
            losses.append(info_nce(q, pos, negs[:, : T - k].reshape(-1, N, D), temperature=1.0, normalize=False))
        torch.stack(losses).mean().backward()

    times = {}
    for name, fn in (("vectorised", vectorised), ("per_step", per_step)):
        fn()  # warm-up
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        times[name] = statistics.median(samples)
    return times["vectorised"], times["per_step"]


def main() -> None:
    """Run both comparisons and print ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "cpc_spoken_digits.yaml"))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--rounds", type=int, default=4, help="alternate the two loops this many times (shared-CPU noise)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from multissl.training.config import load_recipe

    crop = load_recipe(args.recipe).model.get("crop_seconds", 0.5)
    ours, bare = [], []
    for i in range(args.rounds):  # ABBA order, so a drift in machine load hits both loops alike
        runs = [(ours, multissl_loop), (bare, bare_loop)]
        for sink, loop in runs if i % 2 == 0 else runs[::-1]:
            sink += loop(load_recipe(args.recipe), args.steps, args.interval)
    ours_s, bare_s = statistics.median(ours) * crop, statistics.median(bare) * crop
    print(f"audio seconds / s: multissl loop {ours_s:.1f}, bare PyTorch loop {bare_s:.1f}, ratio {ours_s / bare_s:.3f}x (goal >= 0.95)")
    r = load_recipe(args.recipe)
    B, K, N = r.train.batch_size, r.model.get("prediction_steps", 12), r.model.get("num_negatives", 32)
    T, D = int(crop * 100) - 2, r.model.get("encoder_dim", 128)  # frames of one crop at 10 ms
    vec, loop = infonce_timing(B, T, K, D, N, repeats=20)
    print(f"K-step InfoNCE fwd+bwd (B={B}, T={T}, K={K}, D={D}, N={N}): all steps at once {vec * 1e3:.2f} ms, "
          f"per-step loop {loop * 1e3:.2f} ms, speed-up {loop / vec:.2f}x")
    print(json.dumps({"multissl_audio_s_per_s": ours_s, "bare_audio_s_per_s": bare_s, "ratio": ours_s / bare_s,
                      "intervals": {"multissl": ours, "bare": bare}, "infonce_vectorised_s": vec, "infonce_per_step_s": loop}))


if __name__ == "__main__":
    main()
