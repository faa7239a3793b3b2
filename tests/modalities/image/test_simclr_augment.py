"""The SimCLR augmentation policy: each component is there and does what the paper's Appendix A says."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from multissl.modalities.image.transforms import SimCLRAugment, eval_transform
from multissl.modalities.image.views import ImageViewsCollator


def _image(seed=0, size=48):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_pipeline_has_every_component_with_the_paper_settings():
    ops = SimCLRAugment(image_size=32).build().transforms
    kinds = [type(op).__name__ for op in ops]
    assert kinds[:3] == ["PILToTensor", "RandomResizedCrop", "RandomHorizontalFlip"]
    crop = ops[1]
    assert tuple(crop.size) == (32, 32) and tuple(crop.scale) == (0.2, 1.0)
    jitter_apply, gray, blur_apply = ops[3], ops[4], ops[5]
    assert jitter_apply.p == 0.8 and type(jitter_apply.transforms[0]).__name__ == "ColorJitter"
    jitter = jitter_apply.transforms[0]
    assert jitter.brightness == pytest.approx((0.6, 1.4)) and jitter.hue == pytest.approx((-0.1, 0.1))  # s = 0.5
    assert type(gray).__name__ == "RandomGrayscale" and gray.p == 0.2
    assert blur_apply.p == 0.5 and type(blur_apply.transforms[0]).__name__ == "GaussianBlur"
    assert blur_apply.transforms[0].kernel_size[0] % 2 == 1
    assert "RandomInvert" not in kinds  # off by default, and then not even a p = 0 op (it would draw from the RNG)
    inverting = SimCLRAugment(image_size=32, invert_prob=0.5).build().transforms
    assert type(inverting[6]).__name__ == "RandomInvert" and inverting[6].p == 0.5


def test_two_views_differ_and_are_normalised_tensors():
    collate = ImageViewsCollator(32, num_views=2, train=True)
    torch.manual_seed(0)
    out = collate([{"image": _image(i)} for i in range(8)])["pixel_values"]
    assert out.shape == (8, 2, 3, 32, 32) and out.dtype == torch.float32
    assert not torch.allclose(out[:, 0], out[:, 1])  # independent draws per view
    torch.manual_seed(0)
    again = collate([{"image": _image(i)} for i in range(8)])["pixel_values"]
    assert torch.equal(out, again)  # the global RNG seeds it (the loop seeds per batch)


def test_grayscale_probability_one_gives_equal_channels_and_eval_is_deterministic():
    aug = SimCLRAugment(image_size=32, grayscale_prob=1.0, jitter_prob=0.0, blur_prob=0.0).build()
    x = aug(_image())
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # same mean/std on every channel: R == G == B
    ev = eval_transform(32)
    assert torch.equal(ev(_image()), ev(_image()))
    assert isinstance(ev.transforms[1], v2.Resize)


def test_unknown_augment_key_is_named():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['crop_scal'\]"):
        ImageViewsCollator(32, augment={"crop_scal": (0.5, 1.0)})
