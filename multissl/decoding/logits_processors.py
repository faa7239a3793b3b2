"""Score warpers for decoding: temperature, top-k, top-p (nucleus) and the no-repeat-n-gram ban.

Every function takes next-token scores [N, V] (logits or log-probabilities) and returns scores of
the same shape in which filtered tokens are -inf, so softmax gives them probability 0.
"""
from __future__ import annotations

import torch

FILTERED = -float("inf")


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """scores / temperature, [N, V]; T < 1 sharpens the distribution, T > 1 flattens it."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use do_sample=False for greedy decoding); got {temperature}")
    return scores if temperature == 1.0 else scores / temperature


def top_k_filter(scores: torch.Tensor, top_k: int, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the k highest scores per row (ties with the k-th are kept), -inf elsewhere; [N, V] -> [N, V]."""
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 disables it); got {top_k}")
    if top_k == 0:
        return scores
    k = min(max(top_k, min_tokens_to_keep), scores.shape[-1])
    kth = torch.topk(scores, k, dim=-1).values[:, -1:]  # [N, 1] the k-th largest score
    return scores.masked_fill(scores < kth, FILTERED)


def top_p_filter(scores: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches top_p; [N, V].

    A token is dropped when the probability mass of the tokens ranked strictly above it is already
    >= top_p; the `min_tokens_to_keep` best tokens are always kept.
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p}")
    if top_p == 1.0:
        return scores
    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)  # [N, V]
    probs = sorted_scores.softmax(dim=-1)
    mass_above = probs.cumsum(dim=-1) - probs  # exclusive cumulative probability, [N, V]
    drop_sorted = mass_above >= top_p
    drop_sorted[:, :min_tokens_to_keep] = False
    drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)  # back to vocabulary order
    return scores.masked_fill(drop, FILTERED)


def warp_scores(scores: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the order transformers applies them in); [N, V] -> [N, V]."""
    scores = apply_temperature(scores, temperature)
    scores = top_k_filter(scores, top_k, min_tokens_to_keep)
    return top_p_filter(scores, top_p, min_tokens_to_keep)


def ban_repeated_ngrams_(scores: torch.Tensor, sequences: torch.Tensor, ngram_size: int) -> torch.Tensor:
    """In place: -inf for every token that would repeat an n-gram already in its row; scores [N, V], sequences [N, L].

    The last n-1 tokens of each row are compared with every earlier (n-1)-gram; the token that followed
    a match is banned. Vectorised over rows and positions: no Python loop over the batch or time.
    """
    n, length = ngram_size, sequences.shape[1]
    if n <= 0 or length < n:
        return scores
    windows = sequences.unfold(1, n, 1)  # [N, L-n+1, n]: every n-gram of the row
    prefix = sequences[:, length - n + 1:]  # [N, n-1]: the n-gram the next token would complete
    match = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)  # [N, L-n+1]
    rows, starts = match.nonzero(as_tuple=True)
    scores[rows, windows[rows, starts, -1]] = FILTERED
    return scores
