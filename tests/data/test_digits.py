"""The built-in `digits` dataset: sizes, stratified deterministic split, column types, pixel scaling."""
from collections import Counter

import datasets
import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from multissl.data import load_dataset_by_name
from multissl.data.digits import stratified_split


@pytest.fixture(scope="module")
def splits():
    return {s: load_dataset_by_name("digits", split=s) for s in ("train", "test", "all")}


def test_sizes_and_columns(splits):
    assert len(splits["all"]) == 1797
    assert len(splits["train"]) + len(splits["test"]) == 1797
    assert abs(len(splits["test"]) / 1797 - 0.2) < 0.01
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
    train_idx, test_idx = stratified_split(sk.target, 0.2, 0)
    assert not set(train_idx) & set(test_idx)
    assert sorted(set(train_idx) | set(test_idx)) == list(range(1797))


def test_pixels_match_sklearn_scaled(splits):
    sk = sk_load_digits()
    train_idx, _ = stratified_split(sk.target, 0.2, 0)
    for row_pos in (0, 100, 1000):  # train rows are sklearn rows train_idx in order
        got = np.asarray(splits["train"][row_pos]["image"], dtype=np.float64)
        want = sk.images[train_idx[row_pos]] * 255 / 16
        assert np.abs(got - want).max() <= 0.5
        assert splits["train"][row_pos]["label"] == sk.target[train_idx[row_pos]]
    arr = np.stack([np.asarray(im) for im in splits["all"][:50]["image"]])
    assert arr.min() == 0 and arr.max() == 255


def test_deterministic_across_loads(splits):
    again = load_dataset_by_name("digits", split="test")
    assert list(again["label"]) == list(splits["test"]["label"])
    assert np.array_equal(np.asarray(again[7]["image"]), np.asarray(splits["test"][7]["image"]))


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="digits.*'validation'.*train, test, all"):
        load_dataset_by_name("digits", split="validation")
