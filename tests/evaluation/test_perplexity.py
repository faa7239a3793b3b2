"""Perplexity = exp(total NLL / total tokens), weighted by token count, against a direct computation."""
import math

import datasets
import pytest
import torch
import torch.nn.functional as F

from multissl.evaluation.perplexity import evaluate_perplexity, perplexity
from multissl.models.gpt_lm import GPTLMModel, make_gpt_lm_collator, tiny_gpt_lm_config

TEXTS = ["Return the value of the named attribute of object.", "Open file and return a corresponding file object.",
         "A short one.", "Raise an exception when the argument is not valid for this function call at all.", "Yes."]


def test_token_weighted_perplexity_matches_a_direct_computation():
    torch.manual_seed(0)
    config = tiny_gpt_lm_config()
    model = GPTLMModel(config).eval()
    collate = make_gpt_lm_collator(config, train=False)  # one row per text: different lengths, right padding
    result = perplexity(model, datasets.Dataset.from_dict({"text": TEXTS}), collate, batch_size=2, progress=False)
    nll, n = 0.0, 0
    for text in TEXTS:  # each text alone: no padding at all
        ids = collate([{"text": text}])["input_ids"]
        logits = model.backbone(ids).logits
        nll += F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum").item()
        n += ids.shape[1] - 1
    assert result["tokens"] == n
    assert result["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)
    # A mean of per-batch perplexities would weigh the short texts' tokens more: not what we report.
    assert result["nll"] == pytest.approx(nll / n, rel=1e-5)


def test_evaluate_perplexity_on_a_saved_model_and_errors(tmp_path):
    torch.manual_seed(0)
    model = GPTLMModel(tiny_gpt_lm_config())
    model.save_pretrained(tmp_path / "m")
    out = evaluate_perplexity(str(tmp_path / "m"), "python_docs", split="test", batch_size=64, progress=False)
    vocab = model.config.backbone_config["vocab_size"]
    assert out["method"] == "gpt_lm" and out["tokens"] > 1000 and 1 < out["perplexity"] < 2 * vocab
    with pytest.raises(ValueError, match="empty dataset"):
        perplexity(model, datasets.Dataset.from_dict({"text": []}), make_gpt_lm_collator(model.config))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        evaluate_perplexity(str(tmp_path), "python_docs")


def test_eval_perplexity_cli_equals_the_standalone_command(tmp_path, capsys):
    import json

    from multissl.cli import main

    torch.manual_seed(0)
    GPTLMModel(tiny_gpt_lm_config()).save_pretrained(tmp_path / "m")
    common = ["--model", str(tmp_path / "m"), "--dataset", "python_docs", "--batch-size", "64", "--no-progress"]
    assert main(["eval", "perplexity", *common]) == 0
    via_eval = json.loads(capsys.readouterr().out)
    assert main(["perplexity", *common]) == 0
    standalone = json.loads(capsys.readouterr().out)
    assert via_eval["perplexity"] == pytest.approx(standalone["perplexity"]) and via_eval["tokens"] > 1000
