"""SimCSE pooling: the MiniLM recipe trains and embeds with attention-masked mean pooling, as MiniLM was trained."""
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from multissl.models.simcse import SimCSEConfig, SimCSEModel, make_simcse_collator, tiny_simcse_config
from multissl.paths import MINILM, resolve_local_path
from multissl.registry import get_method
from multissl.training import build_model, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TEXTS = ["Return the value.", "Open the file named by path and return a stream; raise OSError on failure.", "Sort it."]


def _recipe_model(name: str, **overrides) -> SimCSEModel:
    recipe = load_recipe(RECIPES / name)
    spec = get_method(recipe.method)
    return build_model(spec, spec.config_class(**{**recipe.model, **overrides}))


def test_minilm_recipe_embeds_like_sentence_transformers_mean_pooling():
    model = _recipe_model("simcse_minilm.yaml").eval()
    assert model.config.pooler == "avg" and isinstance(model.mlp, torch.nn.Identity)
    batch = make_simcse_collator(model.config, train=False)([{"text": t} for t in TEXTS])
    emb = model.embed(**batch)  # [3, 384]
    # Independent reference: the checkpoint through plain transformers, mean over each text's own tokens, one by one.
    path = str(resolve_local_path(MINILM))
    ref_model, tok = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            enc = tok(text, return_tensors="pt", truncation=True, max_length=model.config.max_seq_length)
            expect = ref_model(**enc).last_hidden_state[0].mean(0)  # [384], no padding at all
            assert torch.allclose(emb[i], expect, atol=1e-5)
    assert batch["attention_mask"].sum(1).tolist() != [batch["input_ids"].shape[1]] * 3  # padding was present


def test_training_loss_uses_the_features_embed_returns():
    cfg = SimCSEConfig(backbone_config=tiny_simcse_config().backbone_config, tokenizer_path=MINILM, pooler="avg")
    model = SimCSEModel(cfg).eval()
    batch = make_simcse_collator(cfg, train=False)([{"text": t} for t in TEXTS])
    out = model(**batch)  # eval mode: no dropout, so view 1 of the loss is exactly the embedding
    assert torch.allclose(out.embeddings, model.embed(**batch), atol=1e-6)
    cls = SimCSEModel(SimCSEConfig(backbone_config=cfg.backbone_config, tokenizer_path=MINILM, pooler="cls")).eval()
    assert not torch.allclose(cls(**batch).embeddings, cls.embed(**batch))  # cls trains through an MLP embed drops


def test_simcse_from_an_exported_mlm_encoder(tmp_path):
    from multissl.models.bert_mlm import BertMLMModel, tiny_bert_mlm_config

    mlm = BertMLMModel(tiny_bert_mlm_config())
    enc = mlm.save_encoder(tmp_path / "encoder")  # what `multissl export` writes: BertForMaskedLM + tokenizer
    model = _recipe_model("simcse_from_mlm.yaml", backbone_path=str(enc), max_seq_length=mlm.config.block_size).eval()
    assert model.config.pooler == "avg" and model.config.tokenizer_path == str(enc)
    w = "embeddings.word_embeddings.weight"
    assert torch.equal(model.backbone.state_dict()[w], mlm.backbone.base_model.state_dict()[w])
    rows = [{"text": t} for t in TEXTS]
    mlm_batch = type(mlm).make_collator(mlm.config, train=False)(rows)
    batch = make_simcse_collator(model.config, train=False)(rows)
    assert torch.equal(batch["input_ids"], mlm_batch["input_ids"])  # same tokenizer, framing and truncation
    with torch.no_grad():  # at step 0 SimCSE embeds exactly like the MLM it starts from (both mean-pool)
        assert torch.allclose(model.embed(**batch), mlm.eval().embed(**mlm_batch), atol=1e-5)


def test_unknown_pooler_is_a_clear_error():
    with pytest.raises(ValueError, match="pooler must be one of"):
        SimCSEConfig(backbone_config=tiny_simcse_config().backbone_config, pooler="mean")
