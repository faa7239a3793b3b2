"""Context encoder: the hole is hidden from the encoder and only the hole's pixels enter the loss."""
import torch

from multissl.data import load_dataset_by_name
from multissl.models.inpainting import InpaintingConfig, InpaintingModel, make_inpainting_collator, tiny_inpainting_config


def _batch(cfg, n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return make_inpainting_collator(cfg)([{"image": im} for im in ds["image"]], generator=torch.Generator().manual_seed(0))


def test_loss_is_mse_on_hidden_pixels_only():
    torch.manual_seed(0)
    cfg = tiny_inpainting_config()
    model = InpaintingModel(cfg).eval()
    batch = _batch(cfg)
    out = model(**batch)
    m = batch["inpaint_mask"][:, None].expand_as(batch["pixel_values"])  # [B, C, S, S]
    direct = ((out.reconstruction - batch["pixel_values"]) ** 2)[m.bool()].mean()
    assert torch.allclose(out.loss, direct, atol=1e-6)


def test_hidden_pixels_do_not_reach_the_encoder():
    torch.manual_seed(0)
    cfg = InpaintingConfig(backbone_config=tiny_inpainting_config().backbone_config, image_size=16, mask_type="center",
                           decoder_hidden_dim=16, crop_scale=None)
    model = InpaintingModel(cfg).eval()
    batch = _batch(cfg)
    changed = dict(batch, pixel_values=batch["pixel_values"] + 5.0 * batch["inpaint_mask"][:, None])  # edit the hole only
    a, b = model(**batch), model(**changed)
    assert torch.allclose(a.reconstruction, b.reconstruction)  # same context -> same prediction
    assert b.loss > a.loss  # but the targets inside the hole changed
