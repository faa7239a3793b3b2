"""Pseudo-labelling in rounds: round 0 is the labeled CE alone; later rounds add λ_u · the selected / weighted CE of the
student's weak view against the frozen teacher's argmax on the other weak view, for the lecture's three variants (the
formula written out row by row from the model's own logits); one concatenated forward; config errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.pseudo_label import DEFAULT_FRACTION, PseudoLabelConfig, PseudoLabelModel

C, B, MU = 5, 4, 2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return PseudoLabelModel(PseudoLabelConfig(**kw))


def _with_teacher(model):
    """Round 1: the teacher is the student frozen now; then the student moves, so teacher != student."""
    model.refresh_teacher()
    model.teacher_round.fill_(1)
    with torch.no_grad():
        model.classifier.weight.add_(torch.randn(model.classifier.weight.shape, generator=torch.Generator().manual_seed(9)))
    return model


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 2, 3, 16, 16, generator=g)}


def _logits(backbone, classifier, x):
    return classifier(backbone(pixel_values=x).pooler_output.flatten(1))  # [N, C]


@pytest.mark.parametrize("knobs", [{"mode": "top", "fraction": 0.25}, {"mode": "top", "threshold": "median"},
                                   {"mode": "all"}, {"mode": "weighted"}])
def test_loss_is_labeled_ce_plus_lambda_u_times_the_selected_weighted_pseudo_label_ce(knobs):
    x = _inputs()
    model = _with_teacher(_model(lambda_u=0.7, **{k: (0.5 if v == "median" else v) for k, v in knobs.items()})).eval()
    with torch.no_grad():  # eval: BatchNorm running statistics, so each stream's logits stand alone
        teacher = _logits(model.teacher["backbone"], model.teacher["classifier"], x["u_weak"][:, 0]).softmax(-1)
        lab = _logits(model.backbone, model.classifier, x["x_l"])
        student = _logits(model.backbone, model.classifier, x["u_weak"][:, 1])
    conf, pseudo = teacher.max(-1)
    if knobs.get("threshold") == "median":
        model.config.threshold = float(conf.median())
    n = MU * B
    rank = {b: sorted(range(n), key=lambda i: -conf[i]).index(b) for b in range(n)}  # 0 = most confident
    total = 0.0
    for b in range(n):  # the formula, row by row
        if knobs["mode"] == "top" and "fraction" in knobs:
            keep, w = float(rank[b] < math.ceil(knobs["fraction"] * n)), 1.0
        elif knobs["mode"] == "top":
            keep, w = float(conf[b] >= model.config.threshold), 1.0
        else:
            keep, w = 1.0, (conf[b].item() if knobs["mode"] == "weighted" else 1.0)
        total += keep * w * -student[b].log_softmax(-1)[pseudo[b]]
    ce_u = total / n
    ce_l = F.cross_entropy(lab, x["labels"])
    assert not torch.equal(pseudo, student.argmax(-1))  # teacher != student, so the check could tell whose targets
    out = model(**x)
    torch.testing.assert_close(out.supervised_loss, ce_l)
    torch.testing.assert_close(out.unsupervised_loss, ce_u)
    torch.testing.assert_close(out.loss, ce_l + 0.7 * ce_u)
    if knobs["mode"] == "top":
        assert 0 < out.mask_rate < 1
    else:
        assert out.mask_rate == 1


def test_round_0_is_the_labeled_cross_entropy_alone():
    model = _model().eval()
    x = _inputs()
    x["u_weak"].requires_grad_()
    out = model(**x)
    with torch.no_grad():
        ce_l = F.cross_entropy(_logits(model.backbone, model.classifier, x["x_l"]), x["labels"])
    torch.testing.assert_close(out.loss, ce_l)
    assert out.unsupervised_loss == 0 and out.mask_rate == 0 and out.entropy is None
    out.loss.backward()
    assert x["u_weak"].grad is None  # the unlabeled views are not even forwarded


def test_training_forward_is_one_concatenated_batch_for_batchnorm():
    model = _with_teacher(_model(mode="all")).train()
    x = _inputs()
    with torch.no_grad():
        joint = _logits(model.backbone, model.classifier, torch.cat([x["x_l"], x["u_weak"][:, 1]]))
        alone = _logits(model.backbone, model.classifier, x["x_l"])
    out = model(**x)
    torch.testing.assert_close(out.logits, joint[:B])
    assert not torch.allclose(out.logits, alone, atol=1e-4)  # so the check above could fail


def test_config_defaults_and_entropy_term():
    assert _model().config.fraction == DEFAULT_FRACTION and _model().config.threshold is None
    assert _model(threshold=0.9).config.fraction is None
    model = _with_teacher(_model(mode="all", entropy_weight=0.3)).eval()
    out = model(**_inputs())
    torch.testing.assert_close(out.loss, out.supervised_loss + out.unsupervised_loss + 0.3 * out.entropy)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "best"}, "mode must be one of"),
    ({"fraction": 0.5, "threshold": 0.9}, "exactly one of fraction or threshold"),
    ({"mode": "all", "fraction": 0.5}, "apply only to mode 'top'"),
    ({"mode": "weighted", "threshold": 0.5}, "apply only to mode 'top'"),
    ({"fraction": 0.0}, "fraction .* must be > 0"),
    ({"fraction": 1.5}, r"fraction .* must be a number in \[0.0, 1.0\]"),
    ({"threshold": -0.1}, r"threshold .* must be a number in \[0.0, 1.0\]"),
    ({"rounds": 1}, r"rounds .* must be a whole number >= 2"),
    ({"rounds": 2.5}, r"rounds .* must be a whole number >= 2"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_forward_refuses_a_single_weak_view():
    x = _inputs()
    x["u_weak"] = x["u_weak"][:, :1]
    with pytest.raises(ValueError, match=r"u_weak must be \[μB, 2, C, H, W\]"):
        _model()(**x)
