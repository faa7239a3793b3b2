"""Accuracy of a model's own classifier (`classify(**batch) -> [B, C]`): the number semi-supervised methods and
fine-tuning report, as opposed to k-NN / linear probes on frozen features (which read every training label)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from multissl.evaluation.features import extract_features


class _ClassifierLogits(nn.Module):
    """Exposes model.classify as embed, so extract_features (batching, eval mode, label column removed) is reused."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)  # extract_features restores this flag afterwards: it must be the model's own

    def embed(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.model.classify(**batch)


def classifier_logits(model: nn.Module, dataset: Any, collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]],
                      label_column: str = "label", batch_size: int = 256, device: str | None = None,
                      progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C] float32 on CPU, labels [N]) of every row of `dataset` through model.classify, in eval mode."""
    if not callable(getattr(model, "classify", None)):
        raise TypeError(f"{type(model).__name__} has no classify(**batch) -> [B, C] to score; it is not a classifier "
                        f"(use the k-NN or linear-probe protocol on its features instead)")
    logits, labels = extract_features(_ClassifierLogits(model), dataset, collate_fn, label_column=label_column,
                                      batch_size=batch_size, device=device, progress=progress)
    return logits, labels


def classifier_accuracy(model: nn.Module, dataset: Any, collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]],
                        label_column: str = "label", batch_size: int = 256, device: str | None = None,
                        progress: bool = False) -> dict[str, float | int]:
    """{"accuracy": mean 1[argmax classify(x) == y], "n": rows} over `dataset` (collate_fn: the method's eval collator)."""
    logits, labels = classifier_logits(model, dataset, collate_fn, label_column, batch_size, device, progress)
    if logits.dim() != 2 or len(labels) == 0:
        raise ValueError(f"classify() must return [B, C] logits for a non-empty dataset; got {tuple(logits.shape)}")
    return {"accuracy": float((logits.argmax(-1) == labels).float().mean()), "n": int(len(labels))}
