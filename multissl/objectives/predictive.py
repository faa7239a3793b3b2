"""Predictive objectives over sequences: next-token cross-entropy (GPT). CPC's k-step InfoNCE is in cpc.py."""
from __future__ import annotations

import torch

from multissl.objectives.masked import _mean_ce


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CE of predicting token t+1 from positions <= t; logits [B, T, V], input_ids [B, T], attention_mask [B, T] -> scalar.

    Targets whose attention_mask is 0 (padding) are ignored, as are input ids equal to -100;
    a batch with no target at all gives 0 (not NaN).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, T, V]; got {tuple(logits.shape)}")
    if input_ids.shape != logits.shape[:2]:
        raise ValueError(f"input_ids must have shape {list(logits.shape[:2])} ([B, T]); got {tuple(input_ids.shape)}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have input_ids' shape {list(input_ids.shape)}; got {tuple(attention_mask.shape)}")
    targets = input_ids[:, 1:]  # [B, T-1]: position t predicts token t+1
    if attention_mask is not None:
        targets = targets.masked_fill(attention_mask[:, 1:] == 0, -100)
    return _mean_ce(logits[:, :-1].flatten(0, 1), targets.flatten(), -100)
