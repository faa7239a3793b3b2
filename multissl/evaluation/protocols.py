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
    """The registered MethodSpec of a multissl model (from its config.model_type)."""
    from multissl.registry import METHODS, method_for_model_type

    model_type = getattr(getattr(model, "config", None), "model_type", None)  # any object: a plain HF model too
    spec = method_for_model_type(model_type)
    if spec is None:
        known = ", ".join(sorted(f"{s.name} ({s.model_type})" for s in METHODS.values()))
        raise ValueError(f"no registered method has model_type {model_type!r}; registered methods: {known}")
    return spec


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
    from multissl.models.loading import load_model as load_folder

    return load_folder(path), str(path)


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
    collate = spec.model_class.make_collator(model.config, train=False)
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


def check_evaluation(dataset_name: str, protocol: str, label_column: str = "label", split_train: str = "train",
                     split_test: str = "test", dataset_args: dict[str, Any] | None = None, **_: Any) -> None:
    """Fail now, with one line, if evaluate_model(...) would fail on the data (a missing split or label column).

    The training loop calls it before the first step, so an `eval:` section that cannot run on the data
    is found before a long training run, not after it.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}")
    from multissl.data import load_dataset_by_name

    for split in (split_train, split_test):
        try:
            ds = load_dataset_by_name(dataset_name, split=split, **(dataset_args or {}))
        except (ValueError, KeyError, FileNotFoundError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise ValueError(f"eval {protocol}: cannot load split {split!r} of {dataset_name!r} ({message}); fix the recipe's "
                             f"eval section (split_train / split_test) or give the data that split") from err
        columns = getattr(ds, "column_names", None) or []
        if label_column not in columns:
            raise ValueError(f"eval {protocol}: split {split!r} of {dataset_name!r} has no label column {label_column!r} "
                             f"(columns: {', '.join(columns)}); set label_column in the recipe's eval section")
