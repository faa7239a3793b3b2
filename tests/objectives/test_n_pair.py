"""Multi-class N-pair loss against Sohn 2016's formula written with loops and pytorch-metric-learning's NPairsLoss."""
import math

import pytest
import torch

from multissl.objectives.n_pair import n_pair_loss


def _direct(a, p, l2_reg=0.0):
    """1/N sum_i log(1 + sum_{j != i} exp(f_i.f_j+ - f_i.f_i+)) + l2_reg * mean over the 2N embeddings of ||f||^2."""
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        pos = float(a[i] @ p[i])
        total += math.log(1 + sum(math.exp(float(a[i] @ p[j]) - pos) for j in range(n) if j != i))
    sq = sum(float(v @ v) for v in list(a) + list(p))
    return total / n + l2_reg * sq / (2 * n)


def _data(b=7, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=dtype), torch.randn(b, d, generator=g, dtype=dtype)


@pytest.mark.parametrize("l2_reg", [0.0, 0.002, 0.5])
def test_n_pair_equals_sohn_formula(l2_reg):
    a, p = _data()
    assert n_pair_loss(a, p, l2_reg).item() == pytest.approx(_direct(a, p, l2_reg), rel=1e-10)


def test_n_pair_analytic_values_and_gradcheck():
    # orthonormal anchors with their own vector as positive: log(1 + (N-1) e^{-1})
    eye = torch.eye(4, dtype=torch.float64)
    assert n_pair_loss(eye, eye).item() == pytest.approx(math.log(1 + 3 * math.exp(-1)), rel=1e-12)
    assert n_pair_loss(eye, eye, l2_reg=0.1).item() == pytest.approx(math.log(1 + 3 * math.exp(-1)) + 0.1, rel=1e-12)
    a, p = (t.requires_grad_(True) for t in _data(b=4, d=3, seed=2))
    assert torch.autograd.gradcheck(lambda u, v: n_pair_loss(u, v, 0.01), (a, p))


def test_normalize_uses_cosines():
    a, p = _data()
    unit = [t / t.norm(dim=1, keepdim=True) for t in (a, p)]
    assert n_pair_loss(a, p, normalize=True).item() == pytest.approx(_direct(*unit), rel=1e-10)
    mean_sq = float(torch.cat([a, p]).pow(2).sum(1).mean())  # the L2 term reads the raw embeddings
    assert n_pair_loss(a, p, 0.1, normalize=True).item() == pytest.approx(_direct(*unit) + 0.1 * mean_sq, rel=1e-10)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("l2_reg", [0.0, 0.01])
@pytest.mark.parametrize("normalize", [False, True])
def test_n_pair_matches_pytorch_metric_learning(dtype, tol, l2_reg, normalize):
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.distances import DotProductSimilarity
    from pytorch_metric_learning.losses import NPairsLoss
    from pytorch_metric_learning.regularizers import LpRegularizer

    a, p = _data(b=16, d=8, seed=3, dtype=dtype)
    # pml takes one batch with labels: pair i is rows i and B + i, labelled i; its anchor is the first of the two.
    # Its default DotProductSimilarity normalises; Sohn's loss (our default) does not.
    reg = {"embedding_regularizer": LpRegularizer(power=2), "embedding_reg_weight": l2_reg} if l2_reg else {}
    ref = NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=normalize), **reg)
    emb = torch.cat([a, p]).requires_grad_(True)
    ao, po = a.clone().requires_grad_(True), p.clone().requires_grad_(True)
    ours, theirs = n_pair_loss(ao, po, l2_reg, normalize), ref(emb, torch.arange(16).repeat(2))
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=tol)
    assert torch.allclose(torch.cat([ao.grad, po.grad]), emb.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("call,match", [
    (lambda: n_pair_loss(torch.randn(4), torch.randn(4)), r"anchors must have shape \[B, D\]"),
    (lambda: n_pair_loss(torch.randn(4, 3), torch.randn(5, 3)), r"positives must have the anchors' shape \[4, 3\]"),
    (lambda: n_pair_loss(torch.randn(4, 3), torch.randn(4, 3), l2_reg=-1.0), r"l2_reg must be >= 0"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
