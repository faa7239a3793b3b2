"""Distance-based metric-learning losses: triplet and soft nearest neighbour (seed 001)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """mean_i [ ||a_i - p_i||^2 - ||a_i - n_i||^2 + margin ]_+ on L2-normalised features; all inputs [B, D] -> scalar.

    The seed writes a sum over i; the mean keeps the scale independent of the batch size.
    """
    if anchor.dim() != 2:
        raise ValueError(f"anchor must have shape [B, D]; got {tuple(anchor.shape)}")
    for name, x in (("positive", positive), ("negative", negative)):
        if x.shape != anchor.shape:
            raise ValueError(f"{name} must have the anchor's shape {list(anchor.shape)} ([B, D]); got {tuple(x.shape)}")
    a, p, n = (F.normalize(x, dim=-1) for x in (anchor, positive, negative))
    d_ap = (a - p).pow(2).sum(-1)  # [B]
    d_an = (a - n).pow(2).sum(-1)  # [B]
    return F.relu(d_ap - d_an + margin).mean()


def _squared_distances(x: torch.Tensor) -> torch.Tensor:
    """[B, D] -> [B, B] squared euclidean distances in O(B^2) memory (no [B, B, D] difference tensor)."""
    x = x - x.mean(0, keepdim=True)  # distances are translation-invariant; centring cuts cancellation error
    sq = x.pow(2).sum(-1)  # [B]
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)  # rounding can dip below 0


def soft_nearest_neighbor_loss(x: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Soft nearest neighbour loss (Frosst et al. 2019, seed 001 eq. (1)); x [B, D], labels [B] -> scalar.

    -1/b sum_i log( sum_{j != i, y_j = y_i} e^{-d_ij/T} / sum_{k != i} e^{-d_ik/T} ), computed with logsumexp.

    d is the squared euclidean distance (features are not normalised). A sample with no other
    sample of its label has an undefined term (log 0): it is skipped and the mean is over the
    remaining samples; if none remain the loss is 0 (still connected to the graph).
    """
    if x.dim() != 2:
        raise ValueError(f"x must have shape [B, D]; got {tuple(x.shape)}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape [{x.shape[0]}]; got {tuple(labels.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    b = x.shape[0]
    logits = -_squared_distances(x) / temperature  # [B, B]
    # mask with the most negative finite value, not -inf: a row with nothing left (a sample without
    # a partner) would make logsumexp's backward 0 * exp(-inf + inf) = NaN even where it is dropped
    very_negative = torch.finfo(logits.dtype).min
    eye = torch.eye(b, dtype=torch.bool, device=x.device)
    logits = logits.masked_fill(eye, very_negative)
    same = (labels[:, None] == labels[None, :]) & ~eye  # [B, B]
    valid = same.any(1)  # [B]
    num = torch.logsumexp(logits.masked_fill(~same, very_negative), dim=1)  # [B]
    den = torch.logsumexp(logits, dim=1)  # [B]
    terms = torch.where(valid, den - num, 0.0)  # [B]
    return terms.sum() / valid.sum().clamp_min(1)
