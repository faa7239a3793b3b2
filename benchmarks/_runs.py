"""Shared by the quality benchmarks: train a recipe into a run folder, or reuse the finished run already there."""
from __future__ import annotations

import shutil
import time
from pathlib import Path


def train_or_reuse(recipe, run: Path, retrain: bool) -> float | None:
    """Train `recipe` into `run` unless run/final exists (or retrain); the training seconds, None when reused."""
    from multissl.training import train

    if not retrain and (run / "final").is_dir():
        return None
    shutil.rmtree(run, ignore_errors=True)  # a half-finished run must not be resumed silently
    t0 = time.perf_counter()
    train(recipe, run)
    return time.perf_counter() - t0
