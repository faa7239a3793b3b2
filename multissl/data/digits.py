"""`digits`: scikit-learn's 1797 8x8 handwritten digits (bundled with sklearn, no download)."""
from __future__ import annotations

import numpy as np

from multissl.data.splits import check_split

SPLITS = ("train", "validation", "test", "all")
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: the train/test split is part of the dataset's definition
# The validation split is carved out of the rows that are not test (so test stays row for row what it was
# before validation existed): 12.5% of each class's non-test rows, about 10% of all rows.
VALIDATION_FRACTION = 0.125
VALIDATION_SEED = 1  # fixed, and its own generator: the test draw above never changes


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, test_idx) with each class split round(n_c * test_fraction) to test."""
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(labels):  # loop over 10 classes, not over rows
        idx = np.flatnonzero(labels == c)
        n_test = int(round(len(idx) * test_fraction))
        test_parts.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test_parts))
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """{split: sorted row indices [n_split] into sklearn's order} for train, validation, test and all (labels [N])."""
    rest, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    keep, val = stratified_split(labels[rest], VALIDATION_FRACTION, VALIDATION_SEED)  # positions within `rest`
    return {"train": rest[keep], "validation": rest[val], "test": test_idx, "all": np.arange(len(labels))}


def load_digits(split: str = "train"):
    """Digits as a datasets.Dataset with `image` (PIL 'L', 8x8, 0..255) and `label` (ClassLabel 0-9)."""
    check_split("digits", split, SPLITS)
    import datasets
    from PIL import Image
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # sklearn stores 17 grey levels 0..16; scale to 0..255. A 2-D uint8 array becomes a PIL "L" image.
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # [1797, 8, 8]
    labels = bunch.target.astype(np.int64)  # [1797]
    idx = split_indices(labels)[split]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(pixels[i]) for i in idx], "label": labels[idx].tolist()},
        features=features,
    )
