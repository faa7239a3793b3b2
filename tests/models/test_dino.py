"""DINO: loss on student/teacher outputs, centre EMA in training forwards, teacher temperature warm-up."""
import pytest
import torch

from multissl.data import load_dataset_by_name
from multissl.models.dino import DINOConfig, DINOModel, make_dino_collator, tiny_dino_config
from multissl.objectives.distillation import dino_loss


def _batch(cfg, n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return make_dino_collator(cfg)([{"image": im} for im in ds["image"]])


def test_forward_is_dino_loss_and_updates_centre():
    torch.manual_seed(0)
    cfg = tiny_dino_config()
    model = DINOModel(cfg).train()
    batch = _batch(cfg)
    assert batch["global_views"].shape == (4, 2, 3, 16, 16) and batch["local_views"].shape == (4, 2, 3, 8, 8)
    g = batch["global_views"].transpose(0, 1).flatten(0, 1)
    l = batch["local_views"].transpose(0, 1).flatten(0, 1)
    student = torch.cat([model.head(model.embed(g)), model.head(model.embed(l))]).view(4, 4, -1)
    with torch.no_grad():
        teacher = model.teacher_head(model.teacher_backbone(pixel_values=g).pooler_output.flatten(1)).view(2, 4, -1)
    expected = dino_loss(student, teacher, torch.zeros(cfg.out_dim), cfg.student_temperature, cfg.teacher_temperature_start)
    out = model(**batch)
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert torch.allclose(model.center, (1 - cfg.center_momentum) * teacher.mean((0, 1)), atol=1e-6)
    centre = model.center.clone()
    model.eval()(**batch)
    assert torch.equal(model.center, centre)  # evaluation forwards leave the centre alone


def test_global_views_only_and_bad_input():
    torch.manual_seed(0)
    cfg = tiny_dino_config()
    model = DINOModel(cfg)
    batch = _batch(cfg)
    assert torch.isfinite(model(global_views=batch["global_views"]).loss)
    with pytest.raises(ValueError, match=r"global_views must be \[B, 2"):
        model(global_views=batch["global_views"][:, 0])
    with pytest.raises(ValueError, match="multicrop: unknown key"):
        DINOConfig(multicrop={"num_locals": 3})


def test_teacher_temperature_warmup_and_teacher_ema():
    torch.manual_seed(0)
    cfg = tiny_dino_config()
    cfg.teacher_temperature_warmup_steps = 4
    model = DINOModel(cfg)
    temps = []
    for step in range(6):
        model.on_step_end(step, 6)
        temps.append(model.teacher_temperature_now)
    assert temps[0] == pytest.approx(0.04 + 0.03 / 4) and temps[3:] == [0.07] * 3
    assert all(not p.requires_grad for p in model.teacher_backbone.parameters())


def test_teacher_temperature_survives_save_load_and_resume(tmp_path):
    """After S steps the schedule's value comes back from a state_dict / save_pretrained, not the warm-up start."""
    torch.manual_seed(0)
    cfg = tiny_dino_config()
    cfg.teacher_temperature_warmup_steps = 10
    model = DINOModel(cfg).eval()
    for step in range(3):
        model.on_step_end(step, 20)
    expected = 0.04 + 0.03 * 3 / 10
    assert model.teacher_temperature_now == pytest.approx(expected)

    resumed = DINOModel(cfg).eval()  # what the loop builds before loading a checkpoint
    assert resumed.teacher_temperature_now == pytest.approx(cfg.teacher_temperature_start)
    resumed.load_state_dict(model.state_dict())
    assert resumed.teacher_temperature_now == pytest.approx(expected)

    model.save_pretrained(tmp_path, safe_serialization=True)
    reloaded = DINOModel.from_pretrained(tmp_path).eval()
    assert reloaded.teacher_temperature_now == pytest.approx(expected)
    batch = _batch(cfg)
    assert torch.allclose(reloaded(**batch).loss, model(**batch).loss, atol=1e-6)  # same temperature in the loss
    reloaded.on_step_end(3, 20)  # and the schedule continues from there
    assert reloaded.teacher_temperature_now == pytest.approx(0.04 + 0.03 * 4 / 10)
