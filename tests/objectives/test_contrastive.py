"""Contrastive losses against literal per-element transcriptions of their formulas, analytic values and peers."""
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.objectives import clip_loss, info_nce, nt_xent, supcon_loss


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


def test_nt_xent_analytic_values():
    # identical embeddings: every similarity is 1 -> -log(e^{1/t} / ((2N-1) e^{1/t})) = log(2N-1)
    z = torch.ones(6, 4)
    assert nt_xent(z, z.clone(), 0.3).item() == pytest.approx(math.log(2 * 6 - 1), rel=1e-6)
    # z1 = z2 = e_i: positive similarity 1, the 2N-2 other views orthogonal
    e, t = torch.eye(4), 0.5
    expect = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * 4 - 2))
    assert nt_xent(e, e.clone(), t).item() == pytest.approx(expect, rel=1e-6)


def _info_nce_direct(q, pos, negs, t):
    """Per-query -log(e^{cos(q,k+)/t} / (e^{cos(q,k+)/t} + sum_n e^{cos(q,n)/t})) with explicit loops."""
    out = []
    for i in range(len(q)):
        num = math.exp(_cos(q[i], pos[i]) / t)
        den = num + sum(math.exp(_cos(q[i], k) / t) for k in negs[i])
        out.append(-math.log(num / den))
    return out


def test_info_nce_matches_formula_for_every_negative_layout():
    g = torch.Generator().manual_seed(1)
    q, p = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    shared, per = torch.randn(3, 6, generator=g), torch.randn(4, 5, 6, generator=g)
    t = 0.2
    in_batch = [[p[j] for j in range(4) if j != i] for i in range(4)]
    cases = [
        (info_nce(q, p, temperature=t, reduction="none"), in_batch),
        (info_nce(q, p, shared, temperature=t, reduction="none"), [list(shared)] * 4),
        (info_nce(q, p, per, temperature=t, reduction="none"), [list(per[i]) for i in range(4)]),
        (info_nce(q, p, shared, temperature=t, reduction="none", in_batch_negatives=True),
         [in_batch[i] + list(shared) for i in range(4)]),
        (info_nce(q, p, per, temperature=t, reduction="none", in_batch_negatives=True),
         [in_batch[i] + list(per[i]) for i in range(4)]),
    ]
    for got, negs in cases:
        assert got.shape == (4,)
        assert got.tolist() == pytest.approx(_info_nce_direct(q, p, negs, t), rel=1e-5)
    assert info_nce(q, p, shared, temperature=t).item() == pytest.approx(cases[1][0].mean().item(), rel=1e-6)
    assert info_nce(q, p, shared, temperature=t, reduction="sum").item() == pytest.approx(cases[1][0].sum().item(), rel=1e-6)


def test_info_nce_without_normalisation_uses_raw_dot_products():
    g = torch.Generator().manual_seed(7)
    q, p, n = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(2, 4, generator=g)
    expect = [-(float(q[i] @ p[i]) - math.log(math.exp(float(q[i] @ p[i])) + sum(math.exp(float(q[i] @ k)) for k in n)))
              for i in range(3)]
    assert info_nce(q, p, n, temperature=1.0, normalize=False).item() == pytest.approx(sum(expect) / 3, rel=1e-5)


def test_info_nce_orthogonal_keys_analytic():
    b, t = 4, 0.5
    e = torch.eye(b)  # q_i = k_i = e_i: positive cosine 1, every negative cosine 0
    assert info_nce(e, e, temperature=t).item() == pytest.approx(-math.log(math.exp(1 / t) / (math.exp(1 / t) + b - 1)), rel=1e-6)
    negs = torch.eye(8)[4:]  # 4 explicit negatives orthogonal to every query
    expect = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 4))
    assert info_nce(torch.eye(8)[:4], torch.eye(8)[:4], negs, temperature=t).item() == pytest.approx(expect, rel=1e-6)


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
    scale = torch.tensor(s, requires_grad=True)  # a learned scale receives a gradient
    clip_loss(img, txt, scale).backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)


def _supcon_direct(f, labels, t):
    """Khosla et al. L_out with explicit loops over anchors (i, v); anchors without positives skipped."""
    b, v = f.shape[:2]
    anchors = [(i, a) for a in range(v) for i in range(b)]
    terms = []
    for (i, a) in anchors:
        others = [(j, w) for (j, w) in anchors if (j, w) != (i, a)]
        den = sum(math.exp(float(f[i, a] @ f[j, w]) / t) for (j, w) in others)
        pos = [(j, w) for (j, w) in others if labels[j] == labels[i]]
        if pos:
            terms.append(-sum(math.log(math.exp(float(f[i, a] @ f[j, w]) / t) / den) for (j, w) in pos) / len(pos))
    return sum(terms) / len(terms)


def test_supcon_matches_khosla_formula_and_reduces_to_nt_xent_without_labels():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(4, 2, 6, generator=g)
    labels, t = torch.tensor([0, 1, 0, 2]), 0.3
    expect = _supcon_direct(F.normalize(feats, dim=-1), labels, t)
    assert supcon_loss(feats, labels, temperature=t).item() == pytest.approx(expect, rel=1e-5)
    assert supcon_loss(feats, labels, t, base_temperature=0.6).item() == pytest.approx(expect * t / 0.6, rel=1e-5)
    # no labels: each sample its own class -> the only positive is the other view -> NT-Xent
    assert supcon_loss(feats, None, temperature=t).item() == pytest.approx(nt_xent(feats[:, 0], feats[:, 1], t).item(), rel=1e-5)


def test_supcon_single_view_skips_anchors_without_positive():
    g = torch.Generator().manual_seed(8)
    feats = torch.randn(5, 1, 4, generator=g, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2, 1])  # sample 3 has no partner
    expect = _supcon_direct(F.normalize(feats.detach(), dim=-1), labels, 0.5)
    assert supcon_loss(feats, labels, 0.5).item() == pytest.approx(expect, rel=1e-5)
    for x, lab in ((feats, torch.arange(5)), (feats[:1], torch.zeros(1))):  # nobody has a positive: 0, finite gradients
        feats.grad = None
        loss = supcon_loss(x, lab, 0.5)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(feats.grad).all()


def test_gradients_are_finite_and_match_finite_differences():
    z1, z2 = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    for loss in (nt_xent(z1, z2, 0.01), info_nce(z1, z2, temperature=0.01), supcon_loss(torch.stack([z1, z2], 1), None, 0.01),
                 clip_loss(F.normalize(z1, dim=-1), F.normalize(z2, dim=-1), 100.0)):
        z1.grad = z2.grad = None
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    a, b = torch.randn(4, 3, dtype=torch.float64, requires_grad=True), torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda x, y: nt_xent(x, y, 0.5), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, y.flip(0), 0.5, in_batch_negatives=True), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: supcon_loss(torch.stack([x, y], 1), labels, 0.5), (a, b))


@pytest.mark.parametrize("call,match", [
    (lambda: nt_xent(torch.randn(4, 8), torch.randn(5, 8)), r"z2 must have shape \[4, 8\]"),
    (lambda: nt_xent(torch.randn(4, 8, 2), torch.randn(4, 8)), r"z1 must have shape \[B, D\]"),
    (lambda: nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0), "temperature must be > 0"),
    (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 7)), r"positive_key must have shape \[4, 8\]"),
    (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 2, 8)), r"negative_keys must have shape \[M, 8\]"),
    (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), in_batch_negatives=False), "needs negative_keys"),
    (lambda: clip_loss(torch.randn(4, 8), torch.randn(3, 8), 1.0), r"text_emb must have shape \[4, 8\]"),
    (lambda: clip_loss(torch.randn(4, 8), torch.randn(4, 8), torch.ones(2)), "logit_scale must be"),
    (lambda: supcon_loss(torch.randn(4, 8)), r"features must have shape \[B, V, D\]"),
    (lambda: supcon_loss(torch.randn(4, 2, 8), torch.zeros(3)), r"labels must have shape \[4\]"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_lightly(tau):
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(6)
    z1, z2 = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    ref = lightly_loss.NTXentLoss(temperature=tau)(a, b)
    ref.backward()
    x, y = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    ours = nt_xent(x, y, tau)
    ours.backward()
    assert ours.item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(x.grad, a.grad, atol=1e-6) and torch.allclose(y.grad, b.grad, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_clip_loss_matches_open_clip(scale):
    oc = pytest.importorskip("open_clip.loss")
    g = torch.Generator().manual_seed(9)
    img = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    txt = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    ref = oc.ClipLoss()(img, txt, torch.tensor(scale))
    assert clip_loss(img, txt, torch.tensor(scale)).item() == pytest.approx(ref.item(), abs=1e-5)
