"""`multissl data shard`: image / audio / text / caption folders -> parquet shards that load whole and stream
with the same rows; refusals are one line."""
import json

import numpy as np
import pytest
from PIL import Image

from multissl.cli import main
from multissl.data import load_dataset_by_name
from multissl.data.streaming import open_stream


def _cli(capsys, *argv):
    code = main(["data", "shard", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _image_folder(root):
    colours = {}
    for split, n in (("train", 4), ("test", 2)):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                colour = (len(colours) * 9, 7 if label == "a" else 200, i)
                Image.new("RGB", (5, 5), colour).save(folder / f"{i}.png")
                colours[(split, colour)] = label
    return colours


def test_image_folder_round_trips_whole_and_streamed(tmp_path, capsys):
    colours = _image_folder(tmp_path / "src")
    code, out, err = _cli(capsys, tmp_path / "src", "--out", tmp_path / "shards", "--kind", "images", "--shard-size", 3)
    assert code == 0 and "8 train, 4 test rows in 5 parquet file(s)" in out, err
    assert sorted(p.name for p in (tmp_path / "shards" / "train").iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                                                  "part-00002.parquet"]
    for split in ("train", "test"):
        whole = load_dataset_by_name(str(tmp_path / "shards"), split=split)
        names = whole.features["label"].names
        got = {(split, whole[i]["image"].convert("RGB").getpixel((0, 0))): names[whole[i]["label"]] for i in range(len(whole))}
        assert got == {k: v for k, v in colours.items() if k[0] == split}
    stream = open_stream(str(tmp_path / "shards"), "train", {"shuffle_buffer": 0})
    rows = [r for _, (batch, _pos) in zip(range(4), stream.node_batches(0, 1, 2, 0)) for r in batch]
    assert {("train", r["image"].getpixel((0, 0))) for r in rows} == {k for k in colours if k[0] == "train"}
    # seeded row order: not one class folder after the other
    assert [r["label"] for r in rows] != sorted(r["label"] for r in rows)


def test_audio_text_and_caption_folders(tmp_path, capsys):
    import soundfile as sf

    for label in ("yes", "no"):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(2):
            sf.write(tmp_path / "audio" / label / f"{i}.wav", np.full(80, (i + 1) / 10, dtype=np.float32), 8000)
    assert _cli(capsys, tmp_path / "audio", "--out", tmp_path / "a_out", "--kind", "audio")[0] == 0
    import io

    clips = load_dataset_by_name(str(tmp_path / "a_out"))
    assert len(clips) == 4 and all(r["audio"]["path"].endswith(".wav") for r in clips)
    levels = sorted(round(float(sf.read(io.BytesIO(r["audio"]["bytes"]))[0][0]), 3) for r in clips)
    assert levels == [0.1, 0.1, 0.2, 0.2]

    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("one\n\ntwo\n\nthree\n")
    assert _cli(capsys, tmp_path / "text", "--out", tmp_path / "t_out", "--kind", "text", "--shard-size", 2)[0] == 0
    assert sorted(load_dataset_by_name(str(tmp_path / "t_out"))["text"]) == ["one", "three", "two"]

    (tmp_path / "caps").mkdir()
    meta = []
    for i in range(3):
        Image.new("RGB", (4, 4), (i * 50, 0, 0)).save(tmp_path / "caps" / f"{i}.png")
        meta.append({"file_name": f"{i}.png", "caption": f"red {i * 50}"})
    (tmp_path / "caps" / "metadata.jsonl").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    assert _cli(capsys, tmp_path / "caps", "--out", tmp_path / "c_out", "--kind", "captions")[0] == 0
    pairs = load_dataset_by_name(str(tmp_path / "c_out"))
    assert {(r["caption"], r["image"].getpixel((0, 0))[0]) for r in pairs} == {(f"red {i * 50}", i * 50) for i in range(3)}


@pytest.mark.parametrize("setup,argv,needle", [
    ("images", ["--kind", "audio"], "--kind audio: .* has columns \\['image', 'label'\\], not audio"),
    ("images", ["--kind", "images", "--shard-size", "0"], "--shard-size must be a whole number >= 1"),
    ("exists", ["--kind", "images"], "already exists; data shard never overwrites"),
    ("missing", ["--kind", "text"], "does not exist"),
    ("images", ["--kind", "captions"], "not caption; expected an image folder with a metadata"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, setup, argv, needle):
    import re

    src = tmp_path / "src"
    if setup != "missing":
        _image_folder(src)
    out = tmp_path / "out"
    if setup == "exists":
        out.mkdir()
    code, _, err = _cli(capsys, src, "--out", out, *argv)
    assert code == 1 and err.count("\n") == 1 and re.search(needle, err), err
    assert (setup == "exists") == out.exists() and not list(tmp_path.glob(".out.tmp-*"))
