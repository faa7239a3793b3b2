"""Honest resumes: a resumed run must train what the run folder's recipe.yaml says, or fail naming what differs."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from multissl.training.config import Recipe, RecipeError, TrainArgs

# Bookkeeping that does not change the trained weights: these may differ on --resume.
NON_RESULT_KEYS = frozenset({"train.progress", "train.num_workers", "train.log_every", "train.save_every",
                             "train.keep_checkpoints", "train.stop_after_steps",
                             # speed settings and trackers: the same maths, only faster or also logged elsewhere
                             "train.report_to", "train.compile", "train.channels_last", "train.fused", "train.foreach",
                             "train.gradient_checkpointing", "train.tf32", "train.attention"})


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, tuple):
        value = list(value)
    return {prefix: value}


def result_differences(saved: dict, current: dict) -> list[str]:
    """'key: saved -> current' for every recipe value that changes the result (eval and bookkeeping excluded)."""
    a, b = _flatten({k: v for k, v in saved.items() if k != "eval"}), _flatten({k: v for k, v in current.items() if k != "eval"})
    # A run saved before a train key existed trained with that key's default: an absent key equals the default.
    defaults = _flatten({"train": dataclasses.asdict(TrainArgs())})
    defaults["train.betas"] = list(TrainArgs().betas)
    a = {**{k: v for k, v in defaults.items() if k not in a}, **a}
    keys = sorted(k for k in set(a) | set(b) if k not in NON_RESULT_KEYS and a.get(k, "<unset>") != b.get(k, "<unset>"))
    return [f"{k}: {a.get(k, '<unset>')!r} in the run, {b.get(k, '<unset>')!r} now" for k in keys]


def check_resume_recipe(run_dir: Path, recipe: Recipe) -> None:
    """Raise RecipeError naming every key whose value differs from the run's recipe.yaml in a way that changes results."""
    saved_file = Path(run_dir) / "recipe.yaml"
    if not saved_file.is_file():
        return  # a run folder from before recipe.yaml existed: nothing to compare against
    try:
        saved = yaml.safe_load(saved_file.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"--resume: {saved_file} is not valid YAML ({err})") from err
    diffs = result_differences(saved, recipe.to_dict())
    if diffs:
        raise RecipeError(f"--resume: the recipe differs from {saved_file} in what it trains ({'; '.join(diffs)}); "
                          "resume with the run's recipe, or start a new --output-dir to train the changed one")
