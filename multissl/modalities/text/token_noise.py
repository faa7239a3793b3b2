"""A token-noise policy for strong text views: the knobs of noise_tokens plus the vocabulary tables a tokenizer gives.

`noise_tokens` (noise.py) is the vectorised operation on id tensors; this file is the part a method configures:
which probabilities (`TokenNoise`, validated once, built from a recipe's dict) and which ids may be inserted or must
be protected (`vocabulary_tables`, read once from the tokenizer). `WeakStrongSentences` turns unlabeled rows into
the two views semi-supervised text methods compare: the sentence as it is and its noised copy. Replacement ids exclude the special tokens and
bracketed placeholders such as BERT's ~1000 `[unused12]` or `<extra_id_0>`: a replacement drawn among them would be
a second, unseen kind of mask token rather than a plausible wrong word.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from numbers import Real
from typing import Any

import torch

from multissl.modalities.text.noise import noise_tokens
from multissl.modalities.text.sentences import SentenceCollator, load_tokenizer

_PLACEHOLDER = re.compile(r"^(\[[^\]]+\]|<[^>]+>)$")  # [unused3], [PAD], <extra_id_0>, <s>


@dataclass(frozen=True)
class VocabularyTables:
    """What noise needs from a tokenizer: ids never touched [S], ids a replacement may take [V'], mask and pad ids."""

    special_ids: torch.Tensor
    replacement_ids: torch.Tensor
    mask_token_id: int | None
    pad_token_id: int


def vocabulary_tables(tokenizer: Any) -> VocabularyTables:
    """The special ids, the replacement vocabulary (non-special, non-placeholder ids) and mask / pad ids of a tokenizer."""
    special = sorted(set(tokenizer.all_special_ids))
    vocab = tokenizer.get_vocab()  # token -> id
    replaceable = sorted(i for tok, i in vocab.items() if i not in set(special) and not _PLACEHOLDER.match(tok))
    if not replaceable:
        raise ValueError("the tokenizer has no ordinary (non-special, non-placeholder) token to replace with")
    pad = tokenizer.pad_token_id
    return VocabularyTables(torch.tensor(special, dtype=torch.long), torch.tensor(replaceable, dtype=torch.long),
                            tokenizer.mask_token_id, int(pad if pad is not None else 0))


@dataclass(frozen=True)
class TokenNoise:
    """Per-token probabilities: delete, replace by a random ordinary token, replace by the mask token; then swap
    neighbouring pairs with swap_prob (noise_tokens' rule). delete + replace + mask must be <= 1."""

    delete_prob: float = 0.0
    replace_prob: float = 0.0
    mask_prob: float = 0.0
    swap_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in KEYS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"noise.{name} must be a probability in [0, 1]; got {value!r}")
        total = self.delete_prob + self.replace_prob + self.mask_prob
        if total > 1.0 + 1e-9:
            raise ValueError(f"noise.delete_prob + replace_prob + mask_prob must be <= 1 (one draw per token picks at "
                             f"most one of them); got {total:g}")

    @classmethod
    def from_dict(cls, knobs: dict | None) -> TokenNoise:
        """A policy from a recipe's `noise:` mapping; an unknown key is one ValueError listing the allowed ones."""
        knobs = dict(knobs or {})
        unknown = sorted(set(knobs) - set(KEYS))
        if unknown:
            raise ValueError(f"noise: unknown key(s) {unknown}; allowed: {list(KEYS)}")
        return cls(**{k: float(v) if isinstance(v, Real) and not isinstance(v, bool) else v for k, v in knobs.items()})

    def to_dict(self) -> dict[str, float]:
        """The knobs as a plain dict (what a config stores)."""
        return asdict(self)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tables: VocabularyTables,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(noised ids [B, T], attention mask [B, T]) of right-padded ids/mask [B, T]; specials and padding untouched."""
        if self.mask_prob > 0 and tables.mask_token_id is None:
            raise ValueError("noise.mask_prob > 0 but the tokenizer has no mask token; set noise.mask_prob: 0")
        return noise_tokens(input_ids, attention_mask, delete_prob=self.delete_prob, replace_prob=self.replace_prob,
                            mask_prob=self.mask_prob, swap_prob=self.swap_prob, mask_token_id=tables.mask_token_id,
                            random_token_ids=tables.replacement_ids, pad_token_id=tables.pad_token_id,
                            special_ids=tables.special_ids, generator=generator)


KEYS = tuple(f.name for f in fields(TokenNoise))


class WeakStrongSentences:
    """Unlabeled rows -> {"weak_input_ids", "weak_attention_mask"} (the sentence as it is) and {"strong_input_ids",
    "strong_attention_mask"} (the same ids through `noise`, from the batch's generator), all [N, T]. Only
    `text_column` is read, so no label can pass."""

    def __init__(self, tokenizer_path: str, max_length: int, noise: TokenNoise, text_column: str = "text"):
        self.encode = SentenceCollator(tokenizer_path, max_length, (text_column,))
        self.tokenizer_path, self.noise, self.text_column = tokenizer_path, noise, text_column
        self._tables: VocabularyTables | None = None

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self._tables is None:  # once per collator (and per loader worker)
            self._tables = vocabulary_tables(load_tokenizer(self.tokenizer_path))
        weak = self.encode([{self.text_column: r.get(self.text_column)} for r in rows])  # [N, T]
        ids, mask = self.noise(weak["input_ids"], weak["attention_mask"], self._tables, generator)  # [N, T]
        return {"weak_input_ids": weak["input_ids"], "weak_attention_mask": weak["attention_mask"],
                "strong_input_ids": ids, "strong_attention_mask": mask}
