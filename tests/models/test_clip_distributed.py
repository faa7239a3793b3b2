"""The CLIP model across 2 gloo processes: the local-loss path equals the single-process full-batch loss and gradients.

Each rank runs the same tiny model on its half of one global batch with gather_distributed=True
(local rows against all-gathered columns). DDP averages parameter gradients over ranks, so we
compare (1) the mean of the per-rank losses with the full-batch loss and (2) the mean of the
per-rank parameter gradients with the full-batch gradients. Eval mode keeps BatchNorm on its
running statistics and dropout off (otherwise halves and the whole batch legitimately differ).
The control run without gathering shows the comparison can fail.
"""
import pytest
import torch

from multissl.data import load_dataset_by_name
from multissl.modalities.image_text import ImageCaptionCollator
from multissl.models.clip import ClipModel, tiny_clip_config
from tests.gloo import run_on_ranks

WORLD, B = 2, 4


def _setup():
    """The model (seeded) and the global batch [W*B] of image-caption pairs."""
    torch.manual_seed(0)
    cfg = tiny_clip_config()
    model = ClipModel(cfg).eval()
    ds = load_dataset_by_name("digits_captions", split="train").select(range(WORLD * B))
    collate = ImageCaptionCollator(cfg.tokenizer_path, cfg.image_size, cfg.max_seq_length, train=False)
    return model, collate([ds[i] for i in range(len(ds))])


def _loss_and_grads(model, batch, gather):
    model.config.gather_distributed = gather
    model.zero_grad(set_to_none=True)
    out = model(**batch, return_loss=True)
    out.loss.backward()
    grads = {n: p.grad.flatten().tolist() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.item(), grads


def _worker(r):
    model, batch = _setup()
    local = {k: v[r * B:(r + 1) * B] for k, v in batch.items()}  # this rank's pairs (same padding width T)
    res = {}
    res["loss"], res["grads"] = _loss_and_grads(model, local, gather=True)
    res["naive_loss"], _ = _loss_and_grads(model, local, gather=False)
    return res


@pytest.fixture(scope="module")
def runs():
    per_rank = run_on_ranks(_worker, WORLD)
    model, batch = _setup()
    full_loss, full_grads = _loss_and_grads(model, batch, gather=False)
    return per_rank, full_loss, full_grads


def test_mean_of_local_losses_equals_full_batch_loss(runs):
    per_rank, full_loss, _ = runs
    assert sum(r["loss"] for r in per_rank) / WORLD == pytest.approx(full_loss, rel=1e-5)
    # control: without gathering each rank only contrasts its own B pairs, a different (easier) objective
    assert sum(r["naive_loss"] for r in per_rank) / WORLD != pytest.approx(full_loss, rel=1e-3)


def test_averaged_parameter_gradients_equal_full_batch_gradients(runs):
    per_rank, _, full_grads = runs
    assert set(per_rank[0]["grads"]) == set(full_grads)  # every trainable parameter, towers included
    for name, full in full_grads.items():
        mean = sum(torch.tensor(r["grads"][name]) for r in per_rank) / WORLD
        assert torch.allclose(mean, torch.tensor(full), atol=1e-5, rtol=1e-4), name
