"""2 gloo processes on CPU: gathered losses and input gradients equal the single-process full-batch ones.

What is compared. The full batch [W*B, D] is split into W rank slices. Each rank computes the
loss of its local rows against the gathered batch (gather_distributed=True) and backpropagates
its own loss. DDP then averages parameter gradients over ranks, so the gradient it applies is
that of mean_r(loss_r); the matching input gradient on rank r is x_r.grad / W. We check
  (1) mean_r(loss_r) == full-batch loss (for these losses the per-rank values differ, the mean does not),
  (2) x_r.grad / W == rows r*B:(r+1)*B of the full-batch gradient (a gather without the
      all-reduce in backward fails this; the "naive" entry proves the check can fail),
  (3) per rank, loss and gradients equal lightly's NTXentLoss(gather_distributed=True) and
      open_clip's ClipLoss(local_loss=True, gather_with_grad=True) on the same inputs.
Workers run through tests/gloo.py (forked, one thread each).
"""
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import multissl.objectives.contrastive as contrastive
from multissl.objectives import clip_loss, gather_no_grad, gather_with_grad, info_nce, nt_xent, rank, soft_nearest_neighbor_loss, supcon_loss, world_size
from tests.gloo import run_on_ranks

WORLD, B, D = 2, 3, 5

try:  # imported here, before forking, so the workers inherit them
    from lightly.loss import NTXentLoss
except ImportError:
    NTXentLoss = None
try:
    from open_clip.loss import ClipLoss
except ImportError:
    ClipLoss = None


def _inputs():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(WORLD * B, D, generator=g), torch.randn(WORLD * B, D, generator=g)
    return a, F.normalize(b, dim=-1)


LOSSES = {
    "nt_xent": lambda x, y, gd: nt_xent(x, y, 0.5, gather_distributed=gd),
    "info_nce": lambda x, y, gd: info_nce(x, y, temperature=0.2, gather_distributed=gd),
    "info_nce_hard": lambda x, y, gd: info_nce(x, y, negative_keys=y.flip(1), temperature=0.2, in_batch_negatives=True,
                                                gather_distributed=gd),
    "clip_loss": lambda x, y, gd: clip_loss(F.normalize(x, dim=-1), y, 7.0, gather_distributed=gd),
    "supcon": lambda x, y, gd: supcon_loss(torch.stack([x, y], 1), None, 0.3, gather_distributed=gd),
    "supcon_labels": lambda x, y, gd: supcon_loss(torch.stack([x, y], 1), _labels(gd), 0.3, gather_distributed=gd),
    # label 2 has no partner: rank 0 has 3 valid anchors, rank 1 has 2 -- the normalisation must be global
    "soft_nearest_neighbor": lambda x, y, gd: soft_nearest_neighbor_loss(x + y, _labels(gd), 0.5, gather_distributed=gd),
}


def _labels(gathered):
    """Class labels of the full batch, or of this rank's slice of it."""
    labels = torch.tensor([0, 1, 0, 1, 1, 2])
    return labels[rank() * B:(rank() + 1) * B] if gathered else labels
PEERS = {
    "lightly_nt_xent": lambda x, y: NTXentLoss(temperature=0.5, gather_distributed=True)(x, y),
    "open_clip": lambda x, y: ClipLoss(local_loss=True, gather_with_grad=True, rank=dist.get_rank(),
                                       world_size=dist.get_world_size())(F.normalize(x, dim=-1), y, torch.tensor(7.0)),
}


def _naive_gather(x):
    """The classic bug: gather without grad, re-insert the local slice; gradients only from this rank's loss."""
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.detach())
    out[dist.get_rank()] = x
    return torch.cat(out)


def _run(fn, r):
    a, b = _inputs()
    x = a[r * B:(r + 1) * B].clone().requires_grad_(True)
    y = b[r * B:(r + 1) * B].clone().requires_grad_(True)
    loss = fn(x, y)
    loss.backward()
    return {"loss": loss.item(), "gx": x.grad.tolist(), "gy": y.grad.tolist()}


def _worker(r):
    res = {name: _run(lambda x, y: fn(x, y, True), r) for name, fn in LOSSES.items()}
    res["peers"] = {name: _run(fn, r) for name, fn in PEERS.items()
                    if (NTXentLoss if name.startswith("lightly") else ClipLoss) is not None}
    contrastive.gather_with_grad = _naive_gather  # only in this short-lived worker
    res["naive_nt_xent"] = _run(lambda x, y: contrastive.nt_xent(x, y, 0.5, gather_distributed=True), r)
    res["gather"] = gather_with_grad(torch.full((2, 1), float(r))).flatten().tolist()
    res["gather_no_grad"] = gather_no_grad(torch.tensor([r, 10 + r])).tolist()
    res["rank_world"] = [rank(), world_size()]
    return res


@pytest.fixture(scope="module")
def gloo_results():
    return run_on_ranks(_worker, WORLD)


def _full(fn):
    a, b = _inputs()
    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    loss = fn(x, y)
    loss.backward()
    return loss.item(), x.grad, y.grad


def test_gather_helpers_are_rank_ordered(gloo_results):
    for r in range(WORLD):
        assert gloo_results[r]["gather"] == [0.0, 0.0, 1.0, 1.0]
        assert gloo_results[r]["gather_no_grad"] == [0, 10, 1, 11]
        assert gloo_results[r]["rank_world"] == [r, WORLD]


def test_helpers_are_identity_without_process_group():
    x = torch.randn(3, 2)
    assert gather_with_grad(x) is x and gather_no_grad(x) is x and (rank(), world_size()) == (0, 1)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gathered_loss_and_gradients_match_full_batch(gloo_results, name):
    full, gx, gy = _full(lambda x, y: LOSSES[name](x, y, False))
    per_rank = [gloo_results[r][name]["loss"] for r in range(WORLD)]
    assert sum(per_rank) / WORLD == pytest.approx(full, rel=1e-5)
    for r in range(WORLD):
        res = gloo_results[r][name]
        assert torch.allclose(torch.tensor(res["gx"]) / WORLD, gx[r * B:(r + 1) * B], atol=1e-6)
        assert torch.allclose(torch.tensor(res["gy"]) / WORLD, gy[r * B:(r + 1) * B], atol=1e-6)


def test_naive_gather_fails_the_same_check(gloo_results):
    # same forward value, wrong gradients: the check above is able to catch the bug
    full, gx, _ = _full(lambda x, y: nt_xent(x, y, 0.5))
    assert sum(gloo_results[r]["naive_nt_xent"]["loss"] for r in range(WORLD)) / WORLD == pytest.approx(full, rel=1e-5)
    assert not torch.allclose(torch.tensor(gloo_results[0]["naive_nt_xent"]["gx"]) / WORLD, gx[:B], atol=1e-4)


@pytest.mark.parametrize("peer,ours", [("lightly_nt_xent", "nt_xent"), ("open_clip", "clip_loss")])
def test_per_rank_values_and_gradients_match_peer(gloo_results, peer, ours):
    if peer not in gloo_results[0]["peers"]:
        pytest.skip(f"{peer} not installed")
    for r in range(WORLD):
        theirs, mine = gloo_results[r]["peers"][peer], gloo_results[r][ours]
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-5)
        for key in ("gx", "gy"):
            assert torch.allclose(torch.tensor(mine[key]), torch.tensor(theirs[key]), atol=1e-6)
