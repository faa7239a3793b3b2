"""benchmarks/_runs.py: a finished run is reused only when it was trained with the recipe asked for."""
import sys
from pathlib import Path

import pytest
import yaml

from multissl.training import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _runs import recipe_differences, train_or_reuse  # noqa: E402

BASE = {"method": "simclr", "dataset": "digits", "model": {"image_size": 16, "projection_dim": 8},
        "train": {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-3}}


def _recipe(**changes):
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return recipe_from_dict(data)


def _finished_run(tmp_path, recipe):
    run = tmp_path / "simclr-seed0"
    (run / "final").mkdir(parents=True)
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict()))
    return run


def test_a_finished_run_with_the_same_recipe_is_reused_without_training(tmp_path):
    run = _finished_run(tmp_path, _recipe())
    assert train_or_reuse(_recipe(), run, retrain=False) is None
    assert (run / "final").is_dir()


def test_a_finished_run_with_other_settings_stops_with_one_line_naming_them(tmp_path):
    run = _finished_run(tmp_path, _recipe())
    with pytest.raises(SystemExit) as exit_:
        train_or_reuse(_recipe(train__max_steps=12, model__projection_dim=16), run, retrain=False)
    message = str(exit_.value.code)
    assert "\n" not in message and str(run) in message and "--retrain" in message
    assert "train.max_steps: 3 -> 12" in message and "model.projection_dim: 8 -> 16" in message
    assert (run / "final").is_dir()  # nothing of the old run is touched


def test_a_run_saved_before_train_grew_a_field_is_still_recognised_but_model_keys_must_all_match():
    saved = _recipe().to_dict()
    saved["train"].pop("keep_checkpoints")
    assert recipe_differences(saved, _recipe().to_dict()) == []
    saved["model"].pop("projection_dim")
    assert recipe_differences(saved, _recipe().to_dict()) == ["model.projection_dim: '<unset>' -> 8"]
    other_eval = {**_recipe().to_dict(), "eval": {"knn": {"k": 5}}}
    assert recipe_differences(_recipe().to_dict(), other_eval) == []  # eval does not change what was trained


def test_a_finished_run_without_recipe_yaml_is_not_trusted(tmp_path):
    run = _finished_run(tmp_path, _recipe())
    (run / "recipe.yaml").unlink()
    with pytest.raises(SystemExit, match="no recipe.yaml"):
        train_or_reuse(_recipe(), run, retrain=False)
