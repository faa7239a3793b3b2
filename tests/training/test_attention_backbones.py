"""`train.attention` on every transformer backbone multissl trains: BERT (MLM, SimCSE), GPT-2 (next token), ViT (MAE,
CLIP's image tower) and CLIP's BERT text tower. For each method's tiny model: the setting reaches every attention
layer (each layer's config says it, and sdpa runs exactly one transformers SDPA call per layer, eager none), and
the loss is the same function under both (eval mode: dropout off, so both compute it deterministically)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from unittest import mock

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from multissl.models.bert_mlm import BertMLMModel
from multissl.models.clip import TINY_BERT, ClipConfig, ClipModel
from multissl.models.gpt_lm import GPTLMConfig, GPTLMModel
from multissl.models.mae import TINY_VIT, MAEModel
from multissl.models.simcse import SimCSEModel
from multissl.paths import MINILM
from multissl.training.config import TrainArgs
from multissl.training.performance import _transformers, apply_model_settings

CPU = torch.device("cpu")


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _text(vocab: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and an attention mask with right padding (rows of different lengths), so masks are exercised."""
    ids = torch.randint(5, vocab, shape, generator=_g(1))
    lengths = torch.randint(shape[-1] // 2, shape[-1] + 1, shape[:-1], generator=_g(2))
    mask = (torch.arange(shape[-1]) < lengths.unsqueeze(-1)).long()
    return ids * mask, mask


def _bert_mlm() -> tuple[nn.Module, dict]:
    config = BertMLMModel.tiny_config()
    config.backbone_config = dict(config.backbone_config, vocab_size=64)  # a small embedding is enough here
    ids, mask = _text(64, (3, 12))
    labels = torch.where((torch.rand(3, 12, generator=_g(3)) < 0.3) & (mask > 0), ids, torch.full_like(ids, -100))
    labels[:, 0] = ids[:, 0]
    return BertMLMModel(config), {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _simcse() -> tuple[nn.Module, dict]:
    ids, mask = _text(1000, (3, 3, 10))  # supervised form [B, K, T]: anchor, positive, hard negative
    return SimCSEModel(SimCSEModel.tiny_config()), {"input_ids": ids, "attention_mask": mask}


def _gpt_lm() -> tuple[nn.Module, dict]:
    config = GPTLMConfig(backbone_config={"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 64,
                                          "n_positions": 64}, block_size=16)
    ids, mask = _text(64, (3, 16))
    return GPTLMModel(config), {"input_ids": ids, "attention_mask": mask}


def _mae() -> tuple[nn.Module, dict]:
    config = MAEModel.tiny_config()
    config.backbone_config = dict(TINY_VIT, num_hidden_layers=2)
    n = (TINY_VIT["image_size"] // TINY_VIT["patch_size"]) ** 2
    batch = {"pixel_values": torch.randn(2, 3, 16, 16, generator=_g(4)), "noise": torch.rand(2, n, generator=_g(5))}
    return MAEModel(config), batch


def _clip_vit() -> tuple[nn.Module, dict]:
    vit = dict(TINY_VIT, num_hidden_layers=2)  # both towers transformers: ViT images, BERT text
    config = ClipConfig(vision_backbone_config=vit, text_backbone_config=TINY_BERT, tokenizer_path=MINILM,
                        image_size=16, projection_dim=8, max_seq_length=16)
    ids, mask = _text(1000, (3, 10))
    batch = {"pixel_values": torch.randn(3, 3, 16, 16, generator=_g(6)), "input_ids": ids, "attention_mask": mask,
             "return_loss": True}
    return ClipModel(config), batch


CASES: dict[str, tuple[Callable[[], tuple[nn.Module, dict]], list[str]]] = {
    "bert_mlm": (_bert_mlm, ["backbone"]),
    "simcse": (_simcse, ["backbone"]),
    "gpt_lm": (_gpt_lm, ["backbone"]),
    "mae": (_mae, ["backbone"]),
    "clip_vit_bert": (_clip_vit, ["vision_model", "text_model"]),
}


def _build(case: str, attention: str) -> tuple[nn.Module, dict, list[str]]:
    make, towers = CASES[case]
    torch.manual_seed(0)  # the same weights under both settings
    model, batch = make()
    notes = apply_model_settings(model, TrainArgs(attention=attention), CPU)
    return model.eval(), batch, notes


def _transformers_sdpa_calls(model: nn.Module, batch: dict) -> tuple[int, torch.Tensor]:
    """(SDPA calls made by transformers' attention code, loss). Calls from torch's own nn.MultiheadAttention (MAE's
    decoder) do not count: only the backbones' layers are switched by `train.attention`."""
    real, calls = torch.nn.functional.scaled_dot_product_attention, []

    def spy(*args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__", "").startswith("transformers."):
            calls.append(1)
        return real(*args, **kwargs)

    with mock.patch("torch.nn.functional.scaled_dot_product_attention", new=spy), torch.no_grad():
        loss = model(**batch).loss
    return len(calls), loss


@pytest.mark.parametrize("case", list(CASES))
def test_attention_reaches_every_layer_of_every_transformer_backbone(case):
    towers = CASES[case][1]
    runs = {}
    for attention in ("eager", "sdpa"):
        model, batch, notes = _build(case, attention)
        assert notes == [f"attention={attention} ({', '.join(towers)})"]
        found = _transformers(model)
        assert [n for n, _ in found] == towers
        configs = [m.config for _, tower in found for m in tower.modules() if isinstance(getattr(m, "config", None),
                                                                                        PretrainedConfig)]
        assert configs and all(c._attn_implementation == attention for c in configs)
        layers = sum(tower.config.num_hidden_layers for _, tower in found)  # GPT-2: n_layer
        runs[attention] = (*_transformers_sdpa_calls(model, batch), layers)
    (n_eager, loss_eager, layers), (n_sdpa, loss_sdpa, _) = runs["eager"], runs["sdpa"]
    assert (n_eager, n_sdpa) == (0, layers)  # one SDPA call per attention layer, none under eager
    assert torch.isfinite(loss_eager)
    torch.testing.assert_close(loss_sdpa, loss_eager, rtol=0.0, atol=1e-5)
