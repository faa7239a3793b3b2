"""Relative patch location: grid validation, pair layout, 8-way CE, learns on a fixed batch."""
import pytest
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
from multissl.models.relative_patch import RelativePatchConfig, RelativePatchModel, make_relative_patch_collator, tiny_relative_patch_config


def _rows(n=16):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return [{"image": im} for im in ds["image"]]


def test_image_too_small():
    with pytest.raises(ValueError, match="Image too small for the crop or jigsaw grid"):
        make_relative_patch_collator(RelativePatchConfig(image_size=9, gap=2))


def test_pairs_and_loss():
    torch.manual_seed(0)
    cfg = tiny_relative_patch_config()
    batch = make_relative_patch_collator(cfg)(_rows(), generator=torch.Generator().manual_seed(0))
    assert batch["patches"].shape == (16, 2, 3, cfg.patch_size, cfg.patch_size)
    assert batch["position_labels"].min() >= 0 and batch["position_labels"].max() <= 7
    model = RelativePatchModel(cfg).train()
    out = model(**batch)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, batch["position_labels"]))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(30):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * out.loss.item()
