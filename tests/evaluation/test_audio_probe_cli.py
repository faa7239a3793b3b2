"""The documented audio evaluation: `multissl eval linear-probe --dataset spoken_digits --target speaker|word` on a CPC model."""
import json

import pytest
import torch

from multissl.cli import main
from multissl.data import load_dataset_by_name
from multissl.models.cpc import CPCModel, tiny_cpc_config


@pytest.fixture(scope="module")
def cpc_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cpc")
    CPCModel(tiny_cpc_config()).save_pretrained(path)
    return path


@pytest.mark.parametrize("target", ["speaker", "word"])
def test_linear_probe_cli_on_spoken_digits(cpc_dir, capsys, target):
    code = main(["eval", "linear-probe", "--model", str(cpc_dir), "--dataset", "spoken_digits", "--target", target,
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["protocol"] == "linear-probe" and result["method"] == "cpc" and result["label_column"] == target
    assert 0.0 <= result["accuracy"] <= 1.0
    # the whole shipped test split is scored, and the class count is the column's
    test = load_dataset_by_name("spoken_digits", split="test")
    assert result["n_scored"] == len(test) and result["n_train"] == len(load_dataset_by_name("spoken_digits", split="train"))
    assert result["num_classes"] == test.features[target].num_classes and result["feature_dim"] == tiny_cpc_config().context_dim
