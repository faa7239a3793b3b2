"""Decoding speed and beam-search memory: multissl.decoding.generate vs transformers' model.generate.

Same random GPT-2, same prompts, same settings, same process; tokens are asserted identical.
Run by hand:  OMP_NUM_THREADS=1 python benchmarks/bench_decoding.py [--new-tokens 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from multissl.decoding import generate


def make_model(vocab: int, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=256, n_embd=256, n_layer=4, n_head=4, eos_token_id=None,
                     bos_token_id=None, pad_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def prompts(batch: int, length: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    ids = torch.randint(1, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1:, :3] = 0  # left padding on every row but the first
    return ids.masked_fill(mask == 0, 0), mask


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def speed_table(new_tokens: int, repeats: int, vocab: int) -> list[dict]:
    model = make_model(vocab)
    rows = []
    for name, kw in [("greedy", {}), ("beam(4)", {"num_beams": 4})]:
        for batch in (1, 8):
            ids, mask = prompts(batch, 16, vocab)
            settings = dict(max_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0, **kw)
            with torch.no_grad():
                ours_fn = lambda: generate(model, ids, mask, **settings)  # noqa: E731
                hf_fn = lambda: model.generate(ids, attention_mask=mask, do_sample=False, **settings)  # noqa: E731
                ours_fn(), hf_fn()  # warm-up
                t_hf, theirs = timed(hf_fn, repeats)
                t_ours, ours = timed(ours_fn, repeats)
            assert torch.equal(ours, theirs), f"{name} batch {batch}: tokens differ"
            new = (ours.shape[1] - ids.shape[1]) * batch
            rows.append({"strategy": name, "batch": batch, "ours_tok_s": new / t_ours, "hf_tok_s": new / t_hf,
                         "ratio": t_hf / t_ours})
    return rows


def peak_rss_delta_mb(impl: str, vocab: int, batch: int, beams: int, new_tokens: int) -> float:
    """Peak RSS growth (MB) during one beam search, measured in a fresh process."""
    code = f"""
import resource, torch, sys
sys.path.insert(0, {repr(sys.path[0] + '/..')})
from benchmarks.bench_decoding import make_model, prompts
from multissl.decoding import generate
torch.set_num_threads(1)
model = make_model({vocab}); ids, mask = prompts({batch}, 16, {vocab})
with torch.no_grad():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kw = dict(max_new_tokens={new_tokens}, num_beams={beams}, eos_token_id=None, pad_token_id=0)
    if {impl!r} == "ours":
        generate(model, ids, mask, **kw)
    else:
        model.generate(ids, attention_mask=mask, do_sample=False, **kw)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--memory-vocab", type=int, default=50257, help="GPT-2's real vocabulary for the memory test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads=1, GPT-2 n_embd=256 n_layer=4 vocab={args.vocab}, prompt 16 tokens (left-padded), "
          f"{args.new_tokens} new tokens, best of {args.repeats}")
    print(f"{'strategy':10} {'batch':>5} {'ours tok/s':>11} {'HF tok/s':>10} {'ours/HF':>8}")
    for r in speed_table(args.new_tokens, args.repeats, args.vocab):
        print(f"{r['strategy']:10} {r['batch']:>5} {r['ours_tok_s']:>11.1f} {r['hf_tok_s']:>10.1f} {r['ratio']:>7.2f}x")
    ours = peak_rss_delta_mb("ours", args.memory_vocab, 8, 4, 32)
    theirs = peak_rss_delta_mb("hf", args.memory_vocab, 8, 4, 32)
    print(json.dumps({"beam_peak_rss_growth_mb": {"ours": round(ours, 1), "transformers": round(theirs, 1),
                                                  "ratio_ours_over_hf": round(ours / theirs, 3)},
                      "setting": f"batch 8 x 4 beams, vocab {args.memory_vocab}, 32 new tokens"}))


if __name__ == "__main__":
    main()
