"""Experiment tracking through Accelerate's trackers, beside metrics.jsonl (`train: report_to: [tensorboard]`).

Every row the loop writes to metrics.jsonl (loss, per-method scalars, lr, samples_per_s) goes to each tracker
at the same step. TensorBoard writes into `<run>/tensorboard/` (`tensorboard --logdir <run>/tensorboard`);
trackio keeps its local store ($TRACKIO_DIR, default $HF_HOME/trackio; offline: nothing is sent anywhere).
Trackers run on the main process only; `check_trackers` runs before anything is built, so a missing package
stops the run before it touches the output folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from multissl.training.metrics_log import MetricsLog

TENSORBOARD_DIR = "tensorboard"
# name -> (Accelerate's availability check in accelerate.utils, the pip package to install)
_PACKAGES = {"tensorboard": ("is_tensorboard_available", "tensorboard"), "trackio": ("is_trackio_available", "trackio")}


def check_trackers(report_to: list[str]) -> None:
    """One ValueError naming the first tracker of `report_to` whose package is missing, and how to install it."""
    import accelerate.utils

    for name in report_to:
        if name not in _PACKAGES:
            raise ValueError(f"train.report_to: unknown tracker {name!r}; expected one of {sorted(_PACKAGES)}")
        available, package = _PACKAGES[name]
        if not getattr(accelerate.utils, available)():
            raise ValueError(f"train.report_to: {name} is not installed (pip install {package}); "
                             f"or drop {name} from train.report_to / --report-to")


class TrackedMetricsLog:
    """A MetricsLog whose rows also go to Accelerate trackers (same interface: write, rows, close)."""

    def __init__(self, log: MetricsLog, trackers: list[Any]):
        self.log, self.trackers = log, trackers

    def write(self, row: dict) -> None:
        """Append `row` to metrics.jsonl and log its numbers to every tracker at row['step'], flushed."""
        self.log.write(row)
        values = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        for tracker in self.trackers:
            tracker.log(values, step=row["step"])
            _flush(tracker)

    def rows(self) -> list[dict]:
        """All rows of metrics.jsonl."""
        return self.log.rows()

    def close(self) -> None:
        """Finish every tracker (idempotent)."""
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def finish_trackers(log: MetricsLog | TrackedMetricsLog | None) -> None:
    """Finish the trackers of `log`, if it has any (the loop calls this once its steps are done or stopped)."""
    if isinstance(log, TrackedMetricsLog):
        log.close()


def with_trackers(log: MetricsLog, report_to: list[str], out: Path, run_name: str, config: dict,
                  resume_step: int | None) -> MetricsLog | TrackedMetricsLog:
    """`log` itself when report_to is empty; else a TrackedMetricsLog with one started tracker per name.

    On --resume, TensorBoard drops the events after `resume_step` that the interrupted run had written
    (SummaryWriter's purge_step), so its curves match metrics.jsonl.
    """
    if not report_to:
        return log
    check_trackers(report_to)
    trackers = [_start(name, Path(out), run_name, resume_step) for name in report_to]
    for tracker in trackers:
        tracker.store_init_configuration(_flat_scalars(config))
    return TrackedMetricsLog(log, trackers)


def _start(name: str, out: Path, run_name: str, resume_step: int | None) -> Any:
    if name == "tensorboard":
        from accelerate.tracking import TensorBoardTracker

        kwargs = {"purge_step": resume_step + 1} if resume_step is not None else {}
        tracker = TensorBoardTracker(TENSORBOARD_DIR, out, **kwargs)  # -> <out>/tensorboard/
    else:  # trackio (check_trackers refused any other name)
        from accelerate.tracking import TrackioTracker

        # project = the method, run = the run folder's name; on --resume the same trackio run goes on (trackio's
        # default, resume="never", would log the rest under a new generated name)
        kwargs = {"resume": "allow"} if resume_step is not None else {}
        tracker = TrackioTracker(run_name, name=out.name, **kwargs)
    tracker.start()
    return tracker


def _flush(tracker: Any) -> None:
    writer = getattr(tracker, "writer", None)  # TensorBoard: write events now, so a killed run keeps them
    if writer is not None:
        writer.flush()


def _flat_scalars(config: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
    """{'train.batch_size': 64, 'model.augment.crop_scale': '[0.2, 1.0]', ...}: hyperparameters as trackers take them."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_scalars(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:  # lists, None: their text
            out[name] = str(value)
    return out
