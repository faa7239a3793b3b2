"""sentencepiece training -> transformers fast tokenizer folder, identical ids to sentencepiece itself."""
import pytest
import sentencepiece as spm
from transformers import AutoTokenizer

from multissl.data import load_dataset_by_name
from multissl.data.tokenizers import trained_tokenizer_dir
from multissl.modalities.text.tokenizer import get_tokenizer, read_text_files, train_tokenizer
from multissl.paths import MINILM


@pytest.fixture(scope="module")
def corpus():
    return load_dataset_by_name("python_docs", split="train")["text"][:1500]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_trained_tokenizer_loads_with_autotokenizer_and_matches_sentencepiece(corpus, model_type, tmp_path):
    out = train_tokenizer(corpus, tmp_path / "tok", vocab_size=400, model_type=model_type)
    tok = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    assert len(tok) == sp.get_piece_size() <= 400
    held_out = load_dataset_by_name("python_docs", split="test")["text"][:200]
    for text in held_out:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text
    ids = tok("Return the value.")["input_ids"]
    assert ids[0] == tok.cls_token_id == tok.bos_token_id and ids[-1] == tok.sep_token_id == tok.eos_token_id
    assert tok.pad_token_id == 0 and tok.mask_token == "<mask>" and tok.unk_token == "<unk>"
    assert tok.decode(tok("Return the value.", add_special_tokens=False)["input_ids"]) == "Return the value."


def test_read_text_files_and_missing_file(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("first line\n\n  \nsecond line\n")
    assert read_text_files([f]) == ["first line", "second line"]
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text_files([tmp_path / "nope.txt"])


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        train_tokenizer(["", "   ", "\n"], tmp_path / "t", vocab_size=100)


def test_vocab_smaller_than_special_tokens_is_an_error(tmp_path, corpus):
    with pytest.raises(ValueError, match="not larger than the 5 special tokens"):
        train_tokenizer(corpus, tmp_path / "t", vocab_size=4)


def test_vocab_smaller_than_the_alphabet_is_a_clear_error(tmp_path, corpus):
    with pytest.raises(ValueError, match="raise --vocab-size"):
        train_tokenizer(corpus, tmp_path / "t", vocab_size=20, model_type="bpe")


def test_unknown_model_type_and_bad_trained_spec(tmp_path, corpus):
    with pytest.raises(ValueError, match="model_type must be one of"):
        train_tokenizer(corpus, tmp_path / "t", vocab_size=100, model_type="wordpiece")
    with pytest.raises(ValueError, match="trained:<dataset>/<unigram|bpe>/<vocab size>"):
        trained_tokenizer_dir("trained:python_docs/bpe")


def test_existing_hf_tokenizer_works_through_the_same_loader():
    tok = get_tokenizer(MINILM)
    assert tok.mask_token == "[MASK]" and tok("hello")["input_ids"][0] == tok.cls_token_id
