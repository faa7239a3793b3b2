"""Greedy decoding and multinomial sampling (temperature / top-k / top-p) with a KV cache."""
from __future__ import annotations

from typing import Any

import torch

from multissl.decoding.cache import CausalLMStepper, prompt_positions
from multissl.decoding.logits_processors import ban_repeated_ngrams_, warp_scores


@torch.no_grad()
def greedy_or_sample(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_tokens_to_keep: int = 1,
    eos_token_id: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    no_repeat_ngram_size: int = 0,
    generator: torch.Generator | None = None,
    streamer: Any = None,
) -> torch.Tensor:
    """Prompt [N, T] (left-padded, mask [N, T]) -> prompt + continuation [N, T + t], t <= max_new_tokens.

    Rows that produced an eos token are continued with pad_token_id; the loop stops when every row
    has finished or max_new_tokens were generated.
    """
    n, t = input_ids.shape
    device = input_ids.device
    step = CausalLMStepper(model)
    # An all-ones mask carries no information; dropping it lets attention take its unmasked fast path.
    mask = None if bool(attention_mask.all()) else attention_mask
    positions = prompt_positions(attention_mask)  # [N, T]
    sequences = torch.full((n, t + max_new_tokens), pad_token_id if pad_token_id is not None else 0,
                           dtype=torch.long, device=device)  # [N, T + max_new]: written in place, no per-step cat
    sequences[:, :t] = input_ids
    unfinished = torch.ones(n, dtype=torch.bool, device=device)
    out = step(input_ids, mask, positions)
    length = t
    for i in range(max_new_tokens):
        scores = out.logits  # [N, V] float32
        if no_repeat_ngram_size > 0:
            ban_repeated_ngrams_(scores, sequences[:, :length], no_repeat_ngram_size)
        if do_sample:
            scores = warp_scores(scores, temperature, top_k, top_p, min_tokens_to_keep)
            next_tokens = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)  # [N]
        else:
            next_tokens = scores.argmax(-1)  # [N]
        if eos_token_id is not None:
            next_tokens = torch.where(unfinished, next_tokens, pad_token_id)
            unfinished &= ~torch.isin(next_tokens, eos_token_id)
        sequences[:, length] = next_tokens
        length += 1
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if i == max_new_tokens - 1 or not bool(unfinished.any()):
            break
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)  # [N, length]
        positions = positions[:, -1:] + 1  # [N, 1]
        out = step(next_tokens[:, None], mask, positions, out.cache)
    return sequences[:, :length]
