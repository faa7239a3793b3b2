"""The one table of evaluation defaults: `multissl eval`, evaluate_model and a recipe's `eval:` section all read it.

Torch-free on purpose: the CLI builds its `--help` from this table without importing torch.
"""
from __future__ import annotations

PROTOCOLS = ("knn", "linear-probe")

# k-NN: 20 neighbours voting with exp(cos / 0.1) (Wu et al. 2018's weighting at DINO's small k, which suits datasets
# of a few thousand rows); linear probe: logistic regression with L2 strength 1/C, L-BFGS.
PROTOCOL_DEFAULTS: dict[str, dict[str, float | int]] = {
    "knn": {"k": 20, "temperature": 0.1},
    "linear-probe": {"C": 1.0, "max_iter": 1000},
}

REPORT_SPLIT = "test"  # what `multissl eval` scores unless told: a reported number, read once
TUNE_SPLIT = "validation"  # where settings are chosen: C=auto, and a recipe's end-of-run evaluation when the data has it
C_AUTO = "auto"  # linear-probe C chosen on TUNE_SPLIT from linear_probe.C_GRID
