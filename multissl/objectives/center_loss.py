"""Center loss and its center update (Wen et al. 2016, seed 001 "Center loss", Algorithm 1).

    L_C = 1/2 sum_i ||x_i - c_{y_i}||^2                 (here averaged over the batch by default)
    c_j <- c_j - alpha * dc_j,   dc_j = sum_i [y_i = j] (c_j - x_i) / (1 + sum_i [y_i = j])

The paper does not learn the centers by gradient descent on L_C: they follow the update rule above
(step 6 of Algorithm 1), applied once per mini-batch after the loss. So `center_loss` reads the
centers and `center_update` is a separate pure function returning the new centers; the centers get
a gradient from `center_loss` only if the caller made them require one. pytorch-metric-learning has
no center loss, so the tests compare against these formulas written with loops.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from multissl.objectives.distributed import is_distributed


def _check(embeddings: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> None:
    """Raise a ValueError naming the bad argument."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape [B, D]; got {tuple(embeddings.shape)}")
    b, d = embeddings.shape
    if centers.dim() != 2 or centers.shape[1] != d or centers.shape[0] == 0:
        raise ValueError(f"centers must have shape [C, {d}]; got {tuple(centers.shape)}")
    if labels.shape != (b,) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of shape [{b}]; got {labels.dtype} {tuple(labels.shape)}")
    if b:  # one reduction; indexing's own out-of-range error does not name the argument
        low, high = torch.aminmax(labels)
        if int(low) < 0 or int(high) >= centers.shape[0]:
            raise ValueError(f"labels must lie in [0, {centers.shape[0]}) (centers has {centers.shape[0]} rows)")


def center_loss(embeddings: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """1/2 ||x_i - c_{y_i}||^2 averaged ("mean") or summed ("sum", the paper's L_C); embeddings [B, D], labels [B], centers [C, D] -> scalar.

    With "sum", d L_C / d x_i = x_i - c_{y_i} exactly as in the paper's eq. (3).
    """
    _check(embeddings, labels, centers)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
    per_sample = 0.5 * (embeddings - centers[labels]).pow(2).sum(1)  # [B]; a [B, D] gather, not a [B, C] distance matrix
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


@torch.no_grad()
def center_update(
    centers: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5, gather_distributed: bool = False
) -> torch.Tensor:
    """New centers [C, D] = c - alpha * dc after one batch (embeddings [B, D], labels [B]); inputs are not modified.

    Vectorised over classes: per-class sums and counts with index_add / bincount. Classes absent
    from the batch keep their center (dc_j = 0). gather_distributed=True all-reduces those sums
    and counts, so every process applies the update of the global batch (per-rank batch sizes may
    differ) and the centers stay identical across ranks.
    """
    _check(embeddings, labels, centers)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    x = embeddings.detach().to(centers.dtype)
    sums = torch.zeros_like(centers).index_add_(0, labels, x)  # [C, D] sum_i [y_i = j] x_i
    counts = torch.bincount(labels, minlength=centers.shape[0]).to(centers.dtype)[:, None]  # [C, 1]
    if gather_distributed and is_distributed():  # [C, D + 1] in one collective, not the whole batch
        both = torch.cat([sums, counts], dim=1)
        dist.all_reduce(both)
        sums, counts = both[:, :-1], both[:, -1:]
    delta = (counts * centers - sums) / (1 + counts)  # [C, D] sum_i [y_i = j](c_j - x_i) / (1 + n_j)
    return centers - alpha * delta


class CenterLossState(nn.Module):
    """Holds the [C, D] centers as a buffer (saved with state_dict, moved with .to, not an optimizer parameter).

    forward(embeddings, labels) -> center loss; update(embeddings, labels) applies the paper's rule
    in place (call it once per step, after computing the loss).
    """

    centers: torch.Tensor

    def __init__(self, num_classes: int, dim: int, alpha: float = 0.5, reduction: str = "mean") -> None:
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"num_classes and dim must be >= 1; got {num_classes} and {dim}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
        self.alpha, self.reduction = alpha, reduction
        # zeros: the update moves a center to alpha * n / (1 + n) of its class mean on the first batch that has the class
        self.register_buffer("centers", torch.zeros(num_classes, dim))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Center loss of embeddings [B, D] with labels [B] -> scalar."""
        return center_loss(embeddings, labels, self.centers, self.reduction)

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, labels: torch.Tensor, gather_distributed: bool = False) -> None:
        """c <- c - alpha * dc from this batch (embeddings [B, D], labels [B])."""
        self.centers.copy_(center_update(self.centers, embeddings, labels, self.alpha, gather_distributed))
