"""Frozen-feature evaluation: feature extraction, k-NN, linear probe, retrieval recall@k, metric-learning R@k / MAP@R,
and the label-free spectrum of a feature set (effective rank, variance shares).

Names are imported when first used (PEP 562), so `multissl.evaluation.defaults` (read by the CLI's `--help`)
imports no torch; `from multissl.evaluation import evaluate_model` works as usual.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOME = {  # name -> the submodule that defines it
    "PROTOCOLS": "defaults",
    "PROTOCOL_DEFAULTS": "defaults",
    "component_shares": "spectrum",
    "direction_share": "spectrum",
    "effective_rank": "spectrum",
    "evaluate_model": "protocols",
    "extract_features": "features",
    "knn_accuracy": "knn",
    "knn_predict": "knn",
    "linear_probe_accuracy": "linear_probe",
    "tuned_linear_probe": "linear_probe",
    "match_ranks": "retrieval",
    "mean_average_precision_at_r": "metric_retrieval",
    "recall_at_k": "metric_retrieval",
    "retrieval_metrics": "retrieval",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines `name` on first access."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
