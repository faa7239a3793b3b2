"""digits_captions: the digits split row for row, one caption per image naming its digit, varied and deterministic."""
from collections import Counter

import numpy as np
import pytest

from multissl.data import load_dataset_by_name
from multissl.data.digits import split_indices
from multissl.data.digits_captions import CAPTION_TEMPLATES, NUMBER_WORDS


@pytest.mark.parametrize("split,n", [("train", 1259), ("validation", 179), ("test", 359)])
def test_same_rows_as_digits_plus_a_caption(split, n):
    ds, digits = load_dataset_by_name("digits_captions", split=split), load_dataset_by_name("digits", split=split)
    assert ds.column_names == ["image", "caption", "label"] and len(ds) == len(digits) == n
    assert ds["label"] == digits["label"]
    assert [im.tobytes() for im in ds["image"][:50]] == [im.tobytes() for im in digits["image"][:50]]


def test_each_caption_names_its_digit_and_templates_vary():
    ds = load_dataset_by_name("digits_captions", split="all")
    for caption, label in zip(ds["caption"], ds["label"]):
        words = caption.replace(",", " ").split()
        assert NUMBER_WORDS[label] in words or str(label) in words, caption
        others = [w for d, w in enumerate(NUMBER_WORDS) if d != label]
        assert not any(w in words for w in others), caption
    used = Counter(next(t for t in CAPTION_TEMPLATES if t.format(w=NUMBER_WORDS[y], n=y) == c)
                   for c, y in zip(ds["caption"], ds["label"]))
    assert len(used) == len(CAPTION_TEMPLATES) and min(used.values()) > 100  # every template, roughly uniform


def test_deterministic_and_splits_agree_with_all():
    all_ds = load_dataset_by_name("digits_captions", split="all")
    test = load_dataset_by_name("digits_captions", split="test")
    assert load_dataset_by_name("digits_captions", split="test")["caption"] == test["caption"]
    idx = split_indices(np.asarray(all_ds["label"]))
    assert test["caption"] == [all_ds["caption"][i] for i in idx["test"].tolist()]
    val = load_dataset_by_name("digits_captions", split="validation")
    assert val["caption"] == [all_ds["caption"][i] for i in idx["validation"].tolist()]
    with pytest.raises(ValueError, match="no split 'valid'"):
        load_dataset_by_name("digits_captions", split="valid")
