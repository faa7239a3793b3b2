"""Semi-supervised data: a labeled / unlabeled split of one dataset, and batches that draw from both at once.

`semi_supervised_split` picks the labeled rows with `split_labeled` (class-balanced, seeded, by row index) and
returns the rest with the label column REMOVED, so nothing downstream of the unlabeled stream can read a label
by accident. Tests that must check which labels were hidden recompute the rows with `labeled_unlabeled_rows`
(the same function of (labels, seed)) and look them up in the original dataset.

`LabeledUnlabeledSource` is the semi-supervised data hook's batch source (MethodModel.make_batch_source): item i
holds B labeled rows and μB unlabeled rows. Each stream is its own BatchSource with a seed derived from the run
seed, so each has its own permutation and epochs (the labeled set is small and wraps many times while the
unlabeled set is read once), item i is a pure function of (seed, i, rank) (a resumed run replays the same rows
and augmentations), and every process of a run takes disjoint rows of both streams' global batches.
Imports nothing from models/ or training/ (data layer).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from multissl.data.batches import BatchSource, derive_seed
from multissl.data.class_split import label_column_tensor
from multissl.data.label_split import split_labeled
from multissl.data.streaming import StreamedData

# Stream tags mixed into the run seed: the two streams never share a permutation or augmentation draw.
LABELED_STREAM, UNLABELED_STREAM = 0x4C, 0x55  # "L", "U"


def labeled_unlabeled_rows(dataset: Any, label_column: str, *, labels_per_class: int | None = None,
                           label_fraction: float | None = None, seed: int) -> tuple[list[int], list[int]]:
    """(labeled row indices, unlabeled row indices) of `dataset`, ascending: split_labeled on its label column."""
    labels = label_column_tensor(dataset, label_column)  # [N]; a clear error when the column is missing
    return split_labeled(labels, labels_per_class=labels_per_class, label_fraction=label_fraction, seed=seed)


def semi_supervised_split(dataset: Any, label_column: str = "label", *, labels_per_class: int | None = None,
                          label_fraction: float | None = None, seed: int) -> tuple[Any, Any]:
    """(labeled, unlabeled) views of a datasets.Dataset: exactly one of labels_per_class or label_fraction.

    labeled keeps every column; unlabeled is the other rows without `label_column` (its labels are not
    exposed: a collator cannot pass them on). Both are index views of `dataset` (no copy of the images).
    """
    if isinstance(dataset, StreamedData):  # the split needs every row's label and index: see docs/streaming.md, Limits
        raise ValueError("semi_supervised_split: the dataset is streamed, and a labeled/unlabeled split needs every "
                         "row's label and index; load it whole (drop the recipe's `streaming:` section; docs/streaming.md)")
    if not all(hasattr(dataset, a) for a in ("select", "remove_columns", "column_names")):
        raise ValueError(f"semi_supervised_split: dataset must be a datasets.Dataset; got {type(dataset).__name__}")
    labeled_rows, unlabeled_rows = labeled_unlabeled_rows(dataset, label_column, labels_per_class=labels_per_class,
                                                          label_fraction=label_fraction, seed=seed)
    if not unlabeled_rows:
        raise ValueError(f"semi_supervised_split: every one of the {len(labeled_rows)} rows is labeled "
                         f"(labels_per_class={labels_per_class!r}, label_fraction={label_fraction!r}); nothing is left "
                         f"for the unlabeled stream: label fewer rows")
    return dataset.select(labeled_rows), dataset.select(unlabeled_rows).remove_columns([label_column])


def training_streams(dataset: Any, label_column: str, *, labels_per_class: int | None, label_fraction: float | None,
                     seed: int, lambda_u: float) -> tuple[Any, Any | None]:
    """(labeled, unlabeled or None): the two streams a semi-supervised recipe trains on.

    label_fraction 1 with lambda_u 0 is the all-labels (supervised) bound: every row is labeled and there is no
    unlabeled stream (None). Otherwise semi_supervised_split; a λ_u = 0 run still gets the split (its labeled
    batches are then those of the λ_u > 0 run) and the caller draws no unlabeled rows (mu = 0).
    """
    if label_fraction == 1.0 and lambda_u == 0:
        return dataset, None
    return semi_supervised_split(dataset, label_column, labels_per_class=labels_per_class,
                                 label_fraction=label_fraction, seed=seed)


class LabeledUnlabeledSource(Dataset):
    """Map-style dataset of merged batches: item i = labeled_collate(B labeled rows) | unlabeled_collate(μB rows).

    The two collators' keys must differ (e.g. x_l / labels and x_weak / x_strong); the item is their union.
    mu = 0 draws the labeled stream alone (with the same seeds, so its batches are those of a mu > 0 run: a
    supervised-only baseline on exactly the same labeled batches); unlabeled_ds / unlabeled_collate may be None then.
    """

    def __init__(self, labeled_ds: Any, unlabeled_ds: Any, labeled_collate: Callable[..., dict],
                 unlabeled_collate: Callable[..., dict] | None, batch_size: int, mu: int, seed: int,
                 world_size: int = 1, rank: int = 0):
        for name, value, low in (("batch_size", batch_size, 1), ("mu", mu, 0), ("world_size", world_size, 1),
                                 ("rank", rank, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
        if rank >= world_size:
            raise ValueError(f"rank must be in [0, world_size = {world_size}); got {rank}")
        self._check_size("labeled", labeled_ds, batch_size, world_size, "or label more rows (labels_per_class)")
        self.labeled = BatchSource(labeled_ds, labeled_collate, batch_size, derive_seed(seed, LABELED_STREAM),
                                   world_size, rank)
        self.unlabeled = None
        if mu:
            if unlabeled_ds is None or unlabeled_collate is None:
                raise ValueError(f"mu = {mu} needs unlabeled_ds and unlabeled_collate; got None")
            self._check_size("unlabeled", unlabeled_ds, mu * batch_size, world_size, "or lower mu")
            self.unlabeled = BatchSource(unlabeled_ds, unlabeled_collate, mu * batch_size,
                                         derive_seed(seed, UNLABELED_STREAM), world_size, rank)
        self.batch_size, self.mu = batch_size, mu

    @staticmethod
    def _check_size(stream: str, dataset: Any, rows: int, world_size: int, hint: str) -> None:
        n = len(dataset)
        if n < rows * world_size:
            raise ValueError(f"the {stream} set has {n} rows, fewer than one global batch of that stream ({rows} per "
                             f"process x {world_size} processes); lower train.batch_size {hint}")

    def __len__(self) -> int:
        return 1 << 40  # effectively infinite; the sampler decides which indices are read

    def rows(self, index: int) -> tuple[list[int], list[int]]:
        """(labeled rows [B], unlabeled rows [μB]) of this process's micro-batch `index`, as indices into each set."""
        return self.labeled.rows(index), self.unlabeled.rows(index) if self.unlabeled is not None else []

    def __getitem__(self, index: int) -> dict:
        batch = dict(self.labeled[index])
        if self.unlabeled is not None:
            unlabeled = self.unlabeled[index]
            clash = sorted(set(batch) & set(unlabeled))
            if clash:
                raise ValueError(f"the labeled and unlabeled collators both return {clash}; give each stream its own "
                                 f"keys (e.g. x_l / labels and x_weak / x_strong)")
            batch.update(unlabeled)
        return batch
