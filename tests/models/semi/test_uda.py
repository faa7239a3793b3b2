"""UDA: the loss against its formula from the model's own logits (KL of sharpened weak to strong, strict β mask), TSA's
η_t for every schedule from the progress buffers (saved with the model, and followed through the loop), no gradient
through the weak-view target, one concatenated forward, clear config errors."""
import json
import math

import pytest
import torch
from transformers import AutoModel

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.uda import UDAConfig, UDAModel
from multissl.registry import DATASETS, METHODS, register_dataset, register_method
from multissl.training import recipe_from_dict, train
from tests.models.semi._toy import toy_dataset  # noqa: F401 (registered by name: f"{__name__}:toy_dataset")

C, B, MU = 5, 4, 2


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return UDAModel(UDAConfig(**kw))


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 1, 3, 16, 16, generator=g),
            "u_strong": torch.randn(MU * B, 1, 3, 16, 16, generator=g)}


def _logits(model, x):
    return model.classifier(model.embed(x))  # [N, C]


def _kl_naive(weak, strong, t):
    """KL(softmax(weak / T) || softmax(strong)) per row, written out with exp/log sums."""
    q = torch.exp(weak / t) / torch.exp(weak / t).sum(-1, keepdim=True)
    p = torch.exp(strong) / torch.exp(strong).sum(-1, keepdim=True)
    return (q * (torch.log(q) - torch.log(p))).sum(-1)


def test_loss_is_labeled_ce_plus_lambda_u_times_the_masked_kl_of_sharpened_weak_to_strong():
    model = _model(lambda_u=0.7, target_temperature=0.4).eval()  # eval: each stream's logits stand alone
    x = _inputs()
    with torch.no_grad():
        lab, weak, strong = (_logits(model, v) for v in (x["x_l"], x["u_weak"][:, 0], x["u_strong"][:, 0]))
    confidence = weak.softmax(-1).max(-1).values
    model.config.threshold = float(confidence.median())  # strict '>': the median row itself is dropped
    out = model(**x)
    keep = (confidence > model.config.threshold).float()
    assert 0 < keep.mean() < 1
    ce_l = -lab.log_softmax(-1)[torch.arange(B), x["labels"]].mean()
    kl = (keep * _kl_naive(weak, strong, 0.4)).sum() / (MU * B)  # divided by all μB rows, as the paper
    torch.testing.assert_close(out.supervised_loss, ce_l)
    torch.testing.assert_close(out.unsupervised_loss, kl)
    torch.testing.assert_close(out.loss, ce_l + 0.7 * kl)
    torch.testing.assert_close(out.mask_rate, keep.mean())
    assert out.threshold is None  # no TSA
    torch.testing.assert_close(out.accuracy, (lab.argmax(-1) == x["labels"]).float().mean())


@pytest.mark.parametrize("schedule", ["linear", "log", "exp"])
@pytest.mark.parametrize("done, total", [(0, 10), (3, 10), (9, 10)])
def test_tsa_drops_labeled_rows_above_eta_t_of_the_progress(schedule, done, total):
    model = _model(tsa_schedule=schedule, threshold=1.0).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)  # spread the probabilities so rows fall on both sides of η
    model.steps_done.fill_(done)
    model.total_steps.fill_(total)
    x = _inputs()
    with torch.no_grad():
        lab = _logits(model, x["x_l"])
    # half the rows labeled with their most likely class (p_y >= 1/C), half with their least likely (p_y <= 1/C)
    x["labels"] = torch.where(torch.arange(B) % 2 == 0, lab.argmax(-1), lab.argmin(-1))
    t = done / total
    alpha = {"linear": t, "log": 1 - math.exp(-5 * t), "exp": math.exp(5 * (t - 1))}[schedule]
    eta = alpha * (1 - 1 / C) + 1 / C
    p_y = lab.softmax(-1)[torch.arange(B), x["labels"]]
    keep = (p_y <= eta).float()
    ce = -lab.log_softmax(-1)[torch.arange(B), x["labels"]]
    out = model(**x)
    torch.testing.assert_close(out.threshold, torch.tensor(eta))
    torch.testing.assert_close(out.supervised_loss, (ce * keep).sum() / keep.sum().clamp_min(1))
    if done == 0:  # η_0 = 1/C: exactly the least-likely-labeled rows stay
        assert keep.tolist() == [0.0, 1.0] * (B // 2)


def test_progress_comes_from_on_step_end_and_is_saved_with_the_model(tmp_path):
    model = _model(tsa_schedule="linear")
    model.on_step_end(4, 10)  # 5 steps of 10 done
    assert model.tsa_eta() == pytest.approx(0.5 * (1 - 1 / C) + 1 / C)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is UDAModel and loaded.config.tsa_schedule == "linear"
    assert loaded.config.target_temperature == 0.4 and loaded.config.threshold == 0.8  # the paper's defaults
    assert loaded.tsa_eta() == model.tsa_eta()


def test_no_gradient_flows_through_the_weak_view_target():
    model = _model(threshold=0.0).eval()  # β = 0 keeps every row, so the strong side surely has a gradient
    x = {k: v.requires_grad_(v.is_floating_point()) for k, v in _inputs().items()}
    model(**x).loss.backward()
    assert torch.count_nonzero(x["u_weak"].grad) == 0
    assert torch.count_nonzero(x["u_strong"].grad) > 0 and torch.count_nonzero(x["x_l"].grad) > 0


def test_training_forward_is_one_concatenated_batch_for_batchnorm():
    model = _model(threshold=0.0).train()
    x = _inputs()
    with torch.no_grad():
        joint = _logits(model, torch.cat([x["x_l"], x["u_weak"][:, 0], x["u_strong"][:, 0]]))
        alone = _logits(model, x["x_l"])
    out = model(**x)
    torch.testing.assert_close(out.logits, joint[:B])
    assert not torch.allclose(out.logits, alone, atol=1e-4)
    weak, strong = joint[B:].chunk(2)
    torch.testing.assert_close(out.unsupervised_loss, _kl_naive(weak, strong, 0.4).mean())


@pytest.mark.parametrize("kwargs, match", [
    ({"target_temperature": 0.0}, "target_temperature must be a sharpening temperature in"),
    ({"target_temperature": 2.0}, "target_temperature must be a sharpening temperature in"),
    ({"threshold": 1.5}, r"threshold \(UDA's confidence β\) must be a number in"),
    ({"tsa_schedule": "cosine"}, "tsa_schedule must be null"),
    ({"lambda_u": -1.0}, "lambda_u"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


@pytest.fixture
def registered():
    """Register `uda` (if the registry lacks it) and a tiny toy dataset for the loop; undo only what was added."""
    added = "uda" not in METHODS
    if added:
        register_method("uda", "multissl.models.semi.uda:UDAModel", modality="image", description="UDA",
                        default_dataset="digits")
    register_dataset("uda_toy", f"{__name__}:toy_dataset", modality="image", description="test only")
    yield
    DATASETS.pop("uda_toy", None)
    if added:
        METHODS.pop("uda")




def test_through_the_loop_tsa_eta_follows_the_step(registered, tmp_path):
    model = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": 4, "labels_per_class": 2, "mu": 2,
             "tsa_schedule": "linear", "threshold": 0.3, "augment": {"hflip_prob": 0.0}}
    recipe = {"method": "uda", "dataset": "uda_toy", "model": model,
              "train": {"max_steps": 3, "batch_size": 8, "learning_rate": 1e-2, "log_every": 1, "progress": False}}
    train(recipe_from_dict(recipe), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"supervised_loss", "unsupervised_loss", "mask_rate"} <= set(rows[0])
    # step s runs with s steps done of 3: η = (s / 3)(1 - 1/4) + 1/4
    assert [r["threshold"] for r in rows] == pytest.approx([s / 3 * 0.75 + 0.25 for s in range(3)])
