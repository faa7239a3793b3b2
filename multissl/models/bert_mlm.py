"""BERT-style masked language modelling (Devlin et al. 2019): predict 15% masked tokens, optional next-sentence head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, PreTrainedModel
from transformers.utils import ModelOutput

from multissl.data.stream_blocks import group_text_blocks
from multissl.data.tokenizers import load_tokenizer_spec, resolve_tokenizer
from multissl.modalities.text.collators import MLMCollator
from multissl.modalities.text.tokenizer import check_vocab, tokenizer_spec_for
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import build_backbone, resolve_backbone_config, text_features
from multissl.objectives import masked_token_loss

DEFAULT_TOKENIZER = "trained:python_docs/unigram/4000"
# A small BERT for CPU runs; vocab_size and max_position_embeddings are filled in from the tokenizer / block_size.
DEFAULT_BERT = {"model_type": "bert", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 512}


class BertMLMConfig(MethodConfig):
    """Masked-LM settings; the encoder is any AutoModelForMaskedLM (config dict or local `backbone_path`)."""

    model_type = "multissl_bert_mlm"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None,
                 tokenizer_path: str | None = None, block_size: int = 128, grouping: str = "group",
                 mlm_probability: float = 0.15, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                 whole_word_mask: bool = False, next_sentence: bool = False, **kwargs):
        self.tokenizer_path = tokenizer_path or backbone_path or DEFAULT_TOKENIZER
        cfg = resolve_backbone_config(backbone_config, backbone_path, DEFAULT_BERT)
        if "vocab_size" not in cfg:  # only for a fresh config: a saved one always carries its vocab size
            tok = load_tokenizer_spec(self.tokenizer_path)
            cfg.update(vocab_size=len(tok), pad_token_id=tok.pad_token_id or 0)
        cfg.setdefault("max_position_embeddings", max(block_size, 64))
        if block_size > cfg["max_position_embeddings"]:
            raise ValueError(f"block_size {block_size} exceeds the encoder's max_position_embeddings {cfg['max_position_embeddings']}")
        self.backbone_config, self.backbone_path = cfg, backbone_path
        self.block_size, self.grouping = block_size, grouping
        self.mlm_probability, self.mask_replace_prob, self.random_replace_prob = mlm_probability, mask_replace_prob, random_replace_prob
        self.whole_word_mask, self.next_sentence = whole_word_mask, next_sentence
        super().__init__(**kwargs)


@dataclass
class BertMLMOutput(ModelOutput):
    """loss: masked-token CE (+ NSP CE); mlm_loss, masked_accuracy and perplexity = exp(mlm_loss) cover the MLM term only."""

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    masked_accuracy: torch.Tensor | None = None
    perplexity: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def make_bert_mlm_collator(config: BertMLMConfig, train: bool = True) -> MLMCollator:
    """Training: masked blocks with labels (fresh masks per call); eval: unmasked, one row per text."""
    spec = tokenizer_spec_for(config)
    check_vocab(config.backbone_config["vocab_size"], load_tokenizer_spec(spec), spec)
    return MLMCollator(resolve_tokenizer(spec), config.block_size, config.grouping, train, config.mlm_probability,
                       config.mask_replace_prob, config.random_replace_prob, config.whole_word_mask, config.next_sentence)


def prepare_bert_mlm_dataset(config: BertMLMConfig, dataset):
    """Pre-group a text dataset into fixed [CLS] ... [SEP] blocks when grouping == 'group' (else unchanged)."""
    if config.grouping != "group" or config.next_sentence or "text" not in dataset.column_names:
        return dataset
    return group_text_blocks(dataset, load_tokenizer_spec(tokenizer_spec_for(config)), config.block_size, "bert")


def tiny_bert_mlm_config() -> BertMLMConfig:
    """A 2-layer, 32-wide random BERT over a 320-piece BPE tokenizer trained on python_docs (cached)."""
    bert = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64}
    return BertMLMConfig(backbone_config=bert, tokenizer_path="trained:python_docs/bpe/320", block_size=32)


class BertMLMModel(MethodModel):
    """AutoModelForMaskedLM backbone; forward -> masked-token cross-entropy (shared objective)."""

    config_class = BertMLMConfig
    tiny_config = staticmethod(tiny_bert_mlm_config)
    make_collator = staticmethod(make_bert_mlm_collator)
    prepare_dataset = staticmethod(prepare_bert_mlm_dataset)
    base_model_prefix = "bert_mlm"
    main_input_name = "input_ids"
    backbone_auto_class = AutoModelForMaskedLM  # the loop loads backbone_path weights with this class

    def __init__(self, config: BertMLMConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config, AutoModelForMaskedLM)
        hidden = self.backbone.config.hidden_size
        self.nsp_head = nn.Linear(hidden, 2) if config.next_sentence else None
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, next_sentence_label: torch.Tensor | None = None,
                **_: object) -> BertMLMOutput:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=self.nsp_head is not None, **extra)
        logits = out.logits  # [B, T, V]
        mlm_loss = masked_token_loss(logits, labels)
        chosen = labels != -100  # [B, T]
        hits = (logits.detach().argmax(-1) == labels) & chosen
        accuracy = hits.sum() / chosen.sum().clamp_min(1)
        nsp_loss = None
        if self.nsp_head is not None:
            if next_sentence_label is None:
                raise ValueError("next_sentence=True: the batch needs next_sentence_label (use the bert_mlm collator)")
            nsp_logits = self.nsp_head(out.hidden_states[-1][:, 0])  # [B, 2] from the [CLS] state
            nsp_loss = nn.functional.cross_entropy(nsp_logits, next_sentence_label)
        loss = mlm_loss if nsp_loss is None else mlm_loss + nsp_loss
        # Perplexity is a property of the token predictions: exp of the MLM term alone, never of MLM + NSP.
        return BertMLMOutput(loss=loss, mlm_loss=mlm_loss.detach(), masked_accuracy=accuracy.detach(),
                             perplexity=torch.exp(mlm_loss.detach()),
                             nsp_loss=None if nsp_loss is None else nsp_loss.detach(), logits=logits)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> torch.Tensor:
        """Mean-pooled last hidden states [B, D] over real (unpadded) tokens."""
        out = self.backbone.base_model(input_ids=input_ids, attention_mask=attention_mask)
        return text_features(out, attention_mask, "avg")

    def encoder_for_export(self) -> PreTrainedModel:
        """The HF masked-LM model (loads with AutoModelForMaskedLM, or AutoModel for the bare encoder)."""
        return self.backbone

    def save_export_extras(self, out_dir: Path) -> None:
        """Ship the tokenizer with the exported encoder."""
        load_tokenizer_spec(tokenizer_spec_for(self.config)).save_pretrained(out_dir)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """save_pretrained + the tokenizer, so the folder is self-contained."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        load_tokenizer_spec(tokenizer_spec_for(self.config)).save_pretrained(save_directory)
        return result
