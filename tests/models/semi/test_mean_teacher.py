"""Mean Teacher: the loss against its formula (student on one weak view, teacher on another), no gradient into the
teacher, the EMA update and its momentum schedule (authors' 1 - 1/(t+1) start, ramp-up then final momentum, BatchNorm
statistics copied), the teacher as the evaluated / exported model, the λ_u = 0 baseline training the student, the
teacher in save_pretrained, and bad config."""
import copy

import pytest
import torch
from transformers import AutoModel

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.mean_teacher import MeanTeacherConfig, MeanTeacherModel, ema_momentum_at

C, B, MU = 5, 4, 2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return MeanTeacherModel(MeanTeacherConfig(**kw))


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 2, 3, 16, 16, generator=g)}


def _student(model, x):
    return model.classifier(model.backbone(pixel_values=x).pooler_output.flatten(1))  # [N, C]


def _teacher(model, x):
    return model.teacher_classifier(model.teacher_backbone(pixel_values=x).pooler_output.flatten(1))  # [N, C]


def _move_student(model, seed=5):
    """Change the student's weights so student and teacher differ (as after some training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in list(model.backbone.parameters()) + list(model.classifier.parameters()):
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_the_teacher_starts_as_a_copy_of_the_student_and_has_no_trainable_parameter():
    model = _model()
    s, t = dict(model.backbone.named_parameters()), dict(model.teacher_backbone.named_parameters())
    assert s.keys() == t.keys() and all(torch.equal(s[k], t[k]) for k in s)
    assert all(torch.equal(a, b) for a, b in zip(model.backbone.buffers(), model.teacher_backbone.buffers()))
    assert not any(p.requires_grad for p in list(model.teacher_backbone.parameters())
                   + list(model.teacher_classifier.parameters()))


def test_loss_is_labeled_ce_plus_lambda_u_times_the_squared_distance_of_student_and_teacher_softmaxes():
    model = _model(lambda_u=4.0).eval()  # eval: running statistics, so each pass stands alone
    _move_student(model)
    x = _inputs()
    with torch.no_grad():
        lab, student_u = _student(model, x["x_l"]), _student(model, x["u_weak"][:, 0])
        teacher_u = _teacher(model, x["u_weak"][:, 1])  # the teacher sees the OTHER weak view
    out = model(**x)
    ce = -lab.log_softmax(-1)[torch.arange(B), x["labels"]].mean()
    mse = ((student_u.softmax(-1) - teacher_u.softmax(-1)) ** 2).sum(-1).mean() / C
    with torch.no_grad():  # control: the student's own prediction of view 1 would give another value
        wrong = ((student_u.softmax(-1) - _student(model, x["u_weak"][:, 1]).softmax(-1)) ** 2).mean()
    assert not torch.isclose(mse, wrong)
    torch.testing.assert_close(out.supervised_loss, ce)
    torch.testing.assert_close(out.unsupervised_loss, mse)
    torch.testing.assert_close(out.loss, ce + 4.0 * mse)


def test_no_gradient_reaches_the_teacher_or_its_view():
    model = _model().train()
    _move_student(model)
    x = {k: v.requires_grad_(v.is_floating_point()) for k, v in _inputs().items()}
    model(**x).loss.backward()
    assert all(p.grad is None for p in list(model.teacher_backbone.parameters())
               + list(model.teacher_classifier.parameters()))
    assert torch.count_nonzero(x["u_weak"].grad[:, 1]) == 0 and torch.count_nonzero(x["u_weak"].grad[:, 0]) > 0
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_ema_momentum_schedule():
    # authors' start: min(1 - 1/(t + 1), α): the plain average of every student so far while that is below α
    assert ema_momentum_at(1, 0.999, 0.99, 10) == 0.5
    assert ema_momentum_at(3, 0.999, 0.99, 10) == pytest.approx(0.75)
    assert ema_momentum_at(500, 0.999, 0.99, 1000) == 0.99  # during λ_u's ramp-up
    assert ema_momentum_at(2000, 0.999, 0.99, 1000) == 0.999  # after it
    assert ema_momentum_at(2000, 0.999, 0.99, 0) == 0.999  # no ramp-up: the final momentum throughout


def _stats(module):
    return {k: v.clone() for k, v in module.named_buffers()}  # running_mean / running_var / num_batches_tracked


def test_on_step_end_moves_the_teacher_by_the_ema_formula_its_batchnorm_statistics_are_its_own():
    model = _model(ema_momentum=0.9, ema_rampup_momentum=0.8, rampup_steps=50).train()
    teacher = copy.deepcopy(model.teacher_backbone)
    x = _inputs()
    with torch.no_grad():
        teacher(pixel_values=x["u_weak"][:, 1])  # what the teacher's own train-mode pass does to its statistics
    model(**x)  # a training forward: student and teacher statistics both move
    assert all(torch.equal(v, _stats(teacher)[k]) for k, v in _stats(model.teacher_backbone).items())
    assert not all(torch.equal(v, _stats(model.backbone)[k]) for k, v in _stats(model.teacher_backbone).items())
    _move_student(model)
    old, old_stats = dict(model.teacher_backbone.state_dict()), _stats(model.teacher_backbone)
    old = {k: v.clone() for k, v in old.items()}
    model.on_step_end(step=9, max_steps=100)  # 10 steps done: min(1 - 1/11, 0.8) = 0.8 (in the ramp-up)
    for name, p in model.backbone.named_parameters():
        torch.testing.assert_close(model.teacher_backbone.get_parameter(name), 0.8 * old[name] + 0.2 * p)
    assert all(torch.equal(v, old_stats[k]) for k, v in _stats(model.teacher_backbone).items())  # not averaged/copied
    old_w = model.teacher_classifier.weight.clone()
    model.on_step_end(step=59, max_steps=100)  # after the ramp-up: 0.9
    torch.testing.assert_close(model.teacher_classifier.weight, 0.9 * old_w + 0.1 * model.classifier.weight)
    assert int(model.steps_done) == 60  # the family's progress is still recorded (super().on_step_end)


def test_evaluation_and_export_read_the_teacher_training_reads_the_student():
    model = _model()
    _move_student(model)
    x = _inputs()["x_l"]
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model.classify(x), _teacher(model, x))
        torch.testing.assert_close(model(x).logits, _teacher(model, x))  # prediction-only forward
        assert not torch.allclose(model.classify(x), _student(model, x), atol=1e-4)
        torch.testing.assert_close(model.embed(x), model.teacher_backbone(pixel_values=x).pooler_output.flatten(1))
        model.train()
        student = copy.deepcopy(model)  # train-mode BatchNorm updates running statistics: compare on a copy
        torch.testing.assert_close(model.classify(x), _student(student, x))
    assert model.encoder_for_export() is model.teacher_backbone


def test_the_lambda_u_zero_baseline_trains_the_student_and_its_teacher_takes_the_students_statistics():
    model = _model(lambda_u=0.0).train()
    x = _inputs()
    out = model(x["x_l"], x["labels"])  # the family's supervised-only batches: labeled rows only
    out.loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    model.on_step_end(step=0, max_steps=10)  # the teacher never ran: the student's statistics are copied
    assert all(torch.equal(v, _stats(model.backbone)[k]) for k, v in _stats(model.teacher_backbone).items())
    assert int(model.teacher_backbone.get_buffer("embedder.embedder.normalization.num_batches_tracked")) == 1


def test_the_teacher_is_saved_and_reloaded(tmp_path):
    model = _model()
    _move_student(model)
    model.on_step_end(step=0, max_steps=10)  # teacher = (init + student) / 2: differs from both
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is MeanTeacherModel
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(loaded.teacher_classifier.weight, loaded.classifier.weight)


@pytest.mark.parametrize("kwargs, match", [
    ({"ema_momentum": 1.5}, r"ema_momentum must be a number in \[0.0, 1.0\]"),
    ({"ema_rampup_momentum": -0.1}, r"ema_rampup_momentum must be a number in \[0.0, 1.0\]"),
    ({"consistency": "ce"}, "consistency must be one of"),
    ({"labels_per_class": None}, "exactly one of model.labels_per_class"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)
