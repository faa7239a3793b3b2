"""Masked-prediction objectives: token cross-entropy (BERT, masked audio) and patch reconstruction (MAE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_token_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy over positions whose label != ignore_index; logits [B, T, V], labels [B, T].

    A batch where every label is ignored returns 0 (connected to the graph) instead of NaN.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits must be [B, T, V] and labels [B, T]; got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if not (labels != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index)


def masked_reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MAE loss: per-patch mean squared error, averaged over masked patches only; pred/target [B, N, P], mask [B, N] (1 = masked)."""
    if pred.shape != target.shape or pred.dim() != 3 or mask.shape != pred.shape[:2]:
        raise ValueError(f"pred/target must be [B, N, P] and mask [B, N]; got {tuple(pred.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}")
    per_patch = (pred - target).pow(2).mean(-1)  # [B, N]
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
