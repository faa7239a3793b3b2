"""MLM and GPT training throughput (tokens/s): multissl's Accelerate loop vs a bare PyTorch loop.

Same model config, same collated batches (the loop's BatchSource with the same seed), AdamW, clip 1.0.
The two loops run alternately (multissl, bare, multissl, ...) `--repeats` times per method and the
median of each is compared, so drift in machine load hits both. Goal: ratio >= 0.95x.
Run by hand:  OMP_NUM_THREADS=1 python benchmarks/bench_text_throughput.py [--steps 25] [--batch-size 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from multissl.data import load_dataset_by_name
from multissl.data.batches import BatchSource, derive_seed, seed_everything
from multissl.registry import get_method
from multissl.training import train
from multissl.training.config import recipe_from_dict
from multissl.training.loop import build_config, build_model

MODELS = {
    "bert_mlm": {"tokenizer_path": "trained:python_docs/unigram/4000", "block_size": 128,
                 "backbone_config": {"model_type": "bert", "hidden_size": 128, "num_hidden_layers": 2,
                                     "num_attention_heads": 2, "intermediate_size": 512, "max_position_embeddings": 128}},
    "gpt_lm": {"tokenizer_path": "trained:python_docs/bpe/4000", "block_size": 128,
               "backbone_config": {"model_type": "gpt2", "n_embd": 128, "n_layer": 4, "n_head": 4, "n_positions": 128}},
}


def bare_loop(method: str, steps: int, batch_size: int, warm: int) -> tuple[float, int]:
    """(seconds for steps warm..steps-1, real tokens in them): collate, forward, backward, clip, AdamW in plain torch."""
    spec = get_method(method)
    config = build_config(spec, MODELS[method])
    seed_everything(0)
    model = build_model(spec, config).train()
    data = load_dataset_by_name("python_docs")
    data = spec.model_class.prepare_dataset(config, data)  # the loop tokenises and groups blocks before batching: do the same
    source = BatchSource(data, spec.model_class.make_collator(config, train=True), batch_size, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens, start = 0, time.perf_counter()
    for step in range(steps):
        if step == warm:
            start = time.perf_counter()
        batch = source[step]  # the same batch the multissl loop sees at this step
        seed_everything(derive_seed(0, step, 0, 2))
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warm:
            tokens += int(batch["attention_mask"].sum())
    return time.perf_counter() - start, tokens


def multissl_loop(method: str, steps: int, batch_size: int, log_every: int) -> float:
    """Seconds multissl.training.train spends on steps log_every..steps-1 (from its own samples/s log)."""
    recipe = recipe_from_dict({"method": method, "dataset": "python_docs", "model": MODELS[method],
                               "train": {"max_steps": steps, "batch_size": batch_size, "learning_rate": 1e-3,
                                         "log_every": log_every, "progress": False}})
    with tempfile.TemporaryDirectory() as out:
        train(recipe, out)
        rows = [json.loads(line) for line in open(f"{out}/metrics.jsonl")]
    return sum(log_every * batch_size / r["samples_per_s"] for r in rows[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads=1, {args.steps} steps of {args.batch_size} texts, first {args.log_every} steps are warm-up, "
          f"median of {args.repeats} alternated runs")
    for method in MODELS:
        t_ms, t_bare = [], []
        for _ in range(args.repeats):
            t_ms.append(multissl_loop(method, args.steps, args.batch_size, args.log_every))
            seconds, tokens = bare_loop(method, args.steps, args.batch_size, args.log_every)
            t_bare.append(seconds)
        m_ms, m_bare = statistics.median(t_ms), statistics.median(t_bare)
        print(f"{method:9} multissl {tokens / m_ms:8.0f} tok/s   bare torch {tokens / m_bare:8.0f} tok/s   "
              f"ratio {m_bare / m_ms:.3f}x   (per-run ratios {', '.join(f'{b / m:.2f}' for m, b in zip(t_ms, t_bare))})")


if __name__ == "__main__":
    main()
