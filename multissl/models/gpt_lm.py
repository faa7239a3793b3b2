"""GPT-style causal language modelling: next-token prediction with teacher forcing on token blocks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from multissl.data.stream_blocks import group_text_blocks
from multissl.data.tokenizers import load_tokenizer_spec, resolve_tokenizer
from multissl.modalities.text.collators import CausalLMCollator
from multissl.modalities.text.tokenizer import causal_lm_tokenizer, check_vocab, tokenizer_spec_for
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import build_backbone, resolve_backbone_config, text_features
from multissl.objectives import next_token_loss

DEFAULT_TOKENIZER = "trained:python_docs/bpe/4000"
# A small GPT-2 for CPU runs; vocab size, context and special-token ids are filled in from the tokenizer.
DEFAULT_GPT2 = {"model_type": "gpt2", "n_embd": 128, "n_layer": 4, "n_head": 4}


class GPTLMConfig(MethodConfig):
    """Causal-LM settings; the model is any AutoModelForCausalLM (config dict or local `backbone_path`)."""

    model_type = "multissl_gpt_lm"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None,
                 tokenizer_path: str | None = None, block_size: int = 128, grouping: str = "group", **kwargs):
        self.tokenizer_path = tokenizer_path or backbone_path or DEFAULT_TOKENIZER
        cfg = resolve_backbone_config(backbone_config, backbone_path, DEFAULT_GPT2)
        if "vocab_size" not in cfg:  # a fresh config: take the vocabulary and special ids from the tokenizer
            tok = load_tokenizer_spec(self.tokenizer_path)
            eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
            # Training frames documents as `text </s>` and never shows <s>, so </s> is what precedes a
            # document: it is also the BOS generation starts from (as GPT-2's <|endoftext|>).
            cfg.update(vocab_size=len(tok), eos_token_id=eos, bos_token_id=eos,
                       pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos)
        context = cfg.get("n_positions", cfg.get("max_position_embeddings"))
        if context is None:
            cfg["n_positions" if cfg["model_type"] == "gpt2" else "max_position_embeddings"] = context = max(block_size, 64)
        if block_size > context:
            raise ValueError(f"block_size {block_size} exceeds the model's context of {context} positions")
        self.backbone_config, self.backbone_path = cfg, backbone_path
        self.block_size, self.grouping = block_size, grouping
        super().__init__(**kwargs)


@dataclass
class GPTLMOutput(ModelOutput):
    """loss: mean next-token NLL over real tokens; perplexity = exp(loss); token_accuracy of the argmax."""

    loss: torch.Tensor | None = None
    perplexity: torch.Tensor | None = None
    token_accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def make_gpt_lm_collator(config: GPTLMConfig, train: bool = True) -> CausalLMCollator:
    """Training: blocks of block_size tokens (documents joined by </s>); eval: one row per text."""
    spec = tokenizer_spec_for(config)
    check_vocab(config.backbone_config["vocab_size"], load_tokenizer_spec(spec), spec)
    return CausalLMCollator(resolve_tokenizer(spec), config.block_size, config.grouping, train)


def prepare_gpt_lm_dataset(config: GPTLMConfig, dataset):
    """Pre-group a text dataset into fixed blocks when grouping == 'group' (else unchanged)."""
    if config.grouping != "group" or "text" not in dataset.column_names:
        return dataset
    return group_text_blocks(dataset, load_tokenizer_spec(tokenizer_spec_for(config)), config.block_size, "eos")


def tiny_gpt_lm_config() -> GPTLMConfig:
    """A 2-layer, 32-wide random GPT-2 over a 320-piece BPE tokenizer trained on python_docs (cached)."""
    gpt2 = {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2}
    return GPTLMConfig(backbone_config=gpt2, tokenizer_path="trained:python_docs/bpe/320", block_size=32)


class GPTLMModel(MethodModel):
    """AutoModelForCausalLM backbone; forward -> next-token cross-entropy (shared objective)."""

    config_class = GPTLMConfig
    tiny_config = staticmethod(tiny_gpt_lm_config)
    make_collator = staticmethod(make_gpt_lm_collator)
    prepare_dataset = staticmethod(prepare_gpt_lm_dataset)
    base_model_prefix = "gpt_lm"
    main_input_name = "input_ids"
    backbone_auto_class = AutoModelForCausalLM

    def __init__(self, config: GPTLMConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config, AutoModelForCausalLM)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object) -> GPTLMOutput:
        logits = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # [B, T, V]
        loss = next_token_loss(logits, input_ids, attention_mask)
        with torch.no_grad():
            right = logits[:, :-1].argmax(-1) == input_ids[:, 1:]  # [B, T-1]
            real = attention_mask[:, 1:].bool() if attention_mask is not None else torch.ones_like(right)
            accuracy = (right & real).sum() / real.sum().clamp_min(1)
        return GPTLMOutput(loss=loss, perplexity=torch.exp(loss.detach()), token_accuracy=accuracy, logits=logits)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> torch.Tensor:
        """Mean-pooled last hidden states [B, D] over real tokens."""
        out = self.backbone.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return text_features(out, attention_mask, "avg")

    def encoder_for_export(self) -> PreTrainedModel:
        """The HF causal LM itself: the export loads with AutoModelForCausalLM and generates."""
        return self.backbone

    def inference_tokenizer(self):
        """The tokenizer as a causal LM's folder ships it: prompts get no </s> appended, batches pad on the left."""
        return causal_lm_tokenizer(load_tokenizer_spec(tokenizer_spec_for(self.config)))

    def save_export_extras(self, out_dir: Path) -> None:
        """Ship the (causal-LM) tokenizer with the exported model."""
        self.inference_tokenizer().save_pretrained(out_dir)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """save_pretrained + the (causal-LM) tokenizer, so the folder is self-contained."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        self.inference_tokenizer().save_pretrained(save_directory)
        return result
