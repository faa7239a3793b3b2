"""Effective rank and variance shares against their formulas computed independently (numpy, scikit-learn)."""
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from multissl.evaluation.spectrum import component_shares, direction_share, effective_rank


def test_effective_rank_matches_rankme_formula_and_its_extremes():
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 3, 16)
    s = np.linalg.svd(x.numpy().astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    assert effective_rank(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    q, _ = torch.linalg.qr(torch.randn(32, 8, generator=torch.Generator().manual_seed(1)))  # 8 orthonormal columns
    assert effective_rank(q) == pytest.approx(8, rel=1e-4)  # equal singular values: full rank
    one = torch.randn(50, 1) @ torch.randn(1, 8)
    assert effective_rank(one) == pytest.approx(1, abs=1e-3)


def test_component_shares_match_scikit_learn_pca():
    x = torch.randn(300, 10, generator=torch.Generator().manual_seed(2)) * torch.arange(1, 11) + 5
    ref = PCA(n_components=4).fit(x.numpy().astype(np.float64)).explained_variance_ratio_
    assert torch.allclose(component_shares(x, k=4), torch.tensor(ref, dtype=torch.float32), atol=1e-5)


def test_direction_share_is_one_for_a_group_feature_and_small_for_an_ignored_group():
    g = torch.Generator().manual_seed(3)
    group = torch.rand(400, generator=g) < 0.5
    u = torch.nn.functional.normalize(torch.randn(32, generator=g), dim=0)
    only_group = group.double()[:, None] * u * 10 + 1e-3 * torch.randn(400, 32, generator=g)
    assert direction_share(only_group, group) > 0.99
    iso = torch.randn(400, 32, generator=g)
    assert direction_share(iso, group) < 3 / 32
    x = iso.numpy().astype(np.float64)
    x = x - x.mean(0)
    d = x[group.numpy()].mean(0) - x[~group.numpy()].mean(0)
    d /= np.linalg.norm(d)
    assert direction_share(iso, group) == pytest.approx((x @ d).var(ddof=1) / x.var(0, ddof=1).sum(), rel=1e-6)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[N >= 2, D\]"):
        effective_rank(torch.zeros(5))
    with pytest.raises(ValueError, match="both values"):
        direction_share(torch.randn(4, 3), torch.ones(4, dtype=torch.bool))
