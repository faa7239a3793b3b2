"""`report_to: [tensorboard]` / `--report-to tensorboard`: the scalars of metrics.jsonl, read back from the event file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import tests.training.toy  # noqa: E402,F401  (registers the test_toy method and dataset)
from multissl.cli import build_parser  # noqa: E402
from multissl.commands.train import TRACKERS as CLI_TRACKERS  # noqa: E402
from multissl.commands.train import report_to_override  # noqa: E402
from multissl.training import load_recipe, recipe_from_dict, train  # noqa: E402
from multissl.training.config import TRACKERS  # noqa: E402
from multissl.training.metrics_log import MetricsLog  # noqa: E402
from multissl.training.tracking import TENSORBOARD_DIR, with_trackers  # noqa: E402


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from every event file under run/tensorboard (the hparams sub-run included)."""
    acc = EventAccumulator(str(run / TENSORBOARD_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_gets_every_metrics_row(tmp_path):
    recipe = recipe_from_dict({"method": "test_toy", "train": {"max_steps": 4, "batch_size": 8, "log_every": 1,
                                                               "progress": False, "report_to": ["tensorboard"]}})
    train(recipe, tmp_path / "run")
    rows, scalars = _rows(tmp_path / "run"), _scalars(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("loss", "lr", "samples_per_s"):
        assert [s for s, _ in scalars[key]] == [1, 2, 3, 4]
        assert [v for _, v in scalars[key]] == pytest.approx([r[key] for r in rows], rel=1e-6)


def test_on_resume_tensorboard_drops_the_steps_it_replays(tmp_path):
    out = tmp_path / "run"
    first = with_trackers(MetricsLog(out / "metrics.jsonl"), ["tensorboard"], out, "toy", {"train": {"seed": 0}}, None)
    for step in (1, 2, 3):
        first.write({"step": step, "loss": float(step)})
    first.close()
    # killed after step 3, resumed from a checkpoint at step 2: step 3 is logged again, with another value
    again = with_trackers(MetricsLog(out / "metrics.jsonl", resume_step=2), ["tensorboard"], out, "toy", {}, 2)
    again.write({"step": 3, "loss": 30.0})
    again.close()
    assert _scalars(out)["loss"] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert [r["loss"] for r in _rows(out)] == [1.0, 2.0, 30.0]


def test_no_trackers_is_the_plain_log(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    assert with_trackers(log, [], tmp_path, "toy", {}, None) is log


def test_report_to_flag_is_the_recipe_key(tmp_path):
    args = build_parser().parse_args(["train", "r.yaml", "--output-dir", "d", "--report-to", "tensorboard"])
    assert args.report_to == ["tensorboard"] and CLI_TRACKERS == TRACKERS
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("method: test_toy\n")
    assert load_recipe(recipe_file, report_to_override(args.report_to)).train.report_to == ["tensorboard"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "r.yaml", "--output-dir", "d", "--report-to", "wandb"])
