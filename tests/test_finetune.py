"""`multissl finetune`: the supervised method's labeled-subset data hook (class-balanced, seeded, the same rows for
both arms), the pretrained arm really starting from the encoder's weights and the scratch arm from random init of the
same architecture, the JSON result, resume, and one-line refusals before any training."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from transformers import BertConfig, BertModel, ResNetConfig, ResNetModel

from multissl.cli import main
from multissl.commands.finetune import DEFAULTS
from multissl.data.batches import DataRequest
from multissl.data.label_split import split_labeled
from multissl.models.common.vision import TINY_RESNET
from multissl.models.supervised import SupervisedConfig, SupervisedModel, labeled_subset_rows, tiny_supervised_config
from multissl.registry import get_method
from multissl.training.finetune import ARMS, arm_recipes, finetune, resolve_encoder
from multissl.training.loop import build_config, build_model

CLASSES, PER_CLASS = 3, 8  # the tiny dataset: 24 training rows, 8 of each class


def _split(n: int, seed: int, label: bool = True) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    data = {"image": [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]}
    features = {"image": datasets.Image()}
    if label:
        data["label"] = [(i * 5) % CLASSES for i in range(n)]  # classes interleaved, not in blocks
        features["label"] = datasets.ClassLabel(names=[f"c{i}" for i in range(CLASSES)])
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    """A saved DatasetDict with train / validation / test splits and a ClassLabel column."""
    out = tmp_path_factory.mktemp("data") / "tiny"
    datasets.DatasetDict(train=_split(CLASSES * PER_CLASS, 0), validation=_split(6, 1), test=_split(6, 2)).save_to_disk(out)
    return str(out)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A plain HF ResNet export (what `multissl export` writes) with weights far from any random init."""
    out = tmp_path_factory.mktemp("enc") / "export"
    torch.manual_seed(123)
    encoder = ResNetModel(ResNetConfig(**{k: v for k, v in TINY_RESNET.items() if k != "model_type"}))
    with torch.no_grad():
        for p in encoder.parameters():
            p.fill_(0.25)
    encoder.save_pretrained(out)
    return out


def _labels(ds) -> list[int]:
    return list(ds["label"])


# ---- the supervised data hook ---------------------------------------------------------------------------


def test_config_takes_at_most_one_label_choice_and_checks_values():
    base = tiny_supervised_config().to_diff_dict()
    with pytest.raises(ValueError, match="at most one of labels_per_class or label_fraction"):
        SupervisedConfig(**{**base, "labels_per_class": 2, "label_fraction": 0.1})
    for key, bad in [("labels_per_class", 0), ("labels_per_class", 1.5), ("label_fraction", 0.0),
                     ("label_fraction", 1.5), ("label_seed", -1)]:
        with pytest.raises(ValueError, match=key):
            SupervisedConfig(**{**base, key: bad})


def test_subset_is_class_balanced_deterministic_and_seeded(tiny_data):
    data = DataRequest(tiny_data)
    ds = data.load()
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": CLASSES, "labels_per_class": 2,
                                 "label_seed": 5})
    rows = labeled_subset_rows(config, ds, seed=0)
    labels = np.array(_labels(ds))[rows]
    assert np.bincount(labels, minlength=CLASSES).tolist() == [2] * CLASSES
    assert rows == labeled_subset_rows(config, ds, seed=99)  # label_seed given: the run seed does not matter
    assert rows == split_labeled(_labels(ds), labels_per_class=2, seed=5)[0]  # the tested data-layer function
    other = SupervisedConfig(**{**config.to_diff_dict(), "label_seed": 6})
    assert rows != labeled_subset_rows(other, ds, seed=0)
    unset = SupervisedConfig(**{**config.to_diff_dict(), "label_seed": None})  # default: the run seed
    assert labeled_subset_rows(unset, ds, seed=5) == rows

    # The batches of one epoch are exactly the labeled rows' images: 6 rows, batch 3 -> two batches.
    source = SupervisedModel.make_batch_source(config, data, batch_size=3, seed=0)
    drawn = torch.cat([source[i]["labels"] for i in range(2)])
    assert sorted(drawn.tolist()) == sorted(labels.tolist())
    assert len(source.dataset) == 2 * CLASSES


def test_without_a_label_choice_the_hook_is_the_default(tiny_data):
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": CLASSES})
    source = SupervisedModel.make_batch_source(config, DataRequest(tiny_data), batch_size=4, seed=0)
    assert len(source.dataset) == CLASSES * PER_CLASS


def test_fraction_picks_round_f_times_n_per_class(tiny_data):
    ds = DataRequest(tiny_data).load()
    config = SupervisedConfig(**{**tiny_supervised_config().to_diff_dict(), "num_classes": CLASSES, "label_fraction": 0.3,
                                 "label_seed": 0})
    labels = np.array(_labels(ds))[labeled_subset_rows(config, ds, seed=0)]
    assert np.bincount(labels, minlength=CLASSES).tolist() == [2] * CLASSES  # round(0.3 * 8) = 2


# ---- the two arms -----------------------------------------------------------------------------------------


def _recipes(export_dir: Path, tiny_data: str):
    encoder = resolve_encoder(export_dir, image_size=16)
    return arm_recipes(encoder, export_dir, tiny_data, num_classes=CLASSES, label_column="label", labels_per_class=2,
                       label_fraction=None, label_seed=3, train={"max_steps": 2, "batch_size": 3, "seed": 7})


def test_pretrained_arm_loads_the_encoder_and_scratch_is_random_init_of_the_same_net(export_dir, tiny_data):
    recipes = _recipes(export_dir, tiny_data)
    spec = get_method("supervised")
    models = {}
    for arm in ARMS:
        torch.manual_seed(recipes[arm].train.seed)  # as the loop seeds before building
        models[arm] = build_model(spec, build_config(spec, recipes[arm].model))
    saved = ResNetModel.from_pretrained(export_dir).state_dict()
    pre, scratch = models["pretrained"].backbone.state_dict(), models["scratch"].backbone.state_dict()
    assert pre.keys() == scratch.keys() == saved.keys()
    assert all(pre[k].shape == scratch[k].shape for k in pre)  # the same architecture
    assert all(torch.equal(pre[k], saved[k]) for k in saved)  # every tensor is the encoder's
    weights = [k for k in saved if k.endswith("weight") and saved[k].dim() > 1]
    assert weights and not any(torch.equal(scratch[k], saved[k]) for k in weights)  # random init, not the encoder
    # The head starts the same in both arms (same seed, built before the backbone is loaded).
    assert torch.equal(models["pretrained"].classifier.weight, models["scratch"].classifier.weight)


def test_both_arms_draw_exactly_the_same_batches(export_dir, tiny_data):
    recipes = _recipes(export_dir, tiny_data)
    spec = get_method("supervised")
    sources = [spec.model_class.make_batch_source(build_config(spec, recipes[arm].model), DataRequest(tiny_data),
                                                  batch_size=3, seed=7) for arm in ARMS]
    for i in range(3):
        a, b = sources[0][i], sources[1][i]
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    only = {k: v for k, v in recipes["pretrained"].model.items() if k not in ("backbone_path", "backbone_config")}
    assert only == {k: v for k, v in recipes["scratch"].model.items() if k not in ("backbone_path", "backbone_config")}
    assert recipes["pretrained"].train == recipes["scratch"].train


def test_a_run_folder_resolves_to_its_encoder(tmp_path):
    spec = get_method("simclr")
    model = spec.model_class(spec.model_class.tiny_config())
    model.save_pretrained(tmp_path / "run" / "final")
    encoder = resolve_encoder(tmp_path / "run")
    assert encoder.method == "simclr" and encoder.folder == tmp_path / "run" / "final"
    assert encoder.image_size == model.config.image_size and encoder.backbone_config["model_type"] == "resnet"


# ---- end to end through the CLI ---------------------------------------------------------------------------


def test_cli_finetunes_both_arms_prints_json_and_resumes(tmp_path, tiny_data, capsys):
    spec = get_method("simclr")
    model = spec.model_class(spec.model_class.tiny_config())
    model.save_pretrained(tmp_path / "run" / "final")
    out = tmp_path / "ft"
    argv = ["finetune", "--model", str(tmp_path / "run"), "--dataset", tiny_data, "--labels-per-class", "2",
            "--output-dir", str(out), "--steps", "2", "--batch-size", "4", "--warmup-steps", "1", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    result = json.loads(text[text.index("{\n"):])
    assert {"protocol", "dataset", "model", "encoder", "encoder_method", "labels_per_class", "label_fraction", "label_seed",
            "n_labeled", "num_classes", "split", "n_scored", "steps", "batch_size", "learning_rate", "seed", "accuracy",
            "pretrained", "scratch", "gain"} <= set(result)
    assert result["protocol"] == "finetune" and result["encoder_method"] == "simclr" and result["split"] == "validation"
    assert result["n_labeled"] == 2 * CLASSES and result["num_classes"] == CLASSES and result["n_scored"] == 6
    assert result["accuracy"] == result["pretrained"]["accuracy"]
    assert result["gain"] == pytest.approx(result["pretrained"]["accuracy"] - result["scratch"]["accuracy"])
    assert json.loads((out / "finetune.json").read_text()) == result
    rows = json.loads((out / "labeled_rows.json").read_text())
    assert rows == split_labeled(_labels(DataRequest(tiny_data).load()), labels_per_class=2, seed=0)[0]
    # The encoder was exported as a plain HF folder and the pretrained arm loaded it; the arms differ only there.
    assert ResNetModel.from_pretrained(out / "encoder") is not None
    recipes = {arm: yaml.safe_load((out / arm / "recipe.yaml").read_text()) for arm in ARMS}
    assert recipes["pretrained"]["model"]["backbone_path"] == str((out / "encoder").resolve())
    assert "backbone_path" not in recipes["scratch"]["model"]
    assert recipes["scratch"]["model"]["backbone_config"]["hidden_sizes"] == TINY_RESNET["hidden_sizes"]
    for r in recipes.values():
        r["model"].pop("backbone_path", None), r["model"].pop("backbone_config", None)
    assert recipes["pretrained"] == recipes["scratch"]

    # A finished fine-tuning is never overwritten; --resume keeps a finished arm and trains the missing one.
    assert main(argv) == 1
    assert "already holds a finished fine-tuning" in capsys.readouterr().err
    (out / "finetune.json").unlink()
    kept = (out / "pretrained" / "final" / "model.safetensors").stat().st_mtime_ns
    import shutil

    shutil.rmtree(out / "scratch")
    assert main(argv) == 1  # without --resume: the pretrained arm's run is refused
    assert "pass --resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert (out / "pretrained" / "final" / "model.safetensors").stat().st_mtime_ns == kept
    assert (out / "scratch" / "final").is_dir() and (out / "finetune.json").is_file()

    # Another encoder of the same architecture reuses this scratch arm (checked), or is refused when anything differs.
    other = ["finetune", "--model", str(out / "encoder"), *argv[3:]]
    other[other.index("--output-dir") + 1] = str(tmp_path / "ft2")
    assert main([*other, "--scratch-from", str(out)]) == 0
    second = json.loads((tmp_path / "ft2" / "finetune.json").read_text())
    assert second["scratch"] == json.loads((out / "finetune.json").read_text())["scratch"]
    assert not (tmp_path / "ft2" / "scratch").exists() and (tmp_path / "ft2" / "pretrained" / "final").is_dir()
    capsys.readouterr()
    other[other.index("--output-dir") + 1] = str(tmp_path / "ft3")
    assert "trained with other settings" in _refused([*other, "--scratch-from", str(out), "--seed", "1"], capsys)
    assert not (tmp_path / "ft3").exists()


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_before_any_training(tmp_path, tiny_data, export_dir, capsys):
    out = tmp_path / "ft"
    base = ["--dataset", tiny_data, "--output-dir", str(out), "--steps", "1", "--no-progress"]
    model = ["--model", str(export_dir)]
    assert "does not exist" in _refused(["finetune", "--model", str(tmp_path / "nope"), *base, "--labels-per-class", "2"],
                                        capsys)
    (tmp_path / "empty").mkdir()
    assert "is not an encoder" in _refused(["finetune", "--model", str(tmp_path / "empty"), *base,
                                            "--labels-per-class", "2"], capsys)
    BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=8)).save_pretrained(tmp_path / "bert")
    assert "not a vision encoder" in _refused(["finetune", "--model", str(tmp_path / "bert"), *base,
                                               "--labels-per-class", "2"], capsys)
    assert "exactly one of labels_per_class" in _refused(["finetune", *model, *base], capsys)
    assert "exactly one of labels_per_class" in _refused(["finetune", *model, *base, "--labels-per-class", "2",
                                                          "--label-fraction", "0.1"], capsys)
    assert "label_fraction must be in (0, 1]" in _refused(["finetune", *model, *base, "--label-fraction", "2"], capsys)
    err = _refused(["finetune", *model, *base, "--labels-per-class", "9"], capsys)
    assert "labels_per_class=9" in err and f"has {PER_CLASS}" in err
    assert "not a column" in _refused(["finetune", *model, *base, "--labels-per-class", "2", "--target", "y"], capsys)
    unlabeled = tmp_path / "unlabeled"
    datasets.DatasetDict(train=_split(6, 0, label=False), validation=_split(3, 1, label=False)).save_to_disk(unlabeled)
    assert "'label' is not a column" in _refused(["finetune", *model, "--dataset", str(unlabeled), "--output-dir",
                                                  str(out), "--labels-per-class", "1"], capsys)
    assert "split 'nosuch'" in _refused(["finetune", *model, *base, "--labels-per-class", "2", "--split", "nosuch"], capsys)
    assert not out.exists()  # nothing was written for any of them


def test_command_defaults_are_the_functions_defaults():
    params = inspect.signature(finetune).parameters
    for key, value in DEFAULTS.items():
        assert params[key].default == value, key


def test_help_imports_no_torch():
    code = ("import sys\nfrom multissl.cli import main\ntry:\n    main(['finetune', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "HEAVY []" in res.stdout, res.stderr[-2000:]
    assert "--labels-per-class" in res.stdout and "--label-fraction" in res.stdout
