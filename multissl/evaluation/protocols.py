"""`evaluate_model`: frozen-feature k-NN or linear-probe evaluation of a saved multissl model.

The classifier is fitted on `split_train` and scored on `split` (default: the reporting split, test); settings not
given come from the one table `PROTOCOL_DEFAULTS` (multissl/evaluation/defaults.py). Every split is loaded, with
one clear error if it is missing, before the model embeds anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from multissl.evaluation.defaults import C_AUTO, PROTOCOL_DEFAULTS, PROTOCOLS, REPORT_SPLIT, TUNE_SPLIT

__all__ = ["PROTOCOLS", "PROTOCOL_DEFAULTS", "check_evaluation", "evaluate_model", "has_split",
           "load_model", "load_split", "method_spec_for"]

_KNN, _PROBE = PROTOCOL_DEFAULTS["knn"], PROTOCOL_DEFAULTS["linear-probe"]
_RECIPE_HINT = "fix the recipe's eval section (split_train / split) or give the data that split"
_CALL_HINT = "choose another split (--split / --split-train, or split= / split_train=) or give the data that split"


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
    import torch

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


def _check_protocol(protocol: str, C: Any = None) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}")
    if protocol == "linear-probe" and not (C == C_AUTO or (isinstance(C, (int, float)) and not isinstance(C, bool) and C > 0)):
        raise ValueError(f"C must be a number > 0 or {C_AUTO!r} (chosen on the {TUNE_SPLIT!r} split); got {C!r}")


def load_split(dataset_name: str, split: str, protocol: str, dataset_args: dict[str, Any] | None = None,
               hint: str = _CALL_HINT, label_column: str | None = None):
    """One split as a datasets.Dataset, or one ValueError line naming the dataset, the split and the splits it has."""
    from multissl.data import load_dataset_by_name

    try:
        ds = load_dataset_by_name(dataset_name, split=split, **(dataset_args or {}))
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # the loader's message lists the splits
        raise ValueError(f"eval {protocol}: cannot load split {split!r} of {dataset_name!r} ({message}); {hint}") from err
    columns = getattr(ds, "column_names", None) or []
    if label_column is not None and label_column not in columns:
        raise ValueError(f"eval {protocol}: split {split!r} of {dataset_name!r} has no label column {label_column!r} "
                         f"(columns: {', '.join(columns)}); set label_column (--target) to one of them")
    return ds


def has_split(dataset_name: str, split: str, dataset_args: dict[str, Any] | None = None) -> bool:
    """Whether the dataset (built-in name or local path) loads `split`."""
    from multissl.data import load_dataset_by_name

    try:
        load_dataset_by_name(dataset_name, split=split, **(dataset_args or {}))
    except (ValueError, KeyError, FileNotFoundError):
        return False
    return True


def _hint(name: str, split_train: str, split: str, hint: str) -> str:
    """What to do about a missing split: the caller's hint, or (the tuning split only C=auto needs) how to avoid it."""
    if name == TUNE_SPLIT and name not in (split_train, split):
        return f"C={C_AUTO} chooses C on the {TUNE_SPLIT!r} split; give a number for C or data with that split"
    return hint


def _splits_needed(protocol: str, split_train: str, split: str, C: Any) -> list[str]:
    """Unique split names to load, in order: fitted, scored and (C=auto) the tuning split."""
    tune = [TUNE_SPLIT] if protocol == "linear-probe" and C == C_AUTO else []
    return list(dict.fromkeys([split_train, split, *tune]))


def _label_space(datasets_: list[Any], label_column: str) -> tuple[int, dict | None]:
    """(num_classes, label_to_id or None): ClassLabel/int columns keep their ids, others get sorted ids."""
    feature = datasets_[0].features.get(label_column) if hasattr(datasets_[0], "features") else None
    if feature is not None and hasattr(feature, "num_classes"):
        return int(feature.num_classes), None
    values = [v for ds in datasets_ for v in ds[label_column]]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return max(values) + 1, None
    names = sorted(set(values), key=str)
    return len(names), {name: i for i, name in enumerate(names)}


def _probe(feats: dict[str, tuple], split_train: str, split: str, C: Any, max_iter: int) -> dict[str, Any]:
    """Linear-probe fields of the result: a fixed C, or C chosen on the validation split (test read once)."""
    from multissl.evaluation.linear_probe import C_GRID, linear_probe_accuracy, tuned_linear_probe

    if C != C_AUTO:
        return linear_probe_accuracy(*feats[split_train], *feats[split], C=float(C), max_iter=max_iter)
    scored = [] if split == TUNE_SPLIT else feats[split]  # scoring validation itself: its best accuracy is the score
    tuned = tuned_linear_probe(*feats[split_train], *feats[TUNE_SPLIT], *scored, grid=C_GRID, max_iter=max_iter)
    out = {"accuracy": tuned.get("accuracy", tuned["validation_accuracy"]), "C": tuned["C"], "C_search": C_AUTO,
           "C_grid": [float(c) for c in C_GRID], "split_tune": TUNE_SPLIT, "validation_accuracy": tuned["validation_accuracy"],
           "validation_by_C": {repr(c): acc for c, acc in tuned["validation_by_C"].items()}, "max_iter": int(max_iter)}
    if "train_accuracy" in tuned:
        out["train_accuracy"] = tuned["train_accuracy"]
    return out


def evaluate_model(
    model_dir_or_model: Any,
    dataset_name: str,
    protocol: str = "knn",
    label_column: str = "label",
    split_train: str = "train",
    split: str = REPORT_SPLIT,
    k: int = _KNN["k"],
    temperature: float = _KNN["temperature"],
    C: float | str = _PROBE["C"],
    max_iter: int = _PROBE["max_iter"],
    batch_size: int = 256,
    device: str | None = None,
    progress: bool = True,
    dataset_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit `protocol` on split_train's frozen features and score `split` (features [N, D] from the method's eval collator).

    C="auto" (linear probe) chooses C on the validation split from linear_probe.C_GRID and reads `split` once.
    dataset_args go to the dataset loader (e.g. {"path": ...} for a generated dataset).
    Returns a JSON-serialisable dict naming the protocol, its settings, the fitted and scored splits and "accuracy".
    """
    _check_protocol(protocol, C)
    names = _splits_needed(protocol, split_train, split, C)
    data = {name: load_split(dataset_name, name, protocol, dataset_args, _hint(name, split_train, split, _CALL_HINT),
                             label_column) for name in names}
    model, source = load_model(model_dir_or_model)
    if device is not None:
        model.to(device)
    spec = method_spec_for(model)
    collate = spec.model_class.make_collator(model.config, train=False)
    num_classes, label_to_id = _label_space(list(data.values()), label_column)
    from multissl.evaluation.features import extract_features

    kw = dict(label_column=label_column, batch_size=batch_size, device=device, progress=progress, label_to_id=label_to_id)
    feats = {name: extract_features(model, ds, collate, **kw) for name, ds in data.items()}  # {split: ([N, D], [N])}
    result: dict[str, Any] = {
        "protocol": protocol,
        "dataset": str(dataset_name),
        "method": spec.name,
        "model": source,
        "label_column": label_column,
        "split_train": split_train,
        "split": split,
        "n_train": int(feats[split_train][0].shape[0]),
        "n_scored": int(feats[split][0].shape[0]),
        "feature_dim": int(feats[split_train][0].shape[1]),
        "num_classes": num_classes,
    }
    if protocol == "knn":
        from multissl.evaluation.knn import knn_accuracy

        acc = knn_accuracy(*feats[split_train], *feats[split], num_classes=num_classes, k=k, temperature=temperature)
        result.update(accuracy=acc, k=int(min(k, result["n_train"])), temperature=float(temperature))
    else:
        result.update(_probe(feats, split_train, split, C, max_iter))
    return result


def check_evaluation(dataset_name: str, protocol: str, label_column: str = "label", split_train: str = "train",
                     split: str = REPORT_SPLIT, C: float | str = _PROBE["C"], dataset_args: dict[str, Any] | None = None,
                     **_: Any) -> None:
    """Fail now, with one line, if evaluate_model(...) would fail on the data (a missing split or label column).

    The training loop calls it before the first step, so an `eval:` section that cannot run on the data
    is found before a long training run, not after it.
    """
    _check_protocol(protocol, C)
    for name in _splits_needed(protocol, split_train, split, C):
        load_split(dataset_name, name, protocol, dataset_args, _hint(name, split_train, split, _RECIPE_HINT), label_column)
