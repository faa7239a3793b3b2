"""Deterministic, resumable batches: global micro-batch g of a run is always the same rows and augmentations.

Each item of BatchSource is a whole collated batch, addressed by its global index, so that
(a) resuming at step s just starts the index at s, (b) the result does not depend on the
number of DataLoader workers, and (c) every process of a multi-process run takes its own
disjoint rows of the same global batch.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


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
    """The data a recipe asks for: a built-in name or local path, a split and loader keyword arguments."""

    name: str
    split: str = "train"
    args: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The datasets.Dataset (built-in by name, else a local file/folder)."""
        from multissl.data import load_dataset_by_name

        return load_dataset_by_name(self.name, split=self.split, **self.args)


class BatchSource(Dataset):
    """Map-style dataset of collated batches: item i = micro-batch i of this process."""

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
