"""Room acoustics and background noise of the generated speech corpora, each checked against a direct computation."""
import math

import numpy as np
import pytest
import torch

from multissl.data.room_noise import Degradation, babble, coloured_noise, degrade, room_impulse_response, valid_mask

SR = 16000


def test_impulse_response_matches_its_formula():
    rt60, drr = np.array([0.1, 0.3]), np.array([0.0, 10.0])
    rir = room_impulse_response(rt60, drr, SR, np.random.default_rng(3))
    width = math.ceil(0.3 * SR)
    assert rir.shape == (2, width)
    noise = np.random.default_rng(3).standard_normal((2, width))  # the same draws, recomputed row by row
    for n in range(2):
        t = np.arange(width) / SR
        tail = noise[n] * np.exp(-math.log(1000) * t / rt60[n])
        tail[0] = 0.0
        tail *= math.sqrt(10 ** (-drr[n] / 10) / (tail**2).sum())
        tail[0] = 1.0
        np.testing.assert_allclose(rir[n].numpy(), tail, rtol=1e-5, atol=1e-7)
    # direct / reverberant energy is the drawn DRR; the envelope is 60 dB down at RT60
    assert 10 * math.log10(1 / (rir[1, 1:] ** 2).sum().item()) == pytest.approx(10.0, abs=1e-3)


def test_coloured_noise_has_unit_rms_and_its_spectral_slope():
    betas = np.array([0.0, 1.0, 2.0])
    noise = coloured_noise(betas, 16384, np.random.default_rng(0))
    assert noise.shape == (3, 16384) and torch.allclose(noise.pow(2).mean(1), torch.ones(3), atol=1e-5)
    power = torch.fft.rfft(noise.double(), dim=1).abs().pow(2)[:, 8:4000]  # away from DC and Nyquist
    f = torch.fft.rfftfreq(16384, dtype=torch.float64)[8:4000]
    slope = [np.polyfit(np.log(f.numpy()), np.log(p.numpy()), 1)[0] for p in power]
    np.testing.assert_allclose(slope, -betas, atol=0.15)


def test_babble_is_the_sum_of_rolled_clips():
    pool = torch.randn(5, 40)
    sources, shifts = np.array([[1, 2], [3, 0]]), np.array([[0, 7], [39, 12]])
    got = babble(pool, sources, shifts, width=30)
    for n in range(2):
        direct = sum(np.roll(pool[s].numpy(), k) for s, k in zip(sources[n], shifts[n]))[:30]
        direct = direct / np.sqrt((direct**2).mean())
        np.testing.assert_allclose(got[n].numpy(), direct, rtol=1e-5, atol=1e-6)
    assert babble(pool, sources, shifts, width=50).shape == (2, 50)  # a short pool is zero-padded


def _speech(n: int, length: int) -> torch.Tensor:
    t = torch.arange(length) / SR
    return torch.stack([torch.sin(2 * math.pi * (150 + 40 * i) * t) * torch.hann_window(length) for i in range(n)])


def test_degrade_hits_the_drawn_snr_lengths_and_peak():
    clean, lengths = _speech(4, 8000), torch.tensor([8000, 6000, 5000, 7000])
    dry_room = Degradation(drr_db=(200.0, 200.0), babble_prob=0.0)  # a room that is (numerically) a wire
    noisy, out_len, draws = degrade(clean, lengths, clean, np.zeros((4, 3), dtype=int), np.random.default_rng(1), dry_room)
    assert torch.equal(out_len, lengths + 1600) and noisy.shape == (4, 9600)
    assert not noisy[~valid_mask(out_len, 9600)].any()  # silence after each clip's end
    np.testing.assert_allclose(noisy.abs().amax(1).numpy(), draws["peak"], rtol=1e-5)
    for n in range(4):  # SNR: split the output into (scaled) speech + what is orthogonal to it
        y = noisy[n, : out_len[n]].double()
        x = torch.nn.functional.pad(clean[n] * valid_mask(lengths, 8000)[n], (0, 1600))[: len(y)].double()
        a = (y @ x) / (x @ x)
        snr = 10 * math.log10(((a * x) ** 2).sum() / ((y - a * x) ** 2).sum())
        assert snr == pytest.approx(draws["snr_db"][n], abs=0.5)


def test_degrade_is_seeded_and_cuts_to_max_seconds():
    clean, lengths = _speech(3, 16000), torch.tensor([16000, 9000, 12000])
    sources = np.array([[1], [2], [0]])
    a = degrade(clean, lengths, clean, sources, np.random.default_rng(5))
    b = degrade(clean, lengths, clean, sources, np.random.default_rng(5))
    c = degrade(clean, lengths, clean, sources, np.random.default_rng(6))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert a[1].tolist() == [16000, 10600, 13600] and torch.isfinite(a[0]).all()


def test_bad_input():
    with pytest.raises(ValueError, match="snr_db must be a"):
        Degradation(snr_db=(20.0, 5.0))
    with pytest.raises(ValueError, match="babble_prob"):
        Degradation(babble_prob=1.5)
    # the range checks are the ones CPC's channel views use (modalities/audio/room.check_channel_ranges)
    for field, bad, match in [("rt60_s", (0.0, 0.5), r"Degradation\.rt60_s must be > 0"),
                              ("peak", (-0.1, 0.5), r"Degradation\.peak must be > 0"),
                              ("noise_beta", (-1.0, 2.0), r"Degradation\.noise_beta must be >= 0"),
                              ("drr_db", (0.0, float("inf")), r"Degradation\.drr_db must be a \[low, high\] pair of finite")]:
        with pytest.raises(ValueError, match=match) as err:
            Degradation(**{field: bad})
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"expected clean \[N, L\]"):
        degrade(torch.zeros(8000), torch.tensor([8000]), torch.zeros(1, 8000), np.zeros((1, 1), int), np.random.default_rng(0))
    with pytest.raises(ValueError, match="one row per clip"):
        degrade(torch.zeros(2, 800), torch.tensor([800, 800]), torch.zeros(2, 800), np.zeros((1, 1), int), np.random.default_rng(0))
