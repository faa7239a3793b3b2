"""Retrieval recall@k and rank statistics for paired embeddings (query i matches key i)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def match_ranks(query_emb: torch.Tensor, key_emb: torch.Tensor, normalize: bool = True, chunk_size: int = 1024) -> torch.Tensor:
    """1-based rank [N] of key i among all keys for query i: 1 + #keys scoring strictly higher (ties are optimistic)."""
    if query_emb.ndim != 2 or query_emb.shape != key_emb.shape:
        raise ValueError(
            f"expected query_emb and key_emb of the same shape [N, D], got {tuple(query_emb.shape)} and {tuple(key_emb.shape)}"
        )
    q, k = query_emb.float(), key_emb.float()
    if normalize:  # cosine similarity, as CLIP / SimCSE retrieval does
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    ranks = []
    for start in range(0, q.shape[0], chunk_size):  # chunks bound the [n, N] score matrix
        scores = q[start : start + chunk_size] @ k.T  # [n, N]
        rows = torch.arange(scores.shape[0], device=scores.device)
        positive = scores[rows, rows + start]  # [n] score of the true match
        ranks.append(1 + (scores > positive[:, None]).sum(dim=1))
    return torch.cat(ranks).cpu() if ranks else torch.empty(0, dtype=torch.long)


def retrieval_metrics(
    query_emb: torch.Tensor, key_emb: torch.Tensor, ks: Sequence[int] = (1, 5, 10), normalize: bool = True
) -> dict[str, float]:
    """{"recall@k", "median_rank", "mean_rank"} for queries [N, D] against keys [N, D] (one direction)."""
    if query_emb.shape[0] == 0:
        raise ValueError("retrieval metrics need at least one query/key pair")
    ranks = match_ranks(query_emb, key_emb, normalize=normalize)  # [N]
    out = {f"recall@{k}": float((ranks <= k).float().mean()) for k in ks}
    # the conventional median (mean of the two middle ranks for even N), not torch.median's lower one
    out["median_rank"] = float(torch.quantile(ranks.double(), 0.5))
    out["mean_rank"] = float(ranks.double().mean())
    return out
