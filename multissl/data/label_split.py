"""Choosing the labeled subset for semi-supervised training: class-balanced, seeded, by row index.

The choice is a function of (labels in row order, seed) only. Every row gets a random rank from one
torch.Generator seeded with `seed` (a permutation of 0..N-1, so no ties); within each class the rows with the
lowest ranks are labeled. Consequences, all deliberate and tested:
  * the same labels list and seed give the same subset on any machine (torch's CPU generator is portable);
  * the selection is by ROW INDEX: shuffling or filtering the dataset first changes which examples are chosen
    (rows carry no stable identity we could hash), so split before any shuffling;
  * subsets are nested: with the same seed, 4 labels per class are the first 4 of the 25 chosen for 25;
  * a class's choice does not depend on the other classes' labels, only on the ranks of its own rows.
Imports nothing from models/ or training/ (data layer).
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch


def _as_label_tensor(labels: Sequence[int]) -> torch.Tensor:
    try:
        t = torch.as_tensor(list(labels) if not isinstance(labels, torch.Tensor) else labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"labels must be a sequence of non-negative ints; got {type(labels).__name__}") from err
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence of ints; got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"labels must be ints (class ids); got dtype {t.dtype}")
    if int(t.min()) < 0:
        raise ValueError(f"labels must be non-negative class ids; got {int(t.min())} "
                         f"(drop rows without a label before splitting)")
    return t.long()


def split_labeled(labels: Sequence[int], *, labels_per_class: int | None = None,
                  label_fraction: float | None = None, seed: int) -> tuple[list[int], list[int]]:
    """(labeled row indices, unlabeled row indices), each sorted ascending; together they are 0..N-1.

    Exactly one of: labels_per_class (k rows of every class present; a class with fewer than k rows is an
    error) or label_fraction f in (0, 1] (round(f * n_c) rows of each class c, at least one). Deterministic by
    seed and by row index (see the module docstring).
    """
    if (labels_per_class is None) == (label_fraction is None):
        raise ValueError("split_labeled needs exactly one of labels_per_class or label_fraction; got "
                         f"labels_per_class={labels_per_class!r}, label_fraction={label_fraction!r}")
    try:
        seed = operator.index(seed)  # ints (and numpy ints); not floats, strings or None
    except TypeError as err:
        raise ValueError(f"seed must be an int; got {seed!r}") from err
    y = _as_label_tensor(labels)  # [N]
    n = y.numel()
    classes, counts = torch.unique(y, return_counts=True)  # sorted class ids, [K] each
    if labels_per_class is not None:
        if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, int) or labels_per_class < 1:
            raise ValueError(f"labels_per_class must be an int >= 1; got {labels_per_class!r}")
        short = counts < labels_per_class
        if bool(short.any()):
            bad = ", ".join(f"class {int(c)} has {int(k)}" for c, k in zip(classes[short], counts[short]))
            raise ValueError(f"labels_per_class={labels_per_class} but {bad} example(s)")
        take = torch.full_like(counts, labels_per_class)  # [K]
    else:
        if not isinstance(label_fraction, (int, float)) or not 0.0 < float(label_fraction) <= 1.0:
            raise ValueError(f"label_fraction must be in (0, 1]; got {label_fraction!r}")
        # round half up (not Python's half-to-even), at least one labeled row per class
        take = torch.tensor([max(1, math.floor(float(label_fraction) * int(k) + 0.5)) for k in counts])
    g = torch.Generator().manual_seed(seed)
    rank = torch.randperm(n, generator=g)  # [N]: a distinct random rank per row
    by_rank = torch.argsort(rank)  # rows in rank order
    order = by_rank[torch.argsort(y[by_rank], stable=True)]  # grouped by class, rank order within a class
    class_of_sorted = y[order]  # [N], non-decreasing
    starts = torch.cumsum(counts, 0) - counts  # [K]: first position of each class in `order`
    class_pos = torch.searchsorted(classes, class_of_sorted)  # [N]: index into classes/counts
    within = torch.arange(n) - starts[class_pos]  # [N]: 0, 1, ... inside each class
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[order[within < take[class_pos]]] = True
    labeled = torch.nonzero(chosen).squeeze(1).tolist()
    unlabeled = torch.nonzero(~chosen).squeeze(1).tolist()
    return labeled, unlabeled
