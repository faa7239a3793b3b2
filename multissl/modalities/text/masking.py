"""BERT-style masking for masked language modelling: 15% of tokens, 80% [MASK] / 10% random / 10% kept.

Masks are drawn fresh for every batch (the collator calls this per batch), from an injectable
torch.Generator, so tests and resumed runs see the same masks.
"""
from __future__ import annotations

import torch


def word_start_table(tokens: list[str]) -> torch.Tensor:
    """Bool [V]: does vocabulary entry i start a new word? (sentencepiece '▁x', byte-BPE 'Ġx', WordPiece not '##x')."""
    wordpiece = any(t.startswith("##") for t in tokens)
    if wordpiece:
        return torch.tensor([not t.startswith("##") for t in tokens])
    return torch.tensor([t.startswith(("▁", "Ġ")) for t in tokens])


def word_ids(input_ids: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """Word index of every token [B, T] (a word = a word-start token and the continuation pieces after it)."""
    starts = word_starts[input_ids].long()  # [B, T]
    starts[:, 0] = 1  # a block may begin mid-word: its first piece opens a (partial) word
    return starts.cumsum(1) - 1


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    mask_token_id: int,
    random_token_ids: torch.Tensor,
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    word_starts: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked inputs [B, T], labels [B, T] = original id at chosen positions, -100 elsewhere).

    Each non-special token is chosen with probability mlm_probability (with `word_starts`, each
    whole word is chosen and all its pieces with it); chosen tokens become mask_token_id with
    probability mask_replace_prob, a token drawn uniformly from random_token_ids with probability
    random_replace_prob, and stay unchanged otherwise. special_mask [B, T] is True for
    [CLS]/[SEP]/padding, which are never chosen.
    """
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1); got {mlm_probability}")
    if mask_replace_prob < 0 or random_replace_prob < 0 or mask_replace_prob + random_replace_prob > 1.0:
        raise ValueError(f"mask_replace_prob ({mask_replace_prob}) + random_replace_prob ({random_replace_prob}) must be in [0, 1]")
    device = input_ids.device
    if word_starts is None:
        chosen = torch.rand(input_ids.shape, generator=generator, device=device) < mlm_probability  # [B, T]
    else:
        words = word_ids(input_ids, word_starts.to(device))  # [B, T]
        word_draw = torch.rand(input_ids.shape, generator=generator, device=device) < mlm_probability  # one draw per word slot
        chosen = word_draw.gather(1, words)  # every piece of a word shares its word's draw
    chosen &= ~special_mask
    labels = input_ids.masked_fill(~chosen, -100)

    action = torch.rand(input_ids.shape, generator=generator, device=device)  # [B, T]
    to_mask = chosen & (action < mask_replace_prob)
    to_random = chosen & (action >= mask_replace_prob) & (action < mask_replace_prob + random_replace_prob)
    random_ids = random_token_ids.to(device)[
        torch.randint(len(random_token_ids), input_ids.shape, generator=generator, device=device)
    ]
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels
