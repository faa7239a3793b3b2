"""The `metric` method: each loss option equals its objective on the same embeddings, P x K batches of the training
classes, the center update formula, training through the loop, save/load, and held-out retrieval."""
import datasets
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoModel

from multissl.data.batches import DataRequest
from multissl.evaluation.metric_eval import evaluate_retrieval
from multissl.models.common.vision import TINY_RESNET
from multissl.models.metric import LOSSES, MetricConfig, MetricModel, make_metric_collator
from multissl.objectives import (
    all_triplets,
    arcface_loss,
    batch_hard_triplets,
    center_loss,
    cosface_loss,
    n_pair_loss,
    semi_hard_triplets,
    supcon_loss,
    triplet_loss,
)
from multissl.registry import METHODS, register_method
from multissl.training import recipe_from_dict, train

LABELS = torch.tensor([2, 0, 1, 0, 3, 2, 1, 3])  # 4 classes x 2 rows, shuffled: forward must not rely on the layout


@pytest.fixture
def registered():
    """Register `metric` for the loop (the built-in row lives in multissl/registry.py once added); undo only what we did."""
    added = "metric" not in METHODS
    if added:
        register_method("metric", "multissl.models.metric:MetricModel", modality="image",
                        description="Metric learning: ArcFace/CosFace/center/N-pair/triplet/SupCon heads", default_dataset="glyphs")
    yield
    if added:
        METHODS.pop("metric")


def _config(loss, **kw):
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "embedding_dim": 8, "loss": loss, "num_classes": 4, "scale": 8.0, **kw}
    return MetricConfig(**kw)


def _model(loss, **kw):
    torch.manual_seed(0)
    return MetricModel(_config(loss, **kw))


def _pixels(n=8):
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _expected_loss(model, e, labels):
    cfg = model.config
    if cfg.loss in ("arcface", "subcenter_arcface"):
        k = cfg.sub_centers if cfg.loss == "subcenter_arcface" else 1
        return arcface_loss(e, labels, model.head.weight, cfg.margin, cfg.scale, k)
    if cfg.loss == "cosface":
        return cosface_loss(e, labels, model.head.weight, cfg.margin, cfg.scale)
    if cfg.loss == "center":
        return F.cross_entropy(model.classifier(e), labels) + cfg.center_weight * center_loss(e, labels, model.centers.centers)
    if cfg.loss == "n_pair":
        rows = {}  # class -> its row indices in batch order
        for i, y in enumerate(labels.tolist()):
            rows.setdefault(y, []).append(i)
        return n_pair_loss(e[[r[0] for r in rows.values()]], e[[r[1] for r in rows.values()]], l2_reg=cfg.l2_reg)
    if cfg.loss == "triplet":  # the miners themselves are checked against loops in tests/objectives/test_triplet_mining.py
        if cfg.triplet_mining == "all":
            a, p, n = all_triplets(labels)
            return triplet_loss(e[a], e[p], e[n], cfg.margin, reduction="mean_nonzero")
        a, p, n = (semi_hard_triplets if cfg.triplet_mining == "semi_hard" else batch_hard_triplets)(e, labels)
        return triplet_loss(e[a], e[p], e[n], cfg.margin)
    return supcon_loss(e[:, None], labels, cfg.loss_temperature)


@pytest.mark.parametrize("loss", LOSSES)
def test_forward_equals_the_objective_on_the_same_embeddings(loss):
    model = _model(loss).eval()  # eval: BatchNorm and the center buffer stay fixed between the two passes
    if loss == "center":
        model.centers.centers.normal_()  # non-zero centers, so the center term is not trivially 0
    x = _pixels()
    out = model(pixel_values=x, labels=LABELS)
    e = model.raw_embeddings(x)
    assert torch.allclose(out.embeddings, e)
    expected = _expected_loss(model, e, LABELS)
    assert out.loss.dim() == 0 and expected > 0
    assert torch.allclose(out.loss, expected, rtol=1e-5, atol=1e-6), (out.loss, expected)
    assert torch.allclose(model.embed(x), F.normalize(e, dim=1))


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard", "all"])
def test_triplet_forward_uses_the_configured_mining(mining):
    model = _model("triplet", triplet_mining=mining).eval()
    x = _pixels()
    out = model(pixel_values=x, labels=LABELS)
    expected = _expected_loss(model, model.raw_embeddings(x), LABELS)
    assert expected > 0 and torch.allclose(out.loss, expected, rtol=1e-5, atol=1e-6), (mining, out.loss, expected)


def test_triplet_mining_is_checked_and_defaults_to_all():
    assert _config("triplet").triplet_mining == "all"
    with pytest.raises(ValueError, match="triplet_mining must be one of batch_hard, semi_hard, all"):
        _config("triplet", triplet_mining="hardest")


def test_subcenter_arcface_keeps_k_rows_per_class_and_margins_are_per_loss_defaults():
    assert _model("subcenter_arcface", sub_centers=3).head.weight.shape == (12, 8)
    assert [_config(loss).margin for loss in ("arcface", "cosface", "triplet")] == [0.5, 0.35, 0.2]
    assert _config("arcface", margin=0.3).margin == 0.3


def test_center_update_in_training_forward_moves_centers_as_the_formula_says():
    model = _model("center", center_alpha=0.4).train()
    model.centers.centers.normal_()
    before = model.centers.centers.clone()
    labels = torch.tensor([0, 0, 0, 2, 2, 3, 0, 3])  # class 1 absent: its center must not move
    x = _pixels()
    out = model(pixel_values=x, labels=labels)
    e = out.embeddings.detach()
    expected = before.clone()
    for j in range(4):  # c_j <- c_j - alpha * sum_i [y_i = j](c_j - x_i) / (1 + n_j)
        rows = [i for i in range(8) if labels[i] == j]
        delta = sum((before[j] - e[i] for i in rows), torch.zeros(8)) / (1 + len(rows))
        expected[j] = before[j] - 0.4 * delta
    assert torch.allclose(model.centers.centers, expected, atol=1e-6)
    assert torch.equal(model.centers.centers[1], before[1]) and not torch.allclose(model.centers.centers[0], before[0])
    # the loss read the centers from before the update
    ref = F.cross_entropy(model.classifier(e), labels) + model.config.center_weight * center_loss(e, labels, before)
    assert torch.allclose(out.loss, ref, atol=1e-6)
    model.eval()
    frozen = model.centers.centers.clone()
    model(pixel_values=x, labels=labels)
    assert torch.equal(model.centers.centers, frozen)  # evaluation passes never move the centers


def test_n_pair_refuses_batches_without_exactly_two_rows_per_class():
    with pytest.raises(ValueError, match="exactly twice"):
        _model("n_pair")(pixel_values=_pixels(), labels=torch.tensor([0, 0, 0, 1, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="samples_per_class must be 2"):
        _config("n_pair", samples_per_class=4)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "proxy_anchor"}, "loss must be one of"),
    ({"loss": "arcface", "num_classes": None}, "set num_classes"),
    ({"loss": "arcface", "num_classes": 3, "train_classes": [0, 1]}, "must equal len"),
    ({"loss": "arcface", "margin": 30.0}, "radians"),
    ({"loss": "arcface", "num_classes": None, "train_classes": [0, 1.5]}, "int class ids"),
    ({"loss": "arcface", "num_classes": None, "train_classes": [2, 2]}, "distinct"),
    ({"loss": "triplet", "samples_per_class": 0}, "samples_per_class"),
    ({"loss": "supcon", "loss_temperature": 0.0}, "loss_temperature"),
])
def test_bad_config_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _config(**kwargs)


def test_the_collator_maps_training_classes_to_model_rows_and_refuses_held_out_ones():
    cfg = _config("arcface", num_classes=None, train_classes=[5, 2, 9])
    img = [Image.new("RGB", (20, 20), colour) for colour in ("red", "green", "blue")]
    collate = make_metric_collator(cfg)
    batch = collate([{"image": im, "label": y} for im, y in zip(img, [9, 5, 2])])
    assert batch["labels"].tolist() == [2, 0, 1] and batch["pixel_values"].shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="not one of train_classes"):
        collate([{"image": img[0], "label": 3}])


def test_class_balanced_batches_come_from_the_training_classes_only():
    cfg = _config("triplet", num_classes=None, train_classes=list(range(16)), samples_per_class=4)
    data = DataRequest("glyphs", "train")
    source = MetricModel.make_batch_source(cfg, data, batch_size=12, seed=0)
    again = MetricModel.make_batch_source(cfg, data, batch_size=12, seed=0)
    glyphs = data.load()
    for i in (0, 7, 3):
        batch = source[i]
        labels = batch["labels"].view(3, 4)  # P = 3 classes x K = 4 rows
        assert (labels == labels[:, :1]).all() and labels[:, 0].unique().numel() == 3
        rows = source.rows(i)
        assert all(source.dataset[r]["label"] < 16 for r in rows)  # A..P only; Q..Z (16..25) are held out
        assert batch["labels"].tolist() == [source.dataset[r]["label"] for r in rows]  # identity map for 0..15
        assert torch.equal(batch["pixel_values"], again[i]["pixel_values"])  # same rows and crops for the same index
    assert len(glyphs) > len(source.dataset) == 16 * 192
    with pytest.raises(ValueError, match="multiple of samples_per_class"):
        MetricModel.make_batch_source(cfg, data, batch_size=10, seed=0)


def _recipe(loss="arcface", steps=3, **model):
    tiny = {"backbone_config": TINY_RESNET, "image_size": 16, "embedding_dim": 16, "loss": loss, "scale": 16.0,
            "train_classes": list(range(16)), **model}
    return recipe_from_dict({"method": "metric", "dataset": "glyphs", "model": tiny,
                             "train": {"max_steps": steps, "batch_size": 32, "learning_rate": 1e-2, "log_every": 1, "progress": False}})


def test_three_steps_through_the_loop_lower_the_loss_and_reload(registered, tmp_path):
    result = train(_recipe(), tmp_path / "run")
    assert len(result.losses) == 3 and result.losses[-1] < result.losses[0], result.losses
    reloaded = AutoModel.from_pretrained(result.final_dir)
    assert type(reloaded) is MetricModel and reloaded.config.train_classes == list(range(16))


@pytest.mark.parametrize("loss", ["center", "n_pair", "triplet", "supcon"])
def test_every_loss_trains_through_the_loop_on_its_batches(registered, tmp_path, loss):
    result = train(_recipe(loss, steps=2), tmp_path / loss)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    reloaded = AutoModel.from_pretrained(result.final_dir)
    if loss == "center":  # the centers moved during training and were saved with the model
        assert reloaded.centers.centers.abs().sum() > 0


def test_save_load_round_trip_keeps_embeddings_config_and_centers(tmp_path):
    model = _model("center", train_classes=[3, 1, 4, 0], num_classes=None, center_weight=0.05)
    model.train()(pixel_values=_pixels(), labels=LABELS)  # moves the centers away from their zero init
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m").eval()
    assert type(loaded) is MetricModel
    assert (loaded.config.loss, loaded.config.train_classes, loaded.config.center_weight) == ("center", [3, 1, 4, 0], 0.05)
    assert loaded.centers.centers.abs().sum() > 0 and torch.equal(loaded.centers.centers, model.centers.centers)
    with torch.no_grad():
        assert torch.allclose(loaded.embed(_pixels()), model.embed(_pixels()), atol=1e-6)


class _Identity(torch.nn.Module):
    def embed(self, x):
        return x


def test_retrieval_on_a_perfectly_separable_embedding_is_perfect_and_filters_classes():
    # classes 0 and 1 sit on their own axes; class 2 overlaps class 0 exactly, so it must be excluded to get R@1 = 1
    x = [[1.0, 0.0, 0.0]] * 3 + [[0.0, 1.0, 0.1]] * 3 + [[1.0, 0.0, 0.0]] * 3
    ds = datasets.Dataset.from_dict({"x": x, "label": [0] * 3 + [1] * 3 + [2] * 3})

    def collate(rows):
        return {"x": torch.tensor([r["x"] for r in rows])}

    out = evaluate_retrieval(_Identity(), ds, classes=[0, 1], ks=(1, 2, 8), collate_fn=collate)
    assert out["recall_at_1"] == 1.0 and out["recall_at_2"] == 1.0 and out["map_at_r"] == 1.0
    assert "recall_at_8" not in out  # k > N - 1 = 5 is skipped
    assert (out["n"], out["num_classes"], out["classes"], out["feature_dim"]) == (6, 2, [0, 1], 3)
    assert evaluate_retrieval(_Identity(), ds, exclude_classes=[2], collate_fn=collate)["map_at_r"] == 1.0
    confused = evaluate_retrieval(_Identity(), ds, collate_fn=collate)
    assert confused["map_at_r"] < 1.0
    with pytest.raises(ValueError, match="have no rows"):
        evaluate_retrieval(_Identity(), ds, classes=[0, 7], collate_fn=collate)


def test_retrieval_of_a_metric_model_on_held_out_glyph_classes():
    model = _model("arcface", num_classes=None, train_classes=list(range(16)))
    test = DataRequest("glyphs", "test").load()
    out = evaluate_retrieval(model, test, exclude_classes=model.config.train_classes, ks=(1, 4))
    assert out["classes"] == list(range(16, 26)) and out["n"] == 600 and out["feature_dim"] == 8
    assert 0.0 <= out["map_at_r"] <= out["recall_at_1"] <= out["recall_at_4"] <= 1.0
