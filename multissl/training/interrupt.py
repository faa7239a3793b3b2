"""Ctrl-C and SIGTERM end a run cleanly: the first one asks the loop to stop after the current step (then it saves a
checkpoint, draws the loss plot and says how to resume); a second one stops at once."""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (exit code 130) or SIGTERM (143); the message says what was kept."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report a process ended by it."""
        return 128 + self.signum


def ignore_interrupts_in_worker(_worker_id: int) -> None:
    """DataLoader worker_init_fn: Ctrl-C reaches the whole process group; only the main process decides to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequests:
    """Records SIGINT / SIGTERM while installed; `requested` is the first signal's number (None if none came)."""

    def __init__(self) -> None:
        self.requested: int | None = None

    def _handler(self, signum: int, _frame: Any) -> None:
        if self.requested is not None:  # a second signal: the user does not want to wait for the step to end
            raise RunInterrupted(signum, f"stopped at once by a second {signal.Signals(signum).name}; "
                                         "the newest complete checkpoint (if any) is kept")
        self.requested = signum

    @contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Install the handlers (main thread only; elsewhere signals keep their default behaviour)."""
        try:
            previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread (e.g. a notebook's worker thread)
            yield self
            return
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def should_stop(self, accelerator: Any, at_sync_point: bool) -> bool:
        """True when the run should stop now. Several processes agree (max over ranks) only at sync points."""
        if accelerator.num_processes == 1:
            return self.requested is not None
        if not at_sync_point:
            return False
        flag = torch.tensor(0 if self.requested is None else self.requested, device=accelerator.device)
        agreed = int(accelerator.reduce(flag, "max").item())
        if agreed and self.requested is None:
            self.requested = agreed
        return bool(agreed)
