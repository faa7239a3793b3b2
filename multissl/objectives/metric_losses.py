"""Distance-based metric-learning losses: triplet and soft nearest neighbour (seed 001)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.objectives.distributed import gather_no_grad, gather_with_grad, is_distributed, rank, world_size


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2,
                 reduction: str = "mean") -> torch.Tensor:
    """mean_i [ ||a_i - p_i||^2 - ||a_i - n_i||^2 + margin ]_+ on L2-normalised features; all inputs [B, D] -> scalar.

    The seed writes a sum over i; the mean keeps the scale independent of the batch size. reduction: "mean" (scalar),
    "mean_nonzero" (mean over the terms > 0, 0 when none: pytorch-metric-learning's AvgNonZeroReducer, for mining
    that keeps every triplet) or "none" ([B] terms).
    Each term uses only its own triplet (no batch negatives), so there is nothing to gather across
    processes: DDP's gradient averaging already gives the full-batch mean.
    """
    if anchor.dim() != 2:
        raise ValueError(f"anchor must have shape [B, D]; got {tuple(anchor.shape)}")
    for name, x in (("positive", positive), ("negative", negative)):
        if x.shape != anchor.shape:
            raise ValueError(f"{name} must have the anchor's shape {list(anchor.shape)} ([B, D]); got {tuple(x.shape)}")
    if reduction not in ("mean", "mean_nonzero", "none"):
        raise ValueError(f"reduction must be 'mean', 'mean_nonzero' or 'none'; got {reduction!r}")
    a, p, n = (F.normalize(x, dim=-1) for x in (anchor, positive, negative))
    d_ap = (a - p).pow(2).sum(-1)  # [B]
    d_an = (a - n).pow(2).sum(-1)  # [B]
    terms = F.relu(d_ap - d_an + margin)  # [B]
    if reduction == "none":
        return terms
    if reduction == "mean_nonzero":
        return terms.sum() / (terms.detach() > 0).sum().clamp_min(1)
    return terms.mean()


def _squared_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, D], y [N, D] (default x) -> [B, N] squared euclidean distances in O(B*N) memory (no [B, N, D] tensor)."""
    y = x if y is None else y
    centre = y.mean(0, keepdim=True)  # distances are translation-invariant; centring cuts cancellation error
    x, y = x - centre, y - centre
    return (x.pow(2).sum(-1)[:, None] + y.pow(2).sum(-1)[None, :] - 2 * x @ y.T).clamp_min(0)  # rounding can dip below 0


def soft_nearest_neighbor_loss(
    x: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, gather_distributed: bool = False
) -> torch.Tensor:
    """Soft nearest neighbour loss (Frosst et al. 2019, seed 001 eq. (1)); x [B, D], labels [B] -> scalar.

    -1/b sum_i log( sum_{j != i, y_j = y_i} e^{-d_ij/T} / sum_{k != i} e^{-d_ik/T} ), computed with logsumexp.

    d is the squared euclidean distance (features are not normalised). A sample with no other
    sample of its label has an undefined term (log 0): it is skipped and the mean is over the
    remaining samples; if none remain the loss is 0 (still connected to the graph).
    Distributed (gather_distributed=True): the neighbours are the gathered global batch, and each
    process divides by the global count of valid anchors times world size, so the mean over
    processes (what DDP's gradient averaging optimises) equals the full-batch loss exactly.
    """
    if x.dim() != 2:
        raise ValueError(f"x must have shape [B, D]; got {tuple(x.shape)}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape [{x.shape[0]}]; got {tuple(labels.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    b = x.shape[0]
    distributed = gather_distributed and is_distributed()
    all_x = gather_with_grad(x) if distributed else x  # [N, D]
    all_labels = gather_no_grad(labels) if distributed else labels  # [N]
    offset = rank() * b if distributed else 0
    logits = -_squared_distances(x, all_x) / temperature  # [B, N]
    # mask with the most negative finite value, not -inf: a row with nothing left (a sample without
    # a partner) would make logsumexp's backward 0 * exp(-inf + inf) = NaN even where it is dropped
    very_negative = torch.finfo(logits.dtype).min
    rows = torch.arange(b, device=x.device)
    is_self = torch.zeros(b, all_x.shape[0], dtype=torch.bool, device=x.device)
    is_self[rows, rows + offset] = True
    logits = logits.masked_fill(is_self, very_negative)
    same = (labels[:, None] == all_labels[None, :]) & ~is_self  # [B, N]
    valid = same.any(1)  # [B]
    num = torch.logsumexp(logits.masked_fill(~same, very_negative), dim=1)  # [B]
    den = torch.logsumexp(logits, dim=1)  # [B]
    terms = torch.where(valid, den - num, 0.0)  # [B]
    if distributed:
        total = gather_no_grad(valid.sum()[None]).sum()
        return terms.sum() * world_size() / total.clamp_min(1)
    return terms.sum() / valid.sum().clamp_min(1)
