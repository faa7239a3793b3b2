"""ArcFace (with sub-centers) and CosFace against their formulas written per sample and pytorch-metric-learning."""
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.objectives.margin_softmax import ArcFaceHead, CosFaceHead, arcface_loss, class_cosines, cosface_loss


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def _direct(x, y, w, k, target_logit, scale):
    """-1/B sum_i log softmax_i[y_i] of scale * [class cosines with target_logit(cos) at y_i], with loops."""
    c = w.shape[0] // k
    total = 0.0
    for i in range(x.shape[0]):
        cos = [max(_cos(x[i], w[j * k + s]) for s in range(k)) for j in range(c)]  # max over the class's sub-centers
        logits = [scale * (target_logit(v) if j == int(y[i]) else v) for j, v in enumerate(cos)]
        total += -(logits[int(y[i])] - math.log(sum(math.exp(z) for z in logits)))
    return total / x.shape[0]


def _arcface_target(m):
    def f(cos):
        theta = math.acos(max(-1.0, min(1.0, cos)))
        return math.cos(theta + m) if theta + m <= math.pi else cos - m * math.sin(m)
    return f


def _data(b=9, d=6, c=4, k=1, seed=0, dtype=torch.float64):
    """(x [b, d], y [b], w [c*k, d]): a class's k sub-centers scattered around one direction, so pointing an
    embedding away from that direction puts it past pi - m from every sub-center."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(b, d, generator=g, dtype=dtype), torch.randint(0, c, (b,), generator=g)
    w = torch.randn(c, d, generator=g, dtype=dtype).repeat_interleave(k, 0)
    return x, y, w + (0.3 * torch.randn(c * k, d, generator=g, dtype=dtype) if k > 1 else 0)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.2])
def test_arcface_equals_formula(k, margin):
    x, y, w = _data(k=k)
    # some targets pointed away from their class so that theta + m > pi (the fallback branch) is exercised too
    x[:3] = -w[y[:3] * k] + 0.05 * x[:3]
    theta = torch.acos(class_cosines(x, w, k)[torch.arange(9), y].clamp(-1, 1))
    if margin:
        assert (theta > math.pi - margin).any() and (theta <= math.pi - margin).any()
    expect = _direct(x, y, w, k, _arcface_target(margin), 16.0)
    assert arcface_loss(x, y, w, margin, 16.0, k).item() == pytest.approx(expect, rel=1e-10)


def test_cosface_equals_formula_and_zero_margins_give_plain_softmax():
    x, y, w = _data()
    expect = _direct(x, y, w, 1, lambda v: v - 0.35, 30.0)
    assert cosface_loss(x, y, w, 0.35, 30.0).item() == pytest.approx(expect, rel=1e-10)
    plain = F.cross_entropy(30.0 * F.normalize(x, dim=1) @ F.normalize(w, dim=1).T, y)
    assert arcface_loss(x, y, w, 0.0, 30.0).item() == pytest.approx(plain.item(), rel=1e-12)
    assert cosface_loss(x, y, w, 0.0, 30.0).item() == pytest.approx(plain.item(), rel=1e-12)


def test_margins_raise_the_loss_and_the_fallback_keeps_the_target_logit_decreasing():
    x, y, w = _data()
    base = arcface_loss(x, y, w, 0.0, 16.0).item()
    assert arcface_loss(x, y, w, 0.5, 16.0).item() > base and cosface_loss(x, y, w, 0.35, 16.0).item() > base
    # two classes, the second at 90 deg from every embedding (logit 0): loss = softplus(-s * f(theta)), so the
    # loss rises strictly with the angle iff the target logit f(theta) falls strictly, across the switch at pi - m
    m, angles = 0.8, torch.linspace(0.0, math.pi, 200, dtype=torch.float64)
    emb = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros_like(angles)], 1)  # angle to e_x
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # class 1 at 90 deg from every emb
    losses = torch.stack([arcface_loss(e[None], torch.zeros(1, dtype=torch.long), weight, m, 4.0) for e in emb])
    assert (losses.diff() > 0).all()


def test_embedding_on_its_class_direction_has_finite_gradients():
    w = torch.randn(3, 4, dtype=torch.float64)
    x = w[[0, 1]].clone().requires_grad_(True)  # cos = 1 exactly: sin(theta) = 0
    wp = w.clone().requires_grad_(True)
    arcface_loss(x, torch.tensor([0, 1]), wp, 0.5, 8.0).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(wp.grad).all()


@pytest.mark.parametrize("k", [1, 2])
def test_arcface_gradcheck(k):
    x, y, w = _data(b=5, d=4, c=3, k=k, seed=3)
    x.requires_grad_(True)
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: arcface_loss(a, y, b, 0.5, 4.0, k), (x, w))
    assert torch.autograd.gradcheck(lambda a, b: cosface_loss(a, y, b, 0.35, 4.0), (x, w[: 3]))


def test_heads_wrap_the_functions():
    g = torch.Generator().manual_seed(1)
    head = ArcFaceHead(num_classes=4, dim=6, sub_centers=3, margin=0.4, scale=10.0, generator=g)
    assert head.weight.shape == (12, 6)
    assert torch.equal(ArcFaceHead(4, 6, 3, generator=torch.Generator().manual_seed(1)).weight, head.weight)
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 0])
    assert torch.equal(head(x, y), arcface_loss(x, y, head.weight, 0.4, 10.0, 3))
    cos = head.cosines(x)
    assert cos.shape == (5, 4) and torch.allclose(cos, class_cosines(x, head.weight, 3))
    cos_head = CosFaceHead(4, 6, margin=0.2, scale=10.0)
    assert torch.equal(cos_head(x, y), cosface_loss(x, y, cos_head.weight, 0.2, 10.0))
    assert cos_head.cosines(head.weight.detach()[::3]).shape == (4, 4)
    loss = head(x, y)
    loss.backward()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("k", [1, 3])
def test_arcface_matches_pytorch_metric_learning(dtype, tol, k):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    x, y, w = _data(b=32, d=8, c=6, k=k, seed=7, dtype=dtype)
    x[:4] = -w[y[:4] * k] + 0.1 * x[:4]  # a few targets past pi - m
    margin, scale = 0.6, 32.0
    if k == 1:  # pml takes the margin in degrees
        ref = losses.ArcFaceLoss(num_classes=6, embedding_size=8, margin=math.degrees(margin), scale=scale)
    else:
        ref = losses.SubCenterArcFaceLoss(num_classes=6, embedding_size=8, margin=math.degrees(margin), scale=scale,
                                          sub_centers=k)
    ref.W.data = w.T.clone()  # pml stores [D, C*K], the same class-major sub-center order
    xo, wo = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    ours, theirs = arcface_loss(xo, y, wo, margin, scale, k), ref(xr, y)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=tol)
    assert torch.allclose(xo.grad, xr.grad, rtol=tol, atol=tol)
    assert torch.allclose(wo.grad, ref.W.grad.T, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_cosface_matches_pytorch_metric_learning(dtype, tol):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    x, y, w = _data(b=32, d=8, c=6, seed=8, dtype=dtype)
    ref = losses.CosFaceLoss(num_classes=6, embedding_size=8, margin=0.35, scale=32.0)
    ref.W.data = w.T.clone()
    xo, wo = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    ours, theirs = cosface_loss(xo, y, wo, 0.35, 32.0), ref(xr, y)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=tol)
    assert torch.allclose(xo.grad, xr.grad, rtol=tol, atol=tol)
    assert torch.allclose(wo.grad, ref.W.grad.T, rtol=tol, atol=tol)


_X, _Y, _W = torch.randn(4, 8), torch.tensor([0, 1, 2, 0]), torch.randn(6, 8)


@pytest.mark.parametrize("call,match", [
    (lambda: arcface_loss(torch.randn(8), _Y, _W), r"embeddings must have shape \[B, D\]"),
    (lambda: arcface_loss(_X, _Y, torch.randn(6, 7)), r"weight must have shape \[C\*K, 8\]"),
    (lambda: arcface_loss(_X, _Y, _W, sub_centers=4), r"weight must have shape \[C\*K, 8\] with K = sub_centers = 4"),
    (lambda: arcface_loss(_X, _Y, _W, sub_centers=0), r"sub_centers must be an int >= 1"),
    (lambda: arcface_loss(_X, torch.tensor([0, 1, 2]), _W), r"labels must be an integer tensor of shape \[4\]"),
    (lambda: arcface_loss(_X, _Y.float(), _W), r"labels must be an integer tensor"),
    (lambda: arcface_loss(_X, torch.tensor([0, 1, 3, 0]), _W, sub_centers=2), r"labels must lie in \[0, 3\)"),
    (lambda: arcface_loss(_X, torch.tensor([0, -1, 2, 0]), _W), r"labels must lie in \[0, 6\)"),
    (lambda: arcface_loss(_X, _Y, _W, margin=28.6), r"margin must be in radians.*degrees\? use math.radians"),
    (lambda: arcface_loss(_X, _Y, _W, margin=1.6), r"margin must be in radians, in \[0, pi/2\]"),
    (lambda: arcface_loss(_X, _Y, _W, scale=0.0), r"scale must be > 0"),
    (lambda: cosface_loss(_X, _Y, _W, margin=-0.1), r"margin must be >= 0"),
    (lambda: cosface_loss(_X, _Y, torch.randn(6, 9)), r"weight must have shape"),
    (lambda: ArcFaceHead(4, 8, margin=30.0), r"margin must be in radians"),
    (lambda: CosFaceHead(0, 8), r"must be >= 1"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
