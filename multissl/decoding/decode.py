"""`generate`: our decoding entry point over any Hugging Face causal LM (greedy, sampling, top-k/top-p, beam)."""
from __future__ import annotations

from typing import Any

import torch

from multissl.decoding.beam_search import beam_search
from multissl.decoding.sampling import greedy_or_sample
from multissl.decoding.strategies import STRATEGIES


def strategy_kwargs(strategy: str, **overrides: Any) -> dict[str, Any]:
    """generate() kwargs for a named strategy (greedy|sample|top-k|top-p|beam), with explicit overrides applied."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decoding strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    kwargs = dict(STRATEGIES[strategy])
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return kwargs


def context_length(model: torch.nn.Module) -> int | None:
    """The longest sequence the model's position embeddings allow (None when unbounded or unknown)."""
    cfg = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _token_ids(value: int | list[int] | torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    if value is None:
        return None
    ids = torch.as_tensor(value, dtype=torch.long, device=device).flatten()
    return ids if ids.numel() else None


def _check(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           num_beams: int, num_return_sequences: int, do_sample: bool, early_stopping: bool | str) -> None:
    """Clear errors for arguments that transformers would reject late or silently mis-handle."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a non-empty [B, T] tensor of token ids; got shape {tuple(input_ids.shape)}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must match input_ids {tuple(input_ids.shape)}; got {tuple(attention_mask.shape)}")
    if bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("the prompt batch must be left-padded (attention_mask[:, -1] == 1 for every row); "
                         "set tokenizer.padding_side = 'left'")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    limit = context_length(model)
    if limit is not None and input_ids.shape[1] >= limit:
        raise ValueError(f"the prompt has {input_ids.shape[1]} tokens but the model's context is {limit} positions; "
                         "shorten the prompt (keep its last tokens) to leave room for new tokens")
    if limit is not None and input_ids.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds the model's context of "
            f"{limit} positions; shorten the prompt or lower max_new_tokens to {max(limit - input_ids.shape[1], 0)}"
        )
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1; got {num_beams}")
    if num_beams > 1 and do_sample:
        raise ValueError("beam sampling (do_sample=True with num_beams > 1) is not supported; use one or the other")
    if num_beams > 1 and num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences ({num_return_sequences}) must be <= num_beams ({num_beams})")
    if num_beams == 1 and not do_sample and num_return_sequences != 1:
        raise ValueError("greedy decoding returns one sequence per prompt; use sampling or beam search for num_return_sequences > 1")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never'; got {early_stopping!r}")


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 20,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_tokens_to_keep: int = 1,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    no_repeat_ngram_size: int = 0,
    generator: torch.Generator | None = None,
    streamer: Any = None,
) -> torch.LongTensor:
    """Continue prompts input_ids [B, T] (left-padded) -> [B * num_return_sequences, T + t] token ids.

    Strategy by arguments: greedy (default), sampling (do_sample, with temperature / top_k / top_p),
    beam search (num_beams > 1). eos/pad default to the model's generation config; when only eos
    is known, pad = eos (as transformers does). `streamer` gets put(token ids) / end() calls
    (e.g. transformers.TextStreamer): every token for greedy/sampling, the best beam at the end for
    beam search (whose ranking is only known when it finishes).
    """
    gen_cfg = getattr(model, "generation_config", None)
    if eos_token_id is None:
        eos_token_id = getattr(gen_cfg, "eos_token_id", None)
    if pad_token_id is None:
        pad_token_id = getattr(gen_cfg, "pad_token_id", None)
    eos = _token_ids(eos_token_id, input_ids.device)
    if pad_token_id is None and eos is not None:
        pad_token_id = int(eos[0])
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    _check(model, input_ids, attention_mask, max_new_tokens, num_beams, num_return_sequences, do_sample, early_stopping)
    was_training = model.training
    model.eval()
    try:
        if streamer is not None:
            streamer.put(input_ids.cpu())
        if num_beams > 1:
            # transformers' fill value for unused positions: pad (or eos[0] when pad is 0/None), -1 without eos.
            fill = -1 if eos is None else (pad_token_id if pad_token_id else int(eos[0]))
            out = beam_search(model, input_ids, attention_mask, max_new_tokens, num_beams, length_penalty,
                              early_stopping, num_return_sequences, eos, fill, no_repeat_ngram_size)
            if streamer is not None:
                streamer.put(out[0, input_ids.shape[1]:].cpu())
        else:
            if num_return_sequences > 1:  # independent samples of each prompt
                input_ids = input_ids.repeat_interleave(num_return_sequences, dim=0)
                attention_mask = attention_mask.repeat_interleave(num_return_sequences, dim=0)
            out = greedy_or_sample(model, input_ids, attention_mask, max_new_tokens, do_sample, temperature, top_k,
                                   top_p, min_tokens_to_keep, eos, pad_token_id, no_repeat_ngram_size, generator,
                                   streamer)
        if streamer is not None:
            streamer.end()
    finally:
        model.train(was_training)
    return out
