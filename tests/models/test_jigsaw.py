"""Jigsaw: grid validation, the permutation label undoes the shuffle, CE over the permutation set."""
import pytest
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
from multissl.modalities.image.patches import grid_tiles
from multissl.models.jigsaw import JigsawConfig, JigsawModel, make_jigsaw_collator, tiny_jigsaw_config


def _rows(n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return [{"image": im} for im in ds["image"]]


def test_image_too_small_for_the_grid():
    with pytest.raises(ValueError, match="Image too small for the crop or jigsaw grid: image_size=8"):
        make_jigsaw_collator(JigsawConfig(image_size=8, gap=2))
    with pytest.raises(ValueError, match="Image too small"):
        JigsawModel(JigsawConfig(image_size=8, gap=2))


def test_label_is_the_permutation_that_was_applied():
    cfg = tiny_jigsaw_config()
    cfg.crop_scale = None  # deterministic images so the unshuffled tiles can be recomputed
    cfg.normalize_tiles = False  # compare raw tiles
    collate = make_jigsaw_collator(cfg)
    batch = collate(_rows(), generator=torch.Generator().manual_seed(3))
    # Same generator stream: grid_tiles draws the jitter first, then shuffle_tiles the labels.
    tiles = grid_tiles(collate.batch(_rows()), cfg.grid, cfg.gap, cfg.jitter, generator=torch.Generator().manual_seed(3))
    order = collate.permutations[batch["permutation_labels"]]  # [B, 9]
    assert torch.equal(batch["tiles"], tiles[torch.arange(4)[:, None], order])
    assert batch["tiles"].shape == (4, 9, 3, cfg.tile_size, cfg.tile_size)


def test_normalized_tiles_are_the_same_tiles_each_standardised():
    cfg = tiny_jigsaw_config()
    cfg.crop_scale, cfg.normalize_tiles = None, False
    plain = make_jigsaw_collator(cfg)(_rows(), generator=torch.Generator().manual_seed(5))["tiles"]
    cfg.normalize_tiles = True
    normed = make_jigsaw_collator(cfg)(_rows(), generator=torch.Generator().manual_seed(5))["tiles"]
    dims = (2, 3, 4)
    expected = (plain - plain.mean(dims, keepdim=True)) / (plain.std(dims, keepdim=True) + 0.05)
    assert torch.allclose(normed, expected, atol=1e-6)
    assert normed.mean(dims).abs().max() < 1e-5  # no tile's brightness survives
    assert not torch.allclose(plain.mean(dims), torch.zeros(()), atol=1e-3)  # ... which plain tiles do carry


def test_forward_loss_is_cross_entropy():
    torch.manual_seed(0)
    cfg = tiny_jigsaw_config()
    batch = make_jigsaw_collator(cfg)(_rows())
    out = JigsawModel(cfg)(**batch)
    assert out.logits.shape == (4, cfg.num_permutations)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, batch["permutation_labels"]))
