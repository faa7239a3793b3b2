"""group_texts / line-by-line blocks and the MLM / causal-LM collators."""
import datasets
import pytest
import torch

from multissl.data.tokenizers import resolve_tokenizer
from multissl.modalities.text.blocks import group_texts, pack_blocks, pad_rows, tokenize_framed
from multissl.modalities.text.collators import CausalLMCollator, MLMCollator
from multissl.modalities.text.tokenizer import get_tokenizer

SPEC = resolve_tokenizer("trained:python_docs/bpe/320")  # trained and cached on first use
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Return the number of items in a container.",
         "Raise ValueError when the argument is out of range.", "Open a file and return a stream."]


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer(SPEC)


def test_pack_blocks_concatenates_and_pads_or_drops_the_tail():
    ids, mask = pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4, pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0]]
    ids, mask = pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4, pad_id=0, drop_last=True)
    assert ids.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and mask.all()


def test_pad_rows_truncates_keeping_the_end_token():
    ids, mask = pad_rows([[1, 2, 3, 4, 5, 9], [1, 2, 9]], max_length=4, pad_id=0, keep_last=[9])
    assert ids.tolist() == [[1, 2, 3, 9], [1, 2, 9, 0]] and mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_group_texts_blocks_are_the_framed_stream(tok):
    ds = datasets.Dataset.from_dict({"text": TEXTS})
    blocks = group_texts(ds, tok, block_size=8, style="eos")
    stream = [t for ids in tokenize_framed(tok, TEXTS, "eos") for t in ids]
    flat = [t for row in blocks["input_ids"] for t in row]
    assert all(len(r) == 8 for r in blocks["input_ids"]) and flat == stream[: len(flat)] and len(stream) - len(flat) < 8
    assert stream.count(tok.eos_token_id) == len(TEXTS)


def test_group_texts_errors(tok):
    with pytest.raises(ValueError, match="fewer than one block of block_size=512"):
        group_texts(datasets.Dataset.from_dict({"text": ["short text"]}), tok, 512, "bert")
    with pytest.raises(ValueError, match="corpus is empty"):
        group_texts(datasets.Dataset.from_dict({"text": ["", "  "]}), tok, 8, "bert")
    with pytest.raises(ValueError, match="no column 'text'"):
        group_texts(datasets.Dataset.from_dict({"sentence": ["a b c"]}), tok, 8, "bert")


def test_mlm_collator_group_and_line_modes(tok):
    rows = [{"text": t} for t in TEXTS]
    batch = MLMCollator(SPEC, 16)(rows, generator=torch.Generator().manual_seed(0))
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and batch["input_ids"].shape[1] == 16
    chosen = batch["labels"] != -100
    assert chosen.any() and not torch.isin(batch["labels"][chosen], torch.tensor(tok.all_special_ids)).any()
    evalb = MLMCollator(SPEC, 16, train=False)(rows)
    assert set(evalb) == {"input_ids", "attention_mask"} and evalb["input_ids"].shape[0] == len(rows)
    assert (evalb["input_ids"][:, 0] == tok.cls_token_id).all()
    pre = MLMCollator(SPEC, 8)([{"input_ids": list(range(10, 18))}] * 3, generator=torch.Generator().manual_seed(0))
    assert pre["input_ids"].shape == (3, 8)


def test_mlm_collator_next_sentence_pairs(tok):
    rows = [{"text": t} for t in TEXTS * 4]
    batch = MLMCollator(SPEC, 32, grouping="line", next_sentence=True)(rows, generator=torch.Generator().manual_seed(0))
    assert batch["next_sentence_label"].shape == (16,) and 0 < batch["next_sentence_label"].sum() < 16
    types = batch["token_type_ids"]
    assert (types[:, 0] == 0).all() and (types.max(1).values == 1).all()
    assert ((batch["input_ids"] == tok.sep_token_id).sum(1) == 2).all()  # [SEP] is special: never masked


def test_causal_collator(tok):
    rows = [{"text": t} for t in TEXTS]
    batch = CausalLMCollator(SPEC, 16)(rows)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[1] == 16 and (ids[mask.bool()] == tok.eos_token_id).sum() == len(TEXTS)
    with pytest.raises(ValueError, match="'text' column"):
        CausalLMCollator(SPEC, 16)([{"sentence": "x"}])
