"""Rotations, inpainting masks and MAE random masking."""
import pytest
import torch

from multissl.modalities.image.masks import inpainting_mask, random_masking
from multissl.modalities.image.rotation import four_rotations


def test_four_rotations_are_rot90_in_order():
    x = torch.arange(2 * 1 * 3 * 3.0).view(2, 1, 3, 3)
    rot, labels = four_rotations(x)
    assert rot.shape == (2, 4, 1, 3, 3) and labels.tolist() == [[0, 1, 2, 3]] * 2
    assert torch.equal(rot[:, 0], x)
    assert torch.equal(rot[0, 1, 0], torch.tensor([[2.0, 5, 8], [1, 4, 7], [0, 3, 6]]))  # 90 deg anticlockwise
    assert torch.equal(rot[:, 2], x.flip(2, 3))
    with pytest.raises(ValueError, match="square"):
        four_rotations(torch.zeros(1, 1, 3, 4))


def test_inpainting_masks():
    centre = inpainting_mask(2, 8, "center", 0.5)
    assert centre.shape == (2, 8, 8) and centre.sum().item() == 2 * 16
    assert centre[0, 2:6, 2:6].all() and centre[0].sum() == 16
    g = torch.Generator().manual_seed(0)
    rand = inpainting_mask(50, 8, "random_block", 0.25, generator=g)
    assert (rand.sum((1, 2)) == 4).all()
    rows = rand.amax(2).argmax(1)
    assert len(set(rows.tolist())) > 1  # holes at different places
    with pytest.raises(ValueError, match="mask_type"):
        inpainting_mask(1, 8, "ring")


def test_random_masking_keeps_quarter_and_restores_order():
    b, n, d = 3, 16, 4
    tokens = torch.arange(n, dtype=torch.float).view(1, n, 1).expand(b, n, d)
    noise = torch.rand(b, n, generator=torch.Generator().manual_seed(0))
    kept, mask, ids_restore = random_masking(tokens, 0.75, noise=noise)
    assert kept.shape == (b, 4, d) and mask.shape == (b, n)
    assert (mask.sum(1) == 12).all()
    # the kept tokens are exactly the unmasked positions, the 4 smallest noise values
    for i in range(b):
        assert sorted(kept[i, :, 0].long().tolist()) == torch.nonzero(mask[i] == 0).flatten().tolist()
        assert set(kept[i, :, 0].long().tolist()) == set(noise[i].argsort()[:4].tolist())
    shuffled = tokens.gather(1, noise.argsort(1)[..., None].expand(-1, -1, d))
    assert torch.equal(shuffled.gather(1, ids_restore[..., None].expand(-1, -1, d)), tokens)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(tokens, 1.0)


def test_random_masking_generator_is_deterministic():
    x = torch.randn(2, 8, 3)
    a = random_masking(x, 0.5, generator=torch.Generator().manual_seed(1))[1]
    b = random_masking(x, 0.5, generator=torch.Generator().manual_seed(1))[1]
    assert torch.equal(a, b)
