"""Recipes: a YAML file naming a method, a dataset, the method's config kwargs and TrainArgs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class RecipeError(ValueError):
    """A recipe file or override that does not match the expected schema."""


@dataclass
class TrainArgs:
    """Optimisation and bookkeeping settings shared by every method."""

    max_steps: int = 100
    batch_size: int = 64  # per process
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine decays to learning_rate * min_lr_ratio
    optimizer: str = "adamw"  # adamw | sgd
    momentum: float = 0.9  # for sgd
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    save_every: int = 0  # 0 = only the final model
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    stop_after_steps: int | None = None  # stop early (time-boxed jobs); the schedule still follows max_steps
    progress: bool = True


@dataclass
class Recipe:
    """Everything a run needs: method, data, model config kwargs, training args, end-of-run evaluation."""

    method: str
    dataset: str | None = None
    dataset_split: str = "train"
    dataset_args: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    train: TrainArgs = field(default_factory=TrainArgs)
    eval: dict = field(default_factory=dict)
    source: str = "<dict>"

    def to_dict(self) -> dict:
        """Plain-dict form (for recipe.yaml in a run folder)."""
        out = dataclasses.asdict(self)
        out.pop("source")
        out["train"]["betas"] = list(self.train.betas)
        return out


RECIPE_KEYS = {f.name for f in fields(Recipe)} - {"source"}
TRAIN_KEYS = {f.name: f for f in fields(TrainArgs)}
EVAL_PROTOCOLS = {"knn", "linear_probe"}


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    """Cast YAML scalars to the field's type (YAML reads 1e-3 as a string)."""
    if value is None or default is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            return tuple(float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{source}: train.{name} must be a {type(default).__name__}; got {value!r}") from err
    return value


def recipe_from_dict(data: dict, source: str = "<dict>") -> Recipe:
    """Validate a recipe dict: unknown keys are errors that list the allowed ones."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping, got {type(data).__name__}")
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        raise RecipeError(f"{source}: unknown recipe key(s) {sorted(unknown)}; allowed: {sorted(RECIPE_KEYS)}")
    if "method" not in data:
        raise RecipeError(f"{source}: missing required key 'method'")
    train_in = data.get("train") or {}
    unknown = set(train_in) - set(TRAIN_KEYS)
    if unknown:
        raise RecipeError(f"{source}: unknown train key(s) {sorted(unknown)}; allowed: {sorted(TRAIN_KEYS)}")
    defaults = TrainArgs()
    train = TrainArgs(**{k: _coerce(k, v, getattr(defaults, k), source) for k, v in train_in.items()})
    if train.mixed_precision not in ("no", "fp16", "bf16"):
        raise RecipeError(f"{source}: train.mixed_precision must be no|fp16|bf16; got {train.mixed_precision!r}")
    if train.optimizer not in ("adamw", "sgd"):
        raise RecipeError(f"{source}: train.optimizer must be adamw|sgd; got {train.optimizer!r}")
    for key in ("max_steps", "batch_size", "gradient_accumulation_steps"):
        if getattr(train, key) < 1:
            raise RecipeError(f"{source}: train.{key} must be >= 1; got {getattr(train, key)}")
    evals = data.get("eval") or {}
    unknown = set(evals) - EVAL_PROTOCOLS
    if unknown:
        raise RecipeError(f"{source}: unknown eval protocol(s) {sorted(unknown)}; allowed: {sorted(EVAL_PROTOCOLS)}")
    for key in ("model", "dataset_args"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise RecipeError(f"{source}: {key} must be a mapping")
    return Recipe(
        method=str(data["method"]),
        dataset=data.get("dataset"),
        dataset_split=data.get("dataset_split", "train"),
        dataset_args=dict(data.get("dataset_args") or {}),
        model=dict(data.get("model") or {}),
        train=train,
        eval=dict(evals),
        source=source,
    )


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a recipe dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {part!r} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a YAML recipe file, applying optional `key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from err
    return recipe_from_dict(apply_overrides(data, overrides or []), source=str(path))
