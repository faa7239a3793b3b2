"""split_classes / select_classes (by class, seeded) and ClassBalancedBatches (P x K, a pure function of (seed, index))."""
import datasets
import pytest
import torch

from multissl.data.class_split import ClassBalancedBatches, select_classes, split_classes


def _dataset(counts=(5, 6, 7, 8, 9, 10)):
    """Rows with x = row index and label; classes 0..C-1 with the given row counts, interleaved."""
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(labels.numel(), generator=g)].tolist()
    return datasets.Dataset.from_dict({"x": list(range(len(labels))), "label": labels})


def _collate(rows, generator=None):
    return {"x": torch.tensor([r["x"] for r in rows]), "labels": torch.tensor([r["label"] for r in rows])}


def test_explicit_train_classes_partition_the_rows_and_keep_their_order():
    ds = _dataset()
    split = split_classes(ds, "label", train_classes=[3, 0, 4])
    assert split.train_classes == [3, 0, 4] and split.held_out_classes == [1, 2, 5]
    assert set(split.train["label"]) == {0, 3, 4} and set(split.held_out["label"]) == {1, 2, 5}
    tr, ho = list(split.train["x"]), list(split.held_out["x"])
    assert tr == sorted(tr) and ho == sorted(ho) and sorted(tr + ho) == list(range(len(ds)))
    assert list(select_classes(ds, "label", [3, 0, 4])["x"]) == tr


def test_fraction_follows_the_seeded_rule_and_rounds_half_up():
    ds = _dataset()
    split = split_classes(ds, "label", fraction=0.5, seed=7)
    reference = sorted(torch.randperm(6, generator=torch.Generator().manual_seed(7))[:3].tolist())  # classes are 0..5
    assert split.train_classes == reference and len(split.held_out_classes) == 3
    assert split_classes(ds, "label", fraction=0.5, seed=7).train_classes == reference  # reproducible
    assert len(split_classes(ds, "label", fraction=0.25, seed=0).train_classes) == 2  # 1.5 -> 2
    assert len(split_classes(ds, "label", fraction=0.01, seed=0).train_classes) == 1  # at least one trains
    assert len(split_classes(ds, "label", fraction=0.99, seed=0).held_out_classes) == 1  # at least one is held out
    chosen = {tuple(split_classes(ds, "label", fraction=0.5, seed=s).train_classes) for s in range(6)}
    assert len(chosen) > 1  # the seed matters


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one"),
    ({"train_classes": [0], "fraction": 0.5}, "exactly one"),
    ({"train_classes": [0, 42]}, r"train_classes \[42\] have no rows"),
    ({"train_classes": [0, 0]}, "distinct"),
    ({"train_classes": [0.5]}, "int class ids"),
    ({"fraction": 1.0}, r"fraction must be a number in \(0, 1\)"),
    ({"fraction": True}, "fraction"),
])
def test_bad_split_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_classes(_dataset(), "label", **kwargs)


def test_a_missing_or_non_integer_label_column_is_named():
    with pytest.raises(ValueError, match="label_column 'y' is not a column"):
        split_classes(_dataset(), "y", fraction=0.5)
    ds = datasets.Dataset.from_dict({"label": ["a", "b"]})
    with pytest.raises(ValueError, match="non-negative int class ids"):
        select_classes(ds, "label", [0])


def test_batches_hold_p_classes_times_k_distinct_rows_of_the_kept_classes():
    full = _dataset()
    ds = split_classes(full, "label", train_classes=[0, 2, 3, 5]).train
    source = ClassBalancedBatches(ds, _collate, "label", classes_per_batch=3, samples_per_class=4, seed=1)
    for i in range(20):
        batch = source[i]
        labels = batch["labels"].view(3, 4)  # class-major: P rows of K
        assert (labels == labels[:, :1]).all() and labels[:, 0].unique().numel() == 3
        assert set(labels.flatten().tolist()) <= {0, 2, 3, 5}  # never a held-out class
        assert batch["x"].unique().numel() == 12  # rows drawn without replacement
        assert all(full[x]["label"] == y for x, y in zip(batch["x"].tolist(), batch["labels"].tolist()))
    seen = torch.cat([source[i]["labels"] for i in range(50)])
    assert set(seen.tolist()) == {0, 2, 3, 5}


def test_item_i_is_a_pure_function_of_seed_and_index():
    ds = _dataset()
    a = ClassBalancedBatches(ds, _collate, "label", 2, 3, seed=5)
    b = ClassBalancedBatches(ds, _collate, "label", 2, 3, seed=5)
    forward = [a[i]["x"] for i in range(8)]
    backward = [b[i]["x"] for i in reversed(range(8))][::-1]  # another read order, a fresh source (a resumed run)
    assert all(torch.equal(f, g) for f, g in zip(forward, backward))
    c = ClassBalancedBatches(ds, _collate, "label", 2, 3, seed=6)
    assert any(not torch.equal(a[i]["x"], c[i]["x"]) for i in range(8))
    assert any(not torch.equal(a[0]["x"], a[i]["x"]) for i in range(1, 8))


def test_processes_take_disjoint_classes_of_one_global_batch():
    ds = _dataset()
    whole = ClassBalancedBatches(ds, _collate, "label", 4, 2, seed=3)
    ranks = [ClassBalancedBatches(ds, _collate, "label", 2, 2, seed=3, world_size=2, rank=r) for r in range(2)]
    for i in range(5):
        parts = [s.rows(i) for s in ranks]
        assert parts[0] + parts[1] == whole.rows(i)
        classes = [{ds[j]["label"] for j in p} for p in parts]
        assert not classes[0] & classes[1]


def test_impossible_batches_are_refused_with_the_reason():
    ds = _dataset()
    with pytest.raises(ValueError, match="distinct classes"):
        ClassBalancedBatches(ds, _collate, "label", 4, 2, seed=0, world_size=2)  # 8 classes needed, 6 present
    with pytest.raises(ValueError, match="class 0 has only 5 row"):
        ClassBalancedBatches(ds, _collate, "label", 2, 6, seed=0)
    with pytest.raises(ValueError, match="samples_per_class must be an int >= 1"):
        ClassBalancedBatches(ds, _collate, "label", 2, 0, seed=0)
