"""Perplexity = exp(total NLL / total tokens), weighted by token count, against a direct computation."""
import math

import datasets
import pytest
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
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


def _tiny_bert(**overrides):
    from multissl.models.bert_mlm import BertMLMConfig, tiny_bert_mlm_config

    base = tiny_bert_mlm_config()
    return BertMLMConfig(backbone_config=base.backbone_config, tokenizer_path=base.tokenizer_path, block_size=32,
                         **overrides)


def test_masked_lm_perplexity_and_accuracy_match_a_direct_computation():
    from multissl.models.bert_mlm import BertMLMModel, make_bert_mlm_collator

    torch.manual_seed(0)
    config = _tiny_bert()
    model = BertMLMModel(config).eval()
    collate = make_bert_mlm_collator(config, train=True)
    data = datasets.Dataset.from_dict({"text": TEXTS})
    result = perplexity(model, data, collate, batch_size=2, progress=False, seed=3)
    generator, nll, hits, n = torch.Generator().manual_seed(3), 0.0, 0, 0
    for start in range(0, len(TEXTS), 2):  # the same masks: one generator, drawn batch after batch
        batch = collate([{"text": t} for t in TEXTS[start : start + 2]], generator=generator)
        with torch.no_grad():
            logits = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        chosen = batch["labels"] != -100
        nll += F.cross_entropy(logits[chosen], batch["labels"][chosen], reduction="sum").item()
        hits += int((logits.argmax(-1)[chosen] == batch["labels"][chosen]).sum())
        n += int(chosen.sum())
    assert result["tokens"] == n > 0
    assert result["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)
    assert result["masked_token_accuracy"] == pytest.approx(hits / n)


@pytest.mark.parametrize("next_sentence", [False, True])
def test_evaluate_perplexity_on_a_saved_bert_mlm(tmp_path, next_sentence):
    from multissl.models.bert_mlm import BertMLMModel

    torch.manual_seed(0)
    config = _tiny_bert(grouping="line", next_sentence=True) if next_sentence else _tiny_bert()
    BertMLMModel(config).save_pretrained(tmp_path / "m")
    # An NSP model's forward needs next_sentence_label; evaluation must still work and score MLM tokens only.
    out = evaluate_perplexity(str(tmp_path / "m"), "python_docs", split="test", batch_size=64, progress=False)
    vocab = config.backbone_config["vocab_size"]
    assert out["method"] == "bert_mlm" and out["tokens"] > 100 and 1 < out["perplexity"] < 2 * vocab
    assert 0 <= out["masked_token_accuracy"] <= 1


def test_evaluate_perplexity_on_a_plain_hf_causal_lm_folder(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from multissl.data.tokenizers import load_tokenizer_spec, resolve_tokenizer
    from multissl.modalities.text.collators import CausalLMCollator

    torch.manual_seed(0)
    spec = tiny_gpt_lm_config().tokenizer_path
    tok = load_tokenizer_spec(spec)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64)).eval()
    lm.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    out = evaluate_perplexity(str(tmp_path / "hf"), "python_docs", split="test", batch_size=64, block_size=32,
                              progress=False)
    assert out["method"] == "causal_lm" and "masked_token_accuracy" not in out
    direct = perplexity(lm, load_dataset_by_name("python_docs", split="test"), CausalLMCollator(resolve_tokenizer(spec), 32),
                        batch_size=64, progress=False)
    assert out["tokens"] == direct["tokens"] > 1000
    assert out["perplexity"] == pytest.approx(direct["perplexity"], rel=1e-6)
