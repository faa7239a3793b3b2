"""Deterministic, resumable batches: global micro-batch g of a run is always the same rows and augmentations.

Each item of BatchSource is a whole collated batch, addressed by its global index, so that
(a) resuming at step s just starts the index at s, (b) the result does not depend on the
number of DataLoader workers, and (c) every process of a multi-process run takes its own
disjoint rows of the same global batch.

A streamed dataset (recipe key `streaming:`) has no index: its position is state. Its batch source is a
`StatefulBatchSource`, whose loader reports a JSON-able `state_dict()` that the loop saves in each checkpoint
and hands back on resume (`open_batches`), so a resumed stream continues at the exact next row.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (run seed, step, rank, ...)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) + 0x9E3779B9 + (value << 6) + (value >> 2))) & ((1 << 63) - 1)
    return value


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random (augmentations may use any of them)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


@dataclass(frozen=True)
class DataRequest:
    """The data a recipe asks for: a built-in name or local path, a split, loader keyword arguments and, when the
    data is to be streamed rather than loaded whole, the streaming options (a dict, possibly empty)."""

    name: str
    split: str = "train"
    args: dict[str, Any] = field(default_factory=dict)
    streaming: dict[str, Any] | None = None

    def load(self) -> Any:
        """The datasets.Dataset (built-in by name, else a local file/folder), or a RowStream when streaming."""
        if self.streaming is not None:
            from multissl.data.streaming import open_stream

            return open_stream(self.name, self.split, self.streaming, **self.args)
        from multissl.data import load_dataset_by_name

        return load_dataset_by_name(self.name, split=self.split, **self.args)


class BatchSource(Dataset):
    """Map-style dataset of collated batches: item i = micro-batch i of this process.

    Given a streamed dataset (a RowStream, or the BlockStream text methods pack it into) instead, `BatchSource(...)`
    returns a StreamBatchSource, so every data hook that wraps its dataset in a BatchSource streams without a change.
    """

    def __new__(cls, dataset: Any = None, *args: Any, **kwargs: Any):
        from multissl.data.streaming import StreamedData

        if cls is BatchSource and isinstance(dataset, StreamedData):
            return StreamBatchSource(dataset, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, dataset, collate: Callable[..., dict], batch_size: int, seed: int, world_size: int = 1, rank: int = 0):
        n = len(dataset)
        if n < batch_size * world_size:
            raise ValueError(
                f"the dataset has {n} rows, fewer than one global batch ({batch_size} per process x {world_size} processes); "
                "lower train.batch_size or use more data"
            )
        self.dataset, self.collate = dataset, collate
        self.batch_size, self.seed, self.world_size, self.rank = batch_size, seed, world_size, rank
        self.batches_per_epoch = n // (batch_size * world_size)  # drop_last: every batch is full
        self._perm_epoch, self._perm = -1, None

    def __len__(self) -> int:
        return 1 << 40  # effectively infinite; the sampler decides which indices are read

    def rows(self, index: int) -> list[int]:
        """Dataset row indices of this process's micro-batch `index`."""
        epoch, pos = divmod(index, self.batches_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            self._perm, self._perm_epoch = torch.randperm(len(self.dataset), generator=g), epoch
        start = (pos * self.world_size + self.rank) * self.batch_size
        return self._perm[start : start + self.batch_size].tolist()

    def __getitem__(self, index: int) -> dict:
        rows_idx = self.rows(index)
        try:
            columns = self.dataset[rows_idx]  # one vectorised read instead of B row reads
        except (OSError, ValueError) as err:  # a file that does not decode (a truncated image, a broken audio file)
            raise ValueError(undecodable_row(self.dataset, rows_idx, err)) from err
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        seed = derive_seed(self.seed, index, self.rank, 1)
        seed_everything(seed)  # augmentations that use the global RNG are reproducible too
        return self.collate(rows, generator=torch.Generator().manual_seed(seed))


def undecodable_row(dataset, rows: list[int], err: BaseException) -> str:
    """One line naming the file behind the first of `rows` whose image/audio column fails to decode."""
    import datasets

    lazy = {name: f for name, f in dataset.features.items() if isinstance(f, (datasets.Image, datasets.Audio)) and f.decode}
    for row in rows:
        try:
            dataset[row]
        except (OSError, ValueError) as row_err:
            for name, feature in lazy.items():
                raw = dataset.cast_column(name, type(feature)(decode=False))[row][name]
                path = raw.get("path") if isinstance(raw, dict) else None
                if path:
                    return f"row {row}, column {name!r}: {path} cannot be decoded ({row_err}); fix or remove that file"
            return f"row {row} cannot be decoded ({row_err})"
    return f"rows {rows[:3]}... cannot be read ({err})"


class RangeSampler(torch.utils.data.Sampler):
    """Yields start, start+1, ..., stop-1 (the micro-batch indices still to run)."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


class StatefulBatchSource(IterableDataset):
    """A batch source whose position is state, not an index (a stream): the loop asks it for a loader with
    `open_batches`, saves the loader's `state_dict()` in every checkpoint and passes it back on resume."""

    def loader(self, start: int, stop: int, *, num_workers: int = 0, worker_init_fn: Callable | None = None,
               state: list | None = None) -> BatchLoader:
        """Micro-batches start..stop-1 of this process; `state`: what the checkpoint saved (one entry per process)."""
        raise NotImplementedError(f"{type(self).__name__} must define loader()")


class BatchLoader:
    """What the loop iterates: micro-batches in order, and the state to save (None: the step index says it all)."""

    def __init__(self, batches: Iterator[dict]):
        self._batches = batches

    def __iter__(self) -> BatchLoader:
        return self

    def __next__(self) -> dict:
        return next(self._batches)

    def state_dict(self) -> dict | None:
        """JSON-able loader state for the checkpoint after the last batch handed out; None when there is none."""
        return None


def _data_loader(dataset: Dataset, num_workers: int, worker_init_fn: Callable | None, sampler: Any = None) -> DataLoader:
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=4 if num_workers else None, worker_init_fn=worker_init_fn if num_workers else None)


def open_batches(source: Dataset, start: int, stop: int, *, num_workers: int = 0, worker_init_fn: Callable | None = None,
                 state: list | None = None) -> BatchLoader:
    """The loop's iterator over this process's micro-batches start..stop-1 (state: a checkpoint's saved loader state)."""
    if isinstance(source, StatefulBatchSource):
        return source.loader(start, stop, num_workers=num_workers, worker_init_fn=worker_init_fn, state=state)
    if state is not None:
        raise ValueError("the checkpoint holds a stream position but this run's data is not streamed; resume with the "
                         "run's own recipe (its `streaming` section)")
    return BatchLoader(iter(_data_loader(source, num_workers, worker_init_fn, RangeSampler(start, stop))))


class StreamBatchSource(StatefulBatchSource):
    """Micro-batches from a StreamedData (a RowStream's rows, or a BlockStream's token blocks). This process's share
    is cut into `streams` sequential streams (a node each of split_dataset_by_node); micro-batch g comes from stream
    g % streams, collated with the same seed a map-style BatchSource uses. Loader workers serve whole streams, so
    `streams` (max(1, num_workers) when a run starts) fixes the batches: a resume may use any worker count that
    divides it."""

    def __init__(self, stream: Any, collate: Callable[..., dict], batch_size: int, seed: int, world_size: int = 1,
                 rank: int = 0):
        self.stream, self.collate = stream, collate
        self.batch_size, self.seed, self.world_size, self.rank = batch_size, seed, world_size, rank
        self._plan: tuple[int, int, int, list] = (0, 0, 1, [None])  # (start, stop, streams, positions): set by loader()

    def loader(self, start: int, stop: int, *, num_workers: int = 0, worker_init_fn: Callable | None = None,
               state: list | None = None) -> BatchLoader:
        """Batches start..stop-1; state: [per-process {"streams", "positions"}] from the checkpoint, or None to begin."""
        workers = max(1, num_workers)
        if state is None:
            if start:
                raise ValueError(f"resuming a streamed run at micro-batch {start} needs the stream position, and the "
                                 "checkpoint holds none; start the run again")
            streams, positions = workers, [None] * workers
        else:
            refusal = self.stream.resume_refusal()
            if refusal:
                raise ValueError(refusal)
            if not isinstance(state, list) or len(state) != self.world_size:
                saved = len(state) if isinstance(state, list) else "?"
                raise ValueError(f"the checkpoint's stream position was saved by {saved} process(es); resume with "
                                 f"{saved} processes, not {self.world_size}")
            streams, positions = state[self.rank]["streams"], list(state[self.rank]["positions"])
            if streams % workers:
                raise ValueError(f"this streamed run reads {streams} stream(s) per process; resume with a train.num_workers "
                                 f"that divides {streams} (0 counts as 1), not {num_workers}")
        self._plan = (start, stop, streams, positions)  # read by __iter__ in the loader's workers (forked after this)
        return StreamLoader(iter(_data_loader(self, num_workers, worker_init_fn)), streams, positions)

    def __iter__(self) -> Iterator[tuple[dict, tuple[int, str]]]:
        start, stop, streams, positions = self._plan
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # DataLoader takes items from its workers in turn, so worker w hands out g = start + w, start + w + workers, ...
        # and, as `workers` divides `streams`, every g of one stream lands on the same worker.
        mine = [s for s in range(streams) if (s - start) % workers == worker]
        nodes = self.world_size * streams
        its = {s: self.stream.node_batches(self.rank * streams + s, nodes, self.batch_size, self.seed, positions[s])
               for s in mine}
        for g in range(start + worker, stop, workers):
            rows, position = next(its[g % streams])
            seed = derive_seed(self.seed, g, self.rank, 1)
            seed_everything(seed)
            batch = self.collate(rows, generator=torch.Generator().manual_seed(seed))
            yield batch, (g % streams, json.dumps(position))  # a string: the DataLoader passes it through untouched


class StreamLoader(BatchLoader):
    """Hands out stream batches in order and keeps, per stream, the position after its last batch handed out."""

    def __init__(self, items: Iterator, streams: int, positions: list):
        super().__init__(items)
        self.streams, self._positions = streams, [None if p is None else json.dumps(p) for p in positions]

    def __next__(self) -> dict:
        batch, (stream, position) = next(self._batches)
        self._positions[stream] = position
        return batch

    def state_dict(self) -> dict:
        return {"streams": self.streams, "positions": [None if p is None else json.loads(p) for p in self._positions]}
