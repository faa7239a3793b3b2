"""Collators for language modelling: rows of text (or pre-grouped blocks) -> masked-LM or causal-LM batches."""
from __future__ import annotations

from functools import cached_property

import torch

from multissl.modalities.text.blocks import framing, pack_blocks, pad_rows, tokenize_framed
from multissl.modalities.text.masking import mask_tokens, word_start_table
from multissl.modalities.text.tokenizer import get_tokenizer

GROUPINGS = ("group", "line")


class TextBlockCollator:
    """Rows -> (ids [N, T], mask [N, T]).

    Rows holding `input_ids` (blocks made by `group_texts`) are stacked as they are. Rows holding
    `text` are framed and either packed into block_size blocks across the batch ("group"; the last
    block is padded, N varies with the batch's length) or kept one per row and truncated ("line").
    """

    def __init__(self, tokenizer: str, block_size: int, style: str, grouping: str = "group"):
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {GROUPINGS}; got {grouping!r}")
        self.tokenizer_spec, self.block_size, self.style, self.grouping = tokenizer, block_size, style, grouping

    @property
    def tokenizer(self):
        return get_tokenizer(self.tokenizer_spec)

    @cached_property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else framing(self.tokenizer, self.style)[1][0])

    def encode(self, rows: list[dict], grouping: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask [N, T] for the rows."""
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        if "input_ids" in rows[0]:
            ids = torch.tensor([r["input_ids"] for r in rows], dtype=torch.long)
            return ids, torch.ones_like(ids)
        if "text" not in rows[0]:
            raise ValueError(f"text rows need a 'text' column (or pre-grouped 'input_ids'); got columns {sorted(rows[0])}")
        tokens = tokenize_framed(self.tokenizer, [r["text"] for r in rows], self.style)
        if (grouping or self.grouping) == "group":
            return pack_blocks(tokens, self.block_size, self.pad_id)
        return pad_rows(tokens, self.block_size, self.pad_id, keep_last=framing(self.tokenizer, self.style)[1])


class CausalLMCollator(TextBlockCollator):
    """{"input_ids", "attention_mask"} [N, T] for next-token prediction (targets are the inputs shifted by one)."""

    def __init__(self, tokenizer: str, block_size: int, grouping: str = "group", train: bool = True):
        super().__init__(tokenizer, block_size, "eos", grouping if train else "line")

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        ids, mask = self.encode(rows)
        return {"input_ids": ids, "attention_mask": mask}


class MLMCollator(TextBlockCollator):
    """Masked-LM batches: {"input_ids" (masked), "attention_mask", "labels"} [N, T], masks drawn fresh per call.

    train=False gives unmasked {"input_ids", "attention_mask"}, one row per text (for `embed`).
    next_sentence=True builds `[CLS] A [SEP] B [SEP]` pairs from each text's two halves, B replaced
    by another row's second half half the time, and adds token_type_ids and next_sentence_label.
    """

    def __init__(self, tokenizer: str, block_size: int, grouping: str = "group", train: bool = True,
                 mlm_probability: float = 0.15, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                 whole_word_mask: bool = False, next_sentence: bool = False):
        super().__init__(tokenizer, block_size, "bert", grouping if train else "line")
        self.train, self.next_sentence = train, next_sentence
        self.mlm_probability, self.whole_word_mask = mlm_probability, whole_word_mask
        self.mask_replace_prob, self.random_replace_prob = mask_replace_prob, random_replace_prob

    @cached_property
    def _vocab_tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(special ids, ids a random replacement may take, word-start table [V])."""
        tok = self.tokenizer
        if tok.mask_token_id is None:
            raise ValueError(f"tokenizer {self.tokenizer_spec!r} has no mask token; masked LM needs one (e.g. <mask> or [MASK])")
        vocab = len(tok)
        special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
        regular = torch.ones(vocab, dtype=torch.bool)
        regular[special] = False
        return special, regular.nonzero().squeeze(1), word_start_table(tok.convert_ids_to_tokens(list(range(vocab))))

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if not self.train:
            ids, mask = self.encode(rows)
            return {"input_ids": ids, "attention_mask": mask}
        batch = self._sentence_pairs(rows, generator) if self.next_sentence else {}
        if batch:
            ids, mask = batch.pop("input_ids"), batch["attention_mask"]
        else:
            ids, mask = self.encode(rows)
            batch["attention_mask"] = mask
        special, regular, starts = self._vocab_tables
        special_mask = torch.isin(ids, special) | (mask == 0)  # [N, T] never masked
        inputs, labels = mask_tokens(ids, special_mask, self.tokenizer.mask_token_id, regular, self.mlm_probability,
                                     self.mask_replace_prob, self.random_replace_prob,
                                     starts if self.whole_word_mask else None, generator)
        return {"input_ids": inputs, "labels": labels, **batch}

    def _sentence_pairs(self, rows: list[dict], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """NSP inputs: [CLS] A [SEP] B [SEP] with token_type_ids, and next_sentence_label (1 = B is random)."""
        if "text" not in rows[0]:
            raise ValueError("next_sentence=True needs text rows (not pre-grouped blocks)")
        (cls,), (sep,) = framing(self.tokenizer, "bert")
        tokens = self.tokenizer([r["text"] for r in rows], add_special_tokens=False)["input_ids"]
        half = (self.block_size - 3) // 2
        firsts = [t[: max(len(t) // 2, 1)][:half] for t in tokens]
        seconds = [t[max(len(t) // 2, 1):][:half] for t in tokens]
        n = len(rows)
        is_random = (torch.rand(n, generator=generator) < 0.5) if n > 1 else torch.zeros(1, dtype=torch.bool)
        shift = int(torch.randint(1, max(n, 2), (1,), generator=generator)) if n > 1 else 0
        pairs, types = [], []
        for i in range(n):  # ragged token lists; the tensor work happens once, in pad_rows
            b = seconds[(i + shift) % n] if bool(is_random[i]) else seconds[i]
            pairs.append([cls] + firsts[i] + [sep] + b + [sep])
            types.append([0] * (len(firsts[i]) + 2) + [1] * (len(b) + 1))
        ids, mask = pad_rows(pairs, self.block_size, self.pad_id)
        token_types, _ = pad_rows(types, self.block_size, 0)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": token_types,
                "next_sentence_label": is_random.long()}
