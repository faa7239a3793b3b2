"""One decoding step of any Hugging Face causal LM with its KV cache (transformers v5 `Cache` objects)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class StepOutput:
    """Last-position logits [N, V] (float32) and the model's cache after the step."""

    logits: torch.Tensor
    cache: Any


class CausalLMStepper:
    """Calls `model` on new tokens with the running KV cache, position ids and (optional) padding mask.

    transformers 5.24 names the cache argument `cache` (`past_key_values` before); both spellings
    are supported so any causal LM class works. Only the last position's logits are computed
    (`logits_to_keep=1`) when the model supports it, which avoids a [N, T, V] tensor at prefill.
    """

    def __init__(self, model: torch.nn.Module):
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_last = "logits_to_keep" in params
        self.takes_positions = "position_ids" in params

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, position_ids: torch.Tensor,
                 cache: Any = None) -> StepOutput:
        """Forward input_ids [N, t] (t = prompt length at prefill, 1 afterwards) -> StepOutput."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": True,
                                  self.cache_arg: cache}
        if self.takes_positions:
            kwargs["position_ids"] = position_ids
        if self.keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs, return_dict=True)
        new_cache = out.get("cache") if "cache" in out else out.get("past_key_values")
        if new_cache is None:
            raise ValueError(f"{type(self.model).__name__} returned no KV cache; decoding needs a causal LM with use_cache support")
        return StepOutput(logits=out.logits[:, -1, :].float(), cache=new_cache)


def reorder_cache_(cache: Any, beam_idx: torch.Tensor) -> Any:
    """Select cache rows beam_idx [N] (beam search: row i continues from row beam_idx[i]); in place when possible."""
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(beam_idx)
        return cache
    if isinstance(cache, (tuple, list)):  # legacy tuple-of-(key, value) caches
        return type(cache)(tuple(t.index_select(0, beam_idx) for t in layer) for layer in cache)
    raise TypeError(f"cannot reorder a cache of type {type(cache).__name__} for beam search")


def prompt_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids [N, T] from a left-padded mask [N, T]: 0 at the first real token, 0 on padding."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 0)
