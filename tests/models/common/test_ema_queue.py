"""EMA update (foreach vs formula vs per-parameter loop) and MoCo's FIFO key queue."""
import pytest
import torch
from torch import nn

from multissl.models.common.ema import ema_update, make_teacher
from multissl.models.common.queue import KeyQueue


@torch.no_grad()
def ema_update_loop(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """Naive reference: one multiply-add per parameter tensor."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_ema_update_matches_formula_and_loop():
    online, target = _net(0), _net(1)
    before = [p.clone() for p in target.parameters()]
    ref = make_teacher(target)
    ema_update(target, online, 0.9)
    ema_update_loop(ref, online, 0.9)
    for b, o, t, r in zip(before, online.parameters(), target.parameters(), ref.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * o, atol=1e-7)
        assert torch.allclose(t, r, atol=1e-7)


def test_ema_momentum_edges_and_buffers():
    online, target = _net(0), _net(1)
    online[1].running_mean.fill_(3.0)
    snapshot = [p.clone() for p in target.parameters()]
    ema_update(target, online, 1.0)  # momentum 1: the target does not move
    assert all(torch.equal(a, b) for a, b in zip(snapshot, target.parameters()))
    ema_update(target, online, 0.0, copy_buffers=True)  # momentum 0: exact copy (teacher initialisation)
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters()))
    assert torch.equal(target[1].running_mean, online[1].running_mean)
    with pytest.raises(ValueError, match="momentum"):
        ema_update(target, online, 1.5)


def test_make_teacher_is_frozen_copy():
    online = _net(0)
    teacher = make_teacher(online)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in online.parameters())
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), teacher.parameters()))


def test_queue_is_fifo_and_wraps():
    q = KeyQueue(size=6, dim=2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(6))
    batches = [torch.full((2, 2), float(i)) for i in range(4)]
    for b in batches[:3]:
        q.enqueue(b)
    assert torch.equal(q.keys[:, 0], torch.tensor([0.0, 0, 1, 1, 2, 2]))
    assert int(q.ptr) == 0
    q.enqueue(batches[3])  # overwrites the oldest block
    assert torch.equal(q.keys[:, 0], torch.tensor([3.0, 3, 1, 1, 2, 2]))
    assert int(q.ptr) == 2


def test_queue_negatives_is_a_snapshot():
    q = KeyQueue(size=4, dim=2)
    snap = q.negatives()
    q.enqueue(torch.ones(2, 2))
    assert not torch.equal(snap, q.keys)


def test_queue_size_must_be_divisible_by_batch():
    q = KeyQueue(size=10, dim=3)
    with pytest.raises(ValueError, match="divisible by the global batch size 4"):
        q.enqueue(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        q.enqueue(torch.randn(5, 2))


def test_queue_buffers_are_saved_in_state_dict():
    q = KeyQueue(size=4, dim=2)
    q.enqueue(torch.ones(2, 2))
    fresh = KeyQueue(size=4, dim=2)
    fresh.load_state_dict(q.state_dict())
    assert torch.equal(fresh.keys, q.keys) and int(fresh.ptr) == 2


def _queue_worker(rank: int) -> dict:
    q = KeyQueue(size=8, dim=2, generator=torch.Generator().manual_seed(0))
    q.enqueue(torch.full((2, 2), float(rank)))  # each rank has its own keys; the global batch is 4
    error = ""
    try:
        KeyQueue(size=6, dim=2).enqueue(torch.zeros(2, 2))  # 6 % (2 x 2) != 0 only when counted globally
    except ValueError as err:
        error = str(err)
    return {"keys": q.keys[:, 0].tolist(), "ptr": int(q.ptr), "error": error}


def test_queue_enqueues_keys_gathered_from_every_process():
    from tests.gloo import run_on_ranks

    r0, r1 = run_on_ranks(_queue_worker, 2)
    assert r0["keys"][:4] == [0.0, 0.0, 1.0, 1.0] and r0["keys"] == r1["keys"]  # same queue on both ranks, rank order
    assert r0["ptr"] == r1["ptr"] == 4
    assert "global batch size 4" in r0["error"]
