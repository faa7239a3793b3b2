"""Lab conversion vs published CIE values, ab bins, and DINO multi-crop shapes."""
import pytest
import torch
from PIL import Image

from multissl.modalities.image.lab import in_gamut_ab_bins, lab_to_rgb, quantize_ab, rgb_to_lab
from multissl.modalities.image.multicrop import MultiCropAugment, MultiCropCollator

# sRGB (D65) -> CIE Lab reference values (Bruce Lindbloom's calculator / CIE tables).
REFERENCE = {
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0): (53.24, 80.09, 67.20),
    (0.0, 1.0, 0.0): (87.73, -86.18, 83.18),
    (0.0, 0.0, 1.0): (32.30, 79.19, -107.86),
    (0.5, 0.5, 0.5): (53.39, 0.0, 0.0),
}


@pytest.mark.parametrize("rgb,lab", list(REFERENCE.items()))
def test_rgb_to_lab_reference_values(rgb, lab):
    got = rgb_to_lab(torch.tensor(rgb).view(3, 1, 1)).flatten()
    assert torch.allclose(got, torch.tensor(lab), atol=0.05)


def test_lab_roundtrip():
    rgb = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_lab(torch.zeros(1, 1, 2, 2))


def test_ab_bins_and_quantisation():
    bins = in_gamut_ab_bins(10.0)
    assert 250 <= len(bins) <= 330  # the sRGB gamut (Zhang et al. count 313 with theirs)
    ab = torch.stack([bins[[0, 5]], bins[[7, 9]]]).permute(0, 2, 1).reshape(2, 2, 2, 1) + 1.0  # near bin centres
    assert torch.equal(quantize_ab(ab, bins).flatten(), torch.tensor([0, 5, 7, 9]))


def test_multicrop_collator_shapes_and_bad_config():
    img = Image.fromarray((torch.rand(8, 8) * 255).byte().numpy())
    out = MultiCropCollator(MultiCropAugment(global_size=16, local_size=8, num_local=3))([{"image": img}] * 2)
    assert out["global_views"].shape == (2, 2, 3, 16, 16) and out["local_views"].shape == (2, 3, 3, 8, 8)
    assert "local_views" not in MultiCropCollator(MultiCropAugment(global_size=16, num_local=0))([{"image": img}])
    with pytest.raises(ValueError, match="local_size"):
        MultiCropAugment(global_size=8, local_size=16).build()
