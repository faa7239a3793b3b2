"""Streamed `grouping: group` (multissl.data.stream_blocks): a text stream packed into token blocks, every block once
per epoch across processes and loader workers, group_texts' blocks in file order, exact mid-stream resume."""
import json

import datasets
import numpy as np
import pytest
import torch

from multissl.data.batches import BatchSource, open_batches
from multissl.data.stream_blocks import BlockStream, group_text_blocks
from multissl.data.streaming import open_stream
from multissl.modalities.text.blocks import group_texts

EOS = 0


class NumberTokenizer:
    """Test double: text "17 18 19" -> ids [17, 18, 19]; every id of the corpus is unique, so a block says where it came
    from and a repeated or missing id is a duplicated or skipped token."""

    eos_token_id, sep_token_id, cls_token_id, bos_token_id = EOS, None, None, None

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[int(w) for w in t.split()] for t in texts]}


def _corpus(folder, files, rows_per_file, seed=0, blanks=False):
    """JSON-lines files of texts "a a+1 ... a+k" (1..9 ids, all distinct across the corpus); returns the texts in file order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    texts, next_id = [], 1
    for f in range(files):
        rows = []
        for r in range(rows_per_file):
            n = int(rng.integers(1, 10))
            text = " ".join(str(i) for i in range(next_id, next_id + n))
            next_id += n
            if blanks and r % 7 == 3:
                text = "   "  # skipped, as group_texts skips it
            rows.append(text)
        (folder / f"part-{f}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
        texts += rows
    return texts


def _framed(texts):
    return [i for t in texts if t.strip() for i in [*map(int, t.split()), EOS]]


def _blocks(folder, shuffle_buffer, block_size=8):
    rows = open_stream(str(folder), options={"shuffle_buffer": shuffle_buffer})
    return group_text_blocks(rows, NumberTokenizer(), block_size, "eos")


def test_in_file_order_one_node_streams_group_texts_blocks(tmp_path):
    # 600 rows: more than one 256-row read window, so a block's tokens are carried from one window into the next
    texts = _corpus(tmp_path / "t", 2, 300, blanks=True)
    stream = _blocks(tmp_path / "t", shuffle_buffer=0)
    assert isinstance(stream, BlockStream)
    whole = group_texts(datasets.Dataset.from_dict({"text": texts}), NumberTokenizer(), 8, "eos")["input_ids"]
    streamed, carried = [], False
    for block, position in stream.node_blocks(0, 1, seed=0):
        if position["epoch"] == 1:
            break
        streamed.append(block.tolist())
        carried |= position["window"] > 0 and len(position["carry"]) > 0
    assert streamed == whole and carried


def _two_ranks_two_workers(folder, shuffle_buffer, steps):
    """Blocks of node (rank, stream) in order, read through the loader (batch_size 1: one block per micro-batch)."""
    by_node = {}
    for rank in range(2):
        source = BatchSource(_blocks(folder, shuffle_buffer), lambda rows, generator=None: rows, 1, 0, 2, rank)
        for g, batch in enumerate(open_batches(source, 0, steps, num_workers=2)):
            by_node.setdefault(rank * 2 + g % 2, []).append(batch[0]["input_ids"])
    return by_node


@pytest.mark.parametrize("files,rows", [(4, 40), (3, 50)])  # whole files per node / every 4th row of every file
def test_two_processes_two_workers_hand_out_every_block_once_per_epoch(tmp_path, files, rows):
    texts = _corpus(tmp_path / "t", files, rows)
    stream = _blocks(tmp_path / "t", shuffle_buffer=16)
    # The epoch as each node packs it: its rows (disjoint across nodes), and how many blocks they make
    epoch_rows, epoch_blocks = {}, {}
    for node in range(4):
        epoch_rows[node] = _epoch_rows(stream, node)
        epoch_blocks[node] = len(_framed(epoch_rows[node])) // 8
    assert sorted(t for rs in epoch_rows.values() for t in rs) == sorted(texts)  # the rows: a partition of the corpus
    by_node = _two_ranks_two_workers(tmp_path / "t", 16, 2 * max(epoch_blocks.values()) + 2)
    ids = []
    for node, blocks in by_node.items():
        first_epoch = blocks[: epoch_blocks[node]]
        flat = sorted(i for b in first_epoch for i in b)
        framed = _framed(epoch_rows[node])
        # every block is 8 ids of this node's rows; together they are its token stream less a remainder < 8
        assert all(len(b) == 8 for b in first_epoch) and len(framed) - len(flat) < 8
        assert [i for i in flat if i != EOS] == sorted(set(i for i in flat if i != EOS))
        ids += [i for i in flat if i != EOS]
        assert blocks[epoch_blocks[node]] not in first_epoch  # the next epoch starts afresh, with new cuts
    assert len(ids) == len(set(ids))  # no id in two blocks, across processes and workers
    assert len(set(_framed(texts)) - {EOS}) - len(ids) < 4 * 8  # skipped: only each node's remainder


def _epoch_rows(stream, node):
    rows = []
    for epoch, _window, _start, window_rows in stream.rows.node_windows(node, 4, 0):
        if epoch:
            return rows
        rows += [r["text"] for r in window_rows]


def test_block_order_is_shuffled_within_a_window_and_cuts_the_stream(tmp_path):
    texts = _corpus(tmp_path / "t", 1, 60)
    stream = _blocks(tmp_path / "t", shuffle_buffer=60, block_size=4)
    window = next(stream.rows.node_windows(0, 1, 0))[3]
    framed = _framed([r["text"] for r in window])
    assert [r["text"] for r in window] != texts and sorted(r["text"] for r in window) == sorted(texts)
    blocks = [b.tolist() for _, (b, _p) in zip(range(len(framed) // 4), stream.node_blocks(0, 1, 0))]
    cuts = [framed[i: i + 4] for i in range(0, len(framed) // 4 * 4, 4)]
    assert sorted(blocks) == sorted(cuts) and blocks != cuts  # the window's cuts, handed out in another order


@pytest.mark.parametrize("resume_workers", [2, 1, 0])
def test_resume_mid_stream_gives_the_blocks_of_the_uninterrupted_run(tmp_path, resume_workers):
    _corpus(tmp_path / "t", 3, 20)

    def source():
        return BatchSource(_blocks(tmp_path / "t", shuffle_buffer=6, block_size=7),
                           lambda rows, generator=None: {"ids": torch.tensor([r["input_ids"] for r in rows]),
                                                         "draw": torch.rand(1, generator=generator)}, 3, 0)

    full = list(open_batches(source(), 0, 24, num_workers=2))  # crosses an epoch on both streams
    first = open_batches(source(), 0, 7, num_workers=2)
    head = [next(first) for _ in range(7)]
    state = json.loads(json.dumps([first.state_dict()]))  # what a checkpoint's state.json holds
    assert any(p["carry"] for p in state[0]["positions"])  # the resume needs the carried tokens
    tail = list(open_batches(source(), 7, 24, num_workers=resume_workers, state=state))
    for a, b in zip(full, head + tail, strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["draw"], b["draw"])


def test_bad_input_is_one_clear_line(tmp_path):
    _corpus(tmp_path / "t", 1, 3)
    rows = open_stream(str(tmp_path / "t"), options={"shuffle_buffer": 0})
    with pytest.raises(ValueError, match="fewer than one block of block_size=500"):
        next(BlockStream(rows, NumberTokenizer(), 500, "eos").node_blocks(0, 1, 0))
    with pytest.raises(ValueError, match="not one of token blocks"):
        next(BlockStream(rows, NumberTokenizer(), 4, "eos").node_blocks(0, 1, 0, {"epoch": 0, "window": 0,
                                                                                  "start": None, "offset": 1}))
    with pytest.raises(ValueError, match="not one of rows"):
        next(rows.node_rows(0, 1, 0, {"epoch": 0, "window": 0, "start": None, "carry": [], "block": 1}))
    with pytest.raises(ValueError, match="block_size must be a whole number >= 2"):
        BlockStream(rows, NumberTokenizer(), 1, "eos")
    with pytest.raises(ValueError, match="no column 'sentence'"):
        BlockStream(rows, NumberTokenizer(), 4, "eos", text_column="sentence")
    with pytest.raises(ValueError, match="has no \\[CLS\\]"):
        BlockStream(rows, NumberTokenizer(), 4, "bert")
    with pytest.raises(ValueError, match="is streamed"):
        len(BlockStream(rows, NumberTokenizer(), 4, "eos"))
