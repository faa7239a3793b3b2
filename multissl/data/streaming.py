"""Local shards read as a stream (recipe key `streaming:`): parquet, JSON lines, text, CSV and WebDataset `.tar` files;
a name that is neither a local path nor a built-in dataset is a hub dataset, streamed the same way (stream_hub.py).

Rows come from `datasets` in streaming mode, a window at a time, so memory stays flat however large the corpus.

Why windows and not datasets' own `IterableDataset.shuffle` buffer: that rolling buffer is not part of
`state_dict()` (a resumed stream refills it from the resume point, and the rows it held are lost), so a resumed
run would not see the batches the uninterrupted run saw. Here a stream is cut into windows of `shuffle_buffer`
rows and each window is emitted in a seeded random order; file order is reshuffled every epoch. A position is
(epoch, window, datasets' `state_dict()` at the window's start, rows of the window already emitted): resuming
re-reads at most one window and continues at the exact next row. Positions are plain JSON.

Each (process, loader stream) pair is one node of `datasets.distributed.split_dataset_by_node`: whole files per
node when the file count divides by the node count, else every node reads every file and keeps every n-th row.
Either way no row goes to two nodes or to none.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multissl.data.stream_files import STREAM_BUILDERS, check_tar, stream_columns, stream_files

STREAM_OPTIONS = {"shuffle_buffer": 1000}  # the recipe's `streaming:` keys and their defaults
READ_ROWS = 256  # rows per read when not shuffling (shuffle_buffer < 2)


def stream_options(options: dict[str, Any] | None) -> dict[str, int]:
    """The streaming options with defaults filled in; ValueError naming an unknown key or a bad value."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(STREAM_OPTIONS))
    if unknown:
        raise ValueError(f"streaming: unknown option(s) {unknown}; allowed: {sorted(STREAM_OPTIONS)}")
    out = {**STREAM_OPTIONS, **options}
    value = out["shuffle_buffer"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"streaming.shuffle_buffer must be a whole number >= 0 (rows; 0 = file order); got {value!r}")
    return out


class StreamedData:
    """What a data hook may hand to BatchSource in place of a `datasets.Dataset`: a stream with `node_batches`.

    It has no length and cannot be indexed or read whole; `source` names it in errors.
    """

    source: str
    column_names: list[str]

    def __len__(self) -> int:
        raise ValueError(self._not_whole("len()"))

    def __getitem__(self, key: Any) -> Any:
        raise ValueError(self._not_whole(f"dataset[{key!r}]"))

    def _not_whole(self, what: str) -> str:
        return (f"{self.source!r} is streamed (recipe key `streaming`), so {what} is not available: this method's data "
                "hook needs the whole dataset; train it without `streaming` (docs/streaming.md, Limits)")

    def resume_refusal(self) -> str | None:
        """Why a checkpoint's position cannot be resumed exactly in this stream (one line), or None (local files can)."""
        return None

    def node_batches(self, node: int, num_nodes: int, batch_size: int, seed: int, position: dict | None = None
                     ) -> Iterator[tuple[list[dict], dict]]:
        """Full batches of `batch_size` rows of node `node` of `num_nodes`, each with the JSON-able position after it."""
        raise NotImplementedError(f"{type(self).__name__} must define node_batches()")


class RowStream(StreamedData):
    """A local dataset read as a stream: `node_batches` yields rows of one node, a window at a time.

    Stands where a `datasets.Dataset` stands in a data hook (DataRequest.load -> BatchSource), but has no
    length and cannot be indexed or read whole.
    """

    def __init__(self, source: str, split: str = "train", shuffle_buffer: int = STREAM_OPTIONS["shuffle_buffer"],
                 **load_kwargs: Any):
        self.source, self.split, self.shuffle_buffer = str(source), split, shuffle_buffer
        self.builder, self.files = stream_files(Path(source).expanduser(), split)
        if self.builder == "webdataset":
            for file in self.files:
                check_tar(file)
        if self.builder == "text":
            load_kwargs.setdefault("sample_by", "paragraph")  # as the map-style loader reads text
        self.load_kwargs = load_kwargs
        self._probe()

    def _probe(self) -> None:
        """Read the schema and the first row now (and warm datasets' imports before DataLoader workers fork)."""
        probe = self._dataset(self.files)
        self.features = probe.features or {}  # json/csv/text: types are known only once rows are read
        first = next(probe.iter(batch_size=1), None)
        if first is None:
            raise ValueError(f"{self.source!r} has no rows in split {self.split!r}; expected shard files with at least one row")
        self.column_names = list(first)

    def _dataset(self, files: list[str]):
        """A datasets.IterableDataset over `files` in this order, columns named as multissl's collators expect."""
        import datasets

        try:
            ds = datasets.load_dataset(self.builder, data_files={"train": files}, split="train", streaming=True,
                                       **self.load_kwargs)
        except (ValueError, TypeError, OSError, datasets.exceptions.DatasetGenerationError) as err:
            raise ValueError(f"cannot stream {self.source!r} with datasets' {self.builder!r} builder: "
                             f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}") from err
        return stream_columns(ds, webdataset=self.builder == "webdataset")

    def epoch_files(self, epoch: int, seed: int) -> list[str]:
        """The files in the order epoch `epoch` reads them (a seeded permutation per epoch when shuffling)."""
        if self.shuffle_buffer < 2:
            return list(self.files)
        import numpy as np

        order = np.random.default_rng([seed, epoch, 0]).permutation(len(self.files))
        return [self.files[i] for i in order]

    def node_windows(self, node: int, num_nodes: int, seed: int, position: dict | None = None
                     ) -> Iterator[tuple[int, int, dict | None, list[dict]]]:
        """(epoch, window, datasets' state at the window's start, the window's rows in emitted order) of node `node`,
        epoch after epoch, from the window `position` names (its `offset` is not applied here: see node_rows)."""
        import datasets.distributed
        import numpy as np

        p = position or {"epoch": 0, "window": 0, "start": None}
        epoch, window, start = p["epoch"], p["window"], p["start"]
        size = self.shuffle_buffer if self.shuffle_buffer >= 2 else READ_ROWS
        while True:
            fresh, emitted = start is None and window == 0, False
            ds = datasets.distributed.split_dataset_by_node(self._dataset(self.epoch_files(epoch, seed)),
                                                            rank=node, world_size=num_nodes)
            if start is not None:
                ds.load_state_dict(start)
            for columns in ds.iter(batch_size=size):  # .iter: no second split by DataLoader worker (we did it)
                rows = self._kept([dict(zip(columns, values)) for values in zip(*columns.values())])
                if rows:
                    order = (np.random.default_rng([seed, epoch, node, window]).permutation(len(rows))
                             if self.shuffle_buffer >= 2 else range(len(rows)))
                    emitted = True
                    yield epoch, window, start, [rows[i] for i in order]
                start, window = ds.state_dict(), window + 1  # the next window starts here
            if fresh and not emitted:
                raise ValueError(f"{self.source!r}: stream {node} of {num_nodes} (processes x loader streams) got no rows; "
                                 "the data has fewer rows than that: use fewer train.num_workers / processes or more data")
            epoch, window, start = epoch + 1, 0, None

    def node_rows(self, node: int, num_nodes: int, seed: int, position: dict | None = None
                  ) -> Iterator[tuple[dict, tuple]]:
        """Rows of node `node` of `num_nodes`, epoch after epoch, each with the position after it (see module doc)."""
        if position is not None and "offset" not in position:
            raise ValueError(f"the checkpoint's stream position {sorted(position)} is not one of rows (it has no "
                             "'offset'); resume with the run's own recipe (model.grouping)")
        offset = position["offset"] if position else 0
        for epoch, window, start, rows in self.node_windows(node, num_nodes, seed, position):
            for i in range(offset, len(rows)):
                yield rows[i], (epoch, window, start, i + 1)
            offset = 0

    def _kept(self, rows: list[dict]) -> list[dict]:
        """Text read by paragraph: stripped, blank rows dropped (as the map-style loader does)."""
        if self.builder != "text":
            return rows
        rows = [{**r, "text": r["text"].strip()} for r in rows]
        return [r for r in rows if r["text"]]

    def node_batches(self, node: int, num_nodes: int, batch_size: int, seed: int, position: dict | None = None
                     ) -> Iterator[tuple[list[dict], dict]]:
        """Full batches of `batch_size` decoded rows of one node, each with the JSON-able position after it."""
        rows: list[dict] = []
        for row, (epoch, window, start, offset) in self.node_rows(node, num_nodes, seed, position):
            rows.append(row)
            if len(rows) == batch_size:
                yield self.decoded(rows), {"epoch": epoch, "window": window, "start": start, "offset": offset}
                rows = []

    def decoded(self, rows: list[dict]) -> list[dict]:
        """Rows with image columns decoded to PIL images (audio stays {"path", "bytes"}: the collators decode it)."""
        import datasets

        images = [n for n, f in self.features.items() if isinstance(f, datasets.Image)]
        if not images:
            return rows
        decode = datasets.Image().decode_example
        try:
            return [{**r, **{n: decode(r[n]) for n in images if r[n] is not None}} for r in rows]
        except (OSError, ValueError) as err:  # a truncated or non-image file inside a shard
            raise ValueError(f"{self.source!r}: an image in the stream cannot be decoded ({err}); fix or drop that row") from err


class HubRowStream(RowStream):
    """A hub dataset as a RowStream: its shards stand where local files stand (multissl/data/stream_hub.py says how,
    and why resuming needs a pinned revision)."""

    builder = "hub"

    def __init__(self, source: str, split: str = "train", shuffle_buffer: int = STREAM_OPTIONS["shuffle_buffer"],
                 **load_kwargs: Any):
        from multissl.data.stream_hub import load_hub_stream

        self.source, self.split, self.shuffle_buffer, self.load_kwargs = str(source), split, shuffle_buffer, load_kwargs
        ds = load_hub_stream(self.source, split, load_kwargs)
        self.base = stream_columns(ds, webdataset=getattr(ds.info, "builder_name", None) == "webdataset")
        self.files = [str(i) for i in range(self.base.num_shards)]  # shard indices, permuted per epoch as files are
        self._probe()

    def _dataset(self, files: list[str]):
        from multissl.data.stream_hub import shards_in_order

        return shards_in_order(self.base, [int(i) for i in files])

    def resume_refusal(self) -> str | None:
        from multissl.data.stream_hub import unpinned_revision

        return unpinned_revision(self.source, self.load_kwargs)


def open_stream(source: str, /, split: str = "train", options: dict | None = None, **load_kwargs: Any) -> RowStream:
    """A RowStream over a local file or folder of shards, or a HubRowStream over a hub dataset (a name that is neither
    a local path nor a built-in dataset); built-in dataset names are loaded whole, not streamed. `load_kwargs` (the
    recipe's dataset_args) go to datasets.load_dataset: `name` (a config), `revision`, ..."""
    from multissl.data.stream_hub import is_hub_name
    from multissl.registry import DATASETS

    if source in DATASETS and not Path(source).exists():
        raise ValueError(f"streaming reads shard files or hub datasets; {source!r} is a built-in dataset, loaded whole: "
                         "drop `streaming`, or write its files into shards (`multissl data shard`) and name that folder")
    if is_hub_name(source, STREAM_BUILDERS):
        return HubRowStream(source, split, **stream_options(options), **load_kwargs)
    return RowStream(source, split, **stream_options(options), **load_kwargs)
