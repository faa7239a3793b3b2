"""BYOL: target starts as a copy, symmetric loss by formula, cosine momentum schedule in on_step_end."""
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
from multissl.models.byol import BYOLModel, make_byol_collator, tiny_byol_config
from multissl.schedules import cosine_ramp


def _batch(cfg, n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return make_byol_collator(cfg)([{"image": im} for im in ds["image"]])


def test_symmetric_loss_matches_formula():
    torch.manual_seed(0)
    cfg = tiny_byol_config()
    model = BYOLModel(cfg).train()
    batch = _batch(cfg)
    out = model(**batch)
    views = torch.cat([batch["pixel_values"][:, 0], batch["pixel_values"][:, 1]])
    p = model.predictor(model.projector(model.embed(views)))
    with torch.no_grad():
        t = model.target_projector(model.target_backbone(pixel_values=views).pooler_output.flatten(1))
    direct = -(F.cosine_similarity(p[:4], t[4:]).mean() + F.cosine_similarity(p[4:], t[:4]).mean())
    assert torch.allclose(out.loss, direct, atol=1e-5)
    out.loss.backward()
    assert all(p.grad is None for p in model.target_backbone.parameters())


def test_target_momentum_follows_cosine_schedule():
    torch.manual_seed(0)
    cfg = tiny_byol_config()
    model = BYOLModel(cfg)
    assert all(torch.equal(a, b) for a, b in zip(model.projector.parameters(), model.target_projector.parameters()))
    with torch.no_grad():
        for p in model.projector.parameters():
            p.mul_(2.0)
    before = [t.clone() for t in model.target_projector.parameters()]
    model.on_step_end(5, 11)
    m = cosine_ramp(5, 11, cfg.base_momentum, 1.0)
    assert cfg.base_momentum < m < 1.0
    for o, t, b in zip(model.projector.parameters(), model.target_projector.parameters(), before):
        assert torch.allclose(t, m * b + (1 - m) * o, atol=1e-6)
    frozen = [t.clone() for t in model.target_projector.parameters()]
    model.on_step_end(10, 11)  # last step: momentum 1, the target stops moving
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.target_projector.parameters()))
