"""Each contrastive loss against a literal per-element transcription of its formula, plus analytic values."""
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.objectives import clip_loss, info_nce, nt_xent, soft_nearest_neighbor_loss, supcon_loss, triplet_loss


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def simclr_algorithm1(z1, z2, tau):
    """SimCLR Algorithm 1 as written: views 2k-1, 2k; loss = 1/2N sum_k [l(2k-1,2k) + l(2k,2k-1)]."""
    n = z1.shape[0]
    z = [None] * (2 * n)
    for k in range(n):
        z[2 * k], z[2 * k + 1] = z1[k], z2[k]
    s = [[_cos(z[i], z[j]) for j in range(2 * n)] for i in range(2 * n)]

    def ell(i, j):
        den = sum(math.exp(s[i][k] / tau) for k in range(2 * n) if k != i)
        return -math.log(math.exp(s[i][j] / tau) / den)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_equals_simclr_algorithm_1(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(simclr_algorithm1(z1, z2, tau), rel=1e-5)


def test_nt_xent_identical_embeddings_is_log_2n_minus_1():
    z = torch.ones(6, 4)
    assert nt_xent(z, z.clone(), 0.3).item() == pytest.approx(math.log(2 * 6 - 1), rel=1e-6)


def test_info_nce_in_batch_and_explicit_negatives_match_formula():
    g = torch.Generator().manual_seed(1)
    q, p = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    negs = torch.randn(3, 6, generator=g)
    per = torch.randn(4, 5, 6, generator=g)
    t = 0.2

    def direct(pos_list, neg_lists):
        out = []
        for i in range(4):
            num = math.exp(_cos(q[i], pos_list[i]) / t)
            den = num + sum(math.exp(_cos(q[i], k) / t) for k in neg_lists[i])
            out.append(-math.log(num / den))
        return sum(out) / 4

    in_batch = direct(p, [[p[j] for j in range(4) if j != i] for i in range(4)])
    assert info_nce(q, p, temperature=t).item() == pytest.approx(in_batch, rel=1e-5)
    shared = direct(p, [list(negs)] * 4)
    assert info_nce(q, p, negs, temperature=t).item() == pytest.approx(shared, rel=1e-5)
    per_sample = direct(p, [list(per[i]) for i in range(4)])
    assert info_nce(q, p, per, temperature=t).item() == pytest.approx(per_sample, rel=1e-5)
    both = direct(p, [[p[j] for j in range(4) if j != i] + list(negs) for i in range(4)])
    assert info_nce(q, p, negs, temperature=t, in_batch_negatives=True).item() == pytest.approx(both, rel=1e-5)


def test_info_nce_orthogonal_keys_analytic():
    # q_i = e_i, keys = e_i: positive cosine 1, negatives 0 -> -log(e^{1/t} / (e^{1/t} + (B-1)))
    b, t = 4, 0.5
    e = torch.eye(b)
    expect = -math.log(math.exp(1 / t) / (math.exp(1 / t) + (b - 1)))
    assert info_nce(e, e, temperature=t).item() == pytest.approx(expect, rel=1e-6)


def test_clip_loss_is_symmetric_cross_entropy():
    g = torch.Generator().manual_seed(2)
    img, txt = F.normalize(torch.randn(5, 8, generator=g), dim=-1), F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    s = 14.3
    li, lt = [], []
    for i in range(5):
        row = [s * float(img[i] @ txt[j]) for j in range(5)]
        col = [s * float(txt[i] @ img[j]) for j in range(5)]
        li.append(-row[i] + math.log(sum(math.exp(v) for v in row)))
        lt.append(-col[i] + math.log(sum(math.exp(v) for v in col)))
    assert clip_loss(img, txt, s).item() == pytest.approx((sum(li) / 5 + sum(lt) / 5) / 2, rel=1e-5)
    assert clip_loss(img, txt, torch.tensor(s)).item() == pytest.approx(clip_loss(txt, img, s).item(), rel=1e-6)


def test_supcon_matches_khosla_formula_and_reduces_to_simclr_without_labels():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(4, 2, 6, generator=g)
    labels = torch.tensor([0, 1, 0, 2])
    t = 0.3
    f = F.normalize(feats, dim=-1)
    anchors = [(i, v) for v in range(2) for i in range(4)]
    total, count = 0.0, 0
    for (i, v) in anchors:
        others = [(j, w) for (j, w) in anchors if (j, w) != (i, v)]
        den = sum(math.exp(float(f[i, v] @ f[j, w]) / t) for (j, w) in others)
        pos = [(j, w) for (j, w) in others if labels[j] == labels[i]]
        total += -sum(math.log(math.exp(float(f[i, v] @ f[j, w]) / t) / den) for (j, w) in pos) / len(pos)
        count += 1
    assert supcon_loss(feats, labels, temperature=t).item() == pytest.approx(total / count, rel=1e-5)
    # no labels: each sample its own class -> the positive is the other view -> NT-Xent
    assert supcon_loss(feats, None, temperature=t).item() == pytest.approx(nt_xent(feats[:, 0], feats[:, 1], t).item(), rel=1e-5)


def test_triplet_loss_formula():
    g = torch.Generator().manual_seed(4)
    a, p, n = (torch.randn(6, 5, generator=g) for _ in range(3))
    an, pn, nn_ = (x / x.norm(dim=1, keepdim=True) for x in (a, p, n))
    expect = sum(max(0.0, float(((an[i] - pn[i]) ** 2).sum() - ((an[i] - nn_[i]) ** 2).sum()) + 0.3) for i in range(6)) / 6
    assert triplet_loss(a, p, n, margin=0.3).item() == pytest.approx(expect, rel=1e-5)
    assert triplet_loss(a, a, -a, margin=0.3).item() == 0.0  # easy triplets give no loss


def test_soft_nearest_neighbor_matches_seed_equation_and_skips_singletons():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=g)
    y = torch.tensor([0, 0, 1, 1, 1, 2])  # sample 5 has no partner: skipped
    T = 0.7
    terms = []
    for i in range(6):
        num = sum(math.exp(-float(((x[i] - x[j]) ** 2).sum()) / T) for j in range(6) if j != i and y[j] == y[i])
        den = sum(math.exp(-float(((x[i] - x[k]) ** 2).sum()) / T) for k in range(6) if k != i)
        if num > 0:
            terms.append(-math.log(num / den))
    assert soft_nearest_neighbor_loss(x, y, T).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_gradients_are_finite_even_at_tiny_temperature():
    z1, z2 = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    for loss in (nt_xent(z1, z2, 0.01), info_nce(z1, z2, temperature=0.01), supcon_loss(torch.stack([z1, z2], 1), None, 0.01),
                 soft_nearest_neighbor_loss(z1, torch.arange(8) % 3, 0.01), triplet_loss(z1, z2, z1.flip(0))):
        z1.grad = z2.grad = None
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()


@pytest.mark.parametrize("call", [
    lambda: nt_xent(torch.randn(4, 8), torch.randn(5, 8)),
    lambda: info_nce(torch.randn(4, 8), torch.randn(4, 7)),
    lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 2, 8)),
    lambda: clip_loss(torch.randn(4, 8), torch.randn(3, 8), 1.0),
    lambda: supcon_loss(torch.randn(4, 8)),
    lambda: triplet_loss(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 7)),
])
def test_bad_shapes_raise_clear_errors(call):
    with pytest.raises(ValueError, match="must"):
        call()


def test_matches_lightly_and_open_clip():
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(6)
    z1, z2 = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    ref = lightly_loss.NTXentLoss(temperature=0.5)(z1, z2)
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(ref.item(), abs=1e-5)
    oc = pytest.importorskip("open_clip.loss")
    img, txt = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    ref = oc.ClipLoss()(img, txt, torch.tensor(10.0))
    assert clip_loss(img, txt, torch.tensor(10.0)).item() == pytest.approx(ref.item(), abs=1e-5)
