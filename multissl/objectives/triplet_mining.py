"""Which triplets of a labeled batch train `triplet_loss`: batch-hard, semi-hard or all, as row indices.

All three read squared euclidean distances between L2-normalised embeddings (triplet_loss's distance) under no_grad:
mining only picks rows, the gradient flows through triplet_loss on the picked rows.

* batch_hard (Hermans et al. 2017): per anchor the farthest positive and the closest negative. From random init on a
  small P x K batch it can collapse every embedding onto one point (all distances 0, loss = margin, no gradient that
  separates classes): the hardest negative is often a near-duplicate of the anchor.
* semi_hard (Schroff et al. 2015, FaceNet): per (anchor, positive) pair the closest negative that is still farther than
  the positive; when no negative is farther, the farthest negative (the convention of TensorFlow Addons'
  triplet_semihard_loss), so every pair keeps a triplet and the hardest, collapse-prone negatives are avoided.
* all: every valid (anchor, positive, negative) of the batch; with the loss averaged over the triplets that still
  violate the margin (`mean_nonzero`), as pytorch-metric-learning's TripletMarginLoss + AvgNonZeroReducer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TRIPLET_MINING = ("batch_hard", "semi_hard", "all")


def _distances_and_masks(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """([B, B] squared distances of unit rows, [B, B] positive mask (same class, not self), [B, B] negative mask)."""
    if embeddings.dim() != 2 or labels.shape != (embeddings.shape[0],):
        raise ValueError(f"embeddings must be [B, D] and labels [B]; got {tuple(embeddings.shape)} and {tuple(labels.shape)}")
    x = F.normalize(embeddings.detach(), dim=1)
    dist = (2 - 2 * x @ x.T).clamp_min(0)  # ||x_i - x_j||^2 on unit vectors, in [0, 4]
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return dist, same & ~eye, ~same


def batch_hard_triplets(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchor, positive, negative) row indices [A] each: per anchor the farthest same-class and the closest other-class row.

    embeddings [B, D], labels [B]; anchors without a positive or without a negative in the batch are left out.
    """
    dist, pos_mask, neg_mask = _distances_and_masks(embeddings, labels)
    positive = dist.masked_fill(~pos_mask, -1.0).argmax(1)  # [B] distances are >= 0, so -1 never wins
    negative = dist.masked_fill(~neg_mask, 5.0).argmin(1)  # [B] and <= 4, so 5 never wins
    anchor = (pos_mask.any(1) & neg_mask.any(1)).nonzero().squeeze(1)  # [A]
    return anchor, positive[anchor], negative[anchor]


def semi_hard_triplets(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchor, positive, negative) indices [A] each: one triplet per (anchor, positive) pair of the batch.

    The negative is the closest other-class row farther from the anchor than the positive (d_an > d_ap); if the anchor
    has none, its farthest other-class row. embeddings [B, D], labels [B]; anchors without a negative are left out.
    """
    dist, pos_mask, neg_mask = _distances_and_masks(embeddings, labels)
    anchor, positive = (pos_mask & neg_mask.any(1, keepdim=True)).nonzero(as_tuple=True)  # [A] each
    d_an = dist[anchor]  # [A, B] anchor's distance to every row
    farther = neg_mask[anchor] & (d_an > dist[anchor, positive][:, None])  # [A, B] semi-hard candidates
    closest_farther = d_an.masked_fill(~farther, 5.0).argmin(1)  # [A] (distances <= 4: 5 never wins)
    farthest = d_an.masked_fill(~neg_mask[anchor], -1.0).argmax(1)  # [A] the fallback
    negative = torch.where(farther.any(1), closest_farther, farthest)
    return anchor, positive, negative


def all_triplets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every valid (anchor, positive, negative) of labels [B]: indices [T] each, T = sum_a #pos(a) * #neg(a)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    valid = (same & ~eye)[:, :, None] & ~same[:, None, :]  # [B, B, B]: (a, p) same class, (a, n) different
    return valid.nonzero(as_tuple=True)
