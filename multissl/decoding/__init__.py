"""Our decoding over any Hugging Face causal LM with a KV cache: greedy, sampling, top-k, top-p, beam search.

Names are imported from their submodules on first use, so `multissl.decoding.strategies` (plain data,
read by the CLI's help) does not pull in torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "STRATEGIES": "strategies", "beam_search": "beam_search", "context_length": "decode", "generate": "decode",
    "strategy_kwargs": "decode", "apply_temperature": "logits_processors", "ban_repeated_ngrams_": "logits_processors",
    "top_k_filter": "logits_processors", "top_p_filter": "logits_processors", "warp_scores": "logits_processors",
    "greedy_or_sample": "sampling",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'multissl.decoding' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"multissl.decoding.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
