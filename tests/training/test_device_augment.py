"""`augment.backend: device`: collators ship raw uint8 pixels, the model makes the views on its device.

The loop seeds the global (and device) generator from (seed, step, rank) before every forward, so views made
in the model are as reproducible as views made in the collator: a run stopped and resumed equals the straight run.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from multissl.modalities.image.batched_augment import BatchedMultiCrop, BatchedViewAugment
from multissl.modalities.image.multicrop import MultiCropAugment
from multissl.modalities.image.transforms import SimCLRAugment
from multissl.training import recipe_from_dict, train

METHODS = {"simclr": "augment", "moco": "augment", "byol": "augment", "dino": "multicrop"}


def _rows(n=4, size=16):
    rng = np.random.default_rng(0)
    return [{"image": Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))} for _ in range(n)]


@pytest.mark.parametrize("name", ["simclr", "moco", "byol"])
def test_two_view_models_make_the_batched_policy_views_from_uint8(name, monkeypatch):
    from multissl.registry import get_method

    spec = get_method(name)
    config = spec.model_class.tiny_config()
    config.augment = {"backend": "device", "hflip_prob": 0.0}
    batch = spec.model_class.make_collator(config, train=True)(_rows())
    assert set(batch) == {"images"} and batch["images"].dtype == torch.uint8 and batch["images"].shape == (4, 3, 16, 16)
    model = spec.model_class(config).eval()
    seen = {}
    real = model.embed if name != "moco" else model._query

    def spy(x):
        seen.setdefault("x", x)
        return real(x)

    monkeypatch.setattr(model, "embed" if name != "moco" else "_query", spy)
    torch.manual_seed(3)
    model(**batch)
    torch.manual_seed(3)
    views = BatchedViewAugment.from_policy(SimCLRAugment(image_size=16, hflip_prob=0.0), 2)(batch["images"])
    expected = views[:, 0] if name == "moco" else views.flatten(0, 1) if name == "simclr" else torch.cat([views[:, 0], views[:, 1]])
    torch.testing.assert_close(seen["x"], expected, rtol=0, atol=0)


def test_dino_makes_its_crops_from_uint8():
    from multissl.models.dino import DINOModel, make_dino_collator, tiny_dino_config

    config = tiny_dino_config()
    config.multicrop = {**config.multicrop, "backend": "device"}
    batch = make_dino_collator(config, train=True)(_rows())
    assert set(batch) == {"images"}
    model = DINOModel(config).eval()  # no centre update between the two forwards
    torch.manual_seed(1)
    loss = model(**batch).loss
    torch.manual_seed(1)
    crops = BatchedMultiCrop.from_policy(MultiCropAugment(global_size=16, local_size=8, num_local=2))(batch["images"])
    torch.manual_seed(1)
    assert torch.equal(loss, model(**crops).loss)


def test_a_model_without_views_or_images_says_what_it_expected():
    from multissl.models.simclr import SimCLRModel, tiny_simclr_config

    with pytest.raises(ValueError, match="augment.backend: device"):
        SimCLRModel(tiny_simclr_config())()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_device_backend_trains_and_resumes_exactly(name, tmp_path):
    from multissl.registry import get_method

    spec = get_method(name)
    model = {k: v for k, v in spec.model_class.tiny_config().to_diff_dict().items()
             if k in ("backbone_config", "image_size", "projection_hidden_dim", "projection_dim", "predictor_hidden_dim",
                      "head_hidden_dim", "bottleneck_dim", "out_dim", "queue_size", "multicrop")}
    key = METHODS[name]
    model[key] = {**model.get(key, {}), "backend": "device"}
    if name == "moco":
        model["queue_size"] = 16

    def recipe(**train_args):
        return recipe_from_dict({"method": name, "dataset": "digits", "model": model,
                                 "train": {"max_steps": 4, "batch_size": 8, "log_every": 1, "warmup_steps": 1,
                                           "save_every": 2, "progress": False, "seed": 5, **train_args}})

    straight = train(recipe(), tmp_path / "straight").losses
    part = train(recipe(stop_after_steps=2), tmp_path / "resumed").losses
    resumed = train(recipe(), tmp_path / "resumed", resume=True).losses
    assert len(straight) == 4 and part + resumed == pytest.approx(straight, rel=0, abs=1e-6)
