"""Sharpening, FixMatch, UDA (consistency + TSA), entropy minimisation and self-training selection vs direct formulas."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.objectives.pseudo_label import (
    entropy_loss,
    fixmatch_loss,
    select_pseudo_labels,
    sharpen,
    soft_cross_entropy,
    tsa_cross_entropy,
    tsa_mask,
    tsa_threshold,
    uda_consistency_loss,
)


def _softmax(row, temperature=1.0):
    e = [math.exp(v / temperature) for v in row]
    return [v / sum(e) for v in e]


def test_sharpen_matches_power_formula_and_limits():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(4, 5, generator=g).softmax(-1)
    out = sharpen(p, 0.5)
    for i in range(4):
        powered = [v ** 2 for v in p[i].tolist()]
        assert out[i].tolist() == pytest.approx([v / sum(powered) for v in powered], rel=1e-5)
    assert torch.allclose(sharpen(p, 1.0), p, atol=1e-6)
    cold = sharpen(p, 0.01)
    assert torch.equal(cold.argmax(-1), p.argmax(-1)) and bool((cold.max(-1).values > 0.99).all())
    assert torch.isfinite(sharpen(torch.tensor([[1.0, 0.0, 0.0]]), 0.5)).all()  # zeros stay zero, no NaN
    with pytest.raises(ValueError, match="temperature"):
        sharpen(p, 0.0)


def test_soft_cross_entropy_matches_sum_and_detaches_targets():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, generator=g, requires_grad=True)
    targets = torch.rand(3, 4, generator=g).softmax(-1).requires_grad_()
    w = torch.tensor([1.0, 0.5, 0.0])
    direct = 0.0
    for i in range(3):
        logp = [math.log(v) for v in _softmax(logits[i].tolist())]
        direct += w[i].item() * -sum(t * lp for t, lp in zip(targets[i].tolist(), logp))
    loss = soft_cross_entropy(logits, targets, w)
    assert loss.item() == pytest.approx(direct / 3, rel=1e-5)
    loss.backward()
    assert targets.grad is None and logits.grad[2].abs().sum() == 0  # weight 0 row gets no gradient
    with pytest.raises(ValueError, match="weights"):
        soft_cross_entropy(logits, targets, torch.ones(2))


def test_fixmatch_matches_direct_loop_and_divides_by_all_unlabeled():
    g = torch.Generator().manual_seed(2)
    weak = torch.randn(16, 5, generator=g) * 3
    strong = torch.randn(16, 5, generator=g)
    tau = 0.7
    total, kept = 0.0, 0
    for b in range(16):
        q = _softmax(weak[b].tolist())
        if max(q) >= tau:
            y = q.index(max(q))
            total += -math.log(_softmax(strong[b].tolist())[y])
            kept += 1
    assert 0 < kept < 16  # the case exercises the mask
    loss, rate = fixmatch_loss(weak, strong, tau)
    assert loss.item() == pytest.approx(total / 16, rel=1e-5)  # / μB, not / kept
    assert rate.item() == pytest.approx(kept / 16)


def test_fixmatch_hand_built_mask_boundary_and_gradients():
    weak = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [0.1, 0.0]], requires_grad=True)
    strong = torch.zeros(4, 2, requires_grad=True)
    # row 0 has max prob exactly 0.5 (kept at τ = 0.5: '>='), rows 1, 2 confident, row 3 ~0.525
    loss, rate = fixmatch_loss(weak, strong, threshold=0.5)
    assert rate.item() == 1.0
    loss, rate = fixmatch_loss(weak, strong, threshold=0.9)
    assert rate.item() == 0.5
    loss.backward()
    assert weak.grad is None  # the pseudo-label side carries no gradient
    assert strong.grad[0].abs().sum() == 0 and strong.grad[3].abs().sum() == 0  # masked rows
    assert strong.grad[1, 0] < 0 and strong.grad[2, 1] < 0  # pushed towards the pseudo-labels 0 and 1
    assert loss.item() == pytest.approx(2 * math.log(2) / 4, rel=1e-6)  # two kept rows with CE log 2, over μB = 4


def test_fixmatch_per_class_threshold_tensor():
    weak = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    conf = weak.softmax(-1).max(-1).values[0].item()  # the same for every row
    thresholds = torch.tensor([conf - 0.01, conf + 0.01, conf])
    _, rate = fixmatch_loss(weak, torch.randn(3, 3), thresholds)
    assert rate.item() == pytest.approx(2 / 3)  # class 1's bar is above the confidence
    with pytest.raises(ValueError, match="per class"):
        fixmatch_loss(weak, weak, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="same shape"):
        fixmatch_loss(weak, torch.randn(3, 4))
    with pytest.raises(ValueError, match="threshold"):
        fixmatch_loss(weak, weak, 1.5)


def test_uda_consistency_matches_direct_loop():
    g = torch.Generator().manual_seed(3)
    weak = torch.randn(12, 4, generator=g) * 2
    strong = torch.randn(12, 4, generator=g)
    temp, beta = 0.4, 0.6
    total, kept = 0.0, 0
    for b in range(12):
        if max(_softmax(weak[b].tolist())) > beta:  # mask on the unsharpened prediction
            p = _softmax(weak[b].tolist(), temp)
            q = _softmax(strong[b].tolist())
            total += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))
            kept += 1
    assert 0 < kept < 12
    loss, rate = uda_consistency_loss(weak, strong, temperature=temp, threshold=beta)
    assert loss.item() == pytest.approx(total / 12, rel=1e-5)
    assert rate.item() == pytest.approx(kept / 12)


def test_uda_mask_is_strict_and_weak_side_has_no_gradient():
    weak = torch.tensor([[0.0, 0.0], [4.0, 0.0]], requires_grad=True)
    strong = torch.zeros(2, 2, requires_grad=True)
    loss, rate = uda_consistency_loss(weak, strong, temperature=0.5, threshold=0.5)
    assert rate.item() == 0.5  # row 0 sits exactly at 0.5: not '>' 0.5
    loss.backward()
    assert weak.grad is None and strong.grad[0].abs().sum() == 0 and strong.grad[1].abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        uda_consistency_loss(weak, strong, temperature=0.0)


@pytest.mark.parametrize("schedule", ["linear", "log", "exp"])
def test_tsa_threshold_formula(schedule):
    k, total = 10, 200
    for step in (0, 13, 100, 199, 200, 250):
        t = min(step / total, 1.0)
        alpha = {"linear": t, "log": 1 - math.exp(-t * 5), "exp": math.exp((t - 1) * 5)}[schedule]
        assert tsa_threshold(step, total, k, schedule) == pytest.approx(alpha * (1 - 1 / k) + 1 / k, rel=1e-12)
    assert 1 / k <= tsa_threshold(0, total, k, schedule) < tsa_threshold(total, total, k, schedule) <= 1.0
    values = [tsa_threshold(s, total, k, schedule) for s in range(0, total + 1, 20)]
    assert all(a < b for a, b in itertools.pairwise(values))


def test_tsa_threshold_orders_schedules_and_rejects_bad_input():
    # log releases the labels earliest, exp latest
    assert tsa_threshold(50, 200, 4, "log") > tsa_threshold(50, 200, 4, "linear") > tsa_threshold(50, 200, 4, "exp")
    assert tsa_threshold(0, 200, 4, "linear") == pytest.approx(0.25)  # chance level for K = 4
    assert tsa_threshold(200, 200, 4, "linear") == pytest.approx(1.0)  # nothing masked at the end
    with pytest.raises(ValueError, match="schedule"):
        tsa_threshold(1, 10, 4, "cosine")
    with pytest.raises(ValueError, match="num_classes"):
        tsa_threshold(1, 10, 1)
    with pytest.raises(ValueError, match="total_steps"):
        tsa_threshold(1, 0, 4)


def test_tsa_mask_and_loss_hand_built():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 0])
    eta = 0.6
    # correct-class probabilities: 0.982 (dropped), 0.018, 0.5, 0.731 (dropped)
    assert tsa_mask(logits, labels, eta).tolist() == [False, True, True, False]
    loss, kept = tsa_cross_entropy(logits, labels, eta)
    direct = (-math.log(_softmax([0.0, 4.0])[0]) - math.log(0.5)) / 2  # mean over the kept rows
    assert loss.item() == pytest.approx(direct, rel=1e-5) and kept.item() == 0.5
    loss.backward()
    assert logits.grad[0].abs().sum() == 0 and logits.grad[3].abs().sum() == 0
    none_kept, rate = tsa_cross_entropy(logits, labels, 0.0)  # every row above η: zero loss, no NaN
    assert none_kept.item() == 0.0 and rate.item() == 0.0
    with pytest.raises(ValueError, match="labels"):
        tsa_mask(logits, torch.tensor([0, 1]), 0.5)


def test_entropy_loss_matches_direct_and_has_gradient():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 6, generator=g, requires_grad=True)
    direct = sum(-sum(p * math.log(p) for p in _softmax(logits[i].tolist())) for i in range(5)) / 5
    loss = entropy_loss(logits)
    assert loss.item() == pytest.approx(direct, rel=1e-5)
    assert entropy_loss(torch.zeros(2, 6)).item() == pytest.approx(math.log(6), rel=1e-6)
    loss.backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        entropy_loss(torch.randn(5))


def _probs():
    return torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.97, 0.03], [0.8, 0.2]])


def test_select_top_fraction_and_threshold_hand_built():
    idx, tgt, w = select_pseudo_labels(_probs(), "top", fraction=0.5)  # ceil(3) most confident
    assert idx.tolist() == [0, 2, 4] and tgt.tolist() == [0, 1, 0] and w.tolist() == [1.0, 1.0, 1.0]
    idx, tgt, w = select_pseudo_labels(_probs(), "top", threshold=0.8)
    assert idx.tolist() == [0, 2, 4, 5] and tgt.tolist() == [0, 1, 0, 0]
    idx, _, _ = select_pseudo_labels(_probs(), "top", fraction=0.2)  # ceil(1.2) = 2
    assert idx.tolist() == [0, 4]
    tied = torch.tensor([[0.7, 0.3], [0.3, 0.7], [0.7, 0.3]])
    assert select_pseudo_labels(tied, "top", fraction=0.5)[0].tolist() == [0, 1]  # ties go to the lower index


def test_select_all_weighted_and_soft_match_loop():
    probs = _probs()
    idx, tgt, w = select_pseudo_labels(probs, "all")
    assert idx.tolist() == list(range(6)) and w.tolist() == [1.0] * 6
    idx, tgt, w = select_pseudo_labels(probs, "weighted")
    for i in range(6):
        row = probs[i].tolist()
        assert tgt[i].item() == row.index(max(row)) and w[i].item() == pytest.approx(max(row))
    idx, soft, w = select_pseudo_labels(probs, "top", threshold=0.9, soft=True)
    assert idx.tolist() == [0, 4] and torch.equal(soft, probs[[0, 4]])


def test_select_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        select_pseudo_labels(_probs(), "top")
    with pytest.raises(ValueError, match="exactly one"):
        select_pseudo_labels(_probs(), "top", fraction=0.5, threshold=0.5)
    with pytest.raises(ValueError, match="only to mode='top'"):
        select_pseudo_labels(_probs(), "all", fraction=0.5)
    with pytest.raises(ValueError, match="mode"):
        select_pseudo_labels(_probs(), "best")
    with pytest.raises(ValueError, match="fraction"):
        select_pseudo_labels(_probs(), "top", fraction=0.0)
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        select_pseudo_labels(torch.rand(6), "all")


def test_fixmatch_equals_masked_cross_entropy_reference():
    """Independent form: F.cross_entropy with ignore_index on masked rows, rescaled from kept rows to all rows."""
    g = torch.Generator().manual_seed(5)
    weak, strong = torch.randn(20, 4, generator=g) * 2, torch.randn(20, 4, generator=g)
    probs = weak.softmax(-1)
    targets = torch.where(probs.max(-1).values >= 0.6, probs.argmax(-1), torch.tensor(-100))
    kept = int((targets >= 0).sum())
    ref = F.cross_entropy(strong, targets, ignore_index=-100, reduction="sum") / 20
    assert kept > 0 and fixmatch_loss(weak, strong, 0.6).loss.item() == pytest.approx(ref.item(), rel=1e-5)
