"""Triplet mining against loop forms of its definitions, and 'all' + mean_nonzero against pytorch-metric-learning."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from multissl.objectives import all_triplets, batch_hard_triplets, semi_hard_triplets, triplet_loss

LABELS = torch.tensor([2, 0, 1, 0, 3, 2, 1, 3, 0, 2, 5])  # class 5 has no positive: never an anchor with a positive


def _embeddings(seed=0, d=6):
    return torch.randn(len(LABELS), d, generator=torch.Generator().manual_seed(seed))


def _distances(e):
    x = F.normalize(e, dim=1)
    return [[float(((x[i] - x[j]) ** 2).sum()) for j in range(len(x))] for i in range(len(x))]


def _rows(labels, i):
    pos = [j for j in range(len(labels)) if j != i and labels[j] == labels[i]]
    neg = [j for j in range(len(labels)) if labels[j] != labels[i]]
    return pos, neg


def _loop_batch_hard(e, labels):
    d, out = _distances(e), []
    for i in range(len(labels)):
        pos, neg = _rows(labels, i)
        if pos and neg:
            out.append((i, max(pos, key=lambda j: d[i][j]), min(neg, key=lambda j: d[i][j])))
    return out


def _loop_semi_hard(e, labels):
    """FaceNet: per positive pair the closest negative farther than the positive, else (TF Addons) the farthest one."""
    d, out = _distances(e), []
    for i in range(len(labels)):
        pos, neg = _rows(labels, i)
        for p in pos if neg else []:
            farther = [n for n in neg if d[i][n] > d[i][p]]
            out.append((i, p, min(farther, key=lambda n: d[i][n]) if farther else max(neg, key=lambda n: d[i][n])))
    return out


def _as_set(a, p, n):
    return set(zip(a.tolist(), p.tolist(), n.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_hard_and_semi_hard_pick_the_loop_definitions(seed):
    e = _embeddings(seed)
    assert _as_set(*batch_hard_triplets(e, LABELS)) == set(_loop_batch_hard(e, LABELS))
    semi = _loop_semi_hard(e, LABELS)
    assert _as_set(*semi_hard_triplets(e, LABELS)) == set(semi) and len(semi_hard_triplets(e, LABELS)[0]) == len(semi)
    # every positive pair of the batch gets exactly one triplet; class 5's row never anchors
    assert len(semi) == sum(len(_rows(LABELS, i)[0]) for i in range(len(LABELS)))
    assert 10 not in semi_hard_triplets(e, LABELS)[0].tolist()


def test_semi_hard_falls_back_to_the_farthest_negative_when_every_negative_is_closer():
    e = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.9, 0.1], [0.8, -0.2]])  # the positive is opposite the anchor
    labels = torch.tensor([0, 0, 1, 1])
    a, p, n = semi_hard_triplets(e, labels)
    first = [(int(x), int(y), int(z)) for x, y, z in zip(a, p, n) if x == 0]
    assert first == [(0, 1, 3)]  # both negatives are closer than the positive; row 3 is the farther of the two


def test_all_triplets_enumerates_every_valid_triplet():
    a, p, n = all_triplets(LABELS)
    expected = {(i, j, k) for i in range(len(LABELS)) for j in _rows(LABELS, i)[0] for k in _rows(LABELS, i)[1]}
    assert _as_set(a, p, n) == expected and len(a) == len(expected)


def test_mean_nonzero_reduction_averages_only_violating_triplets():
    e = _embeddings(3)
    a, p, n = all_triplets(LABELS)
    terms = triplet_loss(e[a], e[p], e[n], 0.2, reduction="none")
    assert terms.shape == a.shape and (terms == 0).any() and (terms > 0).any()
    assert torch.allclose(triplet_loss(e[a], e[p], e[n], 0.2, reduction="mean_nonzero"), terms[terms > 0].mean())
    assert torch.allclose(triplet_loss(e[a], e[p], e[n], 0.2), terms.mean())
    with pytest.raises(ValueError, match="reduction must be"):
        triplet_loss(e[a], e[p], e[n], reduction="sum")


@pytest.mark.parametrize("margin", [0.05, 0.2, 1.0])
def test_all_triplets_with_mean_nonzero_equals_pytorch_metric_learning(margin):
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss

    e = _embeddings(4).requires_grad_(True)
    a, p, n = all_triplets(LABELS)
    ours = triplet_loss(e[a], e[p], e[n], margin, reduction="mean_nonzero")
    reference = TripletMarginLoss(margin=margin, distance=LpDistance(normalize_embeddings=True, p=2, power=2))(e, LABELS)
    assert torch.allclose(ours, reference, atol=1e-5), (pml.__version__, ours, reference)
    g_ours, = torch.autograd.grad(ours, e)
    g_ref, = torch.autograd.grad(reference, e)
    assert torch.allclose(g_ours, g_ref, atol=1e-5)
