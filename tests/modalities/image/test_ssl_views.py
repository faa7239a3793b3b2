"""FixMatch's weak/strong image views and the Cutout transform."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from multissl.modalities.image.ssl_views import (
    Cutout,
    SSLViewAugment,
    WeakStrongCollator,
)
from multissl.modalities.image.transforms import eval_transform


def _image(seed=0, size=32, mode="RGB"):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return img.convert(mode)


def _cutout_reference(images, size_range, fill, seed):
    """Loop form: redraw the documented random numbers in order and blank each square pixel by pixel."""
    n, _, h, w = images.shape
    g = torch.Generator().manual_seed(seed)
    lo, hi = size_range
    frac = lo + (hi - lo) * torch.rand(n, generator=g)
    cy, cx = torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)
    out = images.clone()
    for i in range(n):
        side = int(torch.round(frac[i] * min(h, w)))
        top, left = int(cy[i]) - side // 2, int(cx[i]) - side // 2
        for y in range(max(0, top), min(h, top + side)):
            for x in range(max(0, left), min(w, left + side)):
                out[i, :, y, x] = fill
    return out


def test_cutout_matches_pixel_loop_including_border_clipping():
    images = torch.rand(12, 3, 10, 10)
    ours = Cutout((0.3, 0.6), fill=0.5, generator=torch.Generator().manual_seed(0))(images)
    assert torch.equal(ours, _cutout_reference(images, (0.3, 0.6), 0.5, 0))
    holes = (ours == 0.5).all(1).sum((1, 2))  # hidden pixels per image
    assert bool((holes <= 36).all()) and bool((holes < 36).any())  # clipped at an edge for some


def test_cutout_fixed_square_inside_and_leading_dims():
    images = torch.zeros(2, 3, 1, 16, 16)  # leading dims [2, 3]: six independent images
    out = Cutout((0.25, 0.25), fill=1.0, generator=torch.Generator().manual_seed(1))(images)
    assert out.shape == images.shape and torch.equal(images, torch.zeros_like(images))  # not in place
    per_image = out.reshape(6, 16, 16)
    assert bool((per_image.sum((1, 2)) <= 16).all())  # a 4x4 square at most
    assert len({tuple(torch.nonzero(m)[0].tolist()) for m in per_image if m.any()}) > 1  # own square each


def test_cutout_bad_input():
    with pytest.raises(ValueError, match="size_range"):
        Cutout((0.6, 0.2))
    with pytest.raises(ValueError, match=r"\[\.\.\., C, H, W\]"):
        Cutout()(torch.zeros(4, 4))


def test_weak_policy_is_flip_and_reflect_shift():
    ops = SSLViewAugment(image_size=32).build_weak().transforms
    kinds = [type(op).__name__ for op in ops]
    assert kinds == ["PILToTensor", "Resize", "RandomHorizontalFlip", "RandomCrop", "ToDtype", "Normalize"]
    crop = ops[3]
    assert crop.padding_mode == "reflect" and list(crop.padding) == [4, 4, 4, 4]  # 12.5% of 32
    assert ops[2].p == 0.5


def test_weak_without_randomness_equals_eval_transform():
    aug = SSLViewAugment(image_size=24, hflip_prob=0.0, crop_padding_fraction=0.0)
    img = _image(1, size=40)
    assert torch.equal(aug.build_weak()(img), eval_transform(24)(img))


def test_weak_shift_stays_within_the_padding():
    """A shifted crop of the reflect-padded image: some shift (|dy|, |dx| <= 4) maps the view onto the centre."""
    img = _image(2, size=32)
    base = eval_transform(32)(img)
    padded = torch.nn.functional.pad(base[None], (4, 4, 4, 4), mode="reflect")[0]
    weak = SSLViewAugment(image_size=32, hflip_prob=0.0).build_weak()
    torch.manual_seed(0)
    for _ in range(5):
        view = weak(img)
        matches = [(dy, dx) for dy in range(9) for dx in range(9)
                   if torch.allclose(view, padded[:, dy:dy + 32, dx:dx + 32], atol=1e-6)]
        assert matches


def test_strong_policy_has_randaugment_then_cutout():
    aug = SSLViewAugment(image_size=32, randaugment_ops=3, randaugment_magnitude=7, cutout_range=(0.1, 0.4))
    ops = aug.build_strong().transforms
    ra = next(op for op in ops if isinstance(op, v2.RandAugment))
    assert ra.num_ops == 3 and ra.magnitude == 7
    cut = next(op for op in ops if isinstance(op, Cutout))
    assert ops.index(ra) < ops.index(cut) < len(ops) - 1 and cut.size_range == (0.1, 0.4)
    assert isinstance(ops[-1], v2.Normalize)


def test_strong_cutout_hole_is_grey_zero_after_normalising():
    aug = SSLViewAugment(image_size=16, hflip_prob=0.0, crop_padding_fraction=0.0, randaugment_ops=0,
                         cutout_range=(0.5, 0.5))
    img = _image(3, size=16)
    torch.manual_seed(0)
    out = aug.build_strong()(img)
    base = eval_transform(16)(img)
    hole = (out != base).any(0)  # [S, S]
    assert 0 < int(hole.sum()) <= 64
    assert torch.allclose(out[:, hole], torch.zeros(3, int(hole.sum())), atol=1e-6)


def test_collator_shapes_labels_and_seeding():
    rows = [{"image": _image(i, size=20, mode="L" if i % 2 else "RGB"), "label": i % 3} for i in range(4)]
    collate = WeakStrongCollator(SSLViewAugment(image_size=16), num_weak=1, num_strong=2)
    torch.manual_seed(0)
    out = collate(rows)
    assert out["weak"].shape == (4, 1, 3, 16, 16) and out["strong"].shape == (4, 2, 3, 16, 16)
    assert out["labels"].tolist() == [0, 1, 2, 0] and out["strong"].dtype == torch.float32
    assert not torch.equal(out["strong"][:, 0], out["strong"][:, 1])
    torch.manual_seed(0)
    again = collate(rows)
    assert torch.equal(out["strong"], again["strong"]) and torch.equal(out["weak"], again["weak"])
    unlabeled = collate([{"image": r["image"]} for r in rows])
    assert "labels" not in unlabeled
    with pytest.raises(ValueError, match="row 1: 'image'"):
        collate([rows[0], {"image": None}])
    with pytest.raises(ValueError, match="num_weak"):
        WeakStrongCollator(num_weak=0, num_strong=0)
