"""BYOL negative cosine and DINO loss/centring vs direct formulas and lightly's implementations."""
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.objectives.distillation import byol_loss, dino_loss, update_center


def test_byol_loss_matches_formula_and_lightly():
    from lightly.loss import NegativeCosineSimilarity

    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    direct = -sum(float(p[i] @ z[i] / (p[i].norm() * z[i].norm())) for i in range(6)) / 6
    assert byol_loss(p, z).item() == pytest.approx(direct, abs=1e-6)
    assert torch.allclose(byol_loss(p, z), NegativeCosineSimilarity()(p, z), atol=1e-6)
    # BYOL's normalised MSE (2 - 2 cos) is an affine function of it.
    mse = ((F.normalize(p, dim=-1) - F.normalize(z, dim=-1)) ** 2).sum(-1).mean()
    assert mse.item() == pytest.approx(2 + 2 * byol_loss(p, z).item(), abs=1e-5)


def test_byol_loss_stops_gradient_on_target_and_rejects_bad_shapes():
    p = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None
    with pytest.raises(ValueError, match="same shape"):
        byol_loss(torch.randn(4, 3), torch.randn(4, 2))


def _dino_direct(student, teacher, center, ts, tt):
    """Loop form of DINO's loss straight from the paper: average over (t, s) pairs with t != s and over the batch."""
    total, pairs = 0.0, 0
    for t in range(teacher.shape[0]):
        pt = F.softmax((teacher[t] - center) / tt, dim=-1)
        for s in range(student.shape[0]):
            if s == t:
                continue
            total += float(-(pt * F.log_softmax(student[s] / ts, dim=-1)).sum(-1).mean())
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("v_s", [2, 6])
def test_dino_loss_matches_direct_formula(v_s):
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(v_s, 5, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    center = torch.randn(16, generator=g) * 0.1
    got = dino_loss(student, teacher, center, student_temperature=0.1, teacher_temperature=0.04)
    assert got.item() == pytest.approx(_dino_direct(student, teacher, center, 0.1, 0.04), rel=1e-5)


def test_dino_loss_and_centre_match_lightly():
    from lightly.loss import DINOLoss

    g = torch.Generator().manual_seed(2)
    k = 32
    ref = DINOLoss(output_dim=k, warmup_teacher_temp=0.04, teacher_temp=0.04, student_temp=0.1, center_momentum=0.9)
    center = torch.zeros(k)
    for _ in range(3):  # several steps: the centres must evolve identically
        student, teacher = torch.randn(6, 4, k, generator=g), torch.randn(2, 4, k, generator=g)
        expected = ref(list(teacher), list(student), teacher_temp=0.05)
        got = dino_loss(student, teacher, center, student_temperature=0.1, teacher_temperature=0.05)
        update_center(center, teacher, momentum=0.9)
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(center, ref.center.flatten(), atol=1e-6)


def test_dino_loss_gradient_flows_to_student_only_and_uniform_value():
    student = torch.zeros(3, 2, 8, requires_grad=True)
    teacher = torch.zeros(2, 2, 8, requires_grad=True)
    loss = dino_loss(student, teacher, torch.zeros(8))
    assert loss.item() == pytest.approx(math.log(8), abs=1e-6)  # uniform vs uniform: H = log K
    loss.backward()
    assert student.grad is not None and teacher.grad is None


def test_dino_loss_bad_input():
    with pytest.raises(ValueError, match="V_s, B, K"):
        dino_loss(torch.randn(2, 4), torch.randn(2, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="at least two views"):
        dino_loss(torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.zeros(4))
