"""Errors that mean "the user's run or input is wrong", which the CLI prints as one line (no traceback)."""
from __future__ import annotations


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is left untouched."""
