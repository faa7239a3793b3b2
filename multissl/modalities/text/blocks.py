"""Turning tokenised texts into model inputs: fixed-length blocks (`group_texts`) or one text per row.

Each text is framed first: BERT-style models get `[CLS] text [SEP]`, causal LMs get `text </s>`,
so block boundaries inside the concatenated stream still show where documents end.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

FRAMINGS = ("bert", "eos")


def framing(tokenizer: Any, style: str) -> tuple[list[int], list[int]]:
    """(prefix ids, suffix ids) around every text: bert -> ([CLS], [SEP]); eos -> ([], [EOS or SEP])."""
    if style == "bert":
        cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if cls is None or sep is None:
            raise ValueError(f"{type(tokenizer).__name__} has no [CLS]/<s> and [SEP]/</s> tokens, needed for masked LM")
        return [cls], [sep]
    if style == "eos":
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if eos is None:
            raise ValueError(f"{type(tokenizer).__name__} has no </s>/[SEP] token to end documents with, needed for causal LM")
        return [], [eos]
    raise ValueError(f"framing style must be one of {FRAMINGS}; got {style!r}")


def tokenize_framed(tokenizer: Any, texts: list[str], style: str) -> list[list[int]]:
    """Token ids of each text with its framing, no truncation."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"row {i}: column 'text' must be a string, got {type(text).__name__}")
    prefix, suffix = framing(tokenizer, style)
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [prefix + t + suffix for t in ids]


def pack_blocks(token_lists: list[list[int]], block_size: int, pad_id: int, drop_last: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate token lists and cut into rows of block_size -> (ids [N, block_size], mask [N, block_size]).

    drop_last=False pads the final partial block (mask 0 on padding); True drops it.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2; got {block_size}")
    stream = np.fromiter((t for ids in token_lists for t in ids), dtype=np.int64)
    n_full, rest = divmod(len(stream), block_size)
    if drop_last or rest == 0:
        stream = stream[: n_full * block_size]
        mask = np.ones_like(stream)
    else:
        pad = block_size - rest
        mask = np.concatenate([np.ones_like(stream), np.zeros(pad, dtype=np.int64)])
        stream = np.concatenate([stream, np.full(pad, pad_id, dtype=np.int64)])
    return torch.from_numpy(stream).view(-1, block_size), torch.from_numpy(mask).view(-1, block_size)


def pad_rows(token_lists: list[list[int]], max_length: int, pad_id: int, keep_last: list[int] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Line by line: each list truncated to max_length (keeping `keep_last` ids at the end) and right-padded.

    Returns (ids [B, T], mask [B, T]) with T = the longest row after truncation.
    """
    keep_last = keep_last or []
    rows = [ids if len(ids) <= max_length else ids[: max_length - len(keep_last)] + keep_last for ids in token_lists]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):  # ragged Python lists -> one padded tensor (no tensor op per token)
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def group_texts(dataset: Any, tokenizer: Any, block_size: int, style: str, text_column: str = "text"):
    """A datasets.Dataset of fixed blocks (column `input_ids`, each block_size long) from a text dataset.

    Texts are framed, concatenated in dataset order and cut; the remainder shorter than a block is
    dropped (as in transformers' run_mlm / run_clm). Errors: missing column, empty corpus, or a
    corpus shorter than one block.
    """
    import datasets

    if text_column not in dataset.column_names:
        raise ValueError(f"group_texts: no column {text_column!r}; columns: {dataset.column_names}")
    texts = [t for t in dataset[text_column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError(f"group_texts: the corpus is empty (no non-blank {text_column!r} values)")
    ids, _ = pack_blocks(tokenize_framed(tokenizer, texts, style), block_size, pad_id=0, drop_last=True)
    if ids.shape[0] == 0:
        total = sum(len(x) for x in tokenize_framed(tokenizer, texts, style))
        raise ValueError(f"group_texts: the corpus has {total} tokens, fewer than one block of block_size={block_size}; "
                         "lower block_size or add text")
    return datasets.Dataset.from_dict({"input_ids": ids.tolist()})
