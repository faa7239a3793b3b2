"""FixMatch: the loss against its formula from the model's own logits, no gradient through pseudo-labels, one concatenated
forward, FreeMatch thresholds (formula, saved, resumed), the data hook (no labels in the unlabeled stream), and training
through the loop (the supervised loss falls; an interrupted + resumed run equals an uninterrupted one)."""
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.fixmatch import FixMatchConfig, FixMatchModel
from multissl.registry import DATASETS, METHODS, register_dataset, register_method
from multissl.training import recipe_from_dict, train
from tests.models.semi._toy import toy_dataset

C, B, MU = 5, 4, 2


@pytest.fixture
def registered():
    """Register `fixmatch` and a tiny toy dataset for the loop; undo only what this fixture added."""
    added = "fixmatch" not in METHODS
    if added:
        register_method("fixmatch", "multissl.models.semi.fixmatch:FixMatchModel", modality="image",
                        description="FixMatch: confident weak-view pseudo-labels train strong views", default_dataset="glyphs")
    register_dataset("fixmatch_toy", f"{__name__}:toy_dataset", modality="image", description="test only")
    yield
    DATASETS.pop("fixmatch_toy", None)
    if added:
        METHODS.pop("fixmatch")




def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU, **kw}
    return FixMatchModel(FixMatchConfig(**kw))


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 1, 3, 16, 16, generator=g), "u_strong": torch.randn(MU * B, 1, 3, 16, 16, generator=g)}


def _logits(model, x):
    return model.classifier(model.embed(x))  # [N, C]


def test_loss_is_labeled_ce_plus_lambda_u_times_the_masked_pseudo_label_ce_of_the_models_own_logits():
    model = _model(lambda_u=0.7).eval()  # eval: BatchNorm uses running statistics, so each stream's logits stand alone
    x = _inputs()
    with torch.no_grad():
        lab, weak, strong = _logits(model, x["x_l"]), _logits(model, x["u_weak"][:, 0]), _logits(model, x["u_strong"][:, 0])
    probs = weak.softmax(-1)
    confidence, pseudo = probs.max(-1)
    model.config.threshold = float(confidence.median())  # about half the rows pass: the mask matters
    out = model(**x)
    # the formula, written out: (1/B) sum -log p(y_b) + λ_u (1/μB) sum 1[max q >= τ] (-log p_strong(argmax q))
    ce_l = -lab.log_softmax(-1)[torch.arange(B), x["labels"]].mean()
    keep = (confidence >= model.config.threshold).float()
    ce_u = (keep * -strong.log_softmax(-1)[torch.arange(MU * B), pseudo]).sum() / (MU * B)
    assert 0 < keep.mean() < 1
    torch.testing.assert_close(out.supervised_loss, ce_l)
    torch.testing.assert_close(out.unsupervised_loss, ce_u)
    torch.testing.assert_close(out.loss, ce_l + 0.7 * ce_u)
    torch.testing.assert_close(out.mask_rate, keep.mean())
    torch.testing.assert_close(out.accuracy, (lab.argmax(-1) == x["labels"]).float().mean())
    assert all(getattr(out, k).dim() == 0 for k in ("loss", "supervised_loss", "unsupervised_loss", "mask_rate", "accuracy"))


def test_training_forward_is_one_concatenated_batch_for_batchnorm():
    model = _model(threshold=0.0).train()
    x = _inputs()
    with torch.no_grad():
        joint = _logits(model, torch.cat([x["x_l"], x["u_weak"][:, 0], x["u_strong"][:, 0]]))  # batch statistics of all 2μB + B rows
        alone = _logits(model, x["x_l"])  # statistics of the labeled rows only
    out = model(**x)
    torch.testing.assert_close(out.logits, joint[:B])
    assert not torch.allclose(out.logits, alone, atol=1e-4)  # so the check above could fail
    weak, strong = joint[B:].chunk(2)
    expected = torch.nn.functional.cross_entropy(strong, weak.argmax(-1))  # τ = 0 keeps every row
    torch.testing.assert_close(out.unsupervised_loss, expected)


def test_no_gradient_flows_through_the_pseudo_labels():
    model = _model(threshold=0.0).eval()  # τ = 0: every row is kept, so the strong side surely has a gradient
    x = {k: v.requires_grad_(v.is_floating_point()) for k, v in _inputs().items()}
    model(**x).loss.backward()
    assert torch.count_nonzero(x["u_weak"].grad) == 0  # the weak view only makes (detached) targets
    assert torch.count_nonzero(x["u_strong"].grad) > 0 and torch.count_nonzero(x["x_l"].grad) > 0


def test_freematch_state_follows_the_formula_in_training_and_is_frozen_in_eval():
    model = _model(threshold="freematch", freematch_momentum=0.25).train()
    assert torch.equal(model.freematch_threshold, torch.tensor(1 / C))
    assert torch.equal(model.freematch_class_marginal, torch.full((C,), 1 / C))
    x = _inputs()
    with torch.no_grad():
        weak = _logits(model, torch.cat([x["x_l"], x["u_weak"][:, 0], x["u_strong"][:, 0]]))[B:B + MU * B]
    q = weak.softmax(-1)
    tau = 0.25 / C + 0.75 * q.max(-1).values.mean()  # τ_t = λ τ_{t-1} + (1 - λ) mean_b max_c q_b(c)
    marginal = 0.25 / C + 0.75 * q.mean(0)  # p~_t = λ p~_{t-1} + (1 - λ) mean_b q_b
    per_class = marginal / marginal.max() * tau  # τ_t(c) = MaxNorm(p~_t)(c) τ_t
    keep = (q.max(-1).values >= per_class[q.argmax(-1)]).float()  # masked with the state updated by this very batch
    assert 0 < keep.mean() < 1
    out = model(**x)
    torch.testing.assert_close(model.freematch_threshold, tau)
    torch.testing.assert_close(model.freematch_class_marginal, marginal)
    torch.testing.assert_close(out.threshold, tau)
    torch.testing.assert_close(out.mask_rate, keep.mean())
    before = model.freematch_class_marginal.clone()
    model.eval()(**x)
    assert torch.equal(model.freematch_class_marginal, before)


def test_freematch_state_is_saved_and_reloaded(tmp_path):
    model = _model(threshold="freematch", freematch_momentum=0.5).train()
    model(**_inputs())
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is FixMatchModel and loaded.config.threshold == "freematch"
    assert torch.equal(loaded.freematch_threshold, model.freematch_threshold)
    assert torch.equal(loaded.freematch_class_marginal, model.freematch_class_marginal)
    assert not torch.equal(loaded.freematch_class_marginal, torch.full((C,), 1 / C))


def test_lambda_u_zero_is_the_labeled_cross_entropy_and_prediction_needs_no_labels():
    model = _model(lambda_u=0.0, threshold=0.0).eval()
    out = model(**_inputs())
    assert out.unsupervised_loss > 0 and torch.equal(out.loss, out.supervised_loss)
    labeled_only = model(_inputs()["x_l"], _inputs()["labels"])
    assert labeled_only.mask_rate is None and torch.equal(labeled_only.loss, out.supervised_loss)
    predicted = model(_inputs()["x_l"])
    assert predicted.loss is None and torch.equal(predicted.logits, out.logits)


class _Data:
    """What make_batch_source reads: .load() -> the dataset."""

    def load(self):
        return toy_dataset()


def test_the_data_hook_gives_B_labeled_and_mu_B_unlabeled_rows_and_no_label_reaches_the_unlabeled_views():
    config = _model(num_classes=4, labels_per_class=2).config
    source = FixMatchModel.make_batch_source(config, _Data(), batch_size=B, seed=0)
    item = source[0]
    assert set(item) == {"x_l", "labels", "u_weak", "u_strong"}
    assert item["x_l"].shape == (B, 3, 16, 16) and item["labels"].shape == (B,)
    assert item["u_weak"].shape == item["u_strong"].shape == (MU * B, 1, 3, 16, 16)
    assert "label" not in source.unlabeled.dataset.column_names  # the unlabeled rows carry no label column at all
    lab_rows = source.labeled.dataset
    assert sorted(lab_rows["label"]) == [0, 0, 1, 1, 2, 2, 3, 3]  # 2 per class
    assert all(torch.equal(item[k], FixMatchModel.make_batch_source(config, _Data(), batch_size=B, seed=0)[0][k])
               for k in item)
    # the unlabeled views read the image only: a label in the rows changes nothing
    collate = FixMatchModel.make_collator(config)
    rows = [dict(r) for r in toy_dataset().select(range(4))]
    torch.manual_seed(3)
    with_labels = collate.unlabeled(rows)
    torch.manual_seed(3)
    without = collate.unlabeled([{"image": r["image"]} for r in rows])
    assert with_labels.keys() == {"u_weak", "u_strong"} and all(torch.equal(with_labels[k], without[k]) for k in without)
    baseline = FixMatchModel.make_batch_source(_model(num_classes=4, labels_per_class=2, lambda_u=0.0).config, _Data(),
                                               batch_size=B, seed=0)[0]
    assert set(baseline) == {"x_l", "labels"} and torch.equal(baseline["labels"], item["labels"])


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": None}, "num_classes is required"),
    ({"labels_per_class": None}, "exactly one of model.labels_per_class"),
    ({"label_fraction": 0.1}, "exactly one of labels_per_class or label_fraction"),
    ({"threshold": "freemach"}, "threshold must be a confidence in"),
    ({"augment": {"hflip": 0.0}}, "augment: unknown key"),
    ({"mu": 0}, r"mu \(unlabeled rows per labeled row\) must be a whole number >= 1"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_a_label_outside_the_classes_is_one_clear_error():
    x = _inputs()
    x["labels"][0] = C
    with pytest.raises(ValueError, match=f"label {C} is outside"):
        _model()(**x)


def _recipe(**model):
    model = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": 4, "labels_per_class": 2, "mu": 2,
             "augment": {"hflip_prob": 0.0}, **model}
    return {"method": "fixmatch", "dataset": "fixmatch_toy", "model": model,
            "train": {"max_steps": 3, "batch_size": 8, "learning_rate": 1e-2, "log_every": 1, "progress": False}}


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_three_steps_through_the_loop_lower_the_supervised_loss(registered, tmp_path):
    train(recipe_from_dict(_recipe(threshold=0.3)), tmp_path / "run")  # τ above chance (1/4): some rows pass, some not
    rows = _rows(tmp_path / "run")
    assert len(rows) == 3
    assert {"supervised_loss", "unsupervised_loss", "mask_rate", "accuracy"} <= set(rows[0])
    assert any(0 < r["mask_rate"] < 1 for r in rows)  # the pseudo-label term took part
    assert rows[-1]["supervised_loss"] < rows[0]["supervised_loss"]  # every step sees all 8 labeled rows (B = 8)


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one_freematch_state_included(registered, tmp_path):
    recipe = _recipe(threshold="freematch", freematch_momentum=0.5)
    recipe["train"].update(max_steps=4, save_every=2)
    full = train(recipe_from_dict(recipe), tmp_path / "full")
    recipe["train"]["stop_after_steps"] = 2
    train(recipe_from_dict(recipe), tmp_path / "cut")
    saved = load_file(str(tmp_path / "cut" / "checkpoints" / "step_2" / "model.safetensors"))
    assert float(saved["freematch_threshold"]) != pytest.approx(1 / 4)  # the state moved and is in the checkpoint
    recipe["train"]["stop_after_steps"] = None
    resumed = train(recipe_from_dict(recipe), tmp_path / "cut", resume=True)
    assert resumed.losses == full.losses[2:]
    assert [r["threshold"] for r in _rows(tmp_path / "cut")] == [r["threshold"] for r in _rows(tmp_path / "full")]
    a = load_file(str(full.final_dir / "model.safetensors"))
    b = load_file(str(resumed.final_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
