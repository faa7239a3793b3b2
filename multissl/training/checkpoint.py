"""Step checkpoints with no pickle anywhere: weights and optimizer tensors in safetensors, everything else in JSON.

A checkpoint folder `checkpoints/step_N/` holds exactly CHECKPOINT_FILES. Loading refuses a folder with
anything else in it (naming the file) before reading a byte of it, so a pickle planted in a shared run
folder is never opened. RNG states are not saved: the loop reseeds torch, numpy and random from
(run seed, micro-batch index, rank) before every micro-batch, so a resumed run replays the same
randomness without them.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

CHECKPOINTS = "checkpoints"
FORMAT = 2  # 1 was Accelerate's save_state (pickled optimizer, scheduler and RNG states): no longer read
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "state.json"
CHECKPOINT_FILES = frozenset({MODEL_FILE, OPTIMIZER_FILE, STATE_FILE})


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be resumed from; the message names the folder and the cause."""


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete step checkpoints (those with a state.json), oldest first; `step_N.tmp` folders are never complete."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step_*") if p.name.split("_", 1)[1].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def read_state(ckpt: Path) -> dict:
    """The loop's own state (step, method, scheduler, ...) of a checkpoint."""
    return json.loads((ckpt / STATE_FILE).read_text())


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints."""
    for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def _optimizer_parts(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """optimizer.state_dict() split into tensors (safetensors) and a JSON-able rest."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in sd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    scaler: Any, *, step: int, method: str, data_state: list | None = None) -> Path:
    """Write model, optimizer, scheduler, grad-scaler and loop state into `folder` (which must not exist yet).

    data_state: a streamed dataset's position, one JSON-able entry per process (None for indexed data, whose
    position is the step); stored in state.json under "data" and handed back to the data loader on resume.
    """
    folder.mkdir(parents=True)
    save_model(model, str(folder / MODEL_FILE))  # handles tied weights (shared storage) without pickling
    tensors, optim_rest = _optimizer_parts(optimizer)
    save_file(tensors, str(folder / OPTIMIZER_FILE))
    state = {"format": FORMAT, "step": step, "method": method, "optimizer": optim_rest,
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
             "data": data_state}
    # allow_nan=False: a checkpoint is only written from a finite run; anything else is a bug worth failing on
    (folder / STATE_FILE).write_text(json.dumps(state, allow_nan=False))
    return folder


def check_checkpoint(folder: Path, method: str) -> dict:
    """Refuse, before loading anything, a folder with unexpected files or another method's state; returns state.json."""
    present = {p.name for p in folder.iterdir()}
    unexpected = sorted(present - CHECKPOINT_FILES)
    if unexpected:
        old = " (a checkpoint written by an older multissl through Accelerate's pickled save_state)" if any(
            n.endswith((".bin", ".pkl", ".pt")) for n in unexpected) else ""
        raise CheckpointError(f"--resume: {folder} holds unexpected file(s) {unexpected}{old}; multissl loads only "
                              f"{sorted(CHECKPOINT_FILES)} and never unpickles, so it will not resume from this folder")
    missing = sorted(CHECKPOINT_FILES - present)
    if missing:
        raise CheckpointError(f"--resume: {folder} is incomplete: missing {missing}")
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"--resume: {folder / STATE_FILE} is not valid JSON ({err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"--resume: {folder / STATE_FILE} is not a multissl checkpoint of format {FORMAT}")
    if state.get("method") != method:
        raise CheckpointError(f"--resume: {folder} was written by method {state.get('method')!r} but the recipe trains "
                              f"{method!r}; resume with the run's own recipe ({folder.parent.parent / 'recipe.yaml'})")
    return state


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    scaler: Any, *, method: str) -> int:
    """Restore everything save_checkpoint wrote (after check_checkpoint); returns the step to continue from."""
    state = check_checkpoint(folder, method)
    try:
        missing, unexpected = load_model(model, str(folder / MODEL_FILE), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"--resume: {folder / MODEL_FILE} does not fit this model (missing {sorted(missing)[:5]}, "
                                  f"unexpected {sorted(unexpected)[:5]}): was the recipe's model section changed?")
        tensors = load_file(str(folder / OPTIMIZER_FILE))
    except (SafetensorError, OSError, RuntimeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"--resume: {folder} cannot be loaded ({type(err).__name__}: {err})") from err
    opt = state["optimizer"]
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    for index, values in opt["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    try:
        optimizer.load_state_dict({"state": per_param, "param_groups": opt["param_groups"]})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"--resume: {folder / OPTIMIZER_FILE} does not fit this optimizer ({err})") from err
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    step = state["step"]
    if not isinstance(step, int) or step < 0 or not math.isfinite(step):
        raise CheckpointError(f"--resume: {folder / STATE_FILE} has no valid step")
    return step


def replace_dir(tmp: Path, final: Path) -> None:
    """Rename a completed tmp folder over `final` (a checkpoint re-written at the same step)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
