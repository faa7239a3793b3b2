"""The Accelerate loop end to end on a tiny SimCLR: artefacts, resume to the identical curve, NaN stop."""
import json

import pytest
import torch

from multissl.training import TrainingDivergedError, recipe_from_dict, train
from multissl.training.checkpoint import checkpoint_dirs


def _recipe(**train_kw):
    tiny_backbone = {"model_type": "resnet", "num_channels": 3, "embedding_size": 8, "hidden_sizes": [8, 16],
                     "depths": [1, 1], "layer_type": "basic"}
    train = {"max_steps": 6, "batch_size": 16, "learning_rate": 1e-3, "warmup_steps": 2, "log_every": 1, "progress": False}
    train.update(train_kw)
    return recipe_from_dict({"method": "simclr", "dataset": "digits", "train": train,
                             "model": {"backbone_config": tiny_backbone, "image_size": 16, "projection_hidden_dim": 16,
                                       "projection_dim": 8}})


def test_run_writes_artefacts_and_resume_reproduces_the_curve(tmp_path):
    full = train(_recipe(save_every=3), tmp_path / "full")
    assert len(full.losses) == 6 and all(torch.isfinite(torch.tensor(full.losses)))
    for name in ("metrics.jsonl", "loss_curve.png", "recipe.yaml", "final/config.json", "final/model.safetensors"):
        assert (tmp_path / "full" / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and all("samples_per_s" in r and "lr" in r for r in rows)

    # interrupted run: stops after 3 steps (checkpoint), then --resume continues to step 6
    part = train(_recipe(save_every=3, stop_after_steps=3), tmp_path / "part")
    assert part.final_dir is None and [p.name for p in checkpoint_dirs(tmp_path / "part")] == ["step_3"]
    resumed = train(_recipe(save_every=3), tmp_path / "part", resume=True)
    assert part.losses + resumed.losses == pytest.approx(full.losses, abs=1e-6)
    logged = [json.loads(line)["loss"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx(full.losses, abs=1e-6)
    from safetensors.torch import load_file

    wa, wb = load_file(tmp_path / "full/final/model.safetensors"), load_file(tmp_path / "part/final/model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_same_seed_same_losses_different_seed_differs(tmp_path):
    a = train(_recipe(max_steps=3), tmp_path / "a").losses
    b = train(_recipe(max_steps=3), tmp_path / "b").losses
    c = train(_recipe(max_steps=3, seed=1), tmp_path / "c").losses
    assert a == pytest.approx(b, abs=1e-7) and a != pytest.approx(c, abs=1e-4)


def test_existing_runs_need_resume_or_overwrite_and_resume_needs_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="no complete checkpoint"):
        train(_recipe(), tmp_path / "x", resume=True)
    train(_recipe(max_steps=2, save_every=1), tmp_path / "y")
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        train(_recipe(max_steps=2), tmp_path / "y")
    train(_recipe(max_steps=2), tmp_path / "z")  # a finished run with no checkpoint is refused too
    before = (tmp_path / "z" / "final" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        train(_recipe(max_steps=2), tmp_path / "z")
    result = train(_recipe(max_steps=3), tmp_path / "z", overwrite=True)
    assert result.moved_aside is not None and (result.moved_aside / "final" / "model.safetensors").read_bytes() == before


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    # A learning rate of 1e30 blows the weights up within a few steps.
    with pytest.raises(TrainingDivergedError, match="NaN/inf"):
        train(_recipe(max_steps=40, learning_rate=1e30, max_grad_norm=None, save_every=1, keep_checkpoints=50), tmp_path / "nan")
    ckpts = checkpoint_dirs(tmp_path / "nan")
    assert ckpts, "the good checkpoints before divergence are kept"
    assert not (tmp_path / "nan" / "final").exists()


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    from safetensors.torch import load_file

    from tests.training import toy  # noqa: F401  (registers test_toy)

    def run(name, **kw):
        r = recipe_from_dict({"method": "test_toy", "train": {"max_steps": 3, "learning_rate": 0.1, "progress": False,
                                                               "log_every": 1, **kw}})
        train(r, tmp_path / name)
        return load_file(tmp_path / name / "final" / "model.safetensors")

    big = run("big", batch_size=16)
    acc = run("acc", batch_size=8, gradient_accumulation_steps=2)
    small = run("small", batch_size=8)
    assert all(torch.allclose(big[k], acc[k], atol=1e-6) for k in big)
    assert not all(torch.allclose(big[k], small[k], atol=1e-6) for k in big)


def test_bf16_mixed_precision_flag_runs_under_autocast(tmp_path):
    res = train(_recipe(max_steps=2, mixed_precision="bf16"), tmp_path / "bf16")
    assert len(res.losses) == 2 and all(torch.isfinite(torch.tensor(res.losses)))
    assert res.losses != pytest.approx(train(_recipe(max_steps=2), tmp_path / "fp32").losses, abs=1e-7)  # autocast changed numerics
