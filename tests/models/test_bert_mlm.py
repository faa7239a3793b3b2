"""bert_mlm: loss equals transformers' own MLM loss, NSP head, MiniLM continued pre-training, tiny speed."""

import torch
from transformers import AutoModel

from multissl.data import load_dataset_by_name
from multissl.models.bert_mlm import BertMLMConfig, BertMLMModel, make_bert_mlm_collator, tiny_bert_mlm_config
from multissl.paths import MINILM
from multissl.registry import get_method
from multissl.training.loop import build_model


def rows(n=8):
    ds = load_dataset_by_name("python_docs", split="train").select(range(n))
    return [{"text": t} for t in ds["text"]]


def test_loss_and_accuracy_match_transformers_masked_lm_loss():
    torch.manual_seed(0)
    config = tiny_bert_mlm_config()
    model = BertMLMModel(config).eval()
    batch = make_bert_mlm_collator(config)(rows(), generator=torch.Generator().manual_seed(0))
    out = model(**batch)
    reference = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    assert torch.allclose(out.loss, reference.loss, atol=1e-6)
    chosen = batch["labels"] != -100
    expected_acc = (reference.logits.argmax(-1)[chosen] == batch["labels"][chosen]).float().mean()
    assert torch.allclose(out.masked_accuracy, expected_acc) and torch.allclose(out.perplexity, out.loss.exp())


def test_tiny_config_is_small_and_trains():
    config = tiny_bert_mlm_config()
    model = BertMLMModel(config)
    batch = make_bert_mlm_collator(config)(rows(), generator=torch.Generator().manual_seed(0))
    loss = model(**batch).loss
    loss.backward()
    # Speed is measured in benchmarks/, never timed in a test: a tiny config is tiny in parameters.
    assert sum(p.numel() for p in model.parameters()) < 300_000 and torch.isfinite(loss)


def test_next_sentence_head_adds_its_cross_entropy():
    torch.manual_seed(0)
    base = tiny_bert_mlm_config()
    config = BertMLMConfig(backbone_config=base.backbone_config, tokenizer_path=base.tokenizer_path, block_size=32,
                           grouping="line", next_sentence=True)
    model = BertMLMModel(config).eval()
    batch = make_bert_mlm_collator(config)(rows(), generator=torch.Generator().manual_seed(1))
    assert set(batch) >= {"token_type_ids", "next_sentence_label"}
    out = model(**batch)
    hidden = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"], output_hidden_states=True).hidden_states[-1]
    nsp = torch.nn.functional.cross_entropy(model.nsp_head(hidden[:, 0]), batch["next_sentence_label"])
    assert torch.allclose(out.nsp_loss, nsp, atol=1e-6)
    # Perplexity and accuracy describe the token predictions alone: the NSP term must not leak into them.
    mlm = torch.nn.functional.cross_entropy(model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                                           token_type_ids=batch["token_type_ids"]).logits.flatten(0, 1),
                                            batch["labels"].flatten(), ignore_index=-100)
    assert torch.allclose(out.mlm_loss, mlm, atol=1e-6) and torch.allclose(out.loss, mlm + nsp, atol=1e-6)
    assert torch.allclose(out.perplexity, mlm.exp(), rtol=1e-5)
    assert not torch.allclose(out.perplexity, out.loss.exp(), rtol=1e-3)
    chosen = batch["labels"] != -100
    expected_acc = (out.logits.argmax(-1)[chosen] == batch["labels"][chosen]).float().mean()
    assert torch.allclose(out.masked_accuracy, expected_acc)
    out.loss.backward()
    assert model.nsp_head.weight.grad is not None


def test_continued_pretraining_from_the_real_minilm_checkpoint():
    spec = get_method("bert_mlm")
    config = BertMLMConfig(backbone_path=MINILM, block_size=32)
    assert config.tokenizer_path == MINILM and config.backbone_config["vocab_size"] == 30522
    model = build_model(spec, config).eval()  # the loop's builder loads the checkpoint's weights
    from multissl.paths import resolve_local_path

    plain = AutoModel.from_pretrained(resolve_local_path(MINILM)).eval()
    batch = make_bert_mlm_collator(config, train=False)(rows(2))
    with torch.no_grad():
        ours = model.backbone.base_model(**batch).last_hidden_state
        theirs = plain(**batch).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)
    model.train()
    train_batch = make_bert_mlm_collator(config)(rows(4), generator=torch.Generator().manual_seed(0))
    out = model(**train_batch)
    assert torch.isfinite(out.loss) and 0 <= out.masked_accuracy <= 1
