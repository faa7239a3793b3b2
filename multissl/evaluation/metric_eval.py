"""Retrieval on chosen (usually held-out) classes: embed with the method's eval collator, score R@k and MAP@R.

The metric-learning protocol of Musgrave et al. 2020: train on some classes, then every sample of the
*other* classes queries all the rest (leave-one-out), ranked by cosine similarity of `embed()`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from multissl.data.class_split import label_column_tensor, select_classes
from multissl.evaluation.features import extract_features
from multissl.evaluation.metric_retrieval import mean_average_precision_at_r, recall_at_k
from multissl.models.base import MethodModel


def evaluate_retrieval(
    model: Any,
    dataset: Any,
    label_column: str = "label",
    classes: Sequence[int] | None = None,
    exclude_classes: Sequence[int] | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    split: str = "test",
    dataset_args: dict[str, Any] | None = None,
    collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]] | None = None,
    batch_size: int = 256,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Leave-one-out {"recall_at_<k>" for k in ks, "map_at_r", "n", "num_classes", "classes", "feature_dim"} on some classes.

    model: a model with embed(**batch) -> [B, D], or a saved multissl folder. dataset: a datasets.Dataset,
    or a built-in name / local path loaded at `split` with `dataset_args`. classes: the class ids to
    retrieve among (None: every class present), or exclude_classes: every class present but these
    (e.g. a model's config.train_classes). collate_fn: default the method's eval collator
    (make_collator(config, train=False)). ks above N - 1 are skipped.
    """
    if classes is not None and exclude_classes is not None:
        raise ValueError("give classes or exclude_classes, not both")
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of ints >= 1; got {ks!r}")
    if isinstance(model, torch.nn.Module):
        source = None
    else:
        from multissl.evaluation.protocols import load_model

        model, source = load_model(model)
    if device is not None:
        model.to(device)
    if isinstance(dataset, str):
        from multissl.data import load_dataset_by_name

        dataset = load_dataset_by_name(dataset, split=split, **(dataset_args or {}))
    present = torch.unique(label_column_tensor(dataset, label_column)).tolist()
    if exclude_classes is not None:
        excluded = {int(c) for c in exclude_classes}
        classes = [c for c in present if c not in excluded]
        if not classes:
            raise ValueError(f"exclude_classes removes every class present ({present}); nothing is left to retrieve")
    if classes is not None:
        missing = sorted({int(c) for c in classes} - set(present))
        if missing:
            raise ValueError(f"classes {missing} have no rows in the dataset (classes present: {present})")
        dataset = select_classes(dataset, label_column, classes)
    if collate_fn is None:
        if not isinstance(model, MethodModel):
            raise TypeError(f"{type(model).__name__} is not a multissl method model: pass collate_fn")
        collate_fn = type(model).make_collator(model.config, train=False)
    x, y = extract_features(model, dataset, collate_fn, label_column=label_column, batch_size=batch_size,
                            device=device, progress=progress)  # [N, D], [N]
    n = int(x.shape[0])
    result: dict[str, Any] = {f"recall_at_{k}": recall_at_k(x, y, k=k) for k in sorted(set(ks)) if k <= n - 1}
    result.update(map_at_r=mean_average_precision_at_r(x, y), n=n, num_classes=int(torch.unique(y).numel()),
                  classes=sorted(torch.unique(y).tolist()), feature_dim=int(x.shape[1]), model=source)
    return result
