"""Deterministic split helpers shared by the built-in datasets (no randomness from global state)."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLIT_DIRS = ("train", "validation", "test")  # sub-folders of a local dataset that become its splits


def check_split(dataset: str, split: str, allowed: Sequence[str]) -> None:
    """Raise a ValueError naming the dataset, the bad split and the allowed ones."""
    if split not in allowed:
        raise ValueError(f"dataset {dataset!r} has no split {split!r}; expected one of: {', '.join(allowed)}")


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) from a string (sha1, unlike Python's salted hash())."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)
