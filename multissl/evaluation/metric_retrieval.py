"""Leave-one-out retrieval metrics for metric learning on held-out classes: Recall@k and MAP@R.

Every sample is a query against all the *other* samples (its own row is excluded). A query whose
class has no other sample has nothing to find: it is left out of the mean, as
pytorch-metric-learning's AccuracyCalculator does for "lone" query labels.

    Recall@k (Song et al. 2016): fraction of queries with at least one same-class sample among
             their k nearest neighbours (for k = 1 this is precision@1).
    MAP@R    (Musgrave et al. 2020, "A Metric Learning Reality Check"): for a query with R other
             same-class samples, retrieve its R nearest neighbours and average
             1/R sum_{i<=R} P(i) [neighbour i is relevant], P(i) = precision over the first i.

Queries are processed in chunks, so memory is O(chunk_size * N), never N x N.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(embeddings: torch.Tensor, labels: torch.Tensor, chunk_size: int) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape [N, D]; got {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if labels.shape != (n,) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be an integer tensor of shape [{n}]; got {labels.dtype} {tuple(labels.shape)}")
    if n < 2:
        raise ValueError(f"leave-one-out retrieval needs at least 2 embeddings; got {n}")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}")


def _prepare(embeddings: torch.Tensor, normalize: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x [N, D], half squared norms [N] or None): score(q, j) = q . x_j - |x_j|^2 / 2 ranks like -||q - x_j||^2."""
    x = embeddings.detach()
    x = x if x.dtype == torch.float64 else x.float()
    if normalize:  # cosine similarity; on unit vectors the euclidean ranking is the same
        return F.normalize(x, dim=1), None
    return x, 0.5 * x.pow(2).sum(1)  # ||q||^2 is constant along a query's row: dropping it keeps the ranking


def _top_neighbour_matches(
    embeddings: torch.Tensor, labels: torch.Tensor, depth: torch.Tensor | int, normalize: bool, chunk_size: int
):
    """Yield (rows [n], same-label [n, k]) per chunk: the k = depth nearest other samples of each query, nearest first.

    depth: an int, or [N] per query (the chunk then uses its largest).
    """
    x, half_sq = _prepare(embeddings, normalize)
    n_all = x.shape[0]
    for start in range(0, n_all, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n_all), device=x.device)  # [n]
        scores = x[rows] @ x.T  # [n, N]
        if half_sq is not None:
            scores -= half_sq[None, :]
        scores[torch.arange(len(rows), device=x.device), rows] = float("-inf")  # leave one out: never retrieve yourself
        k = depth if isinstance(depth, int) else int(depth[rows].max())
        if k == 0:
            yield rows, torch.zeros(len(rows), 0, dtype=torch.bool, device=x.device)
            continue
        idx = scores.topk(k, dim=1).indices  # [n, k], sorted by decreasing score
        yield rows, labels[idx] == labels[rows, None]


def _others_of_same_class(labels: torch.Tensor) -> torch.Tensor:
    """R [N]: how many *other* samples share each sample's label."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    return counts[inverse] - 1


def recall_at_k(
    embeddings: torch.Tensor, labels: torch.Tensor, k: int = 1, normalize: bool = True, chunk_size: int = 1024
) -> float:
    """Leave-one-out Recall@k of embeddings [N, D] with labels [N] -> float in [0, 1].

    normalize=True ranks by cosine similarity, False by euclidean distance. Queries without any
    other sample of their class are excluded from the mean.
    """
    _check(embeddings, labels, chunk_size)
    if not (isinstance(k, int) and 1 <= k <= embeddings.shape[0] - 1):
        raise ValueError(f"k must be an int in [1, N-1] = [1, {embeddings.shape[0] - 1}]; got {k!r}")
    labels = labels.to(embeddings.device)
    valid = _others_of_same_class(labels) > 0  # [N]
    if not bool(valid.any()):
        raise ValueError("no class has two samples: every query is alone, so recall@k is undefined")
    hits = torch.zeros((), dtype=torch.long, device=embeddings.device)
    for rows, same in _top_neighbour_matches(embeddings, labels, k, normalize, chunk_size):
        hits += (same.any(1) & valid[rows]).sum()
    return float(hits) / float(valid.sum())


def mean_average_precision_at_r(
    embeddings: torch.Tensor, labels: torch.Tensor, normalize: bool = True, chunk_size: int = 1024
) -> float:
    """Leave-one-out MAP@R (Musgrave et al. 2020) of embeddings [N, D] with labels [N] -> float in [0, 1].

    normalize=True ranks by cosine similarity, False by euclidean distance. Queries without any
    other sample of their class are excluded from the mean.
    """
    _check(embeddings, labels, chunk_size)
    labels = labels.to(embeddings.device)
    r = _others_of_same_class(labels)  # [N]
    valid = r > 0
    if not bool(valid.any()):
        raise ValueError("no class has two samples: every query is alone, so MAP@R is undefined")
    total = torch.zeros((), dtype=torch.float64, device=embeddings.device)
    for rows, same in _top_neighbour_matches(embeddings, labels, r, normalize, chunk_size):
        r_rows = r[rows]  # [n]
        rank = torch.arange(1, same.shape[1] + 1, device=same.device)  # [k] 1-based
        relevant = same & (rank[None, :] <= r_rows[:, None])  # [n, k]: only the first R neighbours count
        precision = relevant.cumsum(1).double() / rank  # [n, k] P(i)
        ap = (precision * relevant).sum(1) / r_rows.clamp_min(1)  # [n], 0 for lone queries (masked below)
        total += ap[valid[rows]].sum()
    return float(total) / float(valid.sum())
