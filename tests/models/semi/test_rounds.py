"""The round machinery pseudo_label and noisy_student share (rounds.py): the round formula, one teacher refresh per
round at the right steps, a frozen teacher (no gradient, eval mode, unchanged inside a round), the selection loss against
its formula, and through the loop: a run resumed from a mid-round checkpoint has the same teacher as an uninterrupted one."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.noisy_student import NoisyStudentConfig, NoisyStudentModel
from multissl.models.semi.pseudo_label import PseudoLabelConfig, PseudoLabelModel
from multissl.models.semi.rounds import pseudo_label_loss, round_of
from multissl.registry import DATASETS, register_dataset
from multissl.training import recipe_from_dict, train
from tests.models.semi._toy import toy_dataset  # noqa: F401 (registered by name: f"{__name__}:toy_dataset")

C = 5


def _model(cls=PseudoLabelModel, config=PseudoLabelConfig, **kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": 2, **kw}
    return cls(config(**kw))


def _teacher_state(model):
    return {k: v.clone() for k, v in model.teacher.state_dict().items()}


def _student_state(model):
    return {**{f"backbone.{k}": v.clone() for k, v in model.backbone.state_dict().items()},
            **{f"classifier.{k}": v.clone() for k, v in model.classifier.state_dict().items()}}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("total, rounds", [(300, 3), (10, 3), (7, 2), (5, 5), (4, 6)])
def test_round_of_is_floor_of_steps_times_rounds_over_total(total, rounds):
    for n in range(total + 1):
        assert round_of(n, total, rounds) == min(math.floor(n * rounds / total), rounds - 1)
    with pytest.raises(ValueError, match="total_steps"):
        round_of(0, 0, rounds)


@pytest.mark.parametrize("total, rounds", [(12, 3), (10, 3), (7, 2), (4, 6)])
def test_the_teacher_is_refreshed_exactly_once_per_round_with_the_student_of_that_moment(total, rounds):
    model = _model(rounds=rounds)
    refreshed_at = []
    expected = sorted({math.ceil(k * total / rounds) for k in range(1, rounds)} - {total})  # first step of round k
    for step in range(total):
        with torch.no_grad():  # stand-in for an optimizer step: the student moves every step
            model.classifier.weight.add_(0.01 * (step + 1))
        before = _teacher_state(model)
        model.on_step_end(step, total)
        if not _same(before, _teacher_state(model)):
            refreshed_at.append(step + 1)
            assert _same({f"backbone.{k}": v for k, v in model.teacher["backbone"].state_dict().items()} |
                         {f"classifier.{k}": v for k, v in model.teacher["classifier"].state_dict().items()},
                         _student_state(model))  # an exact copy of the student at the boundary
        assert int(model.teacher_round) == round_of(step + 1, total, rounds) or step + 1 == total
    assert refreshed_at == expected  # R - 1 refreshes (fewer only when R > T), none after the last step
    assert int(model.teacher_round) == round_of(total - 1, total, rounds)


def test_the_teacher_gets_no_gradient_and_always_predicts_in_eval_mode():
    model = _model(rounds=2, threshold=0.0, mode="top").train()
    assert not model.teacher.training and all(not p.requires_grad for p in model.teacher.parameters())
    model.refresh_teacher()
    model.teacher_round.fill_(1)
    g = torch.Generator().manual_seed(1)
    x = {"x_l": torch.randn(4, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (4,), generator=g),
         "u_weak": torch.randn(8, 2, 3, 16, 16, generator=g).requires_grad_()}
    buffers = {k: v.clone() for k, v in model.teacher.named_buffers()}
    student_buffers = {k: v.clone() for k, v in model.backbone.named_buffers()}
    out = model(**x)  # a training forward: the student's BatchNorm statistics move, the teacher's must not
    assert out.unsupervised_loss > 0
    out.loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert torch.count_nonzero(x["u_weak"].grad[:, 0]) == 0  # the teacher's view only makes (detached) targets
    assert torch.count_nonzero(x["u_weak"].grad[:, 1]) > 0  # the student's view is trained
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.teacher.modules())
    assert not any(m.training for m in model.teacher.modules())
    assert _same(buffers, dict(model.teacher.named_buffers()))
    assert not _same(student_buffers, {k: v for k, v in model.backbone.named_buffers()})  # so the check above could fail
    model.eval().train()
    assert model.training and model.backbone.training and not model.teacher.training


def test_teacher_probs_average_the_softmax_over_the_views():
    model = _model(NoisyStudentModel, NoisyStudentConfig, teacher_views=3)
    with torch.no_grad():
        model.teacher["classifier"].weight.mul_(5.0)  # sharper predictions: averaging probabilities != averaging logits
    views = torch.randn(4, 3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    got = model.teacher_probs(views)
    with torch.no_grad():
        per_view = [model.teacher["classifier"](model.teacher["backbone"](pixel_values=views[:, v]).pooler_output.flatten(1))
                    .softmax(-1) for v in range(3)]
    torch.testing.assert_close(got, sum(per_view) / 3)
    assert not got.requires_grad


def _naive(student, probs, keep, weight, soft):
    """(1/N) Σ_b keep_b · w_b · CE(t_b, student_b), written row by row."""
    total = 0.0
    for b in range(student.shape[0]):
        logp = student[b].log_softmax(-1)
        target = probs[b] if soft else torch.nn.functional.one_hot(probs[b].argmax(), probs.shape[1]).float()
        total += keep[b] * weight[b] * -(target * logp).sum()
    return total / student.shape[0]


@pytest.mark.parametrize("soft", [False, True])
def test_pseudo_label_loss_follows_the_three_variants_formulas(soft):
    g = torch.Generator().manual_seed(3)
    probs = (torch.randn(10, C, generator=g) * 2).softmax(-1)
    student = torch.randn(10, C, generator=g, requires_grad=True)
    conf = probs.max(-1).values
    ones = torch.ones(10)
    # top, fraction 0.3: the ceil(0.3 * 10) = 3 most confident rows
    top3 = torch.zeros(10)
    top3[conf.argsort(descending=True)[:3]] = 1
    got = pseudo_label_loss(student, probs, "top", fraction=0.3, soft=soft)
    torch.testing.assert_close(got.loss, _naive(student, probs, top3, ones, soft))
    assert got.mask_rate.item() == pytest.approx(0.3) and got.cut == conf[top3.bool()].min()
    # top, threshold: every row with confidence >= τ
    tau = float(conf.median())
    above = (conf >= tau).float()
    got = pseudo_label_loss(student, probs, "top", threshold=tau, soft=soft)
    torch.testing.assert_close(got.loss, _naive(student, probs, above, ones, soft))
    assert got.mask_rate == above.mean() and got.cut is None
    # all: every row, weight 1; weighted: every row, weight = confidence
    torch.testing.assert_close(pseudo_label_loss(student, probs, "all", soft=soft).loss,
                               _naive(student, probs, ones, ones, soft))
    weighted = pseudo_label_loss(student, probs, "weighted", soft=soft)
    torch.testing.assert_close(weighted.loss, _naive(student, probs, ones, conf, soft))
    assert weighted.mask_rate == 1.0
    # the targets and weights are constants: only the student's logits get a gradient
    probs.requires_grad_()
    pseudo_label_loss(student, probs, "weighted", soft=soft).loss.backward()
    assert probs.grad is None and student.grad is not None
    with pytest.raises(ValueError, match=r"both be \[N, C\]"):
        pseudo_label_loss(student[:4], probs, "all")


def test_save_pretrained_keeps_the_teacher_and_its_round(tmp_path):
    model = _model(rounds=3)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    model.on_step_end(1, 6)  # steps_done 2 = the end of round 0 of 3 over 6 steps
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # the student moves on; the teacher keeps the snapshot
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is PseudoLabelModel and int(loaded.teacher_round) == 1 and not loaded.teacher.training
    assert _same(_teacher_state(loaded), _teacher_state(model))
    assert not torch.equal(loaded.teacher["classifier"].weight, loaded.classifier.weight)


# ---- through the loop -----------------------------------------------------------------------------------------------



@pytest.fixture
def toy():
    register_dataset("rounds_toy", f"{__name__}:toy_dataset", modality="image", description="test only")
    yield "rounds_toy"
    DATASETS.pop("rounds_toy", None)


def _recipe(method, **model):
    model = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": 4, "labels_per_class": 2, "mu": 2,
             "rounds": 3, "augment": {"hflip_prob": 0.0}, **model}
    return {"method": method, "dataset": "rounds_toy", "model": model,
            "train": {"max_steps": 6, "batch_size": 8, "learning_rate": 1e-2, "log_every": 1, "save_every": 3,
                      "progress": False}}


@pytest.mark.parametrize("method, knobs", [("pseudo_label", {"mode": "weighted"}),
                                           ("noisy_student", {"teacher_views": 2, "dropout": 0.2})])
def test_a_run_resumed_mid_round_has_the_same_teacher_as_an_uninterrupted_one(toy, tmp_path, method, knobs):
    recipe = _recipe(method, **knobs)  # 6 steps, 3 rounds: refreshes after steps 2 and 4; checkpoint at 3 (mid round 1)
    full = train(recipe_from_dict(recipe), tmp_path / "full")
    recipe["train"]["stop_after_steps"] = 3
    train(recipe_from_dict(recipe), tmp_path / "cut")
    saved = load_file(str(tmp_path / "cut" / "checkpoints" / "step_3" / "model.safetensors"))
    assert int(saved["teacher_round"]) == 1
    assert not torch.equal(saved["teacher.classifier.weight"], saved["classifier.weight"])  # a snapshot, not the student
    recipe["train"]["stop_after_steps"] = None
    resumed = train(recipe_from_dict(recipe), tmp_path / "cut", resume=True)
    assert resumed.losses == full.losses[3:]
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["unsupervised_loss"] == 0 for r in rows] == [True, True, False, False, False, False]  # round 0 = labels only
    a = load_file(str(full.final_dir / "model.safetensors"))
    b = load_file(str(resumed.final_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the teacher (and all else) identical
    assert int(a["teacher_round"]) == 2 and any(k.startswith("teacher.") for k in a)
