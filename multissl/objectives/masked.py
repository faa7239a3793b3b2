"""Masked-prediction objectives: token cross-entropy (BERT, masked audio units) and patch reconstruction (MAE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_token_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy over positions whose label != ignore_index; logits [B, T, V], labels [B, T] -> scalar.

    A batch where every label is ignored returns 0 with zero gradients (not NaN, as plain
    cross_entropy would), so a rare all-unmasked batch cannot poison training. Logits are
    upcast to float32 for the softmax (mixed precision).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, T, V]; got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels must have shape {list(logits.shape[:2])} ([B, T]); got {tuple(labels.shape)}")
    return _mean_ce(logits.flatten(0, 1), labels.flatten(), ignore_index)


def _mean_ce(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """[N, V], [N] -> mean CE over non-ignored targets, 0 when there are none (sum / count, no host sync)."""
    total = F.cross_entropy(logits.float(), targets, ignore_index=ignore_index, reduction="sum")
    return total / (targets != ignore_index).sum().clamp_min(1)


def masked_reconstruction_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_target: bool = False, eps: float = 1e-6
) -> torch.Tensor:
    """MAE loss: per-patch mean squared error averaged over masked patches only; pred/target [B, N, P], mask [B, N] (1 = masked).

    norm_target=True normalises each target patch by its own mean and variance first (MAE's
    norm_pix_loss). No masked patch at all gives 0 (connected to the graph).
    """
    if pred.dim() != 3:
        raise ValueError(f"pred must have shape [B, N, P]; got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target must have pred's shape {list(pred.shape)} ([B, N, P]); got {tuple(target.shape)}")
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must have shape {list(pred.shape[:2])} ([B, N]); got {tuple(mask.shape)}")
    if norm_target:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + eps).sqrt()
    per_patch = (pred.float() - target.float()).pow(2).mean(-1)  # [B, N]
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
