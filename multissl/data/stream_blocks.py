"""A text stream packed into fixed token blocks (`grouping: group` for GPT / BERT-MLM on a `streaming:` recipe).

The map-style path (`modalities.text.blocks.group_texts`) frames every text, concatenates the whole corpus in
dataset order and cuts it into block_size blocks, dropping the one remainder shorter than a block. A stream has
no "whole corpus", so each node (process x loader stream, as for rows) packs its own rows as they come:

* Every shuffle window's texts are framed and tokenised in one batched tokenizer call, appended to the tokens
  carried over from the previous window, and cut into blocks (numpy reshape: no Python loop over tokens). The
  tail shorter than a block is **carried** into the next window, not dropped, so the node's blocks are exactly the
  cuts of the concatenation of its rows in stream order. Dropping per window would lose up to block_size - 1
  tokens per window (and differ from the map-style blocks even in file order); carrying costs the position a list
  of < block_size token ids.
* At the end of an epoch the node's remainder is dropped, as group_texts drops the corpus's last partial block.
* When shuffling (shuffle_buffer >= 2) a window's blocks are handed out in a seeded random order, so consecutive
  blocks of a batch are not consecutive pieces of the same texts (the map-style path shuffles all blocks).

So with `shuffle_buffer: 0` and one node (1 process, num_workers <= 1) the streamed blocks are group_texts'
blocks, in order. With several nodes each node drops its own remainder per epoch (< block_size tokens each);
with shuffling, block boundaries move every epoch (the map-style blocks are cut once and reused).

A position is the row stream's window position plus the block count: (epoch, window, datasets' state at the
window's start, `carry`: the token ids carried into that window, `block`: blocks of the window already handed
out). Resuming re-reads and re-tokenises one window and continues at the exact next block. Plain JSON.
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np

from multissl.data.streaming import RowStream, StreamedData
from multissl.modalities.text.blocks import framing, group_texts, tokenize_framed

POSITION_KEYS = ("epoch", "window", "start", "carry", "block")


class BlockStream(StreamedData):
    """Rows `{"input_ids": [block_size ids]}` packed from a RowStream's text column, node by node (see module doc)."""

    def __init__(self, rows: RowStream, tokenizer: Any, block_size: int, style: str, text_column: str = "text"):
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
            raise ValueError(f"block_size must be a whole number >= 2; got {block_size!r}")
        if text_column not in rows.column_names:
            raise ValueError(f"{rows.source!r}: no column {text_column!r} to group into blocks; columns: {rows.column_names}")
        framing(tokenizer, style)  # a tokenizer without the framing tokens fails here, before any worker starts
        self.rows, self.tokenizer, self.block_size, self.style, self.text_column = rows, tokenizer, block_size, style, text_column
        self.source, self.column_names = rows.source, ["input_ids"]

    def resume_refusal(self) -> str | None:
        """The row stream's reason not to resume (a hub stream without a pinned revision), or None."""
        return self.rows.resume_refusal()

    def tokens(self, rows: list[dict]) -> np.ndarray:
        """The framed token ids [N] of `rows`' texts, concatenated in order (blank or non-string texts skipped, as
        group_texts skips them)."""
        texts = [t for t in (r.get(self.text_column) for r in rows) if isinstance(t, str) and t.strip()]
        if not texts:
            return np.zeros(0, dtype=np.int64)
        ids = tokenize_framed(self.tokenizer, texts, self.style)
        return np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(map(len, ids)))

    def node_blocks(self, node: int, num_nodes: int, seed: int, position: dict | None = None
                    ) -> Iterator[tuple[np.ndarray, dict]]:
        """Blocks [block_size] of node `node` of `num_nodes`, epoch after epoch, each with the position after it."""
        if position is not None and any(k not in position for k in POSITION_KEYS):
            raise ValueError(f"the checkpoint's stream position {sorted(position)} is not one of token blocks (needs "
                             f"{list(POSITION_KEYS)}); resume with the run's own recipe (model.grouping)")
        size, shuffle = self.block_size, self.rows.shuffle_buffer >= 2
        carry = np.asarray(position["carry"] if position else [], dtype=np.int64)
        skip = position["block"] if position else 0
        current, fresh, made, seen = (position["epoch"] if position else 0), position is None, 0, 0
        for epoch, window, start, rows in self.rows.node_windows(node, num_nodes, seed, position):
            if epoch != current:  # a new epoch: the last one's remainder is dropped
                self._check_epoch(fresh, made, seen, node, num_nodes)
                carry, current, fresh, made, seen = carry[:0], epoch, True, 0, 0
            carried = carry
            stream = np.concatenate([carried, self.tokens(rows)])
            seen += len(stream) - len(carried)
            n = len(stream) // size
            blocks, carry = stream[: n * size].reshape(n, size), stream[n * size:]
            order = np.random.default_rng([seed, epoch, node, window, 1]).permutation(n) if shuffle else np.arange(n)
            for k in range(skip, n):
                made += 1
                yield blocks[order[k]], {"epoch": epoch, "window": window, "start": start, "carry": carried.tolist(),
                                         "block": k + 1}
            skip = 0

    def _check_epoch(self, fresh: bool, made: int, seen: int, node: int, num_nodes: int) -> None:
        """ValueError when a whole epoch of this node gave no block (the stream would never yield one)."""
        if fresh and not made:
            raise ValueError(f"{self.source!r}: stream {node} of {num_nodes} (processes x loader streams) holds {seen} "
                             f"tokens an epoch, fewer than one block of block_size={self.block_size}; lower "
                             "model.block_size, use fewer train.num_workers / processes, or more text")

    def node_batches(self, node: int, num_nodes: int, batch_size: int, seed: int, position: dict | None = None
                     ) -> Iterator[tuple[list[dict], dict]]:
        """Full batches of `batch_size` block rows {"input_ids": [block_size]}, each with the position after it."""
        rows: list[dict] = []
        for block, after in self.node_blocks(node, num_nodes, seed, position):
            rows.append({"input_ids": block.tolist()})
            if len(rows) == batch_size:
                yield rows, after
                rows = []


def group_text_blocks(dataset: Any, tokenizer: Any, block_size: int, style: str, text_column: str = "text") -> Any:
    """Fixed token blocks of a text dataset: group_texts' datasets.Dataset when loaded whole, a BlockStream when
    streamed (a RowStream)."""
    if isinstance(dataset, RowStream):
        return BlockStream(dataset, tokenizer, block_size, style, text_column)
    return group_texts(dataset, tokenizer, block_size, style, text_column)
