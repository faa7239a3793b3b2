"""Streamed shards (multissl.data.streaming + batches.StreamBatchSource): every row once across processes and loader
workers, exact mid-stream resume from a JSON state, WebDataset tars, and one-line errors."""
import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from multissl.data.batches import BatchSource, DataRequest, StreamBatchSource, open_batches
from multissl.data.streaming import RowStream, open_stream


def _ids(rows, generator=None):
    """A collator that keeps the row ids (and one draw of the seeded generator, to check the seeding)."""
    return {"ids": torch.tensor([r["id"] for r in rows]), "draw": torch.rand(1, generator=generator)}


def _shards(folder, files, rows_per_file):
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        ids = list(range(f * rows_per_file, (f + 1) * rows_per_file))
        pq.write_table(pa.table({"id": ids, "text": [f"row {i}" for i in ids]}), folder / f"part-{f:03d}.parquet",
                       row_group_size=5)
    return folder


def _source(folder, shuffle_buffer=7, world_size=1, rank=0, batch_size=3):
    stream = open_stream(str(folder), options={"shuffle_buffer": shuffle_buffer})
    return BatchSource(stream, _ids, batch_size, 0, world_size, rank)


def _take(loader, n):
    return [next(loader) for _ in range(n)]


@pytest.mark.parametrize("files,rows", [(4, 12), (3, 16)])  # whole files per node / every 4th row of every file
def test_two_processes_two_workers_read_every_row_once(tmp_path, files, rows):
    folder = _shards(tmp_path / "d", files, rows)
    seen = []
    for rank in range(2):  # 2 processes x 2 workers = 4 nodes of 12 rows = 4 batches of 3 each: one epoch
        source = _source(folder, world_size=2, rank=rank)
        assert isinstance(source, StreamBatchSource)
        seen += [i for b in open_batches(source, 0, 8, num_workers=2) for i in b["ids"].tolist()]
    assert sorted(seen) == list(range(files * rows))


def test_epochs_reshuffle_and_cover_the_data_each_time(tmp_path):
    folder = _shards(tmp_path / "d", 2, 9)
    ids = [i for b in open_batches(_source(folder), 0, 12) for i in b["ids"].tolist()]
    first, second = ids[:18], ids[18:]
    assert sorted(first) == sorted(second) == list(range(18)) and first != second
    in_order = [i for b in open_batches(_source(folder, shuffle_buffer=0), 0, 6) for i in b["ids"].tolist()]
    assert in_order == list(range(18))


@pytest.mark.parametrize("resume_workers", [2, 1, 0])
def test_resume_mid_stream_gives_the_batches_of_the_uninterrupted_run(tmp_path, resume_workers):
    folder = _shards(tmp_path / "d", 3, 10)
    full = list(open_batches(_source(folder), 0, 14, num_workers=2))  # 2 streams of 15 rows: crosses an epoch
    first = open_batches(_source(folder), 0, 5, num_workers=2)
    head = _take(first, 5)
    state = json.loads(json.dumps([first.state_dict()]))  # what a checkpoint's state.json holds
    tail = list(open_batches(_source(folder), 5, 14, num_workers=resume_workers, state=state))
    for a, b in zip(full, head + tail, strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["draw"], b["draw"])


def test_resume_refuses_another_layout(tmp_path):
    folder = _shards(tmp_path / "d", 2, 10)
    loader = open_batches(_source(folder), 0, 2, num_workers=2)
    state = [dict(_take(loader, 2) and loader.state_dict())]
    with pytest.raises(ValueError, match="num_workers that divides 2"):
        open_batches(_source(folder), 2, 4, num_workers=3, state=state)
    with pytest.raises(ValueError, match="saved by 1 process"):
        open_batches(_source(folder, world_size=2), 2, 4, state=state)
    with pytest.raises(ValueError, match="holds none"):
        open_batches(_source(folder), 2, 4)
    with pytest.raises(ValueError, match="not streamed"):
        open_batches(torch.utils.data.TensorDataset(torch.zeros(4)), 2, 4, state=state)


def _tar(path, samples, extra=()):
    from PIL import Image

    with tarfile.open(path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for key, label, caption in samples:
            buf = io.BytesIO()
            Image.new("RGB", (6, 6), (label * 40, 0, 0)).save(buf, "PNG")
            add(f"{key}.png", buf.getvalue())
            add(f"{key}.cls", str(label).encode())
            add(f"{key}.txt", caption.encode())
        for name in extra:
            add(name, b"x")


def test_webdataset_tars_stream_with_multissl_column_names(tmp_path):
    (tmp_path / "w").mkdir()
    _tar(tmp_path / "w" / "a.tar", [(f"a{i}", i % 3, f"caption a{i}") for i in range(4)])
    _tar(tmp_path / "w" / "b.tar", [(f"b{i}", i % 3, f"caption b{i}") for i in range(4)])
    stream = open_stream(str(tmp_path / "w"), options={"shuffle_buffer": 0})
    assert set(stream.column_names) == {"image", "label", "caption"}
    rows = [r for _, (batch, _pos) in zip(range(2), stream.node_batches(0, 1, 4, 0)) for r in batch]
    assert [r["caption"] for r in rows] == [f"caption {s}{i}" for s in "ab" for i in range(4)]
    assert rows[1]["image"].size == (6, 6) and rows[1]["image"].getpixel((0, 0))[0] == 40 and rows[1]["label"] == 1
    _tar(tmp_path / "bad.tar", [("k0", 0, "c")], extra=["k0.pth"])
    with pytest.raises(ValueError, match="would be unpickled"):
        open_stream(str(tmp_path / "bad.tar"))


def test_text_files_stream_by_paragraph(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("first para\nline two\n\n\n\nsecond\n")
    (tmp_path / "t" / "b.txt").write_text("third\n")
    stream = open_stream(str(tmp_path / "t"), options={"shuffle_buffer": 0})
    batch, position = next(stream.node_batches(0, 1, 3, 0))
    assert [r["text"] for r in batch] == ["first para\nline two", "second", "third"]
    assert json.loads(json.dumps(position)) == position


def test_bad_input_is_one_clear_line(tmp_path):
    folder = _shards(tmp_path / "d", 1, 4)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['buffer'\]"):
        open_stream(str(folder), options={"buffer": 3})
    with pytest.raises(ValueError, match="shuffle_buffer must be a whole number"):
        open_stream(str(folder), options={"shuffle_buffer": -1})
    with pytest.raises(ValueError, match="built-in dataset"):
        DataRequest("digits", streaming={}).load()
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="data shard"):
        open_stream(str(tmp_path / "imgs"))
    with pytest.raises(ValueError, match="no split 'test'"):
        open_stream(str(_shards(tmp_path / "s" / "train", 1, 4).parent), split="test")
    stream = DataRequest(str(folder), streaming={}).load()
    assert isinstance(stream, RowStream) and stream.column_names == ["id", "text"]
    with pytest.raises(ValueError, match="is streamed"):
        stream["text"]
    with pytest.raises(ValueError, match="fewer rows"):  # 4 rows cannot feed 8 nodes
        next(stream.node_batches(5, 8, 1, 0))
