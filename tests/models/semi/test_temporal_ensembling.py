"""Temporal Ensembling: the ensemble and its bias-corrected targets follow Z <- αZ + (1-α)z, z~ = Z / (1 - α^t) per row
(target read before the visit's update, unseen rows left out), training-only updates, the size check on the unlabeled
set, the state in save_pretrained and in checkpoints (an interrupted + resumed run equals an uninterrupted one)."""
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.temporal_ensembling import TemporalEnsemblingConfig, TemporalEnsemblingModel
from multissl.registry import DATASETS, register_dataset
from multissl.training import recipe_from_dict, train
from tests.models.semi._toy import toy_dataset

C, B, MU, N = 5, 4, 2, 12
ALPHA = 0.6




@pytest.fixture
def toy_registered():
    register_dataset("temporal_ensembling_toy", f"{__name__}:toy_dataset", modality="image", description="test only")
    yield
    DATASETS.pop("temporal_ensembling_toy", None)


def _model(**kw):
    torch.manual_seed(0)
    kw = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": C, "labels_per_class": 1, "mu": MU,
          "num_unlabeled_rows": N, "ensemble_momentum": ALPHA, "lambda_u": 2.0, **kw}
    return TemporalEnsemblingModel(TemporalEnsemblingConfig(**kw))


def _inputs(seed, index):
    g = torch.Generator().manual_seed(seed)
    return {"x_l": torch.randn(B, 3, 16, 16, generator=g), "labels": torch.randint(0, C, (B,), generator=g),
            "u_weak": torch.randn(MU * B, 1, 3, 16, 16, generator=g), "u_index": torch.tensor(index)}


def _train_mode_probs(model, x):
    """The unlabeled rows' softmax [μB, C] from the same concatenated train-mode pass the model makes."""
    with torch.no_grad():
        return model.classifier(model.embed(torch.cat([x["x_l"], x["u_weak"][:, 0]])))[B:].softmax(-1)


def test_ensemble_and_targets_follow_the_formulas_visit_by_visit():
    model = _model().train()
    first = _inputs(1, [0, 1, 2, 3, 4, 5, 6, 7])
    z1 = _train_mode_probs(model, first)
    out = model(**first)
    # first visit: no target yet (t = 0), so no consistency term; then Z = (1 - α) z, t = 1
    assert out.unsupervised_loss == 0 and out.mask_rate == 0
    torch.testing.assert_close(model.ensemble[:8], (1 - ALPHA) * z1)
    assert torch.equal(model.ensemble[8:], torch.zeros(N - 8, C))
    assert model.ensemble_counts.tolist() == [1] * 8 + [0] * 4

    second = _inputs(2, [6, 7, 8, 9, 10, 11, 0, 1])  # rows 6, 7, 0, 1 seen once; 8..11 never
    z2 = _train_mode_probs(model, second)
    out = model(**second)
    seen = torch.tensor([1.0, 1, 0, 0, 0, 0, 1, 1])
    target = torch.zeros(MU * B, C)
    target[[0, 1, 6, 7]] = z1[[6, 7, 0, 1]]  # z~ = Z / (1 - α^1) = (1 - α) z1 / (1 - α): the earlier prediction
    expected = (seen[:, None] * (z2 - target) ** 2).sum() / (MU * B * C)  # read BEFORE this visit's update
    torch.testing.assert_close(out.unsupervised_loss, expected)
    torch.testing.assert_close(out.mask_rate, seen.mean())
    torch.testing.assert_close(out.loss, out.supervised_loss + 2.0 * expected)
    # row 0: Z = α (1 - α) z1 + (1 - α) z2, t = 2, and its next target divides by 1 - α^2
    z_row0 = ALPHA * (1 - ALPHA) * z1[0] + (1 - ALPHA) * z2[6]
    torch.testing.assert_close(model.ensemble[0], z_row0)
    torch.testing.assert_close(model.ensemble[8], (1 - ALPHA) * z2[2])
    assert model.ensemble_counts.tolist() == [2, 2, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1]
    third = _inputs(3, [0, 2, 3, 4, 5, 8, 9, 10])
    z3 = _train_mode_probs(model, third)
    out = model(**third)
    rows = torch.stack([z_row0 / (1 - ALPHA ** 2), z1[2], z1[3], z1[4], z1[5], z2[2], z2[3], z2[4]])
    torch.testing.assert_close(out.unsupervised_loss, ((z3 - rows) ** 2).mean())


def test_the_ensemble_is_a_constant_target_and_is_frozen_in_eval():
    model = _model().train()
    x = _inputs(1, list(range(8)))
    model(**x)
    assert not model.ensemble.requires_grad
    before = (model.ensemble.clone(), model.ensemble_counts.clone())
    out = model.eval()(**x)
    assert out.unsupervised_loss > 0  # the targets are read in eval ...
    assert torch.equal(model.ensemble, before[0]) and torch.equal(model.ensemble_counts, before[1])  # ... not updated


def test_the_state_is_saved_and_reloaded(tmp_path):
    model = _model().train()
    model(**_inputs(1, list(range(8))))
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is TemporalEnsemblingModel and loaded.config.num_unlabeled_rows == N
    assert torch.equal(loaded.ensemble, model.ensemble) and torch.equal(loaded.ensemble_counts, model.ensemble_counts)
    assert loaded.ensemble_counts.sum() == 8


class _Data:
    def load(self):
        return toy_dataset()


def test_the_data_hook_passes_row_ids_and_refuses_a_wrong_unlabeled_count_naming_the_right_one():
    config = _model(num_classes=4, labels_per_class=2, num_unlabeled_rows=88).config  # 96 rows - 4 x 2 labeled
    source = TemporalEnsemblingModel.make_batch_source(config, _Data(), batch_size=B, seed=0)
    items = [source[i] for i in range(11)]  # one pass over the 88 unlabeled rows
    assert set(items[0]) == {"x_l", "labels", "u_weak", "u_index"} and items[0]["u_weak"].shape == (MU * B, 1, 3, 16, 16)
    ids = torch.cat([item["u_index"] for item in items])
    assert sorted(ids.tolist()) == list(range(88))  # each row id once per pass: the ensemble's rows
    config.num_unlabeled_rows = 90
    with pytest.raises(ValueError, match="model.num_unlabeled_rows must be 88, the number of unlabeled rows"):
        TemporalEnsemblingModel.make_batch_source(config, _Data(), batch_size=B, seed=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_unlabeled_rows": None}, "num_unlabeled_rows is required"),
    ({"num_unlabeled_rows": 0}, r"num_unlabeled_rows \(rows of the unlabeled set\) must be a whole number >= 1"),
    ({"ensemble_momentum": 1.0}, r"ensemble_momentum must be a number in \[0.0, 1.0\)"),
    ({"consistency": "l1"}, "consistency must be one of"),
])
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


@pytest.mark.slow  # three short runs through the loop: seconds, not milliseconds
def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one_ensemble_included(toy_registered, tmp_path):
    model = {"backbone_config": TINY_RESNET, "image_size": 16, "num_classes": 4, "labels_per_class": 2, "mu": 4,
             "num_unlabeled_rows": 88, "augment": {"hflip_prob": 0.0}}
    recipe = {"method": "temporal_ensembling", "dataset": "temporal_ensembling_toy", "model": model,
              "train": {"max_steps": 4, "batch_size": 8, "learning_rate": 1e-2, "log_every": 1, "save_every": 2,
                        "progress": False}}  # 32 unlabeled rows a step: rows are revisited from step 3 on
    full = train(recipe_from_dict(recipe), tmp_path / "full")
    recipe["train"]["stop_after_steps"] = 2
    train(recipe_from_dict(recipe), tmp_path / "cut")
    saved = load_file(str(tmp_path / "cut" / "checkpoints" / "step_2" / "model.safetensors"))
    assert int(saved["ensemble_counts"].sum()) == 64  # two steps of 32 rows are in the checkpoint
    recipe["train"]["stop_after_steps"] = None
    resumed = train(recipe_from_dict(recipe), tmp_path / "cut", resume=True)
    assert resumed.losses == full.losses[2:]
    a = load_file(str(full.final_dir / "model.safetensors"))
    b = load_file(str(resumed.final_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["ensemble_counts"].max()) == 2  # some row was visited twice
