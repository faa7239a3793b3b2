"""SimCSE: unsupervised / supervised losses, poolers, real MiniLM weights, bad input."""
import pytest
import torch

from multissl.models.simcse import SimCSEConfig, SimCSEModel, make_simcse_collator, tiny_simcse_config
from multissl.objectives import info_nce
from multissl.paths import MINILM
from multissl.registry import get_method
from multissl.training import build_model, recipe_from_dict, train

ROWS = [{"text": "the cat sat", "positive": "a cat was sitting", "negative": "stocks fell sharply"},
        {"text": "open the file", "positive": "the file is opened", "negative": "a dog barked"},
        {"text": "sort a list", "positive": "list sorting", "negative": "rain in spain"}]


def test_unsupervised_loss_is_info_nce_of_two_dropout_passes():
    cfg = tiny_simcse_config()
    model = SimCSEModel(cfg).train()
    batch = make_simcse_collator(cfg)(ROWS)
    assert batch["input_ids"].dim() == 2
    torch.manual_seed(0)
    out = model(**batch)
    torch.manual_seed(0)  # replay the same dropout masks by hand
    z = model.mlp(model._encode(batch["input_ids"].repeat(2, 1), batch["attention_mask"].repeat(2, 1)))
    expect = info_nce(z[:3], z[3:], temperature=0.05)
    assert out.loss.item() == pytest.approx(expect.item(), rel=1e-5)
    model.eval()  # without dropout the two views coincide: loss is the in-batch classification of identical pairs
    assert model(**batch).alignment.item() == pytest.approx(1.0, abs=1e-5)


def test_supervised_uses_hard_negatives():
    cfg = SimCSEConfig(backbone_config=tiny_simcse_config().backbone_config, tokenizer_path=MINILM, supervised=True, max_seq_length=16)
    model = SimCSEModel(cfg).eval()
    batch = make_simcse_collator(cfg)(ROWS)
    assert batch["input_ids"].shape[:2] == (3, 3)
    out = model(**batch)
    b, k, t = batch["input_ids"].shape
    z = model.mlp(model._encode(batch["input_ids"].view(b * k, t), batch["attention_mask"].view(b * k, t))).view(b, k, -1)
    expect = info_nce(z[:, 0], z[:, 1], negative_keys=z[:, 2], temperature=0.05, in_batch_negatives=True)
    assert out.loss.item() == pytest.approx(expect.item(), rel=1e-5)
    assert make_simcse_collator(cfg, train=False)(ROWS)["input_ids"].dim() == 2  # eval embeds the anchor only


@pytest.mark.parametrize("pooler", ["cls", "cls_before_pooler", "avg"])
def test_poolers(pooler):
    cfg = SimCSEConfig(backbone_config=tiny_simcse_config().backbone_config, tokenizer_path=MINILM, pooler=pooler)
    model = SimCSEModel(cfg).eval()
    batch = make_simcse_collator(cfg, train=False)(ROWS)
    emb = model.embed(**batch)
    hidden = model.backbone(**batch).last_hidden_state
    if pooler == "avg":
        m = batch["attention_mask"].unsqueeze(-1).float()
        assert torch.allclose(emb, (hidden * m).sum(1) / m.sum(1), atol=1e-6)
    else:
        assert torch.allclose(emb, hidden[:, 0], atol=1e-6)
    assert isinstance(model.mlp, torch.nn.Sequential) == (pooler == "cls")
    with pytest.raises(ValueError, match="pooler must be one of"):
        SimCSEConfig(backbone_config=cfg.backbone_config, pooler="max")


def test_real_minilm_checkpoint_is_loaded_and_trains(tmp_path):
    from transformers import AutoModel

    spec = get_method("simcse")
    model = build_model(spec, SimCSEConfig(backbone_path=MINILM))
    ref = AutoModel.from_pretrained(str(__import__("multissl.paths", fromlist=["x"]).resolve_local_path(MINILM)))
    w = "embeddings.word_embeddings.weight"
    assert torch.equal(model.backbone.state_dict()[w], ref.state_dict()[w])  # real weights, not random init
    recipe = recipe_from_dict({"method": "simcse", "dataset": "python_docs",
                               "model": {"backbone_path": MINILM, "max_seq_length": 24},
                               "train": {"max_steps": 3, "batch_size": 8, "learning_rate": 3e-5, "log_every": 1, "progress": False}})
    res = train(recipe, tmp_path / "run")
    assert len(res.losses) == 3 and all(l == l for l in res.losses)
    trained = AutoModel.from_pretrained(res.final_dir)
    assert not torch.equal(trained.backbone.state_dict()[w], ref.state_dict()[w])  # it moved


def test_empty_or_missing_text_is_a_clear_error():
    collate = make_simcse_collator(tiny_simcse_config())
    with pytest.raises(ValueError, match="row 1: column 'text' is empty"):
        collate([{"text": "ok"}, {"text": "   "}])
    with pytest.raises(ValueError, match="row 0: column 'text' must be a string"):
        collate([{"sentence": "x"}])
