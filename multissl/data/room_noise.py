"""Seeded room acoustics and background noise for generated speech corpora (spoken_words), batched in torch.

Every function (and the building blocks in multissl/modalities/audio/room.py) takes padded waveforms [N, L]
with their valid `lengths` [N] and draws nothing from global state: the random parts come from an explicit
numpy Generator (`rng`), so a build is the same on every machine. The chain applied by `degrade` to one batch of clean clips:

    clean [N, L] --(* room impulse response, RT60 / direct-to-reverberant ratio)--> reverberant
      + background noise (coloured 1/f^beta noise, or babble of other clips) at a random SNR
      -> peak-normalised to a random level
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# the acoustic building blocks live one layer down, shared with CPC's channel views; re-exported for callers here
from multissl.modalities.audio.room import (  # noqa: F401
    CHANNEL_RANGES,
    LN_1000,
    add_noise_at_snr,
    check_channel_ranges,
    coloured_noise,
    normalise_peak,
    reverberate,
    room_impulse_response,
    valid_mask,
)


@dataclass(frozen=True)
class Degradation:
    """Ranges of the per-clip draws (uniform unless said otherwise); the corpus's difficulty in one place."""

    snr_db: tuple[float, float] = CHANNEL_RANGES["snr_db"]  # speech (after reverb) to background noise
    rt60_s: tuple[float, float] = CHANNEL_RANGES["rt60_s"]
    drr_db: tuple[float, float] = CHANNEL_RANGES["drr_db"]
    babble_prob: float = 0.5  # else coloured noise
    babble_talkers: int = 3  # other clips summed into one babble track
    noise_beta: tuple[float, float] = CHANNEL_RANGES["noise_beta"]
    peak: tuple[float, float] = CHANNEL_RANGES["peak"]  # final peak amplitude (removes loudness as a speaker cue)
    tail_s: float = 0.1  # reverberation tail kept after the speech ends
    max_seconds: float = 1.0  # clips are cut to this length

    def __post_init__(self) -> None:
        check_channel_ranges({name: getattr(self, name) for name in CHANNEL_RANGES}, "Degradation")
        if not 0.0 <= self.babble_prob <= 1.0 or self.babble_talkers < 1:
            raise ValueError("Degradation: babble_prob must be in [0, 1] and babble_talkers >= 1; "
                             f"got {self.babble_prob}, {self.babble_talkers}")


def babble(pool: torch.Tensor, sources: np.ndarray, shifts: np.ndarray, width: int) -> torch.Tensor:
    """Sum of other clips: pool [P, Lp], sources [N, K] row indices, shifts [N, K] circular offsets -> [N, width], unit RMS.

    Each source clip is rolled by its shift within the pool's width Lp, then the first `width` samples are kept.
    """
    span = pool.shape[1]
    idx = (torch.arange(min(width, span))[None, None, :] - torch.from_numpy(shifts)[:, :, None]) % span  # [N, K, W]
    tracks = pool[torch.from_numpy(sources)[:, :, None], idx]  # [N, K, W]: clip sources[n, k] rolled by shifts[n, k]
    mix = torch.nn.functional.pad(tracks.sum(1), (0, max(0, width - span)))
    return mix / mix.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-8)


def degrade(clean: torch.Tensor, lengths: torch.Tensor, pool: torch.Tensor, babble_sources: np.ndarray,
            rng: np.random.Generator, spec: Degradation = Degradation(),
            sample_rate: int = 16000) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Reverberate, add noise and normalise a batch: clean [N, L] (lengths [N]) -> (noisy [N, W], out_lengths [N], draws).

    pool [P, Lp]: clean clips (zero-padded) that babble is made of; babble_sources [N, K]: for each clip, the
    rows of `pool` summed into its babble (the caller picks other speakers).
    out_lengths = min(lengths + tail, max_seconds). `draws` holds the per-clip settings as numpy arrays [N]
    (snr_db, rt60_s, drr_db, babble (bool), noise_beta, peak), recorded in the corpus.
    """
    if clean.ndim != 2 or lengths.shape != (clean.shape[0],):
        raise ValueError(f"expected clean [N, L] and lengths [N]; got {tuple(clean.shape)} and {tuple(lengths.shape)}")
    n = clean.shape[0]
    if babble_sources.shape[0] != n:
        raise ValueError(f"babble_sources must have one row per clip ({n}); got shape {babble_sources.shape}")
    u = lambda lo_hi: rng.uniform(*lo_hi, size=n)  # noqa: E731
    draws = {"snr_db": u(spec.snr_db), "rt60_s": u(spec.rt60_s), "drr_db": u(spec.drr_db),
             "babble": rng.random(n) < spec.babble_prob, "noise_beta": u(spec.noise_beta), "peak": u(spec.peak)}
    max_len = int(spec.max_seconds * sample_rate)
    out_lengths = (lengths + int(spec.tail_s * sample_rate)).clamp(max=max_len)  # [N]
    width = int(out_lengths.max())
    rir = room_impulse_response(draws["rt60_s"], draws["drr_db"], sample_rate, rng)  # [N, R]
    wet = reverberate(clean, lengths, rir, width)  # [N, W]; padding must not ring in the room
    shifts = rng.integers(0, pool.shape[1], size=babble_sources.shape)
    noise = torch.where(torch.from_numpy(draws["babble"])[:, None], babble(pool, babble_sources, shifts, width),
                        coloured_noise(draws["noise_beta"], width, rng))  # [N, W]
    noisy = add_noise_at_snr(wet, noise, torch.from_numpy(draws["snr_db"]).float(), out_lengths)
    return normalise_peak(noisy, torch.from_numpy(draws["peak"]).float()), out_lengths, draws
