"""`augment.backend: batched` in the multi-view collators: the batch-at-once policy behind the same collator keys."""
import numpy as np
import pytest
import torch
from PIL import Image

from multissl.modalities.image.batched_augment import BatchedMultiCrop, BatchedViewAugment
from multissl.modalities.image.image_batch import uint8_batch
from multissl.modalities.image.multicrop import MultiCropAugment, MultiCropCollator
from multissl.modalities.image.transforms import SimCLRAugment
from multissl.modalities.image.views import ImageViewsCollator


def rows(n=6, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))} for _ in range(n)]


def test_uint8_batch_keeps_pixels_and_resizes_other_sizes():
    data = rows(3, 16) + rows(1, 24, seed=1)
    out = uint8_batch(data, 16)
    assert out.dtype == torch.uint8 and out.shape == (4, 3, 16, 16)
    assert torch.equal(out[0].permute(1, 2, 0), torch.from_numpy(np.array(data[0]["image"])))


def test_batched_collator_equals_the_batched_policy_on_the_same_draws():
    aug = {"crop_scale": [0.3, 1.0], "hflip_prob": 0.0, "jitter_strength": 1.0}
    collate = ImageViewsCollator(16, {**aug, "backend": "batched"}, num_views=3)
    data = rows()
    got = collate(data, generator=torch.Generator().manual_seed(5))["pixel_values"]
    ref = BatchedViewAugment.from_policy(SimCLRAugment(image_size=16, **aug), 3)(uint8_batch(data, 16),
                                                                                 torch.Generator().manual_seed(5))
    assert got.shape == (6, 3, 3, 16, 16)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    again = collate(data, generator=torch.Generator().manual_seed(6))["pixel_values"]
    assert not torch.equal(got, again)  # fresh draws per call
    assert not torch.equal(got[:, 0], got[:, 1])  # views of one image differ


def test_eval_collator_ignores_the_backend():
    data = rows()
    a = ImageViewsCollator(16, {"backend": "batched"}, train=False)(data)["pixel_values"]
    b = ImageViewsCollator(16, {}, train=False)(data)["pixel_values"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_batched_multicrop_collator_keys_and_shapes():
    aug = MultiCropAugment(global_size=16, local_size=8, num_local=3)
    collate = MultiCropCollator(aug, backend="batched", batched=BatchedMultiCrop.from_policy(aug))
    data = rows()
    out = collate(data, generator=torch.Generator().manual_seed(1))
    ref = BatchedMultiCrop.from_policy(aug)(uint8_batch(data, 16), torch.Generator().manual_seed(1))
    assert out["global_views"].shape == (6, 2, 3, 16, 16) and out["local_views"].shape == (6, 3, 3, 8, 8)
    torch.testing.assert_close(out["global_views"], ref["global_views"], rtol=0, atol=0)


def test_unknown_backend_is_one_clear_error():
    with pytest.raises(ValueError, match="augment.backend"):
        ImageViewsCollator(16, {"backend": "gpu"})
    with pytest.raises(ValueError, match="multicrop.backend"):
        MultiCropCollator(MultiCropAugment(global_size=16, local_size=8), backend="kornia")


def test_dino_config_accepts_the_backend_key():
    from multissl.models.dino import DINOConfig, make_dino_collator

    config = DINOConfig(image_size=16, multicrop={"local_size": 8, "num_local": 2, "backend": "batched"})
    out = make_dino_collator(config, train=True)(rows(4), generator=torch.Generator().manual_seed(0))
    assert out["global_views"].shape == (4, 2, 3, 16, 16) and out["local_views"].shape == (4, 2, 3, 8, 8)
