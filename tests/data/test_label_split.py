"""split_labeled: class-balanced, seeded by row index, nested, with named errors."""
import ast
import math
from pathlib import Path

import pytest
import torch

from multissl.data.label_split import split_labeled


def _labels(seed=0, n=120, k=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (n,), generator=g).tolist()


def _reference(labels, take_of_count, seed):
    """Loop form of the documented rule: rank rows by randperm(N) from the seed; per class take the lowest ranks."""
    rank = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen = []
    for c in sorted(set(labels)):
        rows = sorted((rank[i], i) for i, y in enumerate(labels) if y == c)
        chosen += [i for _, i in rows[: take_of_count(len(rows))]]
    return sorted(chosen)


def test_labels_per_class_matches_loop_reference_and_partitions_rows():
    labels = _labels()
    lab, unl = split_labeled(labels, labels_per_class=5, seed=3)
    assert lab == _reference(labels, lambda n: 5, 3)
    assert sorted(lab + unl) == list(range(len(labels))) and not set(lab) & set(unl)
    assert lab == sorted(lab) and unl == sorted(unl)
    counts = {c: sum(labels[i] == c for i in lab) for c in set(labels)}
    assert set(counts.values()) == {5}


def test_fraction_is_per_class_rounded_half_up_with_at_least_one():
    labels = [0] * 30 + [1] * 5 + [2] * 1 + [3] * 10
    lab, _ = split_labeled(labels, label_fraction=0.1, seed=0)
    counts = [sum(labels[i] == c for i in lab) for c in range(4)]
    assert counts == [3, 1, 1, 1]  # 3.0, 0.5 -> 1 (half up), 0.1 -> at least 1, 1.0
    assert lab == _reference(labels, lambda n: max(1, math.floor(0.1 * n + 0.5)), 0)
    lab, unl = split_labeled(labels, label_fraction=1.0, seed=0)
    assert lab == list(range(len(labels))) and unl == []  # the fully supervised bound


def test_same_seed_same_split_other_seed_differs():
    labels = _labels(1)
    a = split_labeled(labels, labels_per_class=4, seed=11)
    assert a == split_labeled(list(labels), labels_per_class=4, seed=11)
    assert a == split_labeled(torch.tensor(labels), labels_per_class=4, seed=11)  # tensors accepted too
    assert a != split_labeled(labels, labels_per_class=4, seed=12)


def test_subsets_are_nested_and_classes_independent():
    labels = _labels(2)
    small, _ = split_labeled(labels, labels_per_class=2, seed=5)
    large, _ = split_labeled(labels, labels_per_class=6, seed=5)
    assert set(small) <= set(large)
    # relabelling rows of classes 1..3 among themselves leaves class 0's choice unchanged
    shuffled = [y if y == 0 else 1 + (y + 1) % 3 for y in labels]
    zeros = [i for i in split_labeled(labels, labels_per_class=3, seed=5)[0] if labels[i] == 0]
    zeros_after = [i for i in split_labeled(shuffled, labels_per_class=3, seed=5)[0] if shuffled[i] == 0]
    assert zeros == zeros_after


def test_selection_is_by_row_index_not_by_content():
    """Documented: reordering the dataset changes which examples are labeled (split before shuffling)."""
    labels = _labels(3, n=80)
    order = torch.randperm(80, generator=torch.Generator().manual_seed(0)).tolist()
    reordered = [labels[i] for i in order]
    lab, _ = split_labeled(labels, labels_per_class=3, seed=1)
    lab_re, _ = split_labeled(reordered, labels_per_class=3, seed=1)
    assert set(lab) != {order[i] for i in lab_re}


def test_errors_are_named():
    labels = [0, 0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="exactly one of labels_per_class or label_fraction"):
        split_labeled(labels, seed=0)
    with pytest.raises(ValueError, match="exactly one"):
        split_labeled(labels, labels_per_class=1, label_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match=r"class 1 has 2, class 2 has 1 example"):
        split_labeled(labels, labels_per_class=3, seed=0)
    with pytest.raises(ValueError, match="labels_per_class must be an int >= 1"):
        split_labeled(labels, labels_per_class=0, seed=0)
    with pytest.raises(ValueError, match="label_fraction must be in"):
        split_labeled(labels, label_fraction=0.0, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        split_labeled([0, -1, 1], labels_per_class=1, seed=0)
    with pytest.raises(ValueError, match="ints"):
        split_labeled([0.0, 1.0], labels_per_class=1, seed=0)
    with pytest.raises(ValueError, match="non-empty"):
        split_labeled([], labels_per_class=1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        split_labeled(labels, labels_per_class=1, seed="0")


def test_data_layer_imports_nothing_from_models_or_training():
    import multissl.data.label_split as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in names if m.startswith(("multissl.models", "multissl.training"))]
