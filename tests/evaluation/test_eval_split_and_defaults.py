"""`multissl eval --split`, one table of protocol defaults (CLI = evaluate_model = recipes) and the linear probe's C=auto."""
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from multissl.cli import build_parser, main
from multissl.data import load_dataset_by_name
from multissl.evaluation import evaluate_model, extract_features, knn_accuracy, linear_probe_accuracy, tuned_linear_probe
from multissl.evaluation.defaults import PROTOCOL_DEFAULTS
from multissl.evaluation.linear_probe import C_GRID
from multissl.registry import METHODS, register_method
from multissl.training.config import load_recipe
from tests.evaluation import test_features_and_protocols as dummy
from tests.evaluation.test_features_and_protocols import DummyEvalConfig, DummyEvalModel, make_dummy_collator

ROOT = Path(__file__).resolve().parents[2]


def image_folder(root: Path, splits=("train", "test"), n: int = 6) -> Path:
    """root/<split>/<class>/*.png: n random 8x8 greyscale images per split in classes a and b (no validation/)."""
    rng = np.random.default_rng(0)
    for split in splits:
        for i in range(n):
            folder = root / split / "ab"[i % 2]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def feats():
    """{split: (features [N, 32], labels [N])} of digits through the dummy model saved by `saved`."""
    torch.manual_seed(0)
    model = DummyEvalModel(DummyEvalConfig(dim=32))
    out = {s: extract_features(model, load_dataset_by_name("digits", split=s), make_dummy_collator(None), progress=False)
           for s in ("train", "validation", "test")}
    return model, out


@pytest.fixture
def saved(tmp_path, feats):
    """The dummy model saved as a folder, its method registered for this test only."""
    register_method("test_dummy_eval", f"{dummy.__name__}:DummyEvalModel", modality="image", description="test only")
    feats[0].save_pretrained(tmp_path / "m")
    yield str(tmp_path / "m")
    METHODS.pop("test_dummy_eval", None)


def _cli(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(["eval", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_cli_defaults_are_the_table_and_evaluate_models_defaults():
    assert PROTOCOL_DEFAULTS == {"knn": {"k": 20, "temperature": 0.1}, "linear-probe": {"C": 1.0, "max_iter": 1000}}
    params = inspect.signature(evaluate_model).parameters
    parser = build_parser()
    for protocol, table in PROTOCOL_DEFAULTS.items():
        args = parser.parse_args(["eval", protocol, "--model", "m", "--dataset", "d"])
        assert (args.split, args.split_train) == ("test", "train") == (params["split"].default, params["split_train"].default)
        for key, value in table.items():
            assert getattr(args, key) == value == params[key].default, (protocol, key)


def test_every_shipped_recipe_evaluates_with_the_cli_defaults():
    """A recipe's end-of-run k-NN / probe uses `multissl eval`'s settings, so one model shows one number."""
    checked = 0
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        for protocol, entry in load_recipe(path).eval.items():
            settings = {key: entry.get(key, value) for key, value in PROTOCOL_DEFAULTS[protocol].items()}
            if settings.get("C") == "auto":  # chosen on validation: `multissl eval linear-probe --C auto` does the same
                settings["C"] = PROTOCOL_DEFAULTS[protocol]["C"]
            assert settings == PROTOCOL_DEFAULTS[protocol], f"{path.name}: eval.{protocol} departs from the defaults"
            checked += 1
    assert checked >= 5


def test_recipe_eval_and_cli_give_the_same_number(saved, capsys):
    from multissl.training.config import recipe_from_dict
    from multissl.training.run_eval import evaluate_run

    recipe = recipe_from_dict({"method": "simclr", "dataset": "digits", "eval": {"knn": {"split": "test", "progress": False},
                                                                                 "linear-probe": {"split": "test", "progress": False}}})
    by_recipe = evaluate_run(recipe, Path(saved), "digits")
    capsys.readouterr()
    for protocol in ("knn", "linear-probe"):
        code, by_cli, _ = _cli(capsys, protocol, "--model", saved, "--dataset", "digits")
        assert code == 0 and by_cli == by_recipe[protocol]


def test_split_scores_the_named_split_and_the_result_names_settings_and_splits(saved, feats, capsys):
    code, out, _ = _cli(capsys, "knn", "--model", saved, "--dataset", "digits", "--split", "validation")
    _, f = feats
    assert code == 0 and (out["split_train"], out["split"]) == ("train", "validation")
    assert (out["n_train"], out["n_scored"]) == (len(f["train"][0]), len(f["validation"][0])) == (1259, 179)
    assert (out["k"], out["temperature"]) == (20, 0.1)
    assert out["accuracy"] == pytest.approx(knn_accuracy(*f["train"], *f["validation"], num_classes=10, k=20, temperature=0.1))
    code, out, _ = _cli(capsys, "linear-probe", "--model", saved, "--dataset", "digits")
    assert code == 0 and (out["split"], out["C"], out["max_iter"]) == ("test", 1.0, 1000)
    assert out["accuracy"] == pytest.approx(linear_probe_accuracy(*f["train"], *f["test"])["accuracy"])


def test_the_old_split_test_flag_still_works_but_is_not_advertised(capsys):
    args = build_parser().parse_args(["eval", "knn", "--model", "m", "--dataset", "d", "--split-test", "validation"])
    assert args.split == "validation"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "knn", "--help"])
    text = capsys.readouterr().out
    assert "--split NAME" in text and "--split-test" not in text


def test_a_missing_split_is_one_line_before_any_feature_extraction(saved, capsys, monkeypatch):
    import multissl.evaluation.features as features

    def never(*a, **k):
        raise AssertionError("features were extracted before the split was checked")

    monkeypatch.setattr(features, "extract_features", never)
    code, _, err = _cli(capsys, "knn", "--model", saved, "--dataset", "digits", "--split", "valid")
    lines = [line for line in err.splitlines() if line.startswith("multissl")]
    assert code == 1 and len(lines) == 1
    for needle in ("eval knn", "split 'valid'", "'digits'", "train, validation, test, all", "--split"):
        assert needle in lines[0], (needle, lines[0])


def test_C_auto_chooses_C_on_validation_and_scores_test_with_it(saved, feats, capsys):
    _, f = feats
    code, out, _ = _cli(capsys, "linear-probe", "--model", saved, "--dataset", "digits", "--C", "auto")
    want = tuned_linear_probe(*f["train"], *f["validation"], *f["test"], grid=C_GRID)
    assert code == 0 and out["C"] == want["C"] and out["C"] in C_GRID
    assert (out["split_train"], out["split_tune"], out["split"], out["C_search"]) == ("train", "validation", "test", "auto")
    assert out["accuracy"] == pytest.approx(want["accuracy"])
    assert out["accuracy"] == pytest.approx(linear_probe_accuracy(*f["train"], *f["test"], C=want["C"])["accuracy"])
    assert out["validation_by_C"] == {repr(c): pytest.approx(a) for c, a in want["validation_by_C"].items()}
    assert out["C_grid"] == list(C_GRID)


def test_C_auto_scoring_validation_reports_the_best_validation_accuracy(saved, feats):
    _, f = feats
    out = evaluate_model(saved, "digits", "linear-probe", split="validation", C="auto", progress=False)
    assert out["accuracy"] == out["validation_accuracy"] == max(out["validation_by_C"].values())
    assert out["n_scored"] == len(f["validation"][0]) and "train_accuracy" not in out


def test_C_auto_without_a_validation_split_is_a_clear_error(saved, tmp_path, capsys):
    data = image_folder(tmp_path / "imgs")
    code, _, err = _cli(capsys, "linear-probe", "--model", saved, "--dataset", str(data), "--C", "auto")
    assert code == 1
    for needle in ("eval linear-probe", "split 'validation'", "available splits: test, train", "C=auto", "give a number for C"):
        assert needle in err, (needle, err)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf", "nan"])
def test_C_flag_takes_a_positive_number_or_auto(value, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "linear-probe", "--model", "m", "--dataset", "d", "--C", value])
    assert "expected a number > 0 or 'auto'" in capsys.readouterr().err
    assert build_parser().parse_args(["eval", "linear-probe", "--model", "m", "--dataset", "d", "--C", "AUTO"]).C == "auto"


def test_evaluate_model_rejects_a_bad_C(saved):
    with pytest.raises(ValueError, match="C must be a number > 0 or 'auto'"):
        evaluate_model(saved, "digits", "linear-probe", C="best")
