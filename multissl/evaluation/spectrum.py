"""Label-free shape of a feature set: effective rank (RankMe) and how much variance a few directions carry.

Non-contrastive methods (BYOL, DINO) have no term that spreads the batch over the feature space, so they can keep
only a few directions (dimensional collapse, Jing et al. 2022) while the per-dimension std of the normalised
projection, the usual collapse monitor, still looks healthy. These numbers show it without labels.
"""
from __future__ import annotations

import torch


def _check(features: torch.Tensor) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] < 2:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a float tensor [N >= 2, D]; got {got}")
    return features.double()


def effective_rank(features: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023) of features [N, D]: exp of the entropy of the normalised singular values.

    Between 1 (one direction) and min(N, D) (all singular values equal). The features are not centred, as in the paper.
    """
    s = torch.linalg.svdvals(_check(features))
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def component_shares(features: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Share of the total variance of features [N, D] (centred) along each of its first k principal components [k]."""
    x = _check(features)
    var = torch.linalg.svdvals(x - x.mean(0)) ** 2
    return (var / var.sum())[:k].float()


def direction_share(features: torch.Tensor, group: torch.Tensor) -> float:
    """Share of the total variance of features [N, D] along the line between the means of two groups (group: bool [N]).

    1 when the features differ only by group, about 1/D for a group the features ignore (isotropic features).
    """
    x = _check(features)
    group = torch.as_tensor(group, dtype=torch.bool)
    if group.shape != (x.shape[0],) or group.all() or not group.any():
        raise ValueError(f"group must be bool [N={x.shape[0]}] with both values present; got shape {tuple(group.shape)}")
    x = x - x.mean(0)
    d = x[group].mean(0) - x[~group].mean(0)
    d = d / d.norm()
    return float((x @ d).var() / x.var(0).sum())
