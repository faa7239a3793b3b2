"""Retrieval recall@k / median rank against a direct per-query formula."""
import statistics

import pytest
import torch
import torch.nn.functional as F

from multissl.evaluation import match_ranks, retrieval_metrics


def direct_ranks(q, k):
    """Reference: sort each query's scores and find where its own key lands (scores are tie-free here)."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    ranks = []
    for i in range(q.shape[0]):
        order = sorted(range(k.shape[0]), key=lambda j: -float(q[i] @ k[j]))
        ranks.append(order.index(i) + 1)
    return ranks


@pytest.mark.parametrize("n", [7, 40])
def test_matches_direct_formula(n):
    g = torch.Generator().manual_seed(n)
    q = torch.randn(n, 6, generator=g)
    k = q + 0.8 * torch.randn(n, 6, generator=g)
    ranks = direct_ranks(q, k)
    assert match_ranks(q, k, chunk_size=5).tolist() == ranks
    m = retrieval_metrics(q, k, ks=(1, 5, 10))
    for kk in (1, 5, 10):
        assert m[f"recall@{kk}"] == pytest.approx(sum(r <= kk for r in ranks) / n)
    assert m["median_rank"] == pytest.approx(statistics.median(ranks))
    assert m["mean_rank"] == pytest.approx(sum(ranks) / n)


def test_perfect_and_reversed_pairs():
    q = torch.eye(5)
    assert retrieval_metrics(q, q)["recall@1"] == 1.0
    assert retrieval_metrics(q, q)["median_rank"] == 1.0
    # key i = -query i: the true match scores lowest, so it ranks last
    assert match_ranks(q, -q).tolist() == [5] * 5


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"same shape \[N, D\]"):
        retrieval_metrics(torch.randn(3, 4), torch.randn(4, 4))
