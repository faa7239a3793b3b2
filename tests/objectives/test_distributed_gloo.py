"""2 gloo processes: gathered losses and input gradients equal the single-process full-batch ones."""
import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from multissl.objectives import clip_loss, gather_with_grad, info_nce, nt_xent, supcon_loss

WORLD, B, D = 2, 3, 5


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
}


def _worker(rank, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    a, b = _inputs()
    results = {}
    for name, fn in LOSSES.items():
        x = a[rank * B:(rank + 1) * B].clone().requires_grad_(True)
        y = b[rank * B:(rank + 1) * B].clone().requires_grad_(True)
        loss = fn(x, y, True)
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        # DDP averages parameter gradients over processes: the effective input gradient is grad / WORLD.
        results[name] = {"loss": mean_loss.item() / WORLD, "gx": (x.grad / WORLD).tolist(), "gy": (y.grad / WORLD).tolist()}
    g = gather_with_grad(torch.full((2, 1), float(rank)))
    results["gather"] = g.flatten().tolist()
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gloo_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_gather_is_rank_ordered(gloo_results):
    for r in range(WORLD):
        assert gloo_results[r]["gather"] == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gathered_loss_and_gradients_match_full_batch(gloo_results, name):
    a, b = _inputs()
    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    full = LOSSES[name](x, y, False)
    full.backward()
    for r in range(WORLD):
        res = gloo_results[r][name]
        assert res["loss"] == pytest.approx(full.item(), rel=1e-5)
        # a missing all-reduce in gather's backward would make these 1/WORLD of the truth
        assert torch.allclose(torch.tensor(res["gx"]), x.grad[r * B:(r + 1) * B], atol=1e-6)
        assert torch.allclose(torch.tensor(res["gy"]), y.grad[r * B:(r + 1) * B], atol=1e-6)
