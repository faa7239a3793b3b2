"""Room-acoustics building blocks on padded waveform batches [N, L] with valid `lengths` [N], batched in torch.

Shared by the spoken_words corpus build (data/room_noise.py) and CPC's on-the-fly channel views
(modalities/audio/channel_augment.py). Random parts draw from an explicit numpy Generator, never global state.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

LN_1000 = math.log(1000.0)  # RT60: the time the energy falls by 60 dB, i.e. the amplitude by 1000x

# Uniform [low, high] ranges of one channel draw: spoken_words' corpus (data/room_noise.Degradation) and CPC's
# channel views (channel_augment.ChannelAugment) both start from these, and both are checked by check_channel_ranges.
CHANNEL_RANGES: dict[str, tuple[float, float]] = {
    "snr_db": (5.0, 20.0),  # signal (after reverberation) to added noise, over the valid samples
    "rt60_s": (0.1, 0.5),  # reverberation time of the synthetic room
    "drr_db": (0.0, 12.0),  # direct-to-reverberant energy ratio
    "noise_beta": (0.0, 2.0),  # coloured noise spectrum ~ 1/f^beta: 0 white, 1 pink, 2 brown
    "peak": (0.3, 0.9),  # peak amplitude after normalising (removes loudness as a cue)
}
_LOWER_BOUND = {"rt60_s": (">", 0.0), "peak": (">", 0.0), "noise_beta": (">=", 0.0)}  # a room needs decay, a clip a level


def check_channel_ranges(ranges: Mapping[str, object], owner: str) -> None:
    """Raise one ValueError line naming `owner.field` unless every range is a finite [low, high] with low <= high
    and rt60_s, peak > 0, noise_beta >= 0 (the keys are CHANNEL_RANGES'; others are not looked at)."""
    for key, pair in ranges.items():
        if key not in CHANNEL_RANGES:
            continue
        ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
              and pair[0] <= pair[1])
        if not ok:
            raise ValueError(f"{owner}.{key} must be a [low, high] pair of finite numbers with low <= high; got {pair!r}")
        op, bound = _LOWER_BOUND.get(key, ("", None))
        if bound is not None and not (pair[0] > bound if op == ">" else pair[0] >= bound):
            raise ValueError(f"{owner}.{key} must be {op} {bound:g}; got {list(pair)}")


def valid_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[N] lengths -> bool [N, width], True on each row's first lengths[n] samples."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def room_impulse_response(rt60_s: np.ndarray, drr_db: np.ndarray, sample_rate: int, rng: np.random.Generator) -> torch.Tensor:
    """Synthetic room responses [N, R] (R = longest RT60 in samples): a unit direct path + exponentially decaying noise.

    The tail of row n is Gaussian noise times exp(-ln(1000) t / rt60_s[n]) (amplitude down 60 dB at RT60),
    scaled so that direct / tail energy = drr_db[n] dB. Causal, direct path at lag 0: convolving shifts nothing.
    """
    rt60 = torch.as_tensor(np.asarray(rt60_s, dtype=np.float64))
    width = max(2, int(math.ceil(float(rt60.max()) * sample_rate)))
    t = torch.arange(width, dtype=torch.float64) / sample_rate  # [R]
    tail = torch.from_numpy(rng.standard_normal((len(rt60), width))) * torch.exp(-LN_1000 * t[None, :] / rt60[:, None])
    tail[:, 0] = 0.0
    energy = tail.pow(2).sum(1, keepdim=True)  # [N, 1]
    target = torch.from_numpy(10.0 ** (-np.asarray(drr_db, dtype=np.float64) / 10.0))[:, None]
    rir = tail * torch.sqrt(target / energy)
    rir[:, 0] = 1.0
    return rir.float()


def coloured_noise(beta: np.ndarray, width: int, rng: np.random.Generator) -> torch.Tensor:
    """Noise [N, width] with power spectrum ~ 1/f^beta[n] (white 0, pink 1, brown 2), unit RMS per row."""
    white = torch.from_numpy(rng.standard_normal((len(beta), width)))
    spec = torch.fft.rfft(white, dim=1)  # [N, F]
    f = torch.fft.rfftfreq(width, dtype=torch.float64)
    f[0] = f[1]  # no infinite gain at DC
    shaped = torch.fft.irfft(spec * f[None, :] ** (-torch.from_numpy(np.asarray(beta, dtype=np.float64))[:, None] / 2), n=width)
    return (shaped / shaped.pow(2).mean(1, keepdim=True).sqrt()).float()


def reverberate(dry: torch.Tensor, lengths: torch.Tensor, rir: torch.Tensor, width: int) -> torch.Tensor:
    """dry [N, L] (valid `lengths` [N]) convolved with rir [N, R], cut or zero-padded to [N, width]; padding never rings."""
    import torchaudio.functional as AF

    wet = AF.fftconvolve(dry * valid_mask(lengths, dry.shape[1]), rir)[:, :width]  # [N, <= width]
    return torch.nn.functional.pad(wet, (0, width - wet.shape[1]))


def add_noise_at_snr(signal: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """signal [N, W] + noise [N, W] scaled so that signal / noise energy over the valid samples is snr_db [N] dB.

    Both are zero from lengths[n] on in the result (torchaudio's add_noise measures energy over `lengths`).
    """
    import torchaudio.functional as AF

    mask = valid_mask(lengths, signal.shape[1])
    return AF.add_noise(signal, noise * mask, snr_db, lengths=lengths) * mask


def normalise_peak(x: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """Scale each row of x [N, W] so that its largest |sample| is peak [N] (an all-zero row stays zero)."""
    return x * (peak[:, None] / x.abs().amax(1, keepdim=True).clamp_min(1e-8))
