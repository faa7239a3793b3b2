import math

import pytest

from multissl.schedules import cosine_ramp, linear_warmup_value, warmup_cosine
from multissl.training.config import RecipeError, load_recipe, recipe_from_dict


def test_recipe_parses_and_coerces_yaml_scalars(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("method: simclr\ndataset: digits\ntrain:\n  learning_rate: 1e-3\n  max_steps: '7'\n")
    r = load_recipe(p, ["train.batch_size=16", "model.loss_temperature=0.2"])
    assert r.train.learning_rate == pytest.approx(1e-3) and r.train.max_steps == 7 and r.train.batch_size == 16
    assert r.model == {"loss_temperature": 0.2}


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"method": "simclr", "datset": "digits"}, "unknown recipe key(s) ['datset']"),
        ({"method": "simclr", "train": {"lr": 1}}, "unknown train key(s) ['lr']"),
        ({"dataset": "digits"}, "missing required key 'method'"),
        ({"method": "simclr", "train": {"mixed_precision": "fp8"}}, "mixed_precision"),
        ({"method": "simclr", "eval": {"knnn": {}}}, "unknown eval protocol"),
        ({"method": "simclr", "train": {"max_steps": "ten"}}, "train.max_steps must be a whole number >= 1; got 'ten'"),
    ],
)
def test_recipe_errors_name_the_key(data, needle):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data, source="r.yaml")
    assert needle in str(err.value) and "r.yaml" in str(err.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")


def test_warmup_cosine_matches_formula():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    for s in (10, 37, 55, 99):
        expect = 0.5 * (1 + math.cos(math.pi * (s - 10) / 90))
        assert warmup_cosine(s, 100, 10) == pytest.approx(expect)
    assert warmup_cosine(100, 100, 10, min_ratio=0.1) == pytest.approx(0.1)


def test_momentum_and_temperature_schedules():
    assert cosine_ramp(0, 50, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_ramp(49, 50, 0.996, 1.0) == pytest.approx(1.0)
    assert 0.996 < cosine_ramp(25, 50, 0.996, 1.0) < 1.0
    assert linear_warmup_value(0, 30, 0.04, 0.07) == pytest.approx(0.04)
    assert linear_warmup_value(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    assert linear_warmup_value(40, 30, 0.04, 0.07) == pytest.approx(0.07)
