"""SimCSE (Gao et al. 2021): sentence embeddings by contrasting two dropout views (unsup) or NLI-style triplets (sup)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.modalities.text.sentences import SentenceCollator, load_tokenizer
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import build_backbone, resolve_backbone_config, text_features
from multissl.objectives import info_nce
from multissl.paths import MINILM

POOLERS = ("cls", "cls_before_pooler", "avg")
# Default "avg" (attention-masked mean): the default backbone, all-MiniLM-L6-v2, was trained with mean pooling, and
# SimCSE with "cls" on it starts from a worse embedding than MiniLM's own (the paper's "cls" is for BERT starts).


class SimCSEConfig(MethodConfig):
    """SimCSE settings; the text encoder is any HF AutoModel (config dict or local `backbone_path`)."""

    model_type = "multissl_simcse"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None,
                 tokenizer_path: str | None = None, pooler: str = "avg", loss_temperature: float = 0.05,
                 max_seq_length: int = 32, supervised: bool = False, text_columns: list[str] | None = None,
                 gather_distributed: bool = True, **kwargs):
        if pooler not in POOLERS:
            raise ValueError(f"pooler must be one of {POOLERS}; got {pooler!r}")
        if backbone_config is None and backbone_path is None:
            backbone_path = MINILM  # the offline default: real all-MiniLM-L6-v2 weights from its pip package
        self.backbone_config = resolve_backbone_config(backbone_config, backbone_path, {})
        self.backbone_path = backbone_path
        self.tokenizer_path = tokenizer_path or backbone_path or MINILM
        self.pooler = pooler
        self.loss_temperature = loss_temperature
        self.max_seq_length = max_seq_length
        self.supervised = supervised
        # Unsupervised: one text column seen twice; supervised: (sentence, positive, hard negative).
        self.text_columns = list(text_columns or (["text", "positive", "negative"] if supervised else ["text"]))
        if supervised and len(self.text_columns) not in (2, 3):
            raise ValueError(f"supervised SimCSE needs 2 or 3 text_columns (anchor, positive[, hard negative]); got {self.text_columns}")
        self.gather_distributed = gather_distributed
        super().__init__(**kwargs)


@dataclass
class SimCSEOutput(ModelOutput):
    """loss: InfoNCE; alignment: mean cosine between positive pairs."""

    loss: torch.Tensor | None = None
    alignment: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


def make_simcse_collator(config: SimCSEConfig, train: bool = True) -> SentenceCollator:
    """Training: [B, K, T] for supervised triplets, [B, T] for unsupervised; eval: [B, T] of the first column."""
    columns = tuple(config.text_columns) if (train and config.supervised) else (config.text_columns[0],)
    return SentenceCollator(config.tokenizer_path, config.max_seq_length, columns)


def tiny_simcse_config() -> SimCSEConfig:
    """A 2-layer, 32-wide random BERT over the MiniLM tokenizer's vocabulary (tests)."""
    bert = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 64}
    return SimCSEConfig(backbone_config=bert, tokenizer_path=MINILM, max_seq_length=16)


class SimCSEModel(MethodModel):
    """Text encoder + pooler (+ MLP over CLS for pooler='cls', as in SimCSE); forward -> InfoNCE loss."""

    config_class = SimCSEConfig
    tiny_config = staticmethod(tiny_simcse_config)
    make_collator = staticmethod(make_simcse_collator)
    base_model_prefix = "simcse"
    main_input_name = "input_ids"

    def __init__(self, config: SimCSEConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        if getattr(self.backbone, "pooler", None) is not None:
            # We pool from last_hidden_state; an unused trainable pooler would break DDP (unused parameters).
            self.backbone.pooler.requires_grad_(False)
        hidden = self.backbone.config.hidden_size
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh()) if config.pooler == "cls" else nn.Identity()
        self.post_init()

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return text_features(out, attention_mask, self.config.pooler)  # [N, D]

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings [B, D] (the MLP is a training-time head, as in the paper's unsup setting)."""
        return self._encode(input_ids, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> SimCSEOutput:
        if input_ids.dim() == 2:  # unsupervised: the same sentences twice, dropout is the only noise
            b = input_ids.shape[0]
            ids, mask, k = input_ids.repeat(2, 1), attention_mask.repeat(2, 1), 2  # [2B, T]
            z = self.mlp(self._encode(ids, mask)).view(2, b, -1).transpose(0, 1)  # [B, 2, D]
        elif input_ids.dim() == 3:  # supervised: [B, K, T] anchor, positive(, hard negative)
            b, k, t = input_ids.shape
            z = self.mlp(self._encode(input_ids.reshape(b * k, t), attention_mask.reshape(b * k, t))).view(b, k, -1)
        else:
            raise ValueError(f"input_ids must be [B, T] (unsup) or [B, K, T] (sup); got {tuple(input_ids.shape)}")
        hard = z[:, 2] if k == 3 else None  # [B, D]: each anchor also contrasts with every hard negative
        loss = info_nce(z[:, 0], z[:, 1], negative_keys=hard, temperature=self.config.loss_temperature,
                        in_batch_negatives=True, gather_distributed=self.config.gather_distributed)
        align = nn.functional.cosine_similarity(z[:, 0], z[:, 1], dim=-1).mean().detach()
        return SimCSEOutput(loss=loss, alignment=align, embeddings=z[:, 0].detach())

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF text encoder (the MLP is dropped, as SimCSE does at test time)."""
        return self.backbone

    def save_export_extras(self, out_dir: Path) -> None:
        """Ship the tokenizer with the exported encoder."""
        load_tokenizer(self.config.tokenizer_path).save_pretrained(out_dir)
