"""Weighted k-NN classification of frozen features (Wu et al. 2018, InstDisc; as used by DINO)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.evaluation.defaults import PROTOCOL_DEFAULTS


def knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    num_classes: int,
    k: int = PROTOCOL_DEFAULTS["knn"]["k"],
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Predicted labels [M] of test_feats [M, D] by a vote of their k most cosine-similar train rows [N, D].

    Each neighbour j votes for its class with weight exp(sim_j / temperature); the class with the
    largest summed weight wins (ties go to the lower class id). k is clipped to N.
    """
    if train_feats.ndim != 2 or test_feats.ndim != 2 or train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"expected train_feats [N, D] and test_feats [M, D] with the same D, "
            f"got {tuple(train_feats.shape)} and {tuple(test_feats.shape)}"
        )
    if train_labels.shape != (train_feats.shape[0],):
        raise ValueError(f"expected train_labels [N={train_feats.shape[0]}], got {tuple(train_labels.shape)}")
    if train_feats.shape[0] == 0:
        raise ValueError("k-NN needs at least one training row")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    labels = train_labels.long()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"train_labels must lie in [0, num_classes={num_classes}), got {labels.min()}..{labels.max()}")
    k = max(1, min(k, train_feats.shape[0]))
    train = F.normalize(train_feats.float(), dim=1)  # [N, D]
    preds = []
    for start in range(0, test_feats.shape[0], chunk_size):  # chunks bound the [m, N] similarity matrix
        test = F.normalize(test_feats[start : start + chunk_size].float().to(train.device), dim=1)  # [m, D]
        sim = test @ train.T  # [m, N]
        top_sim, top_idx = sim.topk(k, dim=1)  # [m, k]
        weights = (top_sim / temperature).exp()  # [m, k]
        votes = torch.zeros(test.shape[0], num_classes, device=train.device, dtype=weights.dtype)
        votes.scatter_add_(1, labels.to(train.device)[top_idx], weights)  # [m, C]
        preds.append(votes.argmax(dim=1))
    if not preds:
        return torch.empty(0, dtype=torch.long)
    return torch.cat(preds).cpu()


def knn_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None = None,
    k: int = PROTOCOL_DEFAULTS["knn"]["k"],
    temperature: float = 0.1,
) -> float:
    """Top-1 accuracy of knn_predict on test_feats [M, D] against test_labels [M]."""
    if num_classes is None:
        num_classes = int(torch.cat([train_labels.reshape(-1), test_labels.reshape(-1)]).max()) + 1
    preds = knn_predict(train_feats, train_labels, test_feats, num_classes, k=k, temperature=temperature)
    if test_labels.shape != (test_feats.shape[0],):
        raise ValueError(f"expected test_labels [M={test_feats.shape[0]}], got {tuple(test_labels.shape)}")
    return (preds == test_labels.long().cpu()).sum().item() / max(1, len(preds))
