"""Hub datasets streamed (multissl.data.stream_hub) without a network: datasets.load_dataset is replaced by a function
that records its arguments and returns a local IterableDataset of N shards, as the hub would. Checked: the call,
every row once across 2 processes x 2 loader workers, exact mid-stream resume with a pinned revision, and one-line
refusals (resume without a pinned revision, a hub that does not answer, a path that does not exist)."""
import json

import datasets
import pytest
import torch

from multissl.data.batches import BatchSource, DataRequest, open_batches
from multissl.data.streaming import HubRowStream, open_stream

COMMIT = "0123456789abcdef0123456789abcdef01234567"
ROWS = 48


class _Calls(list):
    """The recorded calls, and how many shards the fake hub dataset has."""

    shards = 4


@pytest.fixture
def hub(monkeypatch):
    """Replace datasets.load_dataset; returns the list of (name, kwargs) calls. `hub.shards` sets the shard count."""
    calls = _Calls()

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        table = datasets.Dataset.from_dict({"id": list(range(ROWS)), "text": [f"row {i}" for i in range(ROWS)]})
        return table.to_iterable_dataset(num_shards=calls.shards)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _ids(rows, generator=None):
    return {"ids": torch.tensor([r["id"] for r in rows]), "draw": torch.rand(1, generator=generator)}


def _source(world_size=1, rank=0, shuffle_buffer=5, **dataset_args):
    stream = open_stream("someone/corpus", "train", {"shuffle_buffer": shuffle_buffer}, **dataset_args)
    assert isinstance(stream, HubRowStream)
    return BatchSource(stream, _ids, 3, 0, world_size, rank)


def test_a_hub_name_is_loaded_streaming_with_the_recipe_arguments(hub):
    stream = DataRequest("someone/corpus", "validation", {"name": "en", "revision": COMMIT}, {"shuffle_buffer": 7}).load()
    assert hub == [("someone/corpus", {"split": "validation", "streaming": True, "name": "en", "revision": COMMIT})]
    assert isinstance(stream, HubRowStream) and stream.column_names == ["id", "text"] and len(stream.files) == 4
    assert stream.shuffle_buffer == 7


@pytest.mark.parametrize("shards", [4, 3])  # whole shards per node / every 4th row of every shard
def test_two_processes_two_workers_read_every_row_once_each_epoch(hub, shards):
    hub.shards = shards
    seen = []
    for rank in range(2):  # 2 processes x 2 workers = 4 nodes of 12 rows = 4 batches of 3: 2 epochs in 16 batches
        batches = list(open_batches(_source(world_size=2, rank=rank), 0, 16, num_workers=2))
        seen.append([[i for b in batches[e * 8:(e + 1) * 8] for i in b["ids"].tolist()] for e in range(2)])
    for epoch in range(2):
        assert sorted(seen[0][epoch] + seen[1][epoch]) == list(range(ROWS))
    assert seen[0][0] != seen[0][1], "the shard order and windows are reshuffled each epoch"


@pytest.mark.parametrize("resume_workers", [2, 1])
def test_resume_mid_stream_with_a_pinned_revision_gives_the_uninterrupted_batches(hub, resume_workers):
    full = list(open_batches(_source(revision=COMMIT), 0, 20, num_workers=2))  # 2 streams of 24 rows: crosses an epoch
    first = open_batches(_source(revision=COMMIT), 0, 7, num_workers=2)
    head = [next(first) for _ in range(7)]
    state = json.loads(json.dumps([first.state_dict()]))  # what a checkpoint's state.json holds
    assert all(p["start"] is not None for p in state[0]["positions"]), "positions inside a shard, not at its start"
    tail = list(open_batches(_source(revision=COMMIT), 7, 20, num_workers=resume_workers, state=state))
    for a, b in zip(full, head + tail, strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["draw"], b["draw"])


@pytest.mark.parametrize("revision", [None, "main"])
def test_resume_without_a_pinned_commit_is_refused_in_one_line(hub, revision):
    args = {} if revision is None else {"revision": revision}
    loader = open_batches(_source(**args), 0, 2, num_workers=2)
    [next(loader) for _ in range(2)]
    state = [loader.state_dict()]
    with pytest.raises(ValueError, match=rf"cannot resume .*'someone/corpus'.*revision is {revision!r}, not a commit") as err:
        open_batches(_source(**args), 2, 4, num_workers=2, state=state)
    assert "\n" not in str(err.value)


def test_what_is_not_a_hub_name_or_not_on_the_hub_is_one_clear_line(monkeypatch, tmp_path):
    def offline(path, **kwargs):
        raise ConnectionError(f"Couldn't reach 'https://huggingface.co/datasets/{path}'\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match=r"cannot stream 'someone/corpus'.*ConnectionError: Couldn't reach .*online") as err:
        open_stream("someone/corpus")
    assert "\n" not in str(err.value)
    for path in (str(tmp_path / "missing"), "./missing", "data/a/b", "shard.parquet"):  # only ever local paths
        with pytest.raises(FileNotFoundError, match="does not exist"):
            open_stream(path)
    with pytest.raises(ValueError, match="built-in dataset"):
        open_stream("digits")


def test_gpt_grouped_over_a_hub_stream_resumes_only_with_a_pinned_revision(hub, tmp_path):
    """Through the loop: GPT with grouping: group packs the hub rows into blocks; stopped at step 2, a run with a pinned
    revision resumes to the uninterrupted losses, one without is refused before any batch is read."""
    from multissl.training import recipe_from_dict, train
    from tests.training.test_streaming_resume import _text_recipe

    def recipe(revision, **train_kw):
        data = _text_recipe("gpt_lm", "someone/corpus", "group", 16, max_steps=4, batch_size=2, **train_kw).to_dict()
        data["dataset_args"] = {} if revision is None else {"revision": revision}
        return recipe_from_dict(data)

    full = train(recipe(COMMIT), tmp_path / "full")
    part = train(recipe(COMMIT, stop_after_steps=2), tmp_path / "part")
    resumed = train(recipe(COMMIT), tmp_path / "part", resume=True)
    assert part.losses + resumed.losses == pytest.approx(full.losses, abs=1e-6)
    assert {c[1]["revision"] for c in hub} == {COMMIT}

    train(recipe(None, stop_after_steps=2), tmp_path / "unpinned")
    with pytest.raises(ValueError, match="cannot resume the stream of hub dataset 'someone/corpus' exactly"):
        train(recipe(None), tmp_path / "unpinned", resume=True)


def test_a_hub_webdataset_with_pickled_fields_is_refused_before_reading(monkeypatch):
    def load_dataset(path, **kwargs):
        table = datasets.Dataset.from_dict({"__key__": ["a", "b"], "x.pth": [b"\x80", b"\x80"], "y.cls": [0, 1]})
        ds = table.to_iterable_dataset(num_shards=1)
        ds.info.builder_name = "webdataset"  # what datasets' webdataset builder reports
        return ds

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(ValueError, match=r"\['x.pth'\] are pickled tensors \(.pth\), which multissl never unpickles"):
        open_stream("someone/tars", "train", {"shuffle_buffer": 0})
