"""`report_to: [trackio]`: the calls multissl makes through Accelerate's TrackioTracker, and the error when trackio
is missing.

trackio is not installed in this environment: `pip install trackio` (0.43) would downgrade pillow 13.0.0 to 12.3.0.
So a stand-in `trackio` module records the calls, shaped like trackio's API as Accelerate 1.15 uses it:
`trackio.init(project=, name=, **kwargs) -> run`, `trackio.config.update(values, allow_val_change=True)` (init
rebinds the module's `config` to the run's), `run.log(values, step=)`, `run.finish()`.
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import accelerate.utils
import pytest

import tests.training.toy  # noqa: F401  (registers the test_toy method and dataset)
from multissl.cli import main
from multissl.training import recipe_from_dict, train
from multissl.training.metrics_log import MetricsLog
from multissl.training.tracking import check_trackers, with_trackers


class _Config(dict):
    def update(self, values: dict, allow_val_change: bool = False) -> None:  # wandb's signature, as trackio's
        super().update(values)


class _Run:
    def __init__(self, project: str, **kwargs):
        self.project, self.kwargs = project, kwargs
        self.config, self.logged, self.finished = _Config(), [], 0

    def log(self, metrics: dict, step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))

    def finish(self) -> None:
        self.finished += 1


@pytest.fixture
def fake_trackio(monkeypatch):
    """A recording `trackio` module, importable, and seen as installed by Accelerate's availability check."""
    module = types.ModuleType("trackio")
    module.runs, module.config = [], _Config()

    def init(project: str, **kwargs) -> _Run:
        run = _Run(project, **kwargs)
        module.runs.append(run)
        module.config = run.config  # as trackio.init does: the module-level config is the current run's
        return run

    module.init = init
    monkeypatch.setitem(sys.modules, "trackio", module)
    monkeypatch.setattr(accelerate.utils, "is_trackio_available", lambda: True)
    return module


def _recipe(**train_args):
    return recipe_from_dict({"method": "test_toy", "train": {"max_steps": 4, "batch_size": 8, "log_every": 1,
                                                             "progress": False, **train_args}})


def test_trackio_gets_every_metrics_row_at_its_step(tmp_path, fake_trackio):
    train(_recipe(report_to=["trackio"]), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (run,) = fake_trackio.runs
    assert run.project == "test_toy" and run.kwargs == {"name": "run"}  # project = method, run = the folder's name
    assert run.config["train.max_steps"] == 4 and run.config["method"] == "test_toy"  # the recipe, flattened
    assert [step for step, _ in run.logged] == [r["step"] for r in rows] == [1, 2, 3, 4]
    for (_, values), row in zip(run.logged, rows, strict=True):
        assert values == {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        assert {"loss", "lr", "samples_per_s"} <= values.keys()
    assert run.finished == 1


def test_on_resume_trackio_continues_the_same_run(tmp_path, fake_trackio):
    out = tmp_path / "run"
    log = with_trackers(MetricsLog(out / "metrics.jsonl", resume_step=2), ["trackio"], out, "toy", {}, 2)
    log.write({"step": 3, "loss": 0.5, "note": "text is not logged"})
    log.close()
    log.close()  # idempotent
    (run,) = fake_trackio.runs
    assert run.kwargs == {"name": "run", "resume": "allow"}  # trackio's default would start a renamed run
    assert run.logged == [(3, {"loss": 0.5})] and run.finished == 1


def test_missing_trackio_is_one_line_before_the_output_folder_is_touched(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(accelerate.utils, "is_trackio_available", lambda: False)
    with pytest.raises(ValueError, match=r"^train.report_to: trackio is not installed \(pip install trackio\)"):
        check_trackers(["trackio"])
    with pytest.raises(ValueError, match="trackio is not installed"):
        train(_recipe(report_to=["trackio"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()

    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: test_toy\ntrain: {max_steps: 2, batch_size: 8, progress: false}\n")
    code = main(["train", str(recipe), "--output-dir", str(tmp_path / "cli"), "--report-to", "trackio"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1] == ("multissl train: error: train.report_to: trackio is not installed "
                                     "(pip install trackio); or drop trackio from train.report_to / --report-to")
    assert not Path(tmp_path / "cli").exists()
