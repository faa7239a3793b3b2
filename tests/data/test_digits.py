"""The built-in `digits` dataset: sizes, stratified deterministic train/validation/test split, column types, pixel scaling."""
from collections import Counter

import datasets
import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from multissl.data import load_dataset_by_name
from multissl.data.digits import split_indices, stratified_split


@pytest.fixture(scope="module")
def splits():
    return {s: load_dataset_by_name("digits", split=s) for s in ("train", "validation", "test", "all")}


def test_sizes_and_columns(splits):
    assert len(splits["all"]) == 1797
    assert len(splits["train"]) + len(splits["validation"]) + len(splits["test"]) == 1797
    assert abs(len(splits["test"]) / 1797 - 0.2) < 0.01
    assert abs(len(splits["validation"]) / 1797 - 0.1) < 0.01  # 12.5% of the 80% that is not test
    feats = splits["train"].features
    assert isinstance(feats["image"], datasets.Image)
    assert isinstance(feats["label"], datasets.ClassLabel) and feats["label"].num_classes == 10
    row = splits["train"][0]
    assert row["image"].mode == "L" and row["image"].size == (8, 8)
    assert isinstance(row["label"], int)


def test_split_is_stratified_and_disjoint(splits):
    sk = sk_load_digits()
    all_counts = Counter(splits["all"]["label"])
    test_counts = Counter(splits["test"]["label"])
    for c in range(10):  # every class contributes ~20% of its rows to test
        assert abs(test_counts[c] - 0.2 * all_counts[c]) <= 1
    assert dict(all_counts) == dict(Counter(sk.target.tolist()))
    val_counts = Counter(splits["validation"]["label"])
    for c in range(10):  # and 12.5% of what is left to validation
        assert abs(val_counts[c] - 0.125 * (all_counts[c] - test_counts[c])) <= 1
    idx = split_indices(sk.target)
    parts = [set(idx[s].tolist()) for s in ("train", "validation", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(parts[0] | parts[1] | parts[2]) == list(range(1797))


def test_test_split_is_unchanged_by_the_validation_split(splits):
    """test is row for row the split of the train/test-only version: the same seeded draw, computed independently."""
    sk = sk_load_digits()
    rng = np.random.default_rng(0)  # the original definition: per class, round(0.2 * n_c) rows drawn with seed 0
    want = np.sort(np.concatenate([rng.permutation(np.flatnonzero(sk.target == c))[:int(round(0.2 * (sk.target == c).sum()))]
                                   for c in range(10)]))
    assert split_indices(sk.target)["test"].tolist() == want.tolist()
    old_train, _ = stratified_split(sk.target, 0.2, 0)
    idx = split_indices(sk.target)
    assert sorted(idx["train"].tolist() + idx["validation"].tolist()) == old_train.tolist()  # carved from the old train
    assert list(splits["test"]["label"]) == sk.target[want].tolist()
    got = np.stack([np.asarray(im) for im in splits["test"]["image"]]).astype(np.float64)
    assert np.abs(got - sk.images[want] * 255 / 16).max() <= 0.5


def test_pixels_match_sklearn_scaled(splits):
    sk = sk_load_digits()
    train_idx = split_indices(sk.target)["train"]
    for row_pos in (0, 100, 1000):  # train rows are sklearn rows train_idx in order
        got = np.asarray(splits["train"][row_pos]["image"], dtype=np.float64)
        want = sk.images[train_idx[row_pos]] * 255 / 16
        assert np.abs(got - want).max() <= 0.5
        assert splits["train"][row_pos]["label"] == sk.target[train_idx[row_pos]]
    arr = np.stack([np.asarray(im) for im in splits["all"][:50]["image"]])
    assert arr.min() == 0 and arr.max() == 255


@pytest.mark.parametrize("split", ["validation", "test"])
def test_deterministic_across_loads(splits, split):
    again = load_dataset_by_name("digits", split=split)
    assert list(again["label"]) == list(splits[split]["label"])
    assert np.array_equal(np.asarray(again[7]["image"]), np.asarray(splits[split][7]["image"]))


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="digits.*'valid'.*train, validation, test, all"):
        load_dataset_by_name("digits", split="valid")
