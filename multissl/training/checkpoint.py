"""Atomic saving of final models and bookkeeping of step checkpoints."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from multissl.atomic import atomic_dir  # noqa: F401  (re-exported for the loop)

CHECKPOINTS = "checkpoints"


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete step checkpoints (those with a state.json), oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step_*") if (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def read_state(ckpt: Path) -> dict:
    """The loop's own state (step) stored beside Accelerate's state."""
    return json.loads((ckpt / "state.json").read_text())


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints."""
    for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
