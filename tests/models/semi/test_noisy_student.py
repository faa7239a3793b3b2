"""Noisy Student + data distillation: the teacher's soft targets averaged over V clean weak views train the student's
strong view (formula written out from the model's own logits, with and without confidence filtering, soft and hard),
the student's dropout is on in training and the teacher's targets are not noised, the data hook gives V weak + 1 strong
views, config errors."""
import pytest
import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.noisy_student import NoisyStudentConfig, NoisyStudentModel
from tests.models.semi._toy import toy_dataset

C, B, MU, V = 5, 4, 2, 3


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU,
          "teacher_views": V, **kw}
    return NoisyStudentModel(NoisyStudentConfig(**kw))


def _with_teacher(model):
    """Round 1 with a teacher that differs from the student (the student moved after the snapshot)."""
    model.refresh_teacher()
    model.teacher_round.fill_(1)
    with torch.no_grad():
        model.classifier.weight.add_(torch.randn(model.classifier.weight.shape, generator=torch.Generator().manual_seed(9)))
    return model


def _inputs(seed=1, views=V):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, views, 3, 16, 16, generator=g),
            "u_strong": torch.randn(MU * B, 1, 3, 16, 16, generator=g)}


def _logits(backbone, classifier, x):
    return classifier(backbone(pixel_values=x).pooler_output.flatten(1))  # [N, C]


@pytest.mark.parametrize("soft, threshold", [(True, None), (True, "median"), (False, None)])
def test_loss_is_labeled_ce_plus_the_ce_of_the_strong_view_against_the_averaged_teacher_targets(soft, threshold):
    x = _inputs()
    model = _with_teacher(_model(lambda_u=0.6, soft=soft, threshold=None if threshold is None else 0.5)).eval()
    with torch.no_grad():  # eval: no dropout, BatchNorm running statistics
        teacher = [_logits(model.teacher["backbone"], model.teacher["classifier"], x["u_weak"][:, v]).softmax(-1)
                   for v in range(V)]
        lab = _logits(model.backbone, model.classifier, x["x_l"])
        strong = _logits(model.backbone, model.classifier, x["u_strong"][:, 0])
    p_bar = sum(teacher) / V  # data distillation: the ensemble over the V views
    conf = p_bar.max(-1).values
    if threshold == "median":
        model.config.threshold = float(conf.median())
    total = 0.0
    for b in range(MU * B):  # (1/μB) Σ_b w_b H(t_b, softmax(strong_b)), row by row
        t = p_bar[b] if soft else F.one_hot(p_bar[b].argmax(), C).float()
        keep = 1.0 if model.config.threshold is None else float(conf[b] >= model.config.threshold)
        total += keep * -(t * strong[b].log_softmax(-1)).sum()
    ce_u = total / (MU * B)
    ce_l = F.cross_entropy(lab, x["labels"])
    out = model(**x)
    torch.testing.assert_close(out.supervised_loss, ce_l)
    torch.testing.assert_close(out.unsupervised_loss, ce_u)
    torch.testing.assert_close(out.loss, ce_l + 0.6 * ce_u)
    assert (0 < out.mask_rate < 1) if threshold else out.mask_rate == 1
    if soft and threshold is None:  # the ensemble matters: one view's targets give another loss
        assert not torch.allclose(-(teacher[0] * strong.log_softmax(-1)).sum(-1).mean(), ce_u)


def test_the_student_is_noised_in_training_and_the_teacher_is_not():
    model = _with_teacher(_model(dropout=0.5)).train()
    x = _inputs()
    torch.manual_seed(1)
    a = model(**x)
    torch.manual_seed(2)
    b = model(**x)
    assert not torch.allclose(a.logits, b.logits)  # dropout before the classifier, drawn per forward
    p1, p2 = model.teacher_probs(x["u_weak"]), model.teacher_probs(x["u_weak"])
    assert torch.equal(p1, p2)  # the teacher is deterministic: no dropout, running BatchNorm statistics
    x["u_weak"].requires_grad_()
    x["u_strong"].requires_grad_()
    model(**x).loss.backward()
    assert x["u_weak"].grad is None or torch.count_nonzero(x["u_weak"].grad) == 0  # targets carry no gradient
    assert torch.count_nonzero(x["u_strong"].grad) > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    model.eval()
    torch.manual_seed(1)
    c = model(**x).logits
    torch.manual_seed(2)
    assert torch.equal(c, model(**x).logits)  # no dropout at evaluation
    assert torch.equal(model.classify(x["x_l"]), model.classify(x["x_l"]))


class _Data:
    def load(self):
        return toy_dataset()


def test_the_data_hook_and_collator_give_v_weak_views_and_one_strong_view():
    config = _model(num_classes=4, labels_per_class=2, teacher_views=2).config
    item = NoisyStudentModel.make_batch_source(config, _Data(), batch_size=B, seed=0)[0]
    assert set(item) == {"x_l", "labels", "u_weak", "u_strong"}
    assert item["u_weak"].shape == (MU * B, 2, 3, 16, 16) and item["u_strong"].shape == (MU * B, 1, 3, 16, 16)
    assert not torch.equal(item["u_weak"][:, 0], item["u_weak"][:, 1])  # independently drawn views
    rows = [dict(r) for r in toy_dataset().select(range(4))]
    batch = NoisyStudentModel.make_collator(config)(rows)
    assert batch["u_weak"].shape == (4, 2, 3, 16, 16)
    assert NoisyStudentModel.make_collator(config, train=False)(rows)["pixel_values"].shape == (4, 3, 16, 16)
    assert NoisyStudentModel.unlabeled_views == (1, 1)  # the class itself is untouched by the config's V
    assert NoisyStudentModel.views_for(config) == (2, 1)  # what the collator, the data hook and forward read


def test_forward_refuses_a_view_count_other_than_teacher_views():
    with pytest.raises(ValueError, match=r"u_weak must be \[μB, 3, C, H, W\]"):
        _model()(**_inputs(views=2))


@pytest.mark.parametrize("kwargs, match", [
    ({"teacher_views": 0}, r"teacher_views .* must be a whole number >= 1"),
    ({"soft": "yes"}, "soft must be true"),
    ({"threshold": 1.5}, r"threshold .* must be a number in \[0.0, 1.0\]"),
    ({"dropout": 1.0}, r"dropout .* must be a number in \[0.0, 1.0\)"),
    ({"rounds": 0}, r"rounds .* must be a whole number >= 2"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)
