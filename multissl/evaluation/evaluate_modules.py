"""multissl's evaluation protocols as local Hugging Face `evaluate` modules: their paths, and input conversion.

Usage (offline; a local path never touches the Hub):

    import evaluate
    from multissl.evaluation.evaluate_modules import module_path
    knn = evaluate.load(module_path("knn_accuracy"))
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

# Each name is a folder multissl/evaluate_modules/<name>/ holding one script <name>.py (evaluate's layout).
MODULES = ("knn_accuracy", "linear_probe", "perplexity", "retrieval_recall", "zero_shot_topk")
MODULES_DIR = Path(__file__).resolve().parents[1] / "evaluate_modules"


def module_path(name: str) -> str:
    """The folder of the local evaluate module `name`, ready for `evaluate.load(module_path(name))`."""
    if name not in MODULES:
        raise ValueError(f"name must be one of {list(MODULES)}, got {name!r}")
    return str(MODULES_DIR / name)


def as_matrix(values: Any, name: str) -> torch.Tensor:
    """values (list of equal-length rows, array or tensor) as a float32 tensor [N, D]; ValueError otherwise."""
    if isinstance(values, torch.Tensor):
        out = values.detach().cpu().float()
    else:
        try:
            out = torch.from_numpy(np.asarray(values, dtype=np.float32))
        except ValueError as err:  # ragged rows
            raise ValueError(f"{name} must be rows of equal length [N, D]: {err}") from None
    if out.ndim != 2 or out.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty matrix [N, D], got shape {tuple(out.shape)}")
    return out


def as_vector(values: Any, name: str, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """values (list, array or tensor) as a 1-D tensor [N] of `dtype`; ValueError otherwise."""
    out = values.detach().cpu() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    if out.ndim != 1:
        raise ValueError(f"{name} must be a vector [N], got shape {tuple(out.shape)}")
    return out.to(dtype)
