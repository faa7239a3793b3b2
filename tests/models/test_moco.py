"""MoCo v2: InfoNCE against the queue, enqueue after forward, EMA key encoder, divisibility error, one loop run."""
import pytest
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
from multissl.models.moco import MoCoModel, make_moco_collator, tiny_moco_config


def _batch(cfg, n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return make_moco_collator(cfg)([{"image": im} for im in ds["image"]])


def test_loss_matches_direct_formula_and_queue_advances():
    torch.manual_seed(0)
    cfg = tiny_moco_config()
    model = MoCoModel(cfg).train()
    batch = _batch(cfg)
    queue_before = model.queue.keys.clone()
    v1, v2 = batch["pixel_values"][:, 0], batch["pixel_values"][:, 1]
    out = model(**batch)
    # The same computation by hand (BN has no running-stat effect on the train-mode outputs).
    q = F.normalize(model.projection(model.embed(v1)), dim=-1)
    with torch.no_grad():
        k = F.normalize(model.key_projection(model.key_backbone(pixel_values=v2).pooler_output.flatten(1)), dim=-1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_before.T], 1) / cfg.loss_temperature
    assert torch.allclose(out.loss, F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)), atol=1e-5)
    assert int(model.queue.ptr) == 4
    assert torch.allclose(model.queue.keys[:4], k, atol=1e-6) and torch.equal(model.queue.keys[4:], queue_before[4:])
    model.eval()(**batch)
    assert int(model.queue.ptr) == 4  # evaluation forwards never enqueue


def test_key_encoder_is_frozen_copy_then_ema():
    torch.manual_seed(0)
    model = MoCoModel(tiny_moco_config())
    pairs = list(zip(model.backbone.parameters(), model.key_backbone.parameters()))
    assert all(torch.equal(q, k) and not k.requires_grad for q, k in pairs)
    with torch.no_grad():
        for q, _ in pairs:
            q.add_(1.0)
    before = [k.clone() for _, k in pairs]
    model.on_step_end(0, 10)
    m = model.config.momentum
    assert all(torch.allclose(k, m * b + (1 - m) * q) for (q, k), b in zip(pairs, before))


def test_queue_not_divisible_by_batch_is_a_clear_error():
    cfg = tiny_moco_config()
    cfg.queue_size = 10
    with pytest.raises(ValueError, match="queue size 10 must be divisible by the global batch size 4"):
        MoCoModel(cfg).train()(**_batch(cfg))


def test_two_steps_through_the_training_loop(tmp_path):
    from multissl.training import recipe_from_dict, train

    cfg = tiny_moco_config()
    recipe = recipe_from_dict({"method": "moco", "dataset": "digits",
                               "model": {"backbone_config": cfg.backbone_config, "image_size": 16, "queue_size": 16,
                                         "projection_hidden_dim": 16, "projection_dim": 8},
                               "train": {"max_steps": 2, "batch_size": 8, "log_every": 1, "progress": False}})
    result = train(recipe, tmp_path / "run")
    from transformers import AutoModel

    loaded = AutoModel.from_pretrained(result.final_dir)
    assert int(loaded.queue.ptr) == 0  # 2 steps x 8 keys wrapped around the 16-entry queue
    assert not torch.equal(loaded.key_backbone.embedder.embedder.convolution.weight,
                           loaded.backbone.embedder.embedder.convolution.weight)  # EMA lags the trained encoder
