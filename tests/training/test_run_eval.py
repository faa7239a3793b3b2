"""The recipe's end-of-run evaluation: which split it scores when the recipe names none, C: auto, the printed line."""
from pathlib import Path

import pytest
import torch

from multissl.registry import METHODS, register_method
from multissl.training.config import recipe_from_dict
from multissl.training.run_eval import check_eval, eval_jobs, evaluate_run
from tests.evaluation import test_features_and_protocols as dummy
from tests.evaluation.test_eval_split_and_defaults import image_folder


def _recipe(evals: dict, dataset: str = "digits"):
    return recipe_from_dict({"method": "simclr", "dataset": dataset, "eval": evals}, source="r.yaml")


def test_no_split_given_scores_validation_when_the_data_has_it():
    jobs = eval_jobs(_recipe({"knn": None, "linear-probe": {"split": "test"}}), "digits")
    assert [(p, d, kw["split"]) for p, d, kw in jobs] == [("knn", "digits", "validation"), ("linear-probe", "digits", "test")]


def test_no_split_given_scores_test_when_there_is_no_validation_split(tmp_path):
    data = str(image_folder(tmp_path / "imgs"))
    (protocol, _, kwargs), = eval_jobs(_recipe({"knn": {"k": 3}}, dataset=data), data)
    assert (protocol, kwargs["split"], kwargs["k"]) == ("knn", "test", 3)
    check_eval(_recipe({"knn": {"k": 3}}, dataset=data), data)  # train + test are there: nothing to refuse


def test_the_old_split_test_key_means_split():
    recipe = _recipe({"knn": {"split_test": "train"}})
    assert recipe.eval == {"knn": {"split": "train"}}
    assert eval_jobs(recipe, "digits")[0][2]["split"] == "train"


def test_C_auto_in_a_recipe_needs_a_validation_split_before_training(tmp_path):
    data = str(image_folder(tmp_path / "imgs"))
    recipe = _recipe({"linear-probe": {"C": "auto"}}, dataset=data)
    assert recipe.eval == {"linear-probe": {"C": "auto"}}
    with pytest.raises(ValueError, match=r"eval linear-probe: cannot load split 'validation'.*C=auto chooses C"):
        check_eval(recipe, data)
    check_eval(_recipe({"linear-probe": {"C": "auto"}}), "digits")


@pytest.fixture
def saved(tmp_path):
    register_method("test_dummy_eval", f"{dummy.__name__}:DummyEvalModel", modality="image", description="test only")
    torch.manual_seed(0)
    dummy.DummyEvalModel(dummy.DummyEvalConfig(dim=16)).save_pretrained(tmp_path / "final")
    yield tmp_path / "final"
    METHODS.pop("test_dummy_eval", None)


def test_evaluate_run_prints_and_records_the_scored_split_and_settings(saved: Path, capsys):
    recipe = _recipe({"knn": {"progress": False}, "linear-probe": {"C": "auto", "split": "test", "progress": False}})
    out = evaluate_run(recipe, saved, "digits")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("eval knn on digits: fit on 'train', score 'validation' (the default: validation when the data "
                        "has it, else test); k=20, temperature=0.1")
    assert lines[1] == "eval linear-probe on digits: fit on 'train', score 'test' (as the recipe says); C=auto, max_iter=1000"
    assert (out["knn"]["split"], out["knn"]["n_scored"], out["knn"]["k"], out["knn"]["temperature"]) == ("validation", 179, 20, 0.1)
    probe = out["linear-probe"]
    assert (probe["split_train"], probe["split_tune"], probe["split"], probe["n_scored"]) == ("train", "validation", "test", 359)
    assert probe["C"] in probe["C_grid"] and probe["max_iter"] == 1000
