"""--resume compares the run's recipe.yaml with the current recipe: only keys that change results count."""
import dataclasses

from multissl.training.config import TrainArgs, recipe_from_dict
from multissl.training.resume import result_differences


def _recipe(**train):
    return recipe_from_dict({"method": "simclr", "train": {"max_steps": 4, **train}}).to_dict()


def test_a_key_added_after_the_run_was_saved_counts_as_its_default():
    saved = _recipe()
    for key in ("tf32", "compile", "report_to", "lars_trust_coefficient"):
        saved["train"].pop(key)  # a recipe.yaml written before these keys existed
    assert result_differences(saved, _recipe()) == []
    assert dataclasses.asdict(TrainArgs())["lars_trust_coefficient"] == 0.001


def test_a_changed_result_key_is_named_and_speed_settings_are_not():
    assert result_differences(_recipe(), _recipe(learning_rate=0.5)) == ["train.learning_rate: 0.001 in the run, 0.5 now"]
    assert result_differences(_recipe(), _recipe(compile=True, channels_last=True, report_to=["tensorboard"])) == []
    saved = _recipe()
    saved["train"].pop("lars_trust_coefficient")
    assert result_differences(saved, _recipe(lars_trust_coefficient=0.01)) == \
        ["train.lars_trust_coefficient: 0.001 in the run, 0.01 now"]
