"""Recipe faults a new user makes (bad YAML, typos in keys, wrong types, out-of-range numbers, bad `--set`): one line
naming the recipe and the key, exit 1, and the finished run in --output-dir stays byte-identical even with --overwrite
(nothing may be moved aside before the recipe, model and data are known good)."""
import pytest

from tests.reliability import TINY_BACKBONE, assert_untouched, one_line_error, recipe, write_recipe

# (id, recipe dict or raw YAML text, needles the one line must hold besides the recipe path)
CASES = [
    ("bad-yaml", "method: simclr\ntrain: {max_steps: 3\n", ["not valid YAML"]),
    ("not-a-mapping", "- method: simclr\n", ["must be a mapping", "list"]),
    ("no-method", "dataset: digits\n", ["'method'"]),
    ("unknown-top-key", recipe(modell={}), ["'modell'", "allowed"]),
    ("unknown-train-key", recipe(**{"train.max_step": 3}), ["'max_step'", "max_steps"]),
    ("fractional-batch-size", recipe(**{"train.batch_size": 8.5}), ["train.batch_size", "whole number", "8.5"]),
    ("negative-max-steps", recipe(**{"train.max_steps": -3}), ["train.max_steps", ">= 1", "-3"]),
    ("text-max-steps", recipe(**{"train.max_steps": "three"}), ["train.max_steps", "'three'"]),
    ("log-every-0", recipe(**{"train.log_every": 0}), ["train.log_every", ">= 1", "got 0"]),
    ("negative-learning-rate", recipe(**{"train.learning_rate": -1e-3}), ["train.learning_rate", "> 0"]),
    ("nan-learning-rate", "method: simclr\ntrain: {learning_rate: .nan}\n", ["train.learning_rate", "finite"]),
    ("warmup-beyond-max-steps", recipe(**{"train.warmup_steps": 10}), ["train.warmup_steps", "train.max_steps = 3"]),
    ("mixed-precision-fp8", recipe(**{"train.mixed_precision": "fp8"}), ["train.mixed_precision", "fp16", "'fp8'"]),
    ("optimizer-adam", recipe(**{"train.optimizer": "adam"}), ["train.optimizer", "adamw", "'adam'"]),
    ("betas-one-number", recipe(**{"train.betas": [0.9]}), ["train.betas", "pair"]),
    ("progress-maybe", recipe(**{"train.progress": "maybe"}), ["train.progress", "true or false"]),
    ("eval-unknown-protocol", recipe(eval={"knnn": {"k": 5}}), ["'knnn'", "linear-probe"]),
    ("eval-unknown-kwarg", recipe(eval={"knn": {"kk": 5}}), ["eval.knn", "'kk'"]),
    ("eval-k-0", recipe(eval={"knn": {"k": 0}}), ["eval.knn.k", ">= 1"]),
]


@pytest.mark.parametrize("body, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_recipe_value_is_one_line_naming_the_key(cli, finished_run, tmp_path, body, needles):
    path = write_recipe(tmp_path / "bad.yaml", body)
    result = cli("train", path, "--output-dir", finished_run.dir, "--overwrite")
    one_line_error(result, "train", str(path), *needles)
    assert_untouched(finished_run.dir, finished_run.before)


# Faults found once the method is known (model: section, method name, dataset split, batch vs data size): the loop
# has locked the folder by then, so these also prove nothing is moved aside before model and data are good.
LATE_CASES = [
    ("unknown-method", recipe(method="simclrr"), ["'simclrr'", "simclr"], []),
    ("unknown-model-key", recipe(**{"model.projection_dims": 3}), ["'projection_dims'", "projection_dim"], []),
    ("augment-typo", recipe(**{"model.augment": {"crop_scal": [0.2, 1.0]}}), ["augment", "'crop_scal'", "crop_scale"], []),
    ("dataset-split-typo", recipe(dataset_split="valdation"), ["'valdation'", "train"], []),
    ("batch-bigger-than-data", recipe(**{"train.batch_size": 100000}), ["train.batch_size", "1259 rows"], []),
    ("fractional-model-size", recipe(**{"model.projection_dim": 8.5}), ["model.projection_dim", "whole number"], []),
    ("text-model-size", recipe(**{"model.image_size": "big"}), ["model.image_size", "'big'"], []),
    ("negative-model-size", recipe(**{"model.image_size": -16}), ["image_size", "bad.yaml"], []),
    ("text-temperature", recipe(**{"model.loss_temperature": "hot"}), ["model.loss_temperature", "'hot'"], []),
    ("fractional-backbone-size", recipe(**{"model.backbone_config": dict(TINY_BACKBONE, hidden_sizes=[8, 16.5])}),
     ["model.backbone_config.hidden_sizes", "16.5"], []),
    # The message lists every transformers model type (about 15,000 characters) and names neither the recipe nor the key.
    ("unknown-backbone-type", recipe(**{"model.backbone_config": {"model_type": "nosuchnet"}}), ["'nosuchnet'", "backbone_config", "bad.yaml"], []),
]


@pytest.mark.parametrize("body, needles", [pytest.param(*c[1:3], id=c[0], marks=c[3]) for c in LATE_CASES])
def test_a_bad_method_model_or_data_setting_is_one_line_and_moves_nothing_aside(cli, finished_run, tmp_path, body, needles):
    path = write_recipe(tmp_path / "bad.yaml", body)
    result = cli("train", path, "--output-dir", finished_run.dir, "--overwrite")
    line = one_line_error(result, "train", *needles)
    assert len(line) < 600, f"not a clear line: {len(line)} characters"
    assert_untouched(finished_run.dir, finished_run.before)


SET_CASES = [
    ("no-equals", "train.max_steps", ["'train.max_steps'", "key.sub=value"]),
    ("empty-key-part", "train..max_steps=3", ["'train..max_steps'", "empty part"]),
    ("bad-yaml-value", "train.max_steps=[1", ["'train.max_steps=[1'", "not valid YAML"]),
    ("two-pairs-in-one", "train.max_steps=3 train.batch_size=4", ["--set train.max_steps=3 --set train.batch_size=4"]),
    ("into-a-scalar", "method.x=1", ["'method.x=1'", "not a mapping"]),
    ("out-of-range", "train.max_steps=0", ["train.max_steps", ">= 1"]),
    ("fractional", "train.batch_size=2.5", ["train.batch_size", "whole number", "2.5"]),
]


@pytest.mark.parametrize("override, needles", [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES])
def test_a_malformed_set_is_one_line_naming_the_override(cli, finished_run, override, needles):
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--overwrite", "--set", override)
    one_line_error(result, "train", str(finished_run.recipe), *needles)
    assert_untouched(finished_run.dir, finished_run.before)


def test_a_missing_recipe_file_is_one_line(cli, finished_run, tmp_path):
    result = cli("train", tmp_path / "recipes" / "simclr.yml", "--output-dir", finished_run.dir, "--overwrite")
    one_line_error(result, "train", "simclr.yml", "does not exist")
    assert_untouched(finished_run.dir, finished_run.before)


def test_resume_and_overwrite_together_are_refused_by_the_parser(cli, finished_run):
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--resume", "--overwrite")
    # argparse's convention: exit 2, a usage block, then one `multissl train: error: ...` line last.
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().splitlines()[-1] == "multissl train: error: argument --overwrite: not allowed with argument --resume"
    assert_untouched(finished_run.dir, finished_run.before)


def test_progress_false_keeps_stderr_quiet(cli, tmp_path):
    path = write_recipe(tmp_path / "quiet.yaml", recipe())
    result = cli("train", path, "--output-dir", tmp_path / "run")
    assert result.code == 0 and result.err == "", f"stderr: {result.err[-500:]!r}"
