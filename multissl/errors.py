"""Errors that mean "the user's run or input is wrong", which the CLI prints as one line (no traceback)."""
from __future__ import annotations


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is left untouched."""


class RunDirLockedError(FileExistsError):
    """Another live process holds the run folder's lock (`<out>/.multissl.lock`); nothing was changed.

    A FileExistsError (an OSError) like the loop's "already holds checkpoints" refusal, so the CLI prints it as one
    line and callers that catch "the folder is taken" catch both. `holder` is the lock file's JSON
    (pid, hostname, started) when it could be read.
    """

    holder: dict | None = None
