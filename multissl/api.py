"""The Python API in one import: `multissl.train(recipe, out, overrides=...)` and `multissl.embed(model, inputs)`.

Both are thin: `train` builds a Recipe exactly as `multissl train RECIPE --set key=value` does (same validation,
same one-line RecipeErrors) and calls the one training loop; `embed` runs the method's eval collator and
`model.embed` through `extract_features`, the function every evaluation protocol uses. Heavy imports (torch,
transformers, the loop) happen inside the functions, so `import multissl` stays cheap.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers only: importing these at run time would pull in torch
    import torch

    from multissl.training.config import Recipe
    from multissl.training.loop import TrainResult

__all__ = ["embed", "train"]


def _merge_overrides(data: dict, overrides: Mapping[str, Any], source: str) -> dict:
    """Set every leaf of `overrides` in the recipe dict `data`, in place, like one `--set key=value` per leaf.

    A key may be a dotted path ("train.max_steps") or nest ({"train": {"max_steps": 5}}); both mean the same.
    A mapping value is merged key by key (it never drops the section's other keys); None clears a value or
    section. Values are Python objects, used as they are (no YAML parsing): recipe_from_dict checks them.
    """
    from multissl.training.config import RecipeError, section_for

    if not isinstance(overrides, Mapping):
        raise RecipeError(f"{source}: overrides must be a mapping like {{'train.max_steps': 5}}; "
                          f"got {type(overrides).__name__}")

    def walk(node: dict, items: Mapping[str, Any], prefix: list[str]) -> None:
        for key, value in items.items():
            parts = key.split(".") if isinstance(key, str) else [key]
            if not all(isinstance(p, str) and p for p in parts):
                raise RecipeError(f"{source}: override key {'.'.join(prefix + [str(key)])!r} must be a non-empty "
                                  f"(dotted) string like 'train.max_steps'")
            path = prefix + parts

            def message(n: int, bad: Any, path: list[str] = path) -> str:
                return f"{source}: override {'.'.join(path)!r}: {'.'.join(path[: len(prefix) + n])} is {bad!r}, not a mapping"

            if isinstance(value, Mapping) and value:  # merge into the section (created if absent), key by key
                walk(section_for(node, parts, message), value, path)
            else:
                section_for(node, parts[:-1], message)[parts[-1]] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value

    walk(data, overrides, [])
    return data


def _recipe_file_data(path: Path) -> dict:
    """The raw mapping of a YAML recipe file; any file-level problem raises load_recipe's own error (the CLI's)."""
    import yaml

    from multissl.training.config import load_recipe

    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = ...  # load_recipe below reports it
        if data is None:  # an empty file is an empty recipe (overrides may fill it), as in load_recipe
            return {}
        if isinstance(data, dict):
            return data
    load_recipe(path)  # missing, unreadable, not YAML or not a mapping: raises exactly what the CLI reports
    raise AssertionError(f"load_recipe accepted {path} although it is not a YAML mapping")  # pragma: no cover


def build_recipe(recipe: str | Path | Mapping[str, Any] | Recipe, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """A validated Recipe from a YAML path, a recipe dict or a Recipe, with `overrides` applied before validation."""
    from multissl.training.config import Recipe, recipe_from_dict

    if isinstance(recipe, Recipe):
        if not overrides:
            return recipe
        data, source = recipe.to_dict(), recipe.source
    elif isinstance(recipe, Mapping):
        data, source = copy.deepcopy(dict(recipe)), "<dict>"
    elif isinstance(recipe, (str, Path)):
        path = Path(recipe)
        data, source = _recipe_file_data(path), str(path)
    else:
        raise ValueError(f"recipe must be a path to a YAML recipe, a dict or a multissl Recipe; got {type(recipe).__name__}")
    return recipe_from_dict(_merge_overrides(data, overrides or {}, source), source=source)


def train(recipe: str | Path | Mapping[str, Any] | Recipe, output_dir: str | Path, *,
          overrides: Mapping[str, Any] | None = None, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train a recipe into `output_dir`, as `multissl train RECIPE --output-dir DIR --set k=v ...` does.

    recipe: a YAML path, a recipe dict or a Recipe. overrides: {"train.max_steps": 5} or, equivalently,
    {"train": {"max_steps": 5}} (each leaf is one --set; a nested mapping merges key by key; None clears).
    Errors are the CLI's one-line RecipeErrors. Returns the loop's TrainResult (losses, final_dir, eval).
    """
    from multissl.training.loop import train as train_loop

    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in output_dir, "
                         "overwrite moves it aside")
    return train_loop(build_recipe(recipe, overrides), output_dir, resume=resume, overwrite=overwrite)


class _Rows:
    """A list of row dicts seen as the column-batch view extract_features reads (len, rows[a:b] -> {col: [values]})."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, window: slice) -> dict[str, list]:
        chunk = self.rows[window]
        keys = dict.fromkeys(key for row in chunk for key in row)  # every column any row of the window has
        return {key: [row.get(key) for row in chunk] for key in keys}


def _as_row(item: Any, modality: str, sampling_rate: int | None, index: int) -> dict:
    """One raw input -> the row dict the method's eval collator reads (a dict passes through as a row)."""
    if isinstance(item, Mapping):
        return dict(item)
    if modality == "text":
        if not isinstance(item, str):
            raise ValueError(f"inputs[{index}]: a text method embeds strings; got {type(item).__name__}")
        return {"text": item}
    if modality == "audio":
        if isinstance(item, (str, Path)):  # a WAV/FLAC/OGG file
            return {"audio": str(item)}
        if sampling_rate is None:
            raise ValueError(f"inputs[{index}]: a bare waveform needs sampling_rate=<Hz> (or pass "
                             f"{{'audio': {{'array': ..., 'sampling_rate': ...}}}} rows)")
        return {"audio": {"array": item, "sampling_rate": int(sampling_rate)}}
    if modality == "image":
        return {"image": item}
    raise ValueError(f"inputs[{index}]: raw items are not enough for a {modality!r} method; pass row dicts "
                     f"with the columns its collator reads (e.g. image and caption) or a datasets.Dataset")


def embed(model: Any, inputs: Sequence[Any] | Any, batch_size: int = 256, *, sampling_rate: int | None = None,
          progress: bool = False) -> torch.Tensor:
    """Features [N, D] float32 (CPU) of `inputs` from a multissl model (or a saved model folder), in eval mode.

    inputs: a datasets.Dataset (rows; a `label` column is ignored), a list of row dicts, or raw items: PIL images
    (image methods), strings (text methods), waveforms with `sampling_rate` or audio file paths (audio methods).
    Batches of `batch_size` go through the method's eval collator and `model.embed(**batch)` under no_grad.
    """
    from multissl.evaluation.features import extract_features
    from multissl.evaluation.protocols import load_model, method_spec_for

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    model, _ = load_model(model)  # a module as is, or a saved folder (config.json + safetensors)
    spec = method_spec_for(model)
    collate = type(model).make_collator(model.config, train=False)
    if hasattr(inputs, "column_names") and hasattr(inputs, "remove_columns"):  # a datasets.Dataset
        rows = inputs.remove_columns(["label"]) if "label" in inputs.column_names else inputs
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes, Mapping)):
        rows = _Rows([_as_row(x, spec.modality, sampling_rate, i) for i, x in enumerate(inputs)])
    else:
        raise ValueError(f"inputs must be a datasets.Dataset or a list of items/rows; got {type(inputs).__name__}")
    if len(rows) == 0:
        raise ValueError("inputs is empty: nothing to embed")
    feats, _ = extract_features(model, rows, collate, label_column=None, batch_size=batch_size, progress=progress)
    return feats
