import datasets
import pytest
import torch

from multissl.data.batches import BatchSource


def _ds(n):
    return datasets.Dataset.from_dict({"x": list(range(n))})


def collate(rows, generator=None):
    return {"x": torch.tensor([r["x"] for r in rows]), "noise": torch.rand(len(rows))}


def test_batches_are_deterministic_and_disjoint_across_ranks():
    ds = _ds(40)
    r0, r1 = (BatchSource(ds, collate, 5, seed=3, world_size=2, rank=r) for r in (0, 1))
    seen = []
    for i in range(4):  # one epoch = 40 // 10 = 4 global batches
        a, b = r0[i], r1[i]
        seen += a["x"].tolist() + b["x"].tolist()
        again = BatchSource(ds, collate, 5, seed=3, world_size=2, rank=0)[i]
        assert torch.equal(again["x"], a["x"]) and torch.equal(again["noise"], a["noise"])  # augmentation RNG too
    assert sorted(seen) == list(range(40))  # an epoch covers every row exactly once
    assert not torch.equal(r0[4]["x"], r0[0]["x"])  # next epoch is reshuffled


def test_generator_is_passed_when_collator_accepts_it():
    def gcollate(rows, generator=None):
        return {"r": torch.rand(2, generator=generator)}

    s = BatchSource(_ds(10), gcollate, 2, seed=0)
    assert torch.equal(s[3]["r"], BatchSource(_ds(10), gcollate, 2, seed=0)[3]["r"])
    assert not torch.equal(s[3]["r"], s[4]["r"])


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        BatchSource(_ds(7), collate, 4, seed=0, world_size=2)
