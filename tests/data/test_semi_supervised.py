"""semi_supervised_split (class-balanced, labels hidden) and LabeledUnlabeledSource (B + μB rows per item, a pure function
of the index, own epochs per stream, disjoint rows across processes)."""
import collections

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from multissl.data.label_split import split_labeled
from multissl.data.semi_supervised import LabeledUnlabeledSource, labeled_unlabeled_rows, semi_supervised_split, training_streams

CLASSES, PER_CLASS = 4, 10


def _dataset(per_class=PER_CLASS):
    """4 classes x per_class rows, classes interleaved; `row` names each row so batches can be traced back."""
    rng = np.random.default_rng(0)
    n = CLASSES * per_class
    images = [Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)) for _ in range(n)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64"), "row": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": images, "label": [i % CLASSES for i in range(n)], "row": list(range(n))},
                                      features=features)


def _labeled_collate(rows, generator=None):
    return {"lab_rows": torch.tensor([r["row"] for r in rows]), "labels": torch.tensor([r["label"] for r in rows]),
            "lab_noise": torch.rand(len(rows))}  # the global RNG, which the batch source seeds per micro-batch


SEEN_BY_UNLABELED = []  # the column names each unlabeled row reached the collator with


def _unlabeled_collate(rows, generator=None):
    SEEN_BY_UNLABELED.extend(sorted(r) for r in rows)
    return {"unl_rows": torch.tensor([r["row"] for r in rows]), "unl_noise": torch.rand(len(rows)),
            "unl_gen": torch.rand(len(rows), generator=generator)}


def _source(batch_size=3, mu=2, seed=0, world_size=1, rank=0, labels_per_class=2):
    labeled, unlabeled = semi_supervised_split(_dataset(), "label", labels_per_class=labels_per_class, seed=5)
    return LabeledUnlabeledSource(labeled, unlabeled, _labeled_collate, _unlabeled_collate, batch_size, mu, seed,
                                  world_size, rank)


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_labels_per_class_split_is_class_balanced_and_the_unlabeled_part_has_no_label_column():
    ds = _dataset()
    labeled, unlabeled = semi_supervised_split(ds, "label", labels_per_class=3, seed=1)
    assert collections.Counter(labeled["label"]) == {c: 3 for c in range(CLASSES)}
    assert "label" not in unlabeled.column_names and set(unlabeled.column_names) == {"image", "row"}
    assert sorted(list(labeled["row"]) + list(unlabeled["row"])) == list(range(len(ds)))  # a partition of the rows
    lab_rows, unl_rows = labeled_unlabeled_rows(ds, "label", labels_per_class=3, seed=1)
    assert (lab_rows, unl_rows) == split_labeled(ds["label"], labels_per_class=3, seed=1)
    assert list(labeled["row"]) == lab_rows and list(unlabeled["row"]) == unl_rows
    # the hidden labels are still recoverable for a test, from the original rows
    assert collections.Counter(ds.select(unl_rows)["label"]) == {c: PER_CLASS - 3 for c in range(CLASSES)}
    frac, _ = semi_supervised_split(ds, "label", label_fraction=0.5, seed=1)
    assert collections.Counter(frac["label"]) == {c: 5 for c in range(CLASSES)}
    other, _ = semi_supervised_split(ds, "label", labels_per_class=3, seed=2)
    assert list(other["row"]) != list(labeled["row"])  # the seed chooses the subset


def test_training_streams_all_labels_bound_is_every_row_and_no_unlabeled_stream():
    ds = _dataset()
    labeled, unlabeled = training_streams(ds, "label", labels_per_class=None, label_fraction=1.0, seed=0, lambda_u=0)
    assert unlabeled is None and list(labeled["row"]) == list(range(len(ds)))
    with pytest.raises(ValueError, match="every one of the"):  # with an unlabeled loss, fraction 1 leaves it nothing
        training_streams(ds, "label", labels_per_class=None, label_fraction=1.0, seed=0, lambda_u=1.0)
    labeled, unlabeled = training_streams(ds, "label", labels_per_class=3, label_fraction=None, seed=1, lambda_u=0)
    split = semi_supervised_split(ds, "label", labels_per_class=3, seed=1)  # λ_u = 0 below 1: the same labeled rows
    assert list(labeled["row"]) == list(split[0]["row"]) and list(unlabeled["row"]) == list(split[1]["row"])


@pytest.mark.parametrize("kwargs, match", [
    ({"labels_per_class": 2, "label_fraction": 0.5}, "exactly one"),
    ({}, "exactly one"),
    ({"labels_per_class": PER_CLASS}, "every one of the"),
    ({"labels_per_class": 2, "label_column": "nope"}, "label_column 'nope' is not a column"),
])
def test_split_bad_input_is_one_clear_error(kwargs, match):
    kwargs = {"label_column": "label", **kwargs}
    with pytest.raises(ValueError, match=match):
        semi_supervised_split(_dataset(), seed=0, **kwargs)
    with pytest.raises(ValueError, match="datasets.Dataset"):
        semi_supervised_split([{"image": None, "label": 0}], "label", labels_per_class=1, seed=0)


def test_an_item_is_B_labeled_and_mu_B_unlabeled_rows_and_a_pure_function_of_its_index():
    SEEN_BY_UNLABELED.clear()
    src = _source(batch_size=3, mu=2)
    in_order = [src[i] for i in range(6)]
    for item in in_order:
        assert item["lab_rows"].shape == (3,) and item["labels"].shape == (3,) and item["unl_rows"].shape == (6,)
        assert set(item) == {"lab_rows", "labels", "lab_noise", "unl_rows", "unl_noise", "unl_gen"}
    # a fresh source read out of order (a resumed run, another worker) gives the same rows and random draws
    fresh = _source(batch_size=3, mu=2)
    for i in (5, 2, 0, 5):
        assert _equal(fresh[i], in_order[i])
    assert not _equal(in_order[0], in_order[1])
    assert all("label" not in cols for cols in SEEN_BY_UNLABELED)  # the unlabeled stream never saw a label
    assert _equal(_source(seed=1)[0], _source(seed=1)[0]) and not _equal(_source(seed=1)[0], in_order[0])


def test_each_stream_has_its_own_epochs():
    # 8 labeled rows, B = 4: every 2 items the labeled rows are a full epoch; the 32 unlabeled rows take 4 items (μB = 8)
    src = _source(batch_size=4, mu=2)
    lab = [src.rows(i)[0] for i in range(8)]
    for epoch in range(4):
        assert sorted(lab[2 * epoch] + lab[2 * epoch + 1]) == list(range(8))
    unl = [src.rows(i)[1] for i in range(8)]
    for epoch in range(2):
        assert sorted(sum(unl[4 * epoch: 4 * epoch + 4], [])) == list(range(32))
    assert lab[0:2] != lab[2:4]  # each labeled epoch is reshuffled


def test_processes_take_disjoint_rows_of_both_streams():
    r0, r1 = _source(batch_size=2, mu=2, world_size=2, rank=0), _source(batch_size=2, mu=2, world_size=2, rank=1)
    for i in range(5):
        (l0, u0), (l1, u1) = r0.rows(i), r1.rows(i)
        assert len(l0) == len(l1) == 2 and len(u0) == len(u1) == 4
        assert not set(l0) & set(l1) and not set(u0) & set(u1)
    labeled, unlabeled = semi_supervised_split(_dataset(), "label", labels_per_class=2, seed=5)
    item = r1[3]  # the item holds exactly the rows rows() names
    assert item["lab_rows"].tolist() == [list(labeled["row"])[j] for j in r1.rows(3)[0]]
    assert item["unl_rows"].tolist() == [list(unlabeled["row"])[j] for j in r1.rows(3)[1]]


def test_mu_zero_draws_the_same_labeled_batches_without_an_unlabeled_stream():
    with_unlabeled, alone = _source(mu=2), _source(mu=0)
    for i in range(4):
        a, b = with_unlabeled[i], alone[i]
        assert set(b) == {"lab_rows", "labels", "lab_noise"}
        assert all(torch.equal(a[k], b[k]) for k in b)


def test_source_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="the labeled set has 8 rows, fewer than one global batch"):
        _source(batch_size=5, world_size=2)
    with pytest.raises(ValueError, match="the unlabeled set has 32 rows"):
        _source(batch_size=4, mu=9)
    with pytest.raises(ValueError, match="mu must be an int >= 0"):
        _source(mu=-1)
    labeled, unlabeled = semi_supervised_split(_dataset(), "label", labels_per_class=2, seed=5)
    also_labels = lambda rows, generator=None: {"labels": torch.zeros(len(rows))}  # noqa: E731
    clash = LabeledUnlabeledSource(labeled, unlabeled, _labeled_collate, also_labels, 2, 1, 0)
    with pytest.raises(ValueError, match="both return"):
        clash[0]


def test_a_streamed_dataset_is_refused_with_the_reason(tmp_path):
    import json

    from multissl.data.streaming import open_stream

    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(8)))
    stream = open_stream(str(tmp_path / "rows.jsonl"), options={"shuffle_buffer": 0})
    with pytest.raises(ValueError, match="the dataset is streamed, and a labeled/unlabeled split needs every row"):
        semi_supervised_split(stream, "label", labels_per_class=1, seed=0)
