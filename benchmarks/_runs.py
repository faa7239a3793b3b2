"""Shared by the quality benchmarks: train a recipe into a run folder, or reuse the finished run already there."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

# Sections compared key by key when a finished run is reused: every section must match on every key, except these,
# compared only on the keys both sides have (a run saved before TrainArgs grew a field is still recognised), and
# `eval`, not compared at all (it does not change what was trained).
_SHARED_ONLY = ("train",)


def recipe_differences(saved: dict, current: dict, prefix: str = "", shared_only: bool = False) -> list[str]:
    """'key: saved -> current' for every setting that differs between a run's recipe.yaml and the recipe asked for."""
    out = []
    keys = [k for k in current if k in saved] if shared_only else sorted(set(saved) | set(current), key=str)
    for key in keys:
        if prefix == "" and key == "eval":
            continue
        a, b = saved.get(key, "<unset>"), current.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += recipe_differences(a, b, f"{prefix}{key}.", shared_only or (prefix == "" and key in _SHARED_ONLY))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def check_reusable(recipe: Any, run: Path) -> None:
    """Stop with one line unless the finished run in `run` was trained with `recipe` (its recipe.yaml matches).

    Called before a finished run, or a score computed from it, is reused: a table never reports an old run under a
    new recipe. The line names up to 3 differing settings and how to go on.
    """
    import yaml

    saved_file = run / "recipe.yaml"
    saved = yaml.safe_load(saved_file.read_text()) if saved_file.is_file() else None
    diffs = ["no recipe.yaml"] if not isinstance(saved, dict) else recipe_differences(saved, recipe.to_dict())
    if diffs:
        more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
        raise SystemExit(f"{run} holds a finished run trained with other settings ({'; '.join(diffs[:3])}{more}); "
                         "pass --retrain to train it again (that run is replaced) or choose another --out")


def train_or_reuse(recipe: Any, run: Path, retrain: bool) -> float | None:
    """Train `recipe` into `run` unless run/final exists (or retrain); the training seconds, None when reused.

    A finished run is reused only when its recipe.yaml matches `recipe` (check_reusable).
    """
    from multissl.training import train

    if not retrain and (run / "final").is_dir():
        check_reusable(recipe, run)
        return None
    shutil.rmtree(run, ignore_errors=True)  # a half-finished run must not be resumed silently
    t0 = time.perf_counter()
    train(recipe, run)
    return time.perf_counter() - t0
