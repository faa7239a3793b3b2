"""Predictive objectives over sequences: next-token cross-entropy (GPT). CPC's k-step InfoNCE is in cpc.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CE of predicting token t+1 from positions <= t; logits [B, T, V], input_ids [B, T]; padding ignored."""
    if logits.dim() != 3 or input_ids.shape != logits.shape[:2]:
        raise ValueError(f"logits must be [B, T, V] and input_ids [B, T]; got {tuple(logits.shape)} and {tuple(input_ids.shape)}")
    targets = input_ids[:, 1:].clone()  # [B, T-1]
    if attention_mask is not None:
        targets[attention_mask[:, 1:] == 0] = -100
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
