"""extract_features, evaluate_model and `multissl eval` with a tiny dummy method registered by the test."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from multissl.data import load_dataset_by_name
from multissl.evaluation import evaluate_model, extract_features, knn_accuracy, linear_probe_accuracy
from multissl.models.base import MethodConfig, MethodModel
from multissl.registry import METHODS, register_method


class DummyEvalConfig(MethodConfig):
    model_type = "multissl_test_dummy_eval"

    def __init__(self, dim: int = 16, **kwargs):
        self.dim = dim
        super().__init__(**kwargs)


class DummyEvalModel(MethodModel):
    """Flattened 8x8 pixels through one random linear layer: embed(pixel_values [B, 64]) -> [B, D]."""

    config_class = DummyEvalConfig
    base_model_prefix = "dummy"
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        self.proj = nn.Linear(64, config.dim)
        self.post_init()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        assert not self.training and not torch.is_grad_enabled()  # extract_features froze the model
        return self.proj(pixel_values)

    def forward(self, pixel_values: torch.Tensor, **_):
        return self.embed(pixel_values).pow(2).mean()


def make_dummy_collator(config, train: bool = True):
    def collate(rows, generator=None):
        assert "label" not in rows[0], "labels must not reach the collator"
        pixels = np.stack([np.asarray(r["image"], dtype=np.float32).reshape(-1) / 255.0 for r in rows])
        return {"pixel_values": torch.from_numpy(pixels)}  # [B, 64]

    return collate


DummyEvalModel.make_collator = staticmethod(make_dummy_collator)


@pytest.fixture
def dummy_method():
    """Register the dummy method for one test and remove it again, so registry-wide tests never see it."""
    register_method("test_dummy_eval", f"{__name__}:DummyEvalModel", modality="image", description="test only")
    yield DummyEvalModel
    METHODS.pop("test_dummy_eval", None)


@pytest.fixture(scope="module")
def digits():
    return load_dataset_by_name("digits", split="train"), load_dataset_by_name("digits", split="test")


def test_extract_features_matches_direct_embedding(digits):
    torch.manual_seed(0)
    model = DummyEvalModel(DummyEvalConfig(dim=8)).train()
    ds = digits[1].select(range(70))
    feats, labels = extract_features(model, ds, make_dummy_collator(None), batch_size=32, progress=False)
    assert feats.shape == (70, 8) and labels.dtype == torch.long
    assert labels.tolist() == list(ds["label"])
    with torch.no_grad():
        want = model.proj(make_dummy_collator(None)([{"image": r["image"]} for r in ds])["pixel_values"])
    torch.testing.assert_close(feats, want)
    assert model.training, "the model's train/eval mode is restored"


def test_extract_features_errors(digits):
    model = DummyEvalModel(DummyEvalConfig())
    with pytest.raises(ValueError, match="label column 'speaker' not in the dataset"):
        extract_features(model, digits[1], make_dummy_collator(None), label_column="speaker")
    with pytest.raises(TypeError, match="no embed"):
        extract_features(nn.Linear(2, 2), digits[1], make_dummy_collator(None))


def test_evaluate_saved_model_knn_and_probe(tmp_path, dummy_method, digits):
    torch.manual_seed(0)
    model = DummyEvalModel(DummyEvalConfig(dim=32))
    model.save_pretrained(tmp_path / "final")
    res = evaluate_model(tmp_path / "final", "digits", "knn", k=20, progress=False)
    assert json.loads(json.dumps(res)) == res
    assert res["method"] == "test_dummy_eval" and (res["n_train"], res["n_scored"]) == (len(digits[0]), len(digits[1]))
    assert (res["split_train"], res["split"], res["k"], res["temperature"]) == ("train", "test", 20, 0.1)
    # same number as k-NN on features embedded directly by the in-memory model
    collate = make_dummy_collator(None)
    tr = extract_features(model, digits[0], collate, progress=False)
    te = extract_features(model, digits[1], collate, progress=False)
    assert res["accuracy"] == pytest.approx(knn_accuracy(*tr, *te, num_classes=10, k=20))
    assert res["accuracy"] > 0.8  # a random projection of digit pixels keeps them well clustered
    probe = evaluate_model(model, "digits", "linear-probe", progress=False)
    assert probe["accuracy"] == pytest.approx(linear_probe_accuracy(*tr, *te)["accuracy"])
    assert probe["accuracy"] > 0.8 and probe["protocol"] == "linear-probe"


def test_evaluate_errors(tmp_path, dummy_method):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        evaluate_model(tmp_path, "digits", "knn")
    with pytest.raises(ValueError, match="unknown protocol 'svm'"):
        evaluate_model(DummyEvalModel(DummyEvalConfig()), "digits", "svm")


def test_cli_prints_json(tmp_path, dummy_method, capsys):
    from multissl.cli import main

    torch.manual_seed(0)
    DummyEvalModel(DummyEvalConfig()).save_pretrained(tmp_path / "m")
    rc = main(["eval", "knn", "--model", str(tmp_path / "m"), "--dataset", "digits", "--k", "5",
               "--temperature", "0.07", "--no-progress"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "knn" and out["k"] == 5 and out["temperature"] == 0.07 and 0.8 < out["accuracy"] <= 1
    assert main(["eval", "knn", "--model", str(tmp_path / "m"), "--dataset", "nope_dataset", "--no-progress"]) == 1
    assert "unknown dataset 'nope_dataset'" in capsys.readouterr().err


def test_cli_linear_probe_and_dataset_args(tmp_path, dummy_method, capsys):
    from multissl.cli import main

    torch.manual_seed(0)
    DummyEvalModel(DummyEvalConfig()).save_pretrained(tmp_path / "m")
    rc = main(["eval", "linear-probe", "--model", str(tmp_path / "m"), "--dataset", "digits", "--C", "0.5",
               "--max-iter", "200", "--split", "train", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["protocol"] == "linear-probe" and out["C"] == 0.5 and out["n_scored"] == out["n_train"]
    assert out["accuracy"] == out["train_accuracy"]  # scoring the training split itself
    with pytest.raises(SystemExit):
        main(["eval", "knn", "--model", "m", "--dataset", "digits", "--dataset-arg", "no_equals_sign"])
