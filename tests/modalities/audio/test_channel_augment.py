"""Channel augmentation of training crops: seeded, time-aligned, padding kept zero, SNR and peak as drawn, bad ranges."""
import math

import numpy as np
import pytest
import torch

from multissl.modalities.audio.channel_augment import ChannelAugment, ChannelViewsCollator, augment_channel
from multissl.modalities.audio.collators import AudioCollator
from multissl.modalities.audio.room import add_noise_at_snr, valid_mask

SR = 16000
WIRE = {"drr_db": (200.0, 200.0)}  # a room whose reverberant tail is 200 dB down: numerically a wire


def _speech(n: int, length: int) -> torch.Tensor:
    t = torch.arange(length) / SR
    return torch.stack([torch.sin(2 * math.pi * (150 + 40 * i) * t) * torch.hann_window(length) for i in range(n)])


def _batch():
    lengths = torch.tensor([4000, 2500, 300, 4000])
    return _speech(4, 4000) * valid_mask(lengths, 4000), lengths


def test_seeded_keeps_shape_and_zero_padding():
    x, lengths = _batch()
    a, draws = augment_channel(x, lengths, ChannelAugment(), np.random.default_rng(7))
    b, _ = augment_channel(x, lengths, ChannelAugment(), np.random.default_rng(7))
    c, _ = augment_channel(x, lengths, ChannelAugment(), np.random.default_rng(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert not a[~valid_mask(lengths, 4000)].any()  # padding stays exactly zero
    assert (a[2, :300] != 0).all()  # a short row is augmented over its valid samples
    assert set(draws) == {"snr_db", "rt60_s", "drr_db", "noise_beta", "peak"} and all(len(v) == 4 for v in draws.values())
    np.testing.assert_allclose(a.abs().amax(1).numpy(), draws["peak"], rtol=1e-5)  # peak as drawn


def test_no_sample_moves():
    """A wire room and no noise leave each valid sample where it was, only rescaled to the drawn peak."""
    x, lengths = _batch()
    y, draws = augment_channel(x, lengths, ChannelAugment(snr_db=(300.0, 300.0), **WIRE), np.random.default_rng(0))
    gain = torch.from_numpy(draws["peak"]).float()[:, None] / x.abs().amax(1, keepdim=True)
    torch.testing.assert_close(y, x * gain, atol=1e-6, rtol=1e-5)
    # with a real room: causal with a unit direct path, so the first sample is only the crop's first sample (scaled)
    room = ChannelAugment(snr_db=(300.0, 300.0), rt60_s=(0.3, 0.3), drr_db=(0.0, 0.0), peak=(1.0, 1.0))
    x2 = torch.zeros(1, 4000)
    x2[0, 1000] = 1.0  # an impulse: nothing may appear before it
    y2, _ = augment_channel(x2, torch.tensor([4000]), room, np.random.default_rng(0))
    assert y2[0, :1000].abs().max() < 1e-6  # FFT round-off only
    assert y2[0, 1000] > 0.1 and y2[0, 1001:].abs().sum() > 1  # the direct path at lag 0, then the room's tail


def test_noise_is_added_at_the_drawn_snr():
    x, lengths = _batch()
    y, draws = augment_channel(x, lengths, ChannelAugment(snr_db=(0.0, 20.0), **WIRE), np.random.default_rng(3))
    for n in range(4):  # split each view into (scaled) crop + what is orthogonal to it
        v, s = y[n, : lengths[n]].double(), x[n, : lengths[n]].double()
        a = (v @ s) / (s @ s)
        snr = 10 * math.log10(((a * s) ** 2).sum() / ((v - a * s) ** 2).sum())
        assert snr == pytest.approx(draws["snr_db"][n], abs=0.3)
    # the shared helper, exactly: signal / noise energy over the valid samples is the requested SNR
    sig, noise = torch.randn(2, 900, dtype=torch.float64), torch.randn(2, 900, dtype=torch.float64)
    lens, snr_db = torch.tensor([900, 400]), torch.tensor([3.0, 17.0], dtype=torch.float64)
    mixed = add_noise_at_snr(sig, noise, snr_db, lens)
    for n in range(2):
        s, e = sig[n, : lens[n]], mixed[n, : lens[n]] - sig[n, : lens[n]]
        assert 10 * math.log10((s @ s) / (e @ e)) == pytest.approx(float(snr_db[n]), abs=1e-9)
    assert not mixed[1, 400:].any()


@pytest.mark.parametrize("target_view", ["augmented", "clean", "same"])
def test_views_share_the_crops_and_differ_in_channel(target_view):
    rows = [{"audio": {"array": w[:n].numpy(), "sampling_rate": SR}} for w, n in zip(_speech(3, 9000), (9000, 6000, 1200))]
    plain = AudioCollator(crop_samples=1600, min_samples=465, train=True)
    spec = ChannelAugment()
    views = ChannelViewsCollator(plain, spec, target_view)
    ref = plain(rows, generator=torch.Generator().manual_seed(4))
    a = views(rows, generator=torch.Generator().manual_seed(4))
    b = views(rows, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic given the generator
    assert torch.equal(a["lengths"], ref["lengths"]) and a["input_values"].shape == ref["input_values"].shape
    assert not torch.allclose(a["input_values"], ref["input_values"])  # the context's input is augmented
    assert ("target_values" in a) == (target_view != "same")
    if target_view == "augmented":
        assert a["target_values"].shape == a["input_values"].shape
        assert not torch.allclose(a["target_values"], a["input_values"])  # independent channels
    if target_view == "clean":
        assert torch.equal(a["target_values"], ref["input_values"])
    # same crop offsets as without augmentation: with a wire room and no noise each view is the plain crop, rescaled
    quiet = ChannelViewsCollator(plain, ChannelAugment(snr_db=(300.0, 300.0), **WIRE), target_view)
    q = quiet(rows, generator=torch.Generator().manual_seed(4))
    for key in [k for k in ("input_values", "target_values") if k in q]:
        gain = q[key].abs().amax(1, keepdim=True) / ref["input_values"].abs().amax(1, keepdim=True)
        torch.testing.assert_close(q[key], ref["input_values"] * gain, atol=1e-6, rtol=1e-5)


def test_bad_ranges_are_one_line_errors():
    cases = [({"snr_db": [20, 5]}, r"channel_augment\.snr_db must be a \[low, high\] pair"),
             ({"rt60_s": [0.1]}, r"channel_augment\.rt60_s must be a \[low, high\] pair"),
             ({"rt60_s": [0.0, 0.5]}, r"channel_augment\.rt60_s must be > 0"),
             ({"peak": ["a", 1]}, r"channel_augment\.peak must be"),
             ({"reverb": [0, 1]}, r"channel_augment: unknown key\(s\) \['reverb'\]"),
             ([5, 20], r"channel_augment must be a mapping")]
    for values, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            ChannelAugment.from_dict(values)
        assert "\n" not in str(err.value)
    assert ChannelAugment.from_dict({}) == ChannelAugment()
    with pytest.raises(ValueError, match=r"ChannelAugment\.peak must be > 0"):  # built in code, not from a config
        ChannelAugment(peak=(0.0, 1.0))
    assert ChannelAugment.from_dict(ChannelAugment(snr_db=(1.0, 2.0)).to_dict()).snr_db == (1.0, 2.0)
    plain = AudioCollator(crop_samples=1600, train=True)
    with pytest.raises(ValueError, match="target_view must be one of"):
        ChannelViewsCollator(plain, ChannelAugment(), "future")
    with pytest.raises(ValueError, match="never augmented"):
        ChannelViewsCollator(AudioCollator(train=False), ChannelAugment())
    rows = [{"audio": {"array": np.zeros(2000, np.float32), "sampling_rate": SR}}]
    with pytest.raises(ValueError, match="need a torch.Generator"):
        ChannelViewsCollator(plain, ChannelAugment())(rows)
