"""`evaluate_model`: frozen-feature k-NN or linear-probe evaluation of a saved multissl model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from multissl.evaluation.features import extract_features
from multissl.evaluation.knn import knn_accuracy
from multissl.evaluation.linear_probe import linear_probe_accuracy

PROTOCOLS = ("knn", "linear-probe")


def method_spec_for(model: Any):
    """The registered MethodSpec whose config_class.model_type equals model.config.model_type."""
    import multissl  # noqa: F401  (registers every method)
    from multissl.registry import METHODS

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for spec in METHODS.values():
        if getattr(spec.config_class, "model_type", None) == model_type:
            return spec
    known = ", ".join(sorted(f"{s.name} ({s.config_class.model_type})" for s in METHODS.values())) or "(none)"
    raise ValueError(f"no registered method has model_type {model_type!r}; registered methods: {known}")


def load_model(model_dir_or_model: Any) -> tuple[Any, str | None]:
    """(model, source folder or None): a PreTrainedModel as is, or AutoModel.from_pretrained(local folder)."""
    if isinstance(model_dir_or_model, torch.nn.Module):
        return model_dir_or_model, None
    path = Path(model_dir_or_model).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model folder {str(path)!r} has no config.json; expected a folder written by save_pretrained "
            f"(e.g. <run_dir>/final)"
        )
    import multissl  # noqa: F401  (registers the multissl model types with AutoModel)
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(path)), str(path)


def _label_space(train_ds: Any, test_ds: Any, label_column: str) -> tuple[int, dict | None]:
    """(num_classes, label_to_id or None): ClassLabel/int columns keep their ids, others get sorted ids."""
    feature = train_ds.features.get(label_column) if hasattr(train_ds, "features") else None
    if feature is not None and hasattr(feature, "num_classes"):
        return int(feature.num_classes), None
    values = list(train_ds[label_column]) + list(test_ds[label_column])
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return max(values) + 1, None
    names = sorted({v for v in values}, key=str)
    return len(names), {name: i for i, name in enumerate(names)}


def evaluate_model(
    model_dir_or_model: Any,
    dataset_name: str,
    protocol: str = "knn",
    label_column: str = "label",
    split_train: str = "train",
    split_test: str = "test",
    k: int = 200,
    temperature: float = 0.1,
    C: float = 1.0,
    max_iter: int = 1000,
    batch_size: int = 256,
    device: str | None = None,
    progress: bool = True,
    dataset_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Embed the train/test splits with the method's eval collator and score them with `protocol`.

    dataset_args go to the dataset loader (e.g. {"path": ...} for a generated dataset).
    Returns a JSON-serialisable dict {"protocol", "dataset", "accuracy", "n_train", "n_test", ...}.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}")
    from multissl.data import load_dataset_by_name

    model, source = load_model(model_dir_or_model)
    if device is not None:
        model.to(device)
    spec = method_spec_for(model)
    collate = spec.make_collator(model.config, train=False)
    train_ds = load_dataset_by_name(dataset_name, split=split_train, **(dataset_args or {}))
    test_ds = load_dataset_by_name(dataset_name, split=split_test, **(dataset_args or {}))
    num_classes, label_to_id = _label_space(train_ds, test_ds, label_column)
    kw = dict(label_column=label_column, batch_size=batch_size, device=device, progress=progress, label_to_id=label_to_id)
    train_x, train_y = extract_features(model, train_ds, collate, **kw)
    test_x, test_y = extract_features(model, test_ds, collate, **kw)
    result: dict[str, Any] = {
        "protocol": protocol,
        "dataset": str(dataset_name),
        "method": spec.name,
        "model": source,
        "label_column": label_column,
        "split_train": split_train,
        "split_test": split_test,
        "n_train": int(train_x.shape[0]),
        "n_test": int(test_x.shape[0]),
        "feature_dim": int(train_x.shape[1]),
        "num_classes": num_classes,
    }
    if protocol == "knn":
        acc = knn_accuracy(train_x, train_y, test_x, test_y, num_classes=num_classes, k=k, temperature=temperature)
        result.update(accuracy=acc, k=int(min(k, train_x.shape[0])), temperature=float(temperature))
    else:
        result.update(linear_probe_accuracy(train_x, train_y, test_x, test_y, C=C, max_iter=max_iter))
    return result
