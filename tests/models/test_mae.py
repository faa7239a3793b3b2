"""MAE: the encoder sees only visible patches, loss on masked patches only, targets, reconstruction grid, export."""
import pytest
import torch
from PIL import Image

from multissl.modalities.image.patches import patchify
from multissl.models.mae import MAEConfig, MAEModel, tiny_mae_config
from multissl.objectives import masked_reconstruction_loss


def _model():
    torch.manual_seed(0)
    return MAEModel(tiny_mae_config()).eval()


def test_encoder_without_masking_equals_the_hf_vit_forward():
    model = _model()
    x = torch.randn(2, 3, 16, 16)
    n = model.config.image_size ** 2 // model.patch_size ** 2
    noise = torch.arange(n, dtype=torch.float).expand(2, n)  # keep every patch, in order
    latent, mask, _ = model.encode_visible(x, noise, mask_ratio=0.0)
    assert mask.sum() == 0
    assert torch.allclose(latent, model.backbone(pixel_values=x).last_hidden_state, atol=1e-5)


def test_encoder_sees_only_visible_patches():
    model = _model()
    x = torch.randn(2, 3, 16, 16)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    latent, mask, _ = model.encode_visible(x, noise)
    assert latent.shape[1] == 1 + 4 and mask.sum(1).tolist() == [12.0, 12.0]  # 75% of 16 patches masked
    # Changing the pixels of masked patches leaves the encoder output unchanged.
    pixel_mask = mask.view(2, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None]  # [B, 1, S, S]
    latent2, _, _ = model.encode_visible(x + 3.0 * pixel_mask, noise)
    assert torch.allclose(latent, latent2, atol=1e-6)


def test_loss_on_masked_patches_with_normalised_targets():
    model = _model()
    x = torch.randn(2, 3, 16, 16)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(1))
    out = model(pixel_values=x, noise=noise)
    target = patchify(x, 4)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert torch.allclose(out.loss, masked_reconstruction_loss(out.pred, target, out.mask), atol=1e-6)
    m = out.mask.bool()
    direct = ((out.pred - target) ** 2).mean(-1)[m].mean()
    assert torch.allclose(out.loss, direct, atol=1e-6)


def test_reconstruction_grid_png(tmp_path):
    model = _model()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    masked, recon = model.reconstruct(x)
    visible = (masked != 0).any(1, keepdim=True)
    assert torch.allclose(recon[visible.expand_as(recon)], x[visible.expand_as(x)])  # visible patches pasted back
    path = model.on_train_end(tmp_path, {"pixel_values": x})
    with Image.open(path) as im:
        assert im.size == ((4 * 17 + 1) * 4, (3 * 17 + 1) * 4) and im.mode == "RGB"  # 4 columns x 3 rows, x4 upscale


def test_bad_config():
    with pytest.raises(ValueError, match="ViT backbone"):
        MAEConfig(backbone_config={"model_type": "resnet"})
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEConfig(mask_ratio=1.0)
