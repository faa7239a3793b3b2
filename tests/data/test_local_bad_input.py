"""load_local_dataset on bad user files: one ValueError line naming the file and the problem, before datasets runs."""
import json
import os

import datasets
import numpy as np
import pytest
from PIL import Image

from multissl.data import load_dataset_by_name
from multissl.data import local as local_mod


@pytest.fixture
def no_load(monkeypatch):
    """Fail the test if `datasets.load_dataset` is reached: the error must come before any loading work."""
    def refuse(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called before the bad input was reported")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def fails(path, pattern, **kwargs):
    """Load and return the ValueError, checking it matches `pattern` and is one line."""
    with pytest.raises(ValueError, match=pattern) as info:
        load_dataset_by_name(path, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


@pytest.mark.parametrize("name,expected", [("e.txt", "UTF-8 text"), ("e.jsonl", "JSON lines"), ("e.csv", "CSV file with a header")])
def test_empty_file(tmp_path, no_load, name, expected):
    (tmp_path / name).write_text("" if name != "e.txt" else "\n  \n")  # whitespace only counts as empty
    fails(tmp_path / name, rf"^'.*{name}' is empty; expected .*{expected}")


def test_folder_of_only_empty_files_and_empty_files_skipped_among_good_ones(tmp_path, no_load, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("")
    (tmp_path / "d" / "b.txt").write_text("")
    fails(tmp_path / "d", r"every text file of split 'train' in '.*d' is empty \(a.txt, b.txt\); expected UTF-8 text")
    (tmp_path / "d" / "c.txt").write_text("one\n\ntwo\n")
    monkeypatch.undo()  # now let datasets load: the blank files are left out, the good one loads
    assert sorted(load_dataset_by_name(tmp_path / "d")["text"]) == ["one", "two"]


def test_non_utf8_text_names_file_offset_and_line(tmp_path, no_load):
    (tmp_path / "latin.txt").write_bytes("hello\nw\u00ffrld caf\u00e9\n".encode("latin-1"))
    fails(tmp_path / "latin.txt", r"^'.*latin.txt' is not utf-8 text: byte 0xff at offset 7 \(line 2\) cannot be decoded; re-encode")
    (tmp_path / "cut.csv").write_bytes(b"a,b\n1,\xc3")  # a multi-byte sequence cut off at the end of the file
    fails(tmp_path / "cut.csv", r"'.*cut.csv' is not utf-8 text: byte 0xc3 at offset 6 \(line 2\)")


def test_non_utf8_text_loads_with_the_right_encoding(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf\u00e9\n\nna\u00efve\n".encode("latin-1"))
    assert list(load_dataset_by_name(tmp_path / "latin.txt", encoding="latin-1")["text"]) == ["caf\u00e9", "na\u00efve"]


def test_malformed_jsonl_line(tmp_path, no_load):
    good = json.dumps({"text": "ok"})
    (tmp_path / "bad.jsonl").write_text(f"{good}\n\n{good}\n{{\"text\": \"x\",\n")
    fails(tmp_path / "bad.jsonl", r"^'.*bad.jsonl' line 4 is not valid JSON \(.* at column \d+\); expected one JSON object per line$")
    (tmp_path / "list.jsonl").write_text(f"{good}\n[1, 2]\n")
    fails(tmp_path / "list.jsonl", r"'.*list.jsonl' line 2 is a JSON list; expected one JSON object per line")
    (tmp_path / "doc.json").write_text('[{"text": "a"},\n {"text": }]')
    fails(tmp_path / "doc.json", r"'.*doc.json' is not valid JSON: .* at line 2, column 11")
    (tmp_path / "pretty.json").write_text('{\n  "data": [\n    {"text": "a"},\n  ]\n}\n')  # trailing comma
    fails(tmp_path / "pretty.json", r"'.*pretty.json' is not valid JSON: .* at line 4, column 3")
    (tmp_path / "lines.json").write_text(f"{good}\n{good[:-1]}\n")  # JSON lines in a .json file
    fails(tmp_path / "lines.json", r"'.*lines.json' line 2 is not valid JSON")


def test_ragged_csv(tmp_path, no_load):
    (tmp_path / "r.csv").write_text('caption,label\n"a, quoted",1\n\nb,0,extra\n')
    fails(tmp_path / "r.csv", r"^'.*r.csv' line 4 has 3 fields but the header has 2; expected the same number on every row")
    (tmp_path / "short.csv").write_text("caption,label\nb\n")
    fails(tmp_path / "short.csv", r"'.*short.csv' line 2 has 1 fields but the header has 2")


def test_image_pil_cannot_open(tmp_path, no_load):
    _png(tmp_path / "imgs" / "cat" / "0.png")
    (tmp_path / "imgs" / "cat" / "1.png").write_bytes(b"this is not a png")
    fails(tmp_path / "imgs", r"^'.*cat/1.png': PIL cannot open it as an image \(UnidentifiedImageError.*expected a valid .png file")
    (tmp_path / "imgs" / "cat" / "1.png").write_bytes(b"")
    fails(tmp_path / "imgs", r"'.*cat/1.png' is empty; expected a .png file")


def test_missing_split_lists_available_ones_before_loading(tmp_path, no_load):
    for split in ("train", "val"):  # datasets reads val/ as the validation split
        _png(tmp_path / "imgs" / split / "cat" / "0.png")
    fails(tmp_path / "imgs", r"no split 'test'; available splits: train, validation \(or 'all'\)", split="test")
    (tmp_path / "txt" / "train").mkdir(parents=True)
    (tmp_path / "txt" / "train" / "a.txt").write_text("x\n")
    fails(tmp_path / "txt", r"'.*txt' has no split 'validation'; available splits: train", split="validation")


def test_unreadable_file(tmp_path, no_load, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("fine\n")
    secret = tmp_path / "d" / "b.txt"
    secret.write_text("secret\n")
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads anything: simulate the denied permission check instead
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(secret) else real_access(p, mode))
    try:
        fails(tmp_path / "d", r"^cannot read file '.*b.txt': permission denied; make it readable")
        fails(secret, r"cannot read file '.*b.txt': permission denied")
    finally:
        secret.chmod(0o644)


def test_datasets_failure_on_big_input_is_diagnosed_and_chained(tmp_path, monkeypatch):
    monkeypatch.setattr(local_mod, "PRESCAN_BYTES", 0)  # as if the input were too big to pre-scan
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": \n')
    err = fails(tmp_path / "bad.jsonl", r"^'.*bad.jsonl' line 2 is not valid JSON")
    assert isinstance(err.__cause__, datasets.exceptions.DatasetGenerationError)
    (tmp_path / "latin.txt").write_bytes(b"ok\nn\xe9e\n")
    err = fails(tmp_path / "latin.txt", r"'.*latin.txt' is not utf-8 text: byte 0xe9 at offset 4 \(line 2\)")
    assert err.__cause__ is not None


def test_unexplained_datasets_failure_names_the_root_cause(tmp_path, monkeypatch):
    import pyarrow as pa

    def broken(*args, **kwargs):
        try:
            raise pa.ArrowInvalid("column 'x' changed type\nsecond line")
        except pa.ArrowInvalid as inner:
            raise datasets.exceptions.DatasetGenerationError("An error occurred while generating the dataset") from inner

    monkeypatch.setattr(datasets, "load_dataset", broken)
    (tmp_path / "ok.jsonl").write_text('{"x": 1}\n')
    err = fails(tmp_path / "ok.jsonl", r"^cannot load '.*ok.jsonl' with datasets' 'json' builder: ArrowInvalid: column 'x' changed type$")
    assert isinstance(err.__cause__, datasets.exceptions.DatasetGenerationError)


def test_csv_with_only_a_header_has_no_rows(tmp_path):
    (tmp_path / "h.csv").write_text("caption,label\n")
    err = fails(tmp_path / "h.csv", r"^'.*h.csv' has no rows in split 'train'; expected a CSV file with a header row with at least one row$")
    assert err.__cause__ is not None


def test_good_folders_still_load(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        _png(tmp_path / "imgs" / cls / "0.png", value)
    ds = load_dataset_by_name(tmp_path / "imgs")
    assert len(ds) == 2 and ds.features["label"].names == ["cat", "dog"]
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in "ab"))
    (tmp_path / "j" / "b.json").write_text(json.dumps([{"text": "c"}]))
    assert sorted(load_dataset_by_name(tmp_path / "j")["text"]) == ["a", "b", "c"]
    (tmp_path / "c.csv").write_text('caption,label\n"hello, world",1\n\nbye,0\n')
    assert list(load_dataset_by_name(tmp_path / "c.csv")["caption"]) == ["hello, world", "bye"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any folder")
def test_unreadable_subfolder(tmp_path, no_load):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("fine\n")
    (tmp_path / "d" / "sub" / "b.txt").write_text("hidden\n")
    (tmp_path / "d" / "sub").chmod(0)
    try:
        fails(tmp_path / "d", r"^cannot read folder '.*sub': permission denied")
    finally:
        (tmp_path / "d" / "sub").chmod(0o755)


def test_empty_audio_file(tmp_path, no_load):
    import soundfile as sf

    (tmp_path / "sounds" / "hi").mkdir(parents=True)
    sf.write(tmp_path / "sounds" / "hi" / "0.wav", np.zeros(800), 8000)
    (tmp_path / "sounds" / "hi" / "1.wav").write_bytes(b"")
    fails(tmp_path / "sounds", r"^'.*hi/1.wav' is empty; expected a .wav ")  # either loader path
