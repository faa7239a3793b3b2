"""Class-level data tools for metric learning: split a dataset by class, and class-balanced P x K batches.

Metric learning is judged on classes the model never saw (Musgrave et al. 2020): train on some
classes, retrieve among the others. `split_classes` chooses the training classes (an explicit list,
or a seeded fraction of the classes present) and returns both row subsets; the choice depends only
on (the set of classes, fraction, seed), never on row order.

Pair- and tuple-based losses (N-pair, triplet, SupCon) need positives in every batch:
`ClassBalancedBatches` draws P classes and K rows of each. Like `BatchSource` it is a map-style
dataset of whole collated batches addressed by global micro-batch index, and item i is a pure
function of (seed, i): a resumed run, or any number of DataLoader workers, sees the same batches.
Imports nothing from models/ or training/ (data layer).
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from multissl.data.batches import derive_seed, seed_everything


def label_column_tensor(dataset: Any, label_column: str) -> torch.Tensor:
    """The integer class ids of `dataset[label_column]` as int64 [N] (only that column is read)."""
    columns = getattr(dataset, "column_names", None) or []
    if label_column not in columns:
        raise ValueError(f"label_column {label_column!r} is not a column of the dataset; columns: {', '.join(columns)}")
    values = list(dataset[label_column])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        bad = next(v for v in values if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0))
        raise ValueError(f"label_column {label_column!r} must hold non-negative int class ids (e.g. a datasets.ClassLabel); got {bad!r}")
    return torch.tensor(values, dtype=torch.long)


def _class_ids(classes: Any, name: str) -> list[int]:
    """A list of distinct non-negative ints (numpy ints too; not floats or bools), or a ValueError naming the argument."""
    try:
        items = list(classes)
        out = [operator.index(c) for c in items if not isinstance(c, bool)]
    except TypeError as err:
        raise ValueError(f"{name} must be a list of int class ids; got {classes!r}") from err
    if not out or len(out) != len(items) or len(set(out)) != len(out) or min(out) < 0:
        raise ValueError(f"{name} must be a non-empty list of distinct non-negative int class ids; got {classes!r}")
    return out


def select_classes(dataset: Any, label_column: str, classes: Sequence[int]) -> Any:
    """The rows of `dataset` whose label is in `classes`, in their original order (an index view, no copy)."""
    labels = label_column_tensor(dataset, label_column)  # [N]
    wanted = torch.tensor(_class_ids(classes, "classes"), dtype=torch.long)
    keep = torch.isin(labels, wanted).nonzero().squeeze(1)  # [M] row indices, ascending
    return dataset.select(keep.tolist())


@dataclass(frozen=True)
class ClassSplit:
    """Two disjoint row subsets by class: `train` holds train_classes, `held_out` the other classes present."""

    train: Any
    held_out: Any
    train_classes: list[int]
    held_out_classes: list[int]


def split_classes(dataset: Any, label_column: str = "label", *, train_classes: Sequence[int] | None = None,
                  fraction: float | None = None, seed: int = 0) -> ClassSplit:
    """Split `dataset` by class: exactly one of `train_classes` (explicit ids, each present) or `fraction` in (0, 1).

    With `fraction`, round(fraction * C) of the C classes present (at least 1, at most C - 1) train,
    chosen by a torch.randperm seeded with `seed` over the sorted class ids; train_classes is returned
    sorted. An explicit list keeps its order (it is the order of the model's class rows).
    """
    if (train_classes is None) == (fraction is None):
        raise ValueError(f"split_classes needs exactly one of train_classes or fraction; got train_classes={train_classes!r}, "
                         f"fraction={fraction!r}")
    labels = label_column_tensor(dataset, label_column)  # [N]
    present = torch.unique(labels)  # [C] sorted
    if train_classes is not None:
        chosen = _class_ids(train_classes, "train_classes")
        missing = sorted(set(chosen) - set(present.tolist()))
        if missing:
            raise ValueError(f"train_classes {missing} have no rows in the dataset (classes present: {present.tolist()})")
    else:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < float(fraction) < 1:
            raise ValueError(f"fraction must be a number in (0, 1) (the share of classes that train); got {fraction!r}")
        c = int(present.numel())
        if c < 2:
            raise ValueError(f"split_classes needs at least 2 classes to hold some out; the dataset has {c}")
        take = min(c - 1, max(1, math.floor(float(fraction) * c + 0.5)))  # round half up, keep both sides non-empty
        order = torch.randperm(c, generator=torch.Generator().manual_seed(int(seed)))
        chosen = sorted(present[order[:take]].tolist())
    chosen_set = set(chosen)
    held = [c for c in present.tolist() if c not in chosen_set]
    in_train = torch.isin(labels, torch.tensor(chosen, dtype=torch.long))  # [N]
    return ClassSplit(train=dataset.select(in_train.nonzero().squeeze(1).tolist()),
                      held_out=dataset.select((~in_train).nonzero().squeeze(1).tolist()),
                      train_classes=chosen, held_out_classes=held)


class ClassBalancedBatches(Dataset):
    """Map-style dataset of collated batches: item i = this process's P classes x K rows of global batch i.

    Global batch i draws world_size * P distinct classes (a seeded randperm) and K distinct rows of
    each (the K smallest of seeded uniform keys over the class's rows), from one generator seeded
    with (seed, i): every process computes the same global batch and takes classes
    [rank * P, (rank + 1) * P), so the classes of different processes never overlap (N-pair's
    negatives stay distinct when gathered). Rows are class-major: [c0 x K, c1 x K, ...]. Batches are
    drawn independently (no epochs), so any index can be read first.
    """

    def __init__(self, dataset: Any, collate: Callable[..., dict], label_column: str, classes_per_batch: int,
                 samples_per_class: int, seed: int, world_size: int = 1, rank: int = 0):
        for name, value, low in (("classes_per_batch", classes_per_batch, 1), ("samples_per_class", samples_per_class, 1),
                                 ("world_size", world_size, 1), ("rank", rank, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
        if rank >= world_size:
            raise ValueError(f"rank must be in [0, world_size = {world_size}); got {rank}")
        labels = label_column_tensor(dataset, label_column)  # [N]
        self.classes, counts = torch.unique(labels, return_counts=True)  # [C] sorted ids, rows per class
        if world_size * classes_per_batch > self.classes.numel():
            raise ValueError(
                f"a global batch needs {world_size} x {classes_per_batch} = {world_size * classes_per_batch} distinct classes "
                f"(batch_size / samples_per_class per process) but the dataset has {self.classes.numel()}; lower batch_size "
                f"or raise samples_per_class")
        short = counts < samples_per_class
        if bool(short.any()):
            raise ValueError(f"samples_per_class={samples_per_class} but class {int(self.classes[short][0])} has only "
                             f"{int(counts[short][0])} row(s); lower samples_per_class or drop that class")
        self.dataset, self.collate = dataset, collate
        self.p, self.k, self.seed, self.world_size, self.rank = classes_per_batch, samples_per_class, seed, world_size, rank
        self.by_class = torch.argsort(labels, stable=True)  # [N] row ids grouped by class, ascending inside a class
        self.starts, self.counts = torch.cumsum(counts, 0) - counts, counts  # [C] each

    def __len__(self) -> int:
        return 1 << 40  # effectively infinite; the sampler decides which indices are read

    def rows(self, index: int) -> list[int]:
        """Dataset row indices of this process's micro-batch `index` (P*K, class-major)."""
        g = torch.Generator().manual_seed(derive_seed(self.seed, index, 3))  # not the rank: all processes agree
        picked = torch.randperm(self.classes.numel(), generator=g)[: self.world_size * self.p]  # [W*P] class positions
        counts = self.counts[picked]  # [W*P]
        keys = torch.rand(picked.numel(), int(counts.max()), generator=g)  # [W*P, max n_c]
        keys.masked_fill_(torch.arange(keys.shape[1])[None, :] >= counts[:, None], 2.0)  # past a class's rows: never chosen
        within = keys.topk(self.k, dim=1, largest=False).indices  # [W*P, K] distinct positions < n_c
        rows = self.by_class[self.starts[picked][:, None] + within]  # [W*P, K]
        return rows[self.rank * self.p : (self.rank + 1) * self.p].reshape(-1).tolist()

    def __getitem__(self, index: int) -> dict:
        columns = self.dataset[self.rows(index)]  # one vectorised read
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        seed = derive_seed(self.seed, index, self.rank, 1)
        seed_everything(seed)  # torchvision's transforms draw from the global RNG
        return self.collate(rows, generator=torch.Generator().manual_seed(seed))
