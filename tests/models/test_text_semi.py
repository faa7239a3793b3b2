"""Text FixMatch / UDA: the losses on a hand-computed case and against the formula from the model's own logits, no
gradient through the targets, λ_u = 0 as the labeled CE on the same batches, the data hook, config errors, the head's
learning-rate scale, FreeMatch state, and training through the loop with a save/load round trip."""
import json
import math

import datasets
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel

from multissl.models.text_semi import TextSemiConfig, TextSemiModel, make_text_semi_collator
from multissl.registry import DATASETS, register_dataset
from multissl.training import recipe_from_dict, train

BERT = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64}
NO_DROPOUT = {**BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TOPICS = ("alpha", "network", "string", "thread")


def toy_dataset(split: str = "train"):
    """4 classes x 12 sentences, each naming its class's word: learnable in a few steps."""
    texts = [f"the {TOPICS[i % 4]} module handles {TOPICS[i % 4]} things number {i}" for i in range(48)]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(TOPICS))})
    return datasets.Dataset.from_dict({"text": texts, "label": [i % 4 for i in range(48)]}, features=features)


@pytest.fixture
def toy():
    register_dataset("text_semi_toy", f"{__name__}:toy_dataset", modality="text", description="test only")
    yield
    DATASETS.pop("text_semi_toy", None)


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": BERT, "max_seq_length": 16, "num_classes": 4, "labels_per_class": 2, "mu": 2, **kw}
    return TextSemiModel(TextSemiConfig(**kw))


def _batch(config, seed=0):
    rows = [dict(r) for r in toy_dataset().select([0, 5, 10, 15])]
    return make_text_semi_collator(config)(rows, generator=torch.Generator().manual_seed(seed))


def _ids(*keys):
    """Rows [CLS] key [SEP] (key picks the row's logits in the patched classify below)."""
    ids = torch.tensor([[101, k, 102] for k in keys])
    return ids, torch.ones_like(ids)


def _patched(model, table):
    """classify(ids) = table[ids[:, 1]]: logits chosen by hand, a gradient only through the rows of `table` used."""
    model.classify = lambda input_ids, attention_mask: table[input_ids[:, 1]]
    return model


TABLE = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.5], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0]]  # keys 0..6, C = 2


def _hand_inputs(labeled=(1,), labels=(0,)):
    (ids, mask), (w, wm), (s, sm) = _ids(*labeled), _ids(2, 3), _ids(4, 5)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels), "weak_input_ids": w,
            "weak_attention_mask": wm, "strong_input_ids": s, "strong_attention_mask": sm}


def test_fixmatch_loss_on_a_hand_computed_case():
    model = _patched(_model(num_classes=2, threshold=0.85, lambda_u=0.5), torch.tensor(TABLE))
    out = model(**_hand_inputs())
    # labeled [1, 0], y = 0: CE = log(1 + e^-1). weak [2, 0]: max q = 1/(1+e^-2) = 0.881 >= 0.85, pseudo-label 0;
    # weak [0, 0.5]: max q = 0.622 < 0.85, dropped. strong of row 0 is [0, 1]: CE(0) = log(1 + e). Divide by μB = 2.
    sup, unsup = math.log(1 + math.exp(-1)), math.log(1 + math.e) / 2
    assert out.supervised_loss.item() == pytest.approx(sup, rel=1e-6)
    assert out.unsupervised_loss.item() == pytest.approx(unsup, rel=1e-6)
    assert out.loss.item() == pytest.approx(sup + 0.5 * unsup, rel=1e-6) and out.mask_rate.item() == 0.5


def test_uda_loss_with_tsa_on_a_hand_computed_case():
    model = _patched(_model(algorithm="uda", num_classes=2, threshold=0.7, target_temperature=0.5, tsa_schedule="linear"),
                     torch.tensor(TABLE))
    model.on_step_end(4, 10)  # 5 of 10 steps done: η = 0.5 (1 - 1/2) + 1/2 = 0.75
    out = model(**_hand_inputs(labeled=(1, 6), labels=(0, 0)))
    # labeled p(y) = 0.731 <= 0.75 is kept, 0.953 is dropped: CE of row 0 over 1 kept row
    assert out.tsa_threshold.item() == pytest.approx(0.75) and out.tsa_kept_rate.item() == 0.5
    assert out.supervised_loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # weak [2, 0] (max p 0.881 > 0.7) is kept with target softmax([2, 0] / 0.5) = (e^4, 1) / (e^4 + 1); [0, 0.5] is not
    t = [math.exp(4) / (math.exp(4) + 1), 1 / (math.exp(4) + 1)]
    s = [1 / (1 + math.e), math.e / (1 + math.e)]  # softmax of strong [0, 1]
    kl = sum(ti * math.log(ti / si) for ti, si in zip(t, s))
    assert out.unsupervised_loss.item() == pytest.approx(kl / 2, rel=1e-5) and out.mask_rate.item() == 0.5


@pytest.mark.parametrize("algorithm", ["fixmatch", "uda"])
def test_no_gradient_reaches_the_weak_view_that_makes_the_targets(algorithm):
    table = torch.tensor(TABLE, requires_grad=True)
    model = _patched(_model(algorithm=algorithm, num_classes=2, threshold=0.0), table)
    model(**_hand_inputs()).loss.backward()
    assert torch.count_nonzero(table.grad[[2, 3]]) == 0  # weak rows: targets only
    assert torch.count_nonzero(table.grad[[4, 5]]) > 0 and torch.count_nonzero(table.grad[1]) > 0  # strong, labeled


@pytest.mark.parametrize("algorithm", ["fixmatch", "uda"])
def test_loss_is_the_formula_on_the_models_own_logits(algorithm):
    model = _model(algorithm=algorithm, lambda_u=0.7).eval()  # eval: no dropout, so each view's logits stand alone
    x = _batch(model.config)
    with torch.no_grad():
        lab = model.classify(x["input_ids"], x["attention_mask"])
        weak = model.classify(x["weak_input_ids"], x["weak_attention_mask"])
        strong = model.classify(x["strong_input_ids"], x["strong_attention_mask"])
    q = weak.softmax(-1)
    conf, pseudo = q.max(-1)
    model.config.threshold = float(conf.median())  # about half the rows pass: the mask matters
    out = model(**x)
    n = weak.shape[0]
    ce_l = -lab.log_softmax(-1)[torch.arange(4), x["labels"]].mean()
    if algorithm == "fixmatch":
        keep = (conf >= model.config.threshold).float()
        per_row = -strong.log_softmax(-1)[torch.arange(n), pseudo]
    else:
        keep = (conf > model.config.threshold).float()
        target = (weak / 0.4).softmax(-1)
        per_row = (target * (target.log() - strong.log_softmax(-1))).sum(-1)
    assert 0 < keep.mean() < 1
    unsup = (keep * per_row).sum() / n
    torch.testing.assert_close(out.supervised_loss, ce_l)
    torch.testing.assert_close(out.unsupervised_loss, unsup)
    torch.testing.assert_close(out.loss, ce_l + 0.7 * unsup)
    torch.testing.assert_close(out.accuracy, (lab.argmax(-1) == x["labels"]).float().mean())


def test_lambda_u_zero_is_the_labeled_cross_entropy_on_the_same_batches():
    model = _model(lambda_u=0.0, threshold=0.0).eval()
    x = _batch(model.config)
    out = model(**x)
    with torch.no_grad():
        ce = F.cross_entropy(model.classify(x["input_ids"], x["attention_mask"]), x["labels"])
    assert out.unsupervised_loss > 0 and torch.equal(out.loss, out.supervised_loss)
    torch.testing.assert_close(out.loss, ce)
    labeled_only = model(x["input_ids"], x["attention_mask"], x["labels"])
    assert labeled_only.mask_rate is None and torch.equal(labeled_only.loss, ce)
    assert model(x["input_ids"], x["attention_mask"]).loss is None  # prediction needs no labels
    # the data hook: λ_u = 0 draws no unlabeled stream, and its labeled batches are those of a λ_u > 0 run
    semi = TextSemiModel.make_batch_source(_model().config, _Data(), batch_size=4, seed=0)
    base = TextSemiModel.make_batch_source(model.config, _Data(), batch_size=4, seed=0)
    for i in range(3):
        a, b = semi[i], base[i]
        assert set(b) == {"input_ids", "attention_mask", "labels"}
        assert all(torch.equal(a[k], b[k]) for k in b)


class _Data:
    """What make_batch_source reads: .load() -> the dataset."""

    def load(self):
        return toy_dataset()


def test_the_data_hook_gives_B_labeled_and_mu_B_unlabeled_sentences_without_labels():
    source = TextSemiModel.make_batch_source(_model().config, _Data(), batch_size=4, seed=0)
    item = source[0]
    assert set(item) == {"input_ids", "attention_mask", "labels", "weak_input_ids", "weak_attention_mask",
                         "strong_input_ids", "strong_attention_mask"}
    assert item["input_ids"].shape[0] == 4 and item["weak_input_ids"].shape[0] == item["strong_input_ids"].shape[0] == 8
    assert "label" not in source.unlabeled.dataset.column_names
    assert sorted(source.labeled.dataset["label"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    again = TextSemiModel.make_batch_source(_model().config, _Data(), batch_size=4, seed=0)[0]
    assert all(torch.equal(item[k], again[k]) for k in item)  # the strong views are a function of (seed, index)
    assert not torch.equal(item["strong_input_ids"], source[1]["strong_input_ids"])


def test_label_fraction_one_with_lambda_u_zero_is_the_all_labels_bound():
    config = _model(labels_per_class=None, label_fraction=1.0, lambda_u=0.0).config
    source = TextSemiModel.make_batch_source(config, _Data(), batch_size=4, seed=0)
    assert len(source.labeled.dataset) == 48 and source.unlabeled is None  # every training row, no unlabeled stream
    assert set(source[0]) == {"input_ids", "attention_mask", "labels"}
    seen = torch.cat([source[i]["labels"] for i in range(12)])  # one epoch of 48 rows: every label once
    assert sorted(seen.tolist()) == sorted(toy_dataset()["label"])
    with pytest.raises(ValueError, match="nothing is left for the unlabeled stream"):  # λ_u > 0 needs unlabeled rows
        TextSemiModel.make_batch_source(_model(labels_per_class=None, label_fraction=1.0).config, _Data(),
                                        batch_size=4, seed=0)
    with pytest.raises(ValueError, match=r"label_fraction must be in \(0, 1\]"):
        _model(labels_per_class=None, label_fraction=1.5)


def test_the_head_learning_rate_scale():
    plain, scaled = _model().eval(), _model(classifier_lr_scale=10.0).eval()  # same seed: the same head at init
    x = _batch(plain.config)
    with torch.no_grad():
        torch.testing.assert_close(scaled.classify(x["input_ids"], x["attention_mask"]),
                                   plain.classify(x["input_ids"], x["attention_mask"]))
    before = scaled.classifier.weight.detach() * 10
    opt = torch.optim.Adam(scaled.classifier.parameters(), lr=1e-3)
    scaled(x["input_ids"], x["attention_mask"], x["labels"]).loss.backward()
    opt.step()  # Adam's first step moves each parameter by lr (times the sign of its gradient)
    step = (scaled.classifier.weight.detach() * 10 - before).abs()
    assert step.max().item() == pytest.approx(10 * 1e-3, rel=1e-3)


def test_freematch_state_follows_the_formula_in_training():
    model = _model(backbone_config=NO_DROPOUT, threshold="freematch", freematch_momentum=0.5).train()
    x = _batch(model.config)
    with torch.no_grad():
        q = model.classify(x["weak_input_ids"], x["weak_attention_mask"]).softmax(-1)
    out = model(**x)
    tau = 0.5 / 4 + 0.5 * q.max(-1).values.mean()  # τ_t = λ τ_{t-1} + (1 - λ) mean_b max_c q_b(c)
    torch.testing.assert_close(model.freematch_threshold, tau)
    torch.testing.assert_close(model.freematch_class_marginal, 0.5 / 4 + 0.5 * q.mean(0))
    torch.testing.assert_close(out.freematch_threshold, tau)


@pytest.mark.parametrize("kwargs, match", [
    ({"algorithm": "mixmatch"}, "algorithm must be one of"),
    ({"num_classes": None}, "num_classes is required"),
    ({"labels_per_class": None}, "exactly one of model.labels_per_class"),
    ({"label_fraction": 0.1}, "exactly one of labels_per_class or label_fraction"),
    ({"algorithm": "uda", "threshold": "freematch"}, "applies to algorithm fixmatch"),
    ({"threshold": 1.5}, "threshold must be a confidence in"),
    ({"tsa_schedule": "cosine"}, "tsa_schedule must be null or one of"),
    ({"noise": {"drop": 0.1}}, r"noise: unknown key"),
    ({"mu": 0}, "mu must be a whole number >= 1"),
    ({"pooler": "max"}, "pooler must be one of"),
    ({"lambda_u": -1.0}, "lambda_u must be a finite number >= 0"),
    ({"classifier_lr_scale": 0}, "classifier_lr_scale must be"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_bad_forward_input_is_one_clear_error():
    model = _model()
    x = _batch(model.config)
    with pytest.raises(ValueError, match="give all four"):
        model(x["input_ids"], x["attention_mask"], x["labels"], weak_input_ids=x["weak_input_ids"])
    x["labels"][0] = 4
    with pytest.raises(ValueError, match="label 4 is outside"):
        model(**x)


def _recipe(**model):
    model = {"backbone_config": BERT, "max_seq_length": 16, "num_classes": 4, "labels_per_class": 2, "mu": 2,
             "threshold": 0.3, **model}
    return {"method": "text_semi", "dataset": "text_semi_toy", "model": model,
            "train": {"max_steps": 4, "batch_size": 8, "learning_rate": 3e-3, "log_every": 1, "progress": False}}


@pytest.mark.parametrize("algorithm", ["fixmatch", "uda"])
def test_steps_through_the_loop_lower_the_loss_then_save_and_load(toy, tmp_path, algorithm):
    train(recipe_from_dict(_recipe(algorithm=algorithm, tsa_schedule="log" if algorithm == "uda" else None)), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"supervised_loss", "unsupervised_loss", "mask_rate", "accuracy"} <= set(rows[0])
    assert rows[-1]["supervised_loss"] < rows[0]["supervised_loss"]  # every step sees all 8 labeled rows (B = 8)
    final = tmp_path / "run" / "final"
    assert (final / "tokenizer.json").is_file() or (final / "vocab.txt").is_file()
    saved = load_file(str(final / "model.safetensors"))
    assert int(saved["steps_done"]) == 4 and int(saved["total_steps"]) == 4  # TSA's progress is in every save
    model = AutoModel.from_pretrained(final).eval()
    assert type(model) is TextSemiModel and model.config.algorithm == algorithm
    model.save_pretrained(tmp_path / "again")
    again = TextSemiModel.from_pretrained(tmp_path / "again").eval()
    x = _batch(model.config)
    with torch.no_grad():
        assert torch.equal(model.classify(x["input_ids"], x["attention_mask"]), again.classify(x["input_ids"], x["attention_mask"]))
