"""load_dataset_by_name: built-in names, local folders/files through `datasets`, and clear errors."""
import json

import datasets
import numpy as np
import pytest
from PIL import Image

from multissl.data import builtin_dataset_names, load_dataset_by_name
from multissl.data.local import infer_builder


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def test_builtin_names_are_registered():
    assert {"digits", "python_docs"} <= set(builtin_dataset_names())


def test_imagefolder_with_class_subfolders(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        for i in range(3):
            _png(tmp_path / "imgs" / cls / f"{i}.png", value)
    ds = load_dataset_by_name(str(tmp_path / "imgs"))
    assert len(ds) == 6
    assert ds.features["label"].names == ["cat", "dog"]
    for row in ds:
        assert np.asarray(row["image"])[0, 0, 0] == (10 if row["label"] == 0 else 200)
    with pytest.raises(ValueError, match=r"no split 'test'; available splits: train"):
        load_dataset_by_name(str(tmp_path / "imgs"), split="test")


def test_imagefolder_train_test_subfolders_become_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", 0)
    assert len(load_dataset_by_name(tmp_path, split="train")) == 6
    assert len(load_dataset_by_name(tmp_path, split="test")) == 4
    assert len(load_dataset_by_name(tmp_path, split="all")) == 10


def test_text_file_one_row_per_paragraph(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("First paragraph, line one.\nLine two.\n\n\nSecond paragraph.\n\nThird\n")
    ds = load_dataset_by_name(str(f))
    assert list(ds["text"]) == ["First paragraph, line one.\nLine two.", "Second paragraph.", "Third"]
    lines = load_dataset_by_name(str(f), sample_by="line")
    assert [t for t in lines["text"] if t] == ["First paragraph, line one.", "Line two.", "Second paragraph.", "Third"]


def test_folder_of_markdown_and_jsonl_and_csv(tmp_path):
    (tmp_path / "md").mkdir()
    (tmp_path / "md" / "a.md").write_text("alpha\n\nbeta\n")
    (tmp_path / "md" / "b.md").write_text("gamma\n")
    assert sorted(load_dataset_by_name(tmp_path / "md")["text"]) == ["alpha", "beta", "gamma"]
    jl = tmp_path / "d.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "label": i}) + "\n" for i, t in enumerate("xyz")))
    assert load_dataset_by_name(jl)["label"][:] == [0, 1, 2]
    csv = tmp_path / "d.csv"
    csv.write_text("caption,label\nhello,1\nworld,0\n")
    assert list(load_dataset_by_name(csv)["caption"]) == ["hello", "world"]


def test_saved_dataset_folder(tmp_path):
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"x": [1, 2]}), "test": datasets.Dataset.from_dict({"x": [3]})}
    ).save_to_disk(str(tmp_path / "saved"))
    assert list(load_dataset_by_name(tmp_path / "saved", split="test")["x"]) == [3]


def test_missing_path_is_file_not_found_listing_builtins(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.*does not exist.*digits.*python_docs"):
        load_dataset_by_name(str(tmp_path / "nope"))


def test_unknown_name_never_reaches_the_hub(monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("datasets.load_dataset must not be called for an unknown name")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    with pytest.raises(ValueError, match=r"unknown dataset 'digitz'.*did you mean 'digits'.*python_docs"):
        load_dataset_by_name("digitz")
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'"):
        load_dataset_by_name("mnist")
    with pytest.raises(FileNotFoundError, match="someuser/some_dataset"):  # a hub-style id is not fetched
        load_dataset_by_name("someuser/some_dataset")


def test_unsupported_file_and_empty_folder(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"model.bin.*unsupported file type '.bin'"):
        load_dataset_by_name(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found no images"):
        infer_builder(tmp_path / "empty")


def test_one_spelling_per_dataset_name_with_a_did_you_mean_hint():
    assert len(load_dataset_by_name("spoken_digits", split="test")) > 0
    with pytest.raises(ValueError, match="did you mean 'spoken_digits'"):
        load_dataset_by_name("spoken-digits", split="test")


def test_audio_folder_loads_with_labels_and_splits_and_decodes(tmp_path):
    import soundfile as sf
    import torch

    from multissl.modalities.audio.io import decode_audio

    for split, n in (("train", 2), ("test", 1)):
        for cls, freq in (("high", 880.0), ("low", 220.0)):
            for i in range(n):
                (tmp_path / "sounds" / split / cls).mkdir(parents=True, exist_ok=True)
                t = np.arange(8000) / 8000
                sf.write(tmp_path / "sounds" / split / cls / f"{i}.wav", 0.5 * np.sin(2 * np.pi * freq * t), 8000)
    train_ds = load_dataset_by_name(tmp_path / "sounds", split="train")
    test_ds = load_dataset_by_name(tmp_path / "sounds", split="test")
    assert len(train_ds) == 4 and len(test_ds) == 2
    assert train_ds.features["label"].names == ["high", "low"] == test_ds.features["label"].names
    wave = decode_audio(train_ds[0]["audio"], target_sr=16000, source="row 0")
    assert wave.shape == (16000,) and torch.isfinite(wave).all()  # resampled 8 kHz -> 16 kHz
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_dataset_by_name(tmp_path / "sounds", split="validation")
