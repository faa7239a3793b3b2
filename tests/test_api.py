"""multissl.train / multissl.embed: the CLI's run and errors, extract_features' features, a cheap import."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import multissl
from multissl.api import _as_row, build_recipe
from multissl.cli import main as cli_main
from multissl.data import load_dataset_by_name
from multissl.evaluation import extract_features
from multissl.models.simclr import SimCLRModel
from multissl.training import RecipeError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "simclr_digits.yaml")
TINY = {"backbone_config": SimCLRModel.tiny_config().backbone_config, "image_size": 16, "projection_hidden_dim": 16,
        "projection_dim": 8}
TRAIN = {"max_steps": 3, "batch_size": 8, "warmup_steps": 0, "save_every": 0, "log_every": 1, "num_workers": 0,
         "progress": False}


def _as_sets(tree: dict, prefix: str = "") -> list[str]:
    """The same overrides as CLI `--set key=value` arguments (values as JSON, which YAML reads back unchanged)."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and key != "backbone_config":
            out += _as_sets(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def _cli_error(capsys, argv: list[str]) -> str:
    assert cli_main(argv) == 1
    return capsys.readouterr().err.strip().removeprefix("multissl train: error: ")


def test_train_with_overrides_is_the_cli_run(tmp_path, capsys):
    overrides = {"model": TINY, "train": TRAIN, "eval": None}
    assert cli_main(["train", RECIPE, "--output-dir", str(tmp_path / "cli")] + [f"--set={s}" for s in _as_sets(overrides)]) == 0
    result = multissl.train(RECIPE, tmp_path / "api", overrides=overrides)

    cli_losses = [json.loads(line)["loss"] for line in (tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()]
    assert len(result.losses) == 3 and result.losses == pytest.approx(cli_losses, rel=1e-6)
    assert (tmp_path / "api" / "recipe.yaml").read_text() == (tmp_path / "cli" / "recipe.yaml").read_text()
    assert result.final_dir == tmp_path / "api" / "final" and result.eval == {}


def test_dotted_and_nested_overrides_mean_the_same_and_merge_key_by_key():
    nested = build_recipe(RECIPE, {"train": {"max_steps": 7, "warmup_steps": 0}, "model": {"augment": {"hflip_prob": 0.5}}})
    dotted = build_recipe(RECIPE, {"train.max_steps": 7, "train.warmup_steps": 0, "model.augment.hflip_prob": 0.5})
    assert nested == dotted and nested.train.max_steps == 7
    assert nested.model["augment"] == {"crop_scale": [0.4, 1.0], "hflip_prob": 0.5}  # crop_scale kept
    assert nested.train.learning_rate == 2.0e-3 and nested.source == RECIPE
    assert build_recipe(RECIPE, {"eval": None}).eval == {}
    # A dict and a Recipe take the same overrides; the inputs are not modified.
    data = nested.to_dict()
    assert build_recipe(data, {"train.seed": 3}).train.seed == 3 and data["train"]["seed"] == 0
    assert build_recipe(nested, {"train.seed": 3}).train.seed == 3 and nested.train.seed == 0
    assert build_recipe(nested) is nested


@pytest.mark.parametrize("override", [
    {"train.max_steps": 0},  # out of range
    {"train.max_step": 5},  # unknown key
    {"train.warmup_steps": 50, "train.max_steps": 10},  # bounded by another key
    {"train.optimizer": "lamb"},
    {"eval.knn.k": "many"},
    {"model.no_such_key": 1},  # checked by the method's config, inside the loop, before any training
])
def test_a_bad_override_is_the_clis_error(tmp_path, capsys, override):
    cli = _cli_error(capsys, ["train", RECIPE, "--output-dir", str(tmp_path / "cli")] + [f"--set={s}" for s in _as_sets(override)])
    with pytest.raises(RecipeError) as err:
        multissl.train(RECIPE, tmp_path / "api", overrides=override)
    assert str(err.value) == cli and cli.startswith(RECIPE + ": ")
    assert not (tmp_path / "api" / "final").exists()


def test_recipe_file_errors_are_the_clis(tmp_path, capsys):
    for text in (None, "method: [unclosed", "- a list\n"):
        path = tmp_path / "recipe.yaml"
        if text is None:
            path = tmp_path / "missing.yaml"
        else:
            path.write_text(text)
        cli = _cli_error(capsys, ["train", str(path), "--output-dir", str(tmp_path / "cli")])
        with pytest.raises((RecipeError, FileNotFoundError)) as err:
            multissl.train(path, tmp_path / "api")
        assert str(err.value) == cli


def test_bad_arguments_are_one_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="overrides must be a mapping"):
        build_recipe(RECIPE, ["train.max_steps=5"])
    with pytest.raises(RecipeError, match="'train.max_steps.x'.*train.max_steps is 200, not a mapping"):
        build_recipe(RECIPE, {"train.max_steps.x": 1})
    with pytest.raises(RecipeError, match="non-empty"):
        build_recipe(RECIPE, {"train..max_steps": 1})
    with pytest.raises(ValueError, match="recipe must be a path"):
        build_recipe(42)
    with pytest.raises(ValueError, match="resume and overwrite"):
        multissl.train(RECIPE, tmp_path, resume=True, overwrite=True)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return SimCLRModel(SimCLRModel.config_class(**TINY)).eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset_by_name("digits", split="test").select(range(11))


def test_embed_of_a_list_is_extract_features_on_the_same_rows(tiny_model, digits):
    collate = SimCLRModel.make_collator(tiny_model.config, train=False)
    expected, labels = extract_features(tiny_model, digits, collate, batch_size=256, progress=False)
    images = multissl.embed(tiny_model, digits["image"], batch_size=4)  # raw PIL images, batches of 4, 4, 3
    rows = multissl.embed(tiny_model, [{"image": im} for im in digits["image"]])
    dataset = multissl.embed(tiny_model, digits)  # the label column is dropped, as extract_features does
    assert images.shape == (11, tiny_model.config.backbone_config["hidden_sizes"][-1]) and images.dtype == torch.float32
    for got in (images, rows, dataset):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not images.requires_grad and labels.shape == (11,)


def test_embed_restores_training_mode_and_takes_a_saved_folder(tiny_model, digits, tmp_path):
    tiny_model.train()
    try:
        feats = multissl.embed(tiny_model, digits["image"])  # eval mode inside (BatchNorm uses running stats)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    tiny_model.save_pretrained(tmp_path / "model")
    torch.testing.assert_close(multissl.embed(str(tmp_path / "model"), digits["image"]), feats)
    torch.testing.assert_close(multissl.embed(tmp_path / "model", digits["image"]), feats)


def test_embed_refuses_bad_input(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        multissl.embed(tiny_model, [], batch_size=0)
    with pytest.raises(ValueError, match="inputs is empty"):
        multissl.embed(tiny_model, [])
    with pytest.raises(ValueError, match="inputs must be a datasets.Dataset or a list"):
        multissl.embed(tiny_model, "a string")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        multissl.embed(tmp_path, ["x"])


def test_raw_items_become_the_rows_each_modality_reads():
    wave = torch.zeros(160)
    assert _as_row("a sentence", "text", None, 0) == {"text": "a sentence"}
    assert _as_row(wave, "audio", 16000, 0) == {"audio": {"array": wave, "sampling_rate": 16000}}
    assert _as_row("clip.wav", "audio", None, 0) == {"audio": "clip.wav"}
    assert _as_row({"image": 1, "caption": "a seven"}, "image-text", None, 0) == {"image": 1, "caption": "a seven"}
    with pytest.raises(ValueError, match=r"inputs\[2\]: a bare waveform needs sampling_rate"):
        _as_row(wave, "audio", None, 2)
    with pytest.raises(ValueError, match=r"inputs\[0\]: a text method embeds strings"):
        _as_row(3, "text", None, 0)
    with pytest.raises(ValueError, match="row dicts"):
        _as_row("x", "image-text", None, 0)


def test_import_multissl_does_not_import_torch():
    code = ("import sys, multissl; assert callable(multissl.train) and callable(multissl.embed); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'datasets', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    assert {"train", "embed"} <= set(multissl.__all__)
