"""Context encoder: the hole is hidden from the encoder, only the hole's pixels enter the loss; optional adversarial term."""
import pytest
import torch
import torch.nn.functional as F

from multissl.data import load_dataset_by_name
from multissl.models.inpainting import InpaintingConfig, InpaintingModel, make_inpainting_collator, tiny_inpainting_config


def _batch(cfg, n=4):
    ds = load_dataset_by_name("digits", split="train").select(range(n))
    return make_inpainting_collator(cfg)([{"image": im} for im in ds["image"]], generator=torch.Generator().manual_seed(0))


def _plain_config(**kw):
    """The tiny config without the adversarial term (the library default)."""
    cfg = tiny_inpainting_config()
    cfg.adversarial_weight = 0.0
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_loss_is_mse_on_hidden_pixels_only():
    torch.manual_seed(0)
    model = InpaintingModel(_plain_config()).eval()
    batch = _batch(model.config)
    out = model(**batch)
    m = batch["inpaint_mask"][:, None].expand_as(batch["pixel_values"])  # [B, C, S, S]
    direct = ((out.reconstruction - batch["pixel_values"]) ** 2)[m.bool()].mean()
    assert torch.allclose(out.loss, direct, atol=1e-6) and torch.allclose(out.rec_loss, direct, atol=1e-6)


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


def test_weight_zero_builds_no_discriminator_and_leaves_the_loss_alone():
    torch.manual_seed(0)
    plain = InpaintingModel(_plain_config()).eval()
    assert plain.discriminator is None and not any(k.startswith("discriminator") for k in plain.state_dict())
    adv = InpaintingModel(tiny_inpainting_config()).eval()
    missing, unexpected = adv.load_state_dict(plain.state_dict(), strict=False)  # same encoder/decoder weights
    assert not unexpected and missing and all(k.startswith("discriminator.") for k in missing)
    batch = _batch(plain.config)
    a, b = plain(**batch), adv(**batch)
    assert a.adv_loss is None and a.disc_loss is None and torch.equal(a.loss, a.rec_loss)
    assert torch.allclose(a.rec_loss, b.rec_loss)  # the option changes the total, not the reconstruction term
    with pytest.raises(ValueError, match="adversarial_weight must be in"):
        InpaintingConfig(adversarial_weight=1.0)


def test_adversarial_total_matches_the_joint_loss_formula_and_every_parameter_learns():
    torch.manual_seed(0)
    cfg = tiny_inpainting_config()
    cfg.adversarial_weight = w = 0.25  # large enough that a wrong weighting shows
    model = InpaintingModel(cfg).train()
    batch = _batch(cfg)
    out = model(**batch)
    x, m = batch["pixel_values"], batch["inpaint_mask"][:, None].float()
    filled = x * (1 - m) + out.reconstruction * m  # context + predicted hole
    d = model.discriminator
    real_logits, fake_logits = d(x), d(filled)
    adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    disc = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    assert torch.allclose(out.adv_loss, adv, atol=1e-6) and torch.allclose(out.disc_loss, disc, atol=1e-6)
    assert torch.allclose(out.loss, (1 - w) * out.rec_loss + w * adv + disc, atol=1e-6)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    # D's gradient from the whole total is that of its own loss alone: the w * adv term adds nothing to D.
    for g, p in zip(torch.autograd.grad(disc, list(d.parameters())), d.parameters()):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_generator_term_never_updates_the_discriminator_and_vice_versa():
    torch.manual_seed(0)
    model = InpaintingModel(tiny_inpainting_config()).train()
    batch = _batch(model.config)
    real = batch["pixel_values"]
    fake = (real + 0.3 * torch.randn_like(real)).requires_grad_(True)  # stands in for the generator's output
    adv, disc = model._adversarial_terms(real, fake)
    adv.backward(retain_graph=True)  # the generator's adversarial term alone
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # ... does reach the generator
    fake.grad = None
    disc.backward()  # the discriminator's term alone
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator.parameters())
    assert fake.grad is None  # ... never reaches the generator
