"""Built-in offline datasets (the lazy table multissl.registry.DATASETS) and `load_dataset_by_name`.

A built-in dataset is a loader function in its own file here plus one row in that table; its module
is imported only when the dataset is loaded.
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from multissl.registry import DATASETS

__all__ = ["load_dataset_by_name", "builtin_dataset_names"]


def builtin_dataset_names() -> list[str]:
    """Sorted names of the registered built-in datasets."""
    return sorted(DATASETS)


def load_dataset_by_name(name_or_path: str | Path, split: str = "train", **kwargs: Any):
    """A built-in dataset by registered name, else a local file/folder, as a `datasets.Dataset`.

    Never reaches the Hugging Face Hub: a string that is neither a built-in name nor an
    existing path is an error raised before `datasets` is called.
    """
    name = str(name_or_path)
    spec = DATASETS.get(name)
    if spec is not None:
        loader = spec.load
        _check_loader_args(name, loader, kwargs)
        return loader(split=split, **kwargs)
    path = Path(name).expanduser()
    if path.exists():
        from multissl.data.local import load_local_dataset

        return load_local_dataset(path, split=split, **kwargs)
    known = ", ".join(builtin_dataset_names()) or "(none)"
    looks_like_path = any(sep in name for sep in ("/", "\\")) or name.startswith(".") or Path(name).suffix != ""
    if looks_like_path:
        raise FileNotFoundError(
            f"dataset path {name!r} does not exist; pass an existing local file/folder or a built-in name: {known}"
        )
    close = difflib.get_close_matches(name, builtin_dataset_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown dataset {name!r}: not a built-in dataset and not an existing path "
        f"(hub datasets are never downloaded){hint}; built-in datasets: {known}"
    )


def _check_loader_args(name: str, loader: Any, kwargs: dict) -> None:
    """A typo in a recipe's dataset_args names the key and the accepted ones (not the loader's TypeError)."""
    params = inspect.signature(loader).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        allowed = sorted(set(params) - {"split"})
        raise ValueError(f"dataset {name!r}: unknown dataset_args {unknown}; it accepts {allowed or 'none'}")
