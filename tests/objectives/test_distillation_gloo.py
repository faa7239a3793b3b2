"""2 gloo processes on CPU: DINO's centre update with gather_distributed=True equals the single-process update.

The full teacher output [V, N, K] is split along the batch into two UNEQUAL rank slices (3 and 5 rows), so the
check also proves the row count is reduced with the sums: averaging the two per-rank means would give another
centre. Each rank starts from the same centre and must end with the full-batch centre; without the collective
(gather_distributed=False) each rank ends with its local centre, which differs (the check can fail).
Workers run through tests/gloo.py (forked, one thread each).
"""
import pytest
import torch

from multissl.objectives.distillation import update_center
from tests.gloo import run_on_ranks

WORLD, V, K, MOMENTUM = 2, 2, 4, 0.9
SPLIT = (3, 5)  # rows per rank: unequal on purpose


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """(initial centre [K], full teacher output [V, sum(SPLIT), K])."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(K, generator=g), torch.randn(V, sum(SPLIT), K, generator=g) * 3 + 1


def _worker(r: int) -> dict:
    centre0, full = _inputs()
    start = sum(SPLIT[:r])
    local = full[:, start:start + SPLIT[r]]  # this rank's rows, every view: [V, B_r, K]
    gathered = update_center(centre0.clone(), local, MOMENTUM, gather_distributed=True)
    alone = update_center(centre0.clone(), local, MOMENTUM, gather_distributed=False)
    return {"gathered": gathered.tolist(), "local": alone.tolist()}


@pytest.fixture(scope="module")
def gloo_results():
    return run_on_ranks(_worker, WORLD)


def test_gathered_centre_equals_single_process_full_batch_centre(gloo_results):
    centre0, full = _inputs()
    single = update_center(centre0.clone(), full, MOMENTUM)  # one process, the whole batch
    direct = MOMENTUM * centre0 + (1 - MOMENTUM) * full.reshape(-1, K).mean(0)  # the formula
    assert torch.allclose(single, direct, atol=1e-6)
    for res in gloo_results:
        assert torch.allclose(torch.tensor(res["gathered"]), single, atol=1e-6)
    assert gloo_results[0]["gathered"] == gloo_results[1]["gathered"]  # every rank holds the same centre


def test_mean_of_rank_means_and_local_centres_differ(gloo_results):
    """The check above can fail: local updates and an unweighted mean of per-rank means give other centres."""
    centre0, full = _inputs()
    single = update_center(centre0.clone(), full, MOMENTUM)
    for res in gloo_results:
        assert not torch.allclose(torch.tensor(res["local"]), single, atol=1e-3)
    rank_means = torch.stack([full[:, :SPLIT[0]].reshape(-1, K).mean(0), full[:, SPLIT[0]:].reshape(-1, K).mean(0)])
    unweighted = MOMENTUM * centre0 + (1 - MOMENTUM) * rank_means.mean(0)
    assert not torch.allclose(unweighted, single, atol=1e-3)
