"""Checkpoint faults on --resume (a planted pickle, truncated or corrupt files, another method's run, a changed recipe,
nothing to resume from): one line naming the folder/file/key, nothing unpickled, and the run folder left exactly as
the fault left it (no metrics rewritten, no checkpoint replaced, nothing moved)."""
import pickle

import pytest

from tests.reliability import assert_untouched, one_line_error, recipe, snapshot, write_recipe

STEP = "checkpoints/step_3"


class _WritesMarker:
    """Unpickling this object creates the file `path` (open(path, "w")): proof that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["optimizer.bin", "pytorch_model.bin", "random_states_0.pkl"])
def test_a_planted_pickle_is_refused_by_name_and_never_unpickled(cli, finished_run, tmp_path, name):
    marker = tmp_path / "UNPICKLED"
    payload = pickle.dumps(_WritesMarker(marker))
    pickle.loads(payload)  # the payload works: loading it is exactly what must never happen
    assert marker.exists()
    marker.unlink()
    (finished_run.dir / STEP / name).write_bytes(payload)
    before = snapshot(finished_run.dir)

    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--resume")
    one_line_error(result, "train", str(finished_run.dir / STEP), f"'{name}'", "never unpickles")
    assert not marker.exists()
    assert_untouched(finished_run.dir, before)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("fault, needles", [
    (lambda ckpt: _truncate(ckpt / "model.safetensors"), ["cannot be loaded", "SafetensorError"]),
    (lambda ckpt: _truncate(ckpt / "optimizer.safetensors"), ["cannot be loaded", "SafetensorError"]),
    (lambda ckpt: (ckpt / "state.json").write_text('{"format": 2, "step": '), ["state.json is not valid JSON"]),
    (lambda ckpt: (ckpt / "state.json").write_text("[]"), ["state.json is not a multissl checkpoint"]),
    (lambda ckpt: (ckpt / "optimizer.safetensors").unlink(), ["is incomplete", "'optimizer.safetensors'"]),
], ids=["truncated-model", "truncated-optimizer", "cut-state-json", "state-json-not-ours", "missing-optimizer"])
def test_a_damaged_checkpoint_is_one_line_naming_it(cli, finished_run, fault, needles):
    fault(finished_run.dir / STEP)
    before = snapshot(finished_run.dir)
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--resume")
    one_line_error(result, "train", str(finished_run.dir / STEP), *needles)
    assert_untouched(finished_run.dir, before)


BYOL = {"method": "byol", "dataset": "digits", "model": {"image_size": 16},
        "train": {"max_steps": 3, "batch_size": 8, "log_every": 1, "progress": False, "save_every": 3}}


def test_resuming_with_another_methods_recipe_names_both_methods(cli, finished_run, tmp_path):
    result = cli("train", write_recipe(tmp_path / "byol.yaml", BYOL), "--output-dir", finished_run.dir, "--resume")
    one_line_error(result, "train", "method: 'simclr' in the run, 'byol' now", str(finished_run.dir / "recipe.yaml"))
    assert_untouched(finished_run.dir, finished_run.before)


def test_another_methods_checkpoint_is_refused_even_without_its_recipe_yaml(cli, finished_run, tmp_path):
    (finished_run.dir / "recipe.yaml").unlink()  # e.g. a checkpoint folder copied on its own
    before = snapshot(finished_run.dir)
    result = cli("train", write_recipe(tmp_path / "byol.yaml", BYOL), "--output-dir", finished_run.dir, "--resume")
    one_line_error(result, "train", str(finished_run.dir / STEP), "written by method 'simclr'", "trains 'byol'")
    assert_untouched(finished_run.dir, before)


@pytest.mark.parametrize("override, needles", [
    ("train.learning_rate=0.5", ["train.learning_rate: 0.001 in the run, 0.5 now"]),
    ("model.projection_dim=4", ["model.projection_dim: 8 in the run, 4 now"]),
    ("train.seed=1", ["train.seed: 0 in the run, 1 now"]),
], ids=["learning-rate", "model-size", "seed"])
def test_a_recipe_changed_on_resume_names_the_keys(cli, finished_run, override, needles):
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--resume", "--set", override)
    one_line_error(result, "train", "--resume: the recipe differs", *needles)
    assert_untouched(finished_run.dir, finished_run.before)


def test_bookkeeping_keys_may_change_on_resume(cli, finished_run):
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--resume", "--set", "train.log_every=2",
                 "--set", "train.progress=true", "--set", "train.keep_checkpoints=5")
    assert result.code == 0, result.err[-2000:]
    assert f"resumed from {finished_run.dir / STEP} at step 3" in result.out


def test_resume_with_no_run_at_all_is_one_line(cli, tmp_path):
    out = tmp_path / "never-trained"
    result = cli("train", write_recipe(tmp_path / "r.yaml", recipe()), "--output-dir", out, "--resume")
    one_line_error(result, "train", "--resume", str(out), "no complete checkpoint")
    assert not out.exists() or [p.name for p in out.iterdir()] == [".multissl.lock"]


def test_resume_when_the_only_checkpoint_was_cut_off_mid_save(cli, finished_run):
    ckpt = finished_run.dir / STEP
    ckpt.rename(ckpt.with_name("step_3.tmp"))  # killed while writing its first checkpoint
    (ckpt.with_name("step_3.tmp") / "state.json").unlink()
    result = cli("train", finished_run.recipe, "--output-dir", finished_run.dir, "--resume")
    one_line_error(result, "train", "--resume", "no complete checkpoint", "metrics.jsonl")
    for name in ("final/model.safetensors", "metrics.jsonl", "recipe.yaml", "loss_curve.png"):
        assert finished_run.before[name] == snapshot(finished_run.dir)[name], name
