"""`multissl tokenizer train` on files and on the built-in corpus; bad input is a one-line error."""
from transformers import AutoTokenizer

from multissl.cli import main


def test_train_from_files_and_load(tmp_path, capsys):
    (tmp_path / "corpus").mkdir()
    lines = [f"line {i} says the function returns a value number {i * 7}" for i in range(300)]
    (tmp_path / "corpus" / "a.txt").write_text("\n".join(lines))
    code = main(["tokenizer", "train", "--input", str(tmp_path / "corpus"), "--vocab-size", "120",
                 "--model-type", "bpe", "--out", str(tmp_path / "tok")])
    assert code == 0 and "bpe tokenizer" in capsys.readouterr().out
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert len(tok) <= 120 and tok.mask_token == "<mask>"


def test_train_from_builtin_corpus(tmp_path, capsys):
    assert main(["tokenizer", "train", "--input", "python_docs", "--vocab-size", "300", "--out", str(tmp_path / "t")]) == 0
    assert AutoTokenizer.from_pretrained(tmp_path / "t").unk_token == "<unk>"


def test_bad_inputs(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["tokenizer", "train", "--input", str(empty), "--out", str(tmp_path / "x")]) == 1
    assert "corpus is empty" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--input", "nowhere.txt", "--out", str(tmp_path / "x")]) == 1
    assert "neither a file, a folder nor a built-in dataset" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--input", "python_docs", "--vocab-size", "3", "--out", str(tmp_path / "x")]) == 1
    assert "special tokens" in capsys.readouterr().err
