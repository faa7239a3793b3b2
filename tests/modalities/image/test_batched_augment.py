"""Batched on-device views: each kernel against torchvision's single-image op, the sampled parameters against the PIL
policy's own draws, and the end-to-end pipeline against torchvision functional ops applied one view at a time."""
import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from multissl.modalities.image import batched_ops as ops
from multissl.modalities.image.batched_augment import (
    BYOL_VIEWS,
    BatchedMultiCrop,
    BatchedViewAugment,
    ViewParams,
    ViewPolicy,
)
from multissl.modalities.image.multicrop import MultiCropAugment
from multissl.modalities.image.transforms import MEAN, STD, SimCLRAugment


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _float_images(n=4, size=12, seed=0):
    """Random colours plus the edge cases of HSV: grey, black, white and two-channel-maximum pixels."""
    x = torch.rand(n, 3, size, size, generator=_gen(seed))
    x[:, :, 0, :3] = torch.tensor([0.0, 1.0, 0.5]).view(1, 3, 1).expand(n, 3, 3).transpose(1, 2)  # grey levels
    x[:, 0, 1, :] = x[:, 1, 1, :]  # red == green (ties for the maximum)
    x[:, 1, 2, :] = x[:, 2, 2, :]  # green == blue
    return x


def _uint8(b=3, size=16, seed=0):
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=_gen(seed))


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.double().sort().values, b.double().sort().values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True).double() / len(b)
    return (cdf_a - cdf_b).abs().max().item()


# --- kernels vs torchvision.transforms.v2.functional, one sample at a time ---------------------------------------

@pytest.mark.parametrize("name,factors", [
    ("brightness", [0.0, 0.6, 1.0, 1.7]), ("contrast", [0.0, 0.6, 1.0, 1.7]),
    ("saturation", [0.0, 0.6, 1.0, 1.7]), ("hue", [-0.5, -0.1, 0.0, 0.37])])
def test_colour_kernels_match_torchvision_per_sample(name, factors):
    x = _float_images()
    ours = getattr(ops, f"adjust_{name}")(x, torch.tensor(factors))
    for i, f in enumerate(factors):
        ref = getattr(TF, f"adjust_{name}")(x[i], f)
        assert torch.allclose(ours[i], ref, atol=2e-6), (name, f, (ours[i] - ref).abs().max())


def test_grayscale_solarize_flip_match_torchvision_and_leave_others_alone():
    x = _float_images()
    apply = torch.tensor([True, False, True, False])
    gray = ops.grayscale(x, apply)
    sol = ops.solarize(x, apply, torch.tensor([0.5, 0.5, 0.3, 0.3]))
    for i in range(4):
        assert torch.allclose(gray[i], TF.rgb_to_grayscale(x[i], 3) if apply[i] else x[i], atol=1e-6)
        assert torch.equal(sol[i], TF.solarize(x[i], [0.5, 0.5, 0.3, 0.3][i]) if apply[i] else x[i])
    boxes = torch.tensor([[[0, 0, 12, 12]], [[0, 0, 12, 12]]])  # whole image: the crop is the identity
    flipped = ops.resized_crop(x[:2], boxes, 12, torch.tensor([[True], [False]]))
    assert torch.allclose(flipped[0, 0], TF.horizontal_flip(x[0]), atol=1e-6)
    assert torch.allclose(flipped[1, 0], x[1], atol=1e-6)


def test_invert_matches_torchvision_per_sample():
    x = _float_images()
    apply = torch.tensor([True, False, False, True])
    out = ops.invert(x, apply)
    for i in range(4):
        assert torch.allclose(out[i], TF.invert(x[i]) if apply[i] else x[i], atol=1e-6)


def test_blur_matches_torchvision_with_per_sample_sigma_and_kernel_size():
    x = _float_images()
    sigma, size = torch.tensor([0.3, 1.0, 2.0, 1.5]), torch.tensor([3, 5, 5, 3])
    apply = torch.tensor([True, True, True, False])
    out = ops.gaussian_blur(x, ops.gaussian_kernels(sigma, size, apply, width=5))
    for i in range(3):
        k = int(size[i])
        assert torch.allclose(out[i], TF.gaussian_blur(x[i], [k, k], [float(sigma[i])] * 2), atol=1e-6)
    assert torch.equal(out[3], x[3])  # not applied: a unit impulse, exactly the input


def test_crop_matches_resized_crop_when_upscaling_and_is_antialiased_when_downscaling():
    x = _float_images(n=2, size=32)
    boxes = torch.tensor([[[3, 5, 20, 17], [0, 0, 32, 32]], [[10, 2, 11, 25], [7, 9, 5, 3]]])
    flip = torch.tensor([[False, True], [True, False]])
    out = ops.resized_crop(x, boxes, 32, flip)  # every box <= 32: pure bilinear upscaling
    for i in range(2):
        for v in range(2):
            t, le, h, w = boxes[i, v].tolist()
            ref = TF.resized_crop(x[i], t, le, h, w, [32, 32], antialias=True)
            ref = TF.horizontal_flip(ref) if flip[i, v] else ref
            assert torch.allclose(out[i, v], ref, atol=1e-5)
    # Downscaling 64 -> 16 (factors 2.5-4): close to torchvision's antialiased resize, far from plain bilinear.
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=_gen(1)), size=(64, 64),
                                             mode="bicubic", align_corners=False).clamp(0, 1)
    boxes = torch.tensor([[[3, 5, 60, 40], [0, 0, 64, 64]]])
    out = ops.resized_crop(smooth, boxes, 16, torch.zeros(1, 2, dtype=torch.bool))
    for v in range(2):
        t, le, h, w = boxes[0, v].tolist()
        aa = TF.resized_crop(smooth[0], t, le, h, w, [16, 16], antialias=True)
        plain = TF.resized_crop(smooth[0], t, le, h, w, [16, 16], antialias=False)
        err = (out[0, v] - aa).abs().mean()
        assert err < 0.005 and err < 0.3 * (plain - aa).abs().mean()


def test_pipeline_equals_torchvision_ops_applied_view_by_view():
    """apply() with given draws == resized_crop, flip, jitter (b, c, s, h), grayscale, blur, invert, solarize, normalize."""
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=16, blur_prob=0.7, invert_prob=0.5), num_views=3,
                                         solarize_prob=(0.5, 0.5, 0.5))
    images = _uint8(b=4, size=16)
    params = aug.sample(4, 16, 16, _gen(3))
    out = aug.apply(images, params)
    k = aug.views[0].blur_kernel
    for i in range(4):
        for v in range(3):
            p = {f: getattr(params, f)[i, v].item() for f in ViewParams.__dataclass_fields__}
            x = TF.resized_crop(images[i].float() / 255, p["top"], p["left"], p["height"], p["width"], [16, 16])
            x = TF.horizontal_flip(x) if p["flip"] else x
            if p["jitter"]:
                x = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(
                    x, p["brightness"]), p["contrast"]), p["saturation"]), p["hue"])
            x = TF.rgb_to_grayscale(x, 3) if p["grayscale"] else x
            x = TF.gaussian_blur(x, [k, k], [p["sigma"]] * 2) if p["blur"] else x
            x = TF.invert(x) if p["invert"] else x
            x = TF.solarize(x, 0.5) if p["solarize"] else x
            assert torch.allclose(out[i, v], TF.normalize(x, MEAN, STD), atol=1e-4), (i, v)


# --- sampled parameters vs the PIL policy's own draws -------------------------------------------------------------

@pytest.mark.parametrize("hw,scale", [((32, 32), (0.2, 1.0)), ((24, 40), (0.08, 0.5)), ((8, 64), (0.9, 1.0))])
def test_crop_boxes_follow_random_resized_crop(hw, scale):
    """Area fraction, aspect ratio and position: same distributions as v2.RandomResizedCrop.make_params (KS test),
    including the centre-crop fallback that very wide images with a large scale hit."""
    h, w = hw
    n = 2000
    tv_crop = SimCLRAugment(image_size=16, crop_scale=scale).build().transforms[1]
    torch.manual_seed(0)
    ref = torch.tensor([[d[k] for k in ("top", "left", "height", "width")]
                        for d in (tv_crop.make_params([torch.zeros(3, h, w)]) for _ in range(n))]).double()
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=16, crop_scale=scale), num_views=1)
    p = aug.sample(n, h, w, _gen(1))
    ours = torch.stack([p.top, p.left, p.height, p.width], dim=-1)[:, 0].double()
    for name, f in [("area", lambda b: b[:, 2] * b[:, 3] / (h * w)), ("aspect", lambda b: (b[:, 3] / b[:, 2]).log()),
                    ("top", lambda b: (b[:, 0] + b[:, 2] / 2) / h), ("left", lambda b: (b[:, 1] + b[:, 3] / 2) / w)]:
        assert _ks(f(ours), f(ref)) < 0.062, name  # critical value at alpha = 0.001 for 2000 vs 2000
    assert (ours[:, 2] <= h).all() and (ours[:, 3] <= w).all() and (ours[:, :2] >= 0).all()
    assert (ours[:, 0] + ours[:, 2] <= h).all() and (ours[:, 1] + ours[:, 3] <= w).all()


def test_jitter_and_blur_values_follow_the_pil_policy():
    policy = SimCLRAugment(image_size=32, jitter_strength=0.7)
    pipe = policy.build().transforms
    jitter, blur = pipe[3].transforms[0], pipe[5].transforms[0]
    torch.manual_seed(0)
    draws = [jitter.make_params([]) for _ in range(2000)]
    sigmas = torch.tensor([blur.make_params([])["sigma"][0] for _ in range(2000)])
    p = BatchedViewAugment.from_policy(policy, num_views=2).sample(1000, 32, 32, _gen(2))
    for name in ("brightness", "contrast", "saturation", "hue"):
        ref = torch.tensor([d[f"{name}_factor"] for d in draws])
        assert _ks(getattr(p, name).flatten(), ref) < 0.062, name  # alpha = 0.001 for 2000 vs 2000
    assert _ks(p.sigma.flatten(), sigmas) < 0.062


class _Count(torch.nn.Module):
    """Stands in for the op inside a v2.RandomApply: counts how often the real RandomApply decides to run it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def test_application_rates_follow_the_pil_policy():
    """Flip, jitter, grayscale and blur rates of the real v2 pipeline (counted by running it) vs ours."""
    policy = SimCLRAugment(image_size=8, hflip_prob=0.3, jitter_prob=0.6, grayscale_prob=0.25, blur_prob=0.45)
    _, _, flip, jitter_apply, gray, blur_apply, *_ = policy.build().transforms
    jitter_apply.transforms[0], blur_apply.transforms[0] = _Count(), _Count()
    x = _float_images(n=1, size=4)[0]
    n, counts = 2000, {"flip": 0, "gray": 0}
    torch.manual_seed(0)
    for _ in range(n):
        counts["flip"] += int(torch.equal(flip(x), TF.horizontal_flip(x)))
        g = gray(x)
        counts["gray"] += int(torch.equal(g[0], g[1]) and torch.equal(g[1], g[2]))
        jitter_apply(x), blur_apply(x)
    pil = {"flip": counts["flip"] / n, "jitter": jitter_apply.transforms[0].calls / n,
           "grayscale": counts["gray"] / n, "blur": blur_apply.transforms[0].calls / n}
    p = BatchedViewAugment.from_policy(policy, num_views=2).sample(1000, 8, 8, _gen(4))
    assert not p.solarize.any()  # the SimCLR policy never solarises
    for name, rate in pil.items():
        ours = getattr(p, name).float().mean().item()
        q = (rate + ours) / 2
        assert abs(ours - rate) < 4.5 * math.sqrt(2 * q * (1 - q) / n), (name, ours, rate)


def test_policy_fields_mean_what_the_pil_pipeline_means():
    """Every ViewPolicy field from_simclr / from_multicrop sets equals the built v2 pipeline's own setting."""
    aug = SimCLRAugment(image_size=48, crop_scale=(0.3, 0.9), hflip_prob=0.4, jitter_strength=0.7, jitter_prob=0.6,
                        grayscale_prob=0.1, blur_prob=0.3, invert_prob=0.35)
    pairs = [(ViewPolicy.from_simclr(aug), aug.build().transforms)]
    mc = MultiCropAugment(global_size=32, local_size=16, jitter_strength=0.6, invert_prob=0.45)
    for vp, pipe in zip(ViewPolicy.from_multicrop(mc), mc.build()):
        pairs.append((vp, pipe.transforms))
    for vp, (_, crop, flip, jitter_apply, gray, blur_apply, invert, *_) in pairs:
        jitter, blur = jitter_apply.transforms[0], blur_apply.transforms[0]
        assert (vp.size, vp.size) == tuple(crop.size) and vp.crop_scale == pytest.approx(crop.scale)
        assert vp.crop_ratio == pytest.approx(crop.ratio) and vp.hflip_prob == flip.p
        for name in ("brightness", "contrast", "saturation", "hue"):
            assert getattr(vp, name) == pytest.approx(getattr(jitter, name)), name
        assert (vp.jitter_prob, vp.grayscale_prob, vp.blur_prob) == (jitter_apply.p, gray.p, blur_apply.p)
        assert vp.invert_prob == invert.p and vp.invert_prob in (0.35, 0.45)
        assert [vp.blur_kernel] * 2 == list(blur.kernel_size) and vp.blur_sigma == pytest.approx(blur.sigma)


# --- behaviour of the batched path --------------------------------------------------------------------------------

def test_shapes_range_determinism_and_block_independence():
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=8), num_views=2)
    images = _uint8(b=5, size=12)
    out = aug(images, _gen(0))
    assert out.shape == (5, 2, 3, 8, 8) and out.dtype == torch.float32
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6  # (x - 0.5) / 0.5 for x in [0, 1]
    assert torch.equal(out, aug(images, _gen(0))) and not torch.equal(out, aug(images, _gen(1)))
    params = aug.sample(5, 12, 12, _gen(0))
    aug.cpu_block_elems = 1  # one image per block
    small = aug.apply(images, params)
    aug.cpu_block_elems = 2 ** 30  # the whole batch in one block
    assert torch.allclose(small, aug.apply(images, params), atol=1e-6)


def test_every_sample_and_view_gets_its_own_parameters():
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=8), num_views=2)
    same = _uint8(b=1, size=12).expand(2, 3, 12, 12).contiguous()  # one image twice
    out = aug(same, _gen(5))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0, 0], out[0, 1])
    p = aug.sample(2, 12, 12, _gen(5))
    for name in ("brightness", "contrast", "saturation", "hue", "sigma"):
        vals = getattr(p, name)
        assert vals[0, 0] != vals[1, 0] and vals[0, 0] != vals[0, 1], name


def test_inversion_draws_its_rate_and_leaves_every_other_draw_as_it_was():
    """A policy with invert_prob > 0 inverts at that rate; the other draws equal the same policy without it (so
    runs made before inversion existed make the same views), and a policy without it never inverts."""
    plain = BatchedViewAugment.from_policy(SimCLRAugment(image_size=8), num_views=2).sample(3000, 8, 8, _gen(11))
    inv = BatchedViewAugment.from_policy(SimCLRAugment(image_size=8, invert_prob=0.3),
                                         num_views=2).sample(3000, 8, 8, _gen(11))
    assert not plain.invert.any() and abs(inv.invert.float().mean().item() - 0.3) < 0.03
    assert (inv.invert[:, 0] != inv.invert[:, 1]).any()  # each view draws its own
    for name in ViewParams.__dataclass_fields__:
        if name != "invert":
            assert torch.equal(getattr(plain, name), getattr(inv, name)), name


def test_byol_asymmetric_views():
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=8), num_views=2, **BYOL_VIEWS)
    p = aug.sample(4000, 8, 8, _gen(6))
    assert p.blur[:, 0].all() and not p.solarize[:, 0].any()  # view 1: always blurred, never solarised
    assert abs(p.blur[:, 1].float().mean() - 0.1) < 0.025 and abs(p.solarize[:, 1].float().mean() - 0.2) < 0.03
    # Solarised samples are their unsolarised selves inverted at and above the threshold (0.5 -> 0 once normalised).
    images = _uint8(b=40, size=8)
    p = aug.sample(40, 8, 8, _gen(7))
    out = aug.apply(images, p)
    hit = p.solarize.clone()
    assert hit[:, 1].any() and not hit[:, 1].all()
    p.solarize[:] = False
    plain = aug.apply(images, p)
    expected = torch.where(plain >= 0, -plain, plain)  # (1 - x - 0.5) / 0.5 = -(x - 0.5) / 0.5
    assert torch.allclose(out[hit], expected[hit], atol=1e-6) and torch.equal(out[~hit], plain[~hit])
    with pytest.raises(ValueError, match="blur_prob: expected a ViewPolicy field with 2 per-view values"):
        BatchedViewAugment.from_policy(SimCLRAugment(image_size=8), num_views=2, blur_prob=(1.0,))
    with pytest.raises(ValueError, match="params: expected draws for"):
        aug.apply(images[:3], p)


def test_dino_multicrop_global_and_local_views():
    mc = MultiCropAugment(global_size=16, local_size=8, num_local=3)
    crops = BatchedMultiCrop.from_policy(mc, **BYOL_VIEWS)
    out = crops(_uint8(b=2, size=20), _gen(8))
    assert out["global_views"].shape == (2, 2, 3, 16, 16) and out["local_views"].shape == (2, 3, 3, 8, 8)
    assert [v.blur_prob for v in crops.global_views.views] == [1.0, 0.1]
    p = crops.local_views.sample(2000, 100, 100, _gen(9))
    area = (p.height * p.width).float() / 100 ** 2
    assert area.min() >= 0.09 and area.max() <= 0.42  # local scale (0.1, 0.4), up to rounding the sides
    assert "local_views" not in BatchedMultiCrop.from_policy(MultiCropAugment(16, 8, num_local=0))(_uint8(1, 16))


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(2, 3, 8, 8), "uint8"), (torch.zeros(3, 8, 8, dtype=torch.uint8), r"\[B, 3, H, W\]"),
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), r"\[B, 3, H, W\]"), ([[0]], "uint8 tensor")])
def test_bad_input_raises_a_clear_value_error(bad, match):
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=8))
    with pytest.raises(ValueError, match=match):
        aug(bad, _gen())


def test_bad_policy_raises():
    with pytest.raises(ValueError, match="grayscale_prob"):
        ViewPolicy(size=8, grayscale_prob=1.5)
    with pytest.raises(ValueError, match="blur_kernel must be odd"):
        ViewPolicy(size=8, blur_kernel=4)
    with pytest.raises(ValueError, match="one output size"):
        BatchedViewAugment([ViewPolicy(size=8), ViewPolicy(size=16)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_for_the_same_draws():
    aug = BatchedViewAugment.from_policy(SimCLRAugment(image_size=16), num_views=2, **BYOL_VIEWS)
    images = _uint8(b=6, size=24)
    params = aug.sample(6, 24, 24, _gen(10))
    cpu = aug.apply(images, params)
    gpu = aug.apply(images.cuda(), params.to("cuda"))
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    cgen = torch.Generator(device="cuda").manual_seed(0)
    assert aug(images.cuda(), cgen).shape == (6, 2, 3, 16, 16)
