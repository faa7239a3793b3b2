"""Spoken digits: the shipped copy (splits, labels, audio), metadata errors, and the espeak-ng generator."""
import json
import shutil
from collections import Counter

import numpy as np
import pytest

from multissl.data.espeak_voices import DIGITS, SHIPPED_ACCENTS, SHIPPED_VARIANTS
from multissl.data.spoken_digits import (
    ASSET_DIR,
    SHIPPED_REPEATS,
    assign_validation,
    build_spoken_digits,
    clip_settings,
    load_spoken_digits,
    num_test_repeats,
    read_metadata,
)
from multissl.registry import DATASETS


@pytest.fixture(scope="module")
def splits():
    return load_spoken_digits("train"), load_spoken_digits("test")


@pytest.fixture(scope="module")
def validation():
    return load_spoken_digits("validation")


def test_shipped_copy_is_small_and_complete():
    files = [p for p in ASSET_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5.5e6
    rows = read_metadata(ASSET_DIR)
    n_speakers = len(SHIPPED_ACCENTS) * len(SHIPPED_VARIANTS)
    assert len(rows) == n_speakers * len(DIGITS) * SHIPPED_REPEATS
    assert all((ASSET_DIR / r["file"]).is_file() for r in rows)
    assert "spoken_digits" in DATASETS and DATASETS["spoken_digits"].modality == "audio"


def test_every_speaker_and_word_in_both_splits(splits, validation):
    train, test = splits
    assert len(train) == 192 and len(test) == 240  # 48 of the 240 train takes are validation
    names = train.features["speaker"].names
    assert names == test.features["speaker"].names and len(names) == 24
    assert train.features["word"].names == list(DIGITS)
    for ds in (*splits, validation):
        assert set(ds["speaker"]) == set(range(24)) and set(ds["word"]) == set(range(10))
    key = lambda r: (r["speaker"], r["word"])  # noqa: E731
    pairs = lambda ds: {key(r) for r in ds.select_columns(["speaker", "word"])}  # noqa: E731
    assert pairs(train) | pairs(validation) == pairs(test) and not pairs(train) & pairs(validation)
    assert not set(train["file"]) & set(test["file"])


def test_validation_comes_from_train_takes_and_test_is_unchanged(splits, validation):
    train, test = splits
    rows = read_metadata(ASSET_DIR)
    assert set(test["file"]) == {r["file"] for r in rows if r["split"] == "test"}  # test row for row as shipped
    assert set(train["file"]) | set(validation["file"]) == {r["file"] for r in rows if r["split"] == "train"}
    assert not set(train["file"]) & set(validation["file"]) and len(validation) == 48
    assert set(validation["speaker"]) == set(range(24)) and set(validation["word"]) == set(range(10))
    assert validation.features["speaker"].names == train.features["speaker"].names
    per_speaker = Counter(validation["speaker"])  # 2 of each speaker's 10 digits; the other 8 stay in train
    assert set(per_speaker.values()) == {2} and set(Counter(train["speaker"]).values()) == {8}
    speakers = sorted({r["speaker"] for r in rows})  # the rule, recomputed: (speaker # + digit #) % 5 == 4
    held = {(r["speaker"], r["word"]) for r in rows if r["split"] == "train"
            and (speakers.index(r["speaker"]) + DIGITS.index(r["word"])) % 5 == 4}
    names = validation.features
    assert {(names["speaker"].int2str(s), names["word"].int2str(w)) for s, w in zip(validation["speaker"], validation["word"])} == held


def test_validation_by_take_when_pairs_have_spare_train_takes():
    rows = [{"file": f"{s}{w}{r}", "speaker": s, "word": w, "repeat": r, "split": "test" if r == 3 else "train"}
            for s in ("a", "b") for w in ("one", "two") for r in range(4)]
    out = assign_validation(rows)
    assert [r["split"] for r in out[:4]] == ["train", "train", "validation", "test"]  # the last train take
    assert sum(r["split"] == "validation" for r in out) == 4 and rows[2]["split"] == "train"  # input not mutated
    marked = [{**r, "split": "validation"} if r["repeat"] == 0 else r for r in rows]
    assert assign_validation(marked) == marked  # metadata that names its validation rows is kept as it is


def test_audio_is_16k_mono_speech(splits):
    row = splits[0][0]
    wave = np.asarray(row["audio"]["array"], dtype=np.float32)
    assert row["audio"]["sampling_rate"] == 16000 and wave.ndim == 1
    assert 3000 < wave.shape[0] < 16000 and np.abs(wave).max() > 0.05  # a spoken word, not silence
    assert splits[0].features["speaker"].int2str(row["speaker"]) == f"{row['accent']}+{row['variant']}"


def test_string_labels_and_all_split():
    ds = load_spoken_digits("all", labels_as="str")
    assert len(ds) == 480 and isinstance(ds[0]["speaker"], str) and ds[0]["word"] in DIGITS


def test_bad_arguments_and_metadata(tmp_path):
    with pytest.raises(ValueError, match="has splits"):
        load_spoken_digits("dev")
    with pytest.raises(ValueError, match="labels_as"):
        load_spoken_digits(labels_as="onehot")
    with pytest.raises(FileNotFoundError, match="no metadata.jsonl"):
        load_spoken_digits(path=tmp_path)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file": "a.flac", "speaker": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"metadata.jsonl:1: missing fields \['split', 'word'\]"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file": "a.flac", "speaker": "x", "word": "one", "split": "train"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"a\.flac: no such audio file"):
        load_spoken_digits(path=tmp_path)
    with pytest.raises(ValueError, match="repeats must be >= 2"):
        num_test_repeats(1)


def test_split_rule_and_seeded_settings():
    assert [num_test_repeats(r) for r in (2, 4, 8)] == [1, 1, 2]
    assert clip_settings(0, "en+m1", "one", 0) == clip_settings(0, "en+m1", "one", 0)
    assert len({clip_settings(0, "en+m1", "one", r) for r in range(6)}) > 1
    assert clip_settings(0, "en+m1", "zero", 0) == (144, 53)  # the shipped metadata was built with these


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_generator_builds_a_loadable_corpus(tmp_path):
    out = build_spoken_digits(tmp_path / "sd", accents=("en",), variants=("m1", "f2"), words=("one", "two"), repeats=2, progress=False)
    rows = read_metadata(out)
    assert len(rows) == 8 and {r["split"] for r in rows} == {"train", "test"}
    train = load_spoken_digits("train", path=out, labels_as="str")
    assert sorted(set(train["speaker"])) == ["en+f2", "en+m1"] and len(train) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sd.")]  # the temp folder was renamed away
    # the shipped copy was made by this generator: same settings give the same clip length
    shipped = {(r["speaker"], r["word"], r["repeat"]): r["num_samples"] for r in read_metadata(ASSET_DIR)}
    assert all(shipped[(r["speaker"], r["word"], r["repeat"])] == r["num_samples"] for r in rows if r["speaker"] in ("en+m1", "en+f2"))
    with pytest.raises(FileExistsError, match="not empty"):
        build_spoken_digits(out, accents=("en",), variants=("m1",), words=("one",), repeats=2, progress=False)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_cli_data_build(tmp_path, capsys):
    from multissl.cli import main

    argv = ["data", "build", "spoken_digits", "--out", str(tmp_path / "sd"), "--voices", "en-us", "--variants", "m2",
            "--words", "one", "--repeats", "2", "--no-progress"]
    assert main(argv) == 0
    assert "wrote 2 clips (1 speakers, 1 train / 1 test)" in capsys.readouterr().out
    assert main(argv) == 1  # the folder is now taken
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(argv[:3] + argv[5:]) == 1  # spoken_digits needs --out
    assert "needs --out DIR" in capsys.readouterr().err
