"""Distance-based metric-learning losses: triplet and soft nearest neighbour (seed 001)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """mean_i [ ||a_i - p_i||^2 - ||a_i - n_i||^2 + margin ]_+ on L2-normalised features; all inputs [B, D]."""
    if not (anchor.shape == positive.shape == negative.shape) or anchor.dim() != 2:
        raise ValueError(f"anchor, positive, negative must all be [B, D]; got {tuple(anchor.shape)}, "
                         f"{tuple(positive.shape)}, {tuple(negative.shape)}")
    a, p, n = (F.normalize(x, dim=-1) for x in (anchor, positive, negative))
    d_ap = (a - p).pow(2).sum(-1)  # [B]
    d_an = (a - n).pow(2).sum(-1)
    return F.relu(d_ap - d_an + margin).mean()


def soft_nearest_neighbor_loss(x: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Frosst et al. 2019: -1/b sum_i log( sum_{j!=i, y_j=y_i} e^{-|x_i-x_j|^2/T} / sum_{k!=i} e^{-|x_i-x_k|^2/T} ); x [B, D].

    Samples with no other sample of their label have an undefined term and are skipped
    (the mean is over the remaining ones); if none remain the loss is 0 (with a graph).
    """
    if x.dim() != 2 or labels.shape != (x.shape[0],):
        raise ValueError(f"x must be [B, D] and labels [B]; got {tuple(x.shape)} and {tuple(labels.shape)}")
    b = x.shape[0]
    sq = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1)  # [B, B] exact squared distances (cdist is less exact)
    logits = -sq / temperature
    eye = torch.eye(b, dtype=torch.bool, device=x.device)
    logits = logits.masked_fill(eye, float("-inf"))
    same = (labels[:, None] == labels[None, :]) & ~eye
    valid = same.any(1)
    if not valid.any():
        return x.sum() * 0.0
    num = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)  # [B]
    den = torch.logsumexp(logits, dim=1)
    return -(num - den)[valid].mean()
