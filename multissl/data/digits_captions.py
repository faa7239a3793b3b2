"""`digits_captions`: the built-in digits with one templated English caption per image (image–text pairs, offline)."""
from __future__ import annotations

import numpy as np

from multissl.data.digits import SPLITS, load_digits, split_indices
from multissl.data.splits import check_split

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# {w}: the number word, {n}: the numeral. Varied wording so the text tower cannot key on one template.
CAPTION_TEMPLATES = (
    "a handwritten digit {w}",
    "a photo of the number {w}",
    "the digit {n}, written by hand",
    "a small grey image of a {w}",
    "a low resolution scan of a handwritten {n}",
    "someone wrote the number {w}",
    "a blurry picture of the digit {n}",
    "a {w} drawn with a pen",
    "a black and white image showing {w}",
    "the numeral {n}",
)
CAPTION_SEED = 1  # fixed: the captions are part of the dataset's definition


def make_captions(labels: np.ndarray, seed: int = CAPTION_SEED) -> list[str]:
    """One caption per label [N]: a template drawn uniformly (seeded) and filled with the label's word/numeral."""
    rng = np.random.default_rng(seed)
    choice = rng.integers(0, len(CAPTION_TEMPLATES), size=len(labels))
    return [CAPTION_TEMPLATES[t].format(w=NUMBER_WORDS[y], n=str(y)) for t, y in zip(choice.tolist(), labels.tolist())]


def load_digits_captions(split: str = "train"):
    """The digits split with a `caption` column; captions are drawn once over all 1797 rows, so splits agree with `all`."""
    check_split("digits_captions", split, SPLITS)
    from sklearn.datasets import load_digits as sk_load_digits

    labels = sk_load_digits().target.astype(np.int64)  # [1797], the row order of digits' "all"
    captions = make_captions(labels)
    idx = split_indices(labels)[split]  # the digits split, row for row
    ds = load_digits(split).add_column("caption", [captions[i] for i in idx.tolist()])
    return ds.select_columns(["image", "caption", "label"])
