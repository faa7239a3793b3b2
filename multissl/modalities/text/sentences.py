"""Sentence batches for contrastive text methods (SimCSE): tokenised singles, pairs or triplets."""
from __future__ import annotations

from functools import lru_cache

import torch

from multissl.paths import resolve_local_path


@lru_cache(maxsize=8)
def load_tokenizer(path: str):
    """A transformers tokenizer from a local folder (or pkg: path); cached per process."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_local_path(path)))


def _text(row: dict, column: str, index: int) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise ValueError(f"row {index}: column {column!r} must be a string, got {type(value).__name__} (columns: {sorted(row)})")
    if not value.strip():
        raise ValueError(f"row {index}: column {column!r} is empty; drop empty texts before training")
    return value


class SentenceCollator:
    """Rows -> {"input_ids", "attention_mask"}: [B, T] for `columns=("text",)`, [B, K, T] for K columns."""

    def __init__(self, tokenizer_path: str, max_length: int, columns: tuple[str, ...] = ("text",)):
        self.tokenizer_path, self.max_length, self.columns = tokenizer_path, max_length, tuple(columns)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        tok = load_tokenizer(self.tokenizer_path)
        texts = [_text(r, c, i) for i, r in enumerate(rows) for c in self.columns]  # row-major: [B*K]
        # Longer texts are truncated to max_length tokens (documented in docs/methods.md).
        enc = tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        k = len(self.columns)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if k > 1:
            out = {name: t.view(len(rows), k, -1) for name, t in out.items()}
        return out
