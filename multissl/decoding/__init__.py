"""Our decoding over any Hugging Face causal LM with a KV cache: greedy, sampling, top-k, top-p, beam search."""
from multissl.decoding.beam_search import beam_search
from multissl.decoding.generate import STRATEGIES, context_length, generate, strategy_kwargs
from multissl.decoding.logits_processors import (
    apply_temperature,
    ban_repeated_ngrams_,
    top_k_filter,
    top_p_filter,
    warp_scores,
)
from multissl.decoding.sampling import greedy_or_sample

__all__ = [
    "STRATEGIES", "apply_temperature", "ban_repeated_ngrams_", "beam_search", "context_length", "generate",
    "greedy_or_sample", "strategy_kwargs", "top_k_filter", "top_p_filter", "warp_scores",
]
