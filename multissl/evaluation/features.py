"""Frozen features of a dataset from any model with `embed(**batch) -> [B, D]`."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tqdm.auto import tqdm


def label_tensor(dataset: Any, label_column: str, label_to_id: Mapping[Any, int] | None = None) -> torch.Tensor:
    """The dataset's label column as int64 [N]; non-integer labels (e.g. words) go through label_to_id."""
    if label_column not in dataset.column_names:
        raise ValueError(f"label column {label_column!r} not in the dataset; columns: {', '.join(dataset.column_names)}")
    values = list(dataset[label_column])
    if label_to_id is not None:
        missing = sorted({str(v) for v in values if v not in label_to_id})
        if missing:
            raise ValueError(f"label column {label_column!r} has values missing from label_to_id: {missing[:10]}")
        return torch.tensor([label_to_id[v] for v in values], dtype=torch.long)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(
            f"label column {label_column!r} holds non-integer values (e.g. {values[0]!r}); pass label_to_id "
            f"or cast the column to datasets.ClassLabel"
        )
    return torch.tensor(values, dtype=torch.long)


def _model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-free model)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset: Any,
    collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]],
    label_column: str | None = "label",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = True,
    label_to_id: Mapping[Any, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features [N, D] float32 on CPU, labels [N] int64 or None) from `model.embed(**collate_fn(rows))`.

    The label column is removed from the rows before collating, so an eval collator can never feed
    labels to `embed`; labels come straight from the dataset column.
    """
    if not hasattr(model, "embed"):
        raise TypeError(f"{type(model).__name__} has no embed(**batch) method to extract features with")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    labels = label_tensor(dataset, label_column, label_to_id) if label_column is not None else None
    rows_ds = dataset.remove_columns([label_column]) if label_column is not None else dataset
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    feats = []
    try:
        with tqdm(total=len(rows_ds), desc="features", unit="row", disable=not progress) as bar:
            for start in range(0, len(rows_ds), batch_size):
                columns = rows_ds[start : start + batch_size]  # {column: [values]}
                rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
                batch = {
                    key: value.to(device) if isinstance(value, torch.Tensor) else value
                    for key, value in collate_fn(rows).items()
                }
                emb = model.embed(**batch)  # [B, D]
                if emb.ndim != 2 or emb.shape[0] != len(rows):
                    raise ValueError(f"embed() must return [B={len(rows)}, D], got {tuple(emb.shape)}")
                feats.append(emb.detach().float().cpu())
                bar.update(len(rows))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("cannot extract features from an empty dataset")
    return torch.cat(feats), labels
