"""On-the-fly channel augmentation of training crops and CPC's two time-aligned channel views (WavAugment-style CPC).

Kharitonov et al. 2020 ("Data Augmenting Contrastive Learning of Speech Representations in the Time Domain") give
CPC's context network and its prediction targets differently augmented copies of the same crop: a channel (room,
noise colour, level) drawn independently for each copy no longer predicts the future, while speaker and content
still do. Each copy is: crop * causal room impulse response (unit direct path at lag 0, cut to the crop's length,
so no sample moves) + coloured 1/f^beta noise at a random SNR over the valid samples, peak-normalised to a random
level; padding stays zero. Every draw comes from an explicit numpy Generator, whole batches at a time.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from multissl.modalities.audio.collators import AudioCollator
from multissl.modalities.audio.room import (
    CHANNEL_RANGES,
    add_noise_at_snr,
    check_channel_ranges,
    coloured_noise,
    normalise_peak,
    reverberate,
    room_impulse_response,
)

TARGET_VIEWS = ("same", "augmented", "clean")  # what CPC's targets z see: the context's input, another draw, the crop


@dataclass(frozen=True)
class ChannelAugment:
    """Uniform ranges [low, high] of the per-view draws; the defaults are spoken_words' own (room.CHANNEL_RANGES)."""

    snr_db: tuple[float, float] = CHANNEL_RANGES["snr_db"]  # crop (after reverberation) to added noise
    rt60_s: tuple[float, float] = CHANNEL_RANGES["rt60_s"]
    drr_db: tuple[float, float] = CHANNEL_RANGES["drr_db"]
    noise_beta: tuple[float, float] = CHANNEL_RANGES["noise_beta"]
    peak: tuple[float, float] = CHANNEL_RANGES["peak"]  # level is a channel cue too

    def __post_init__(self) -> None:
        check_channel_ranges(asdict(self), "ChannelAugment")

    @classmethod
    def from_dict(cls, values: Mapping, name: str = "channel_augment") -> ChannelAugment:
        """Checked ranges from a config mapping ({} = the defaults); a bad value is one ValueError line naming the field."""
        if not isinstance(values, Mapping):
            raise ValueError(f"{name} must be a mapping of ranges (e.g. {{snr_db: [5, 20]}}) or null; got {values!r}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"{name}: unknown key(s) {unknown}; allowed: {allowed}")
        check_channel_ranges(values, name)  # before construction, so the message names the config field
        return cls(**{key: (float(pair[0]), float(pair[1])) for key, pair in values.items()})

    def to_dict(self) -> dict:
        """The ranges as JSON-friendly lists (what a config stores)."""
        return {k: list(v) for k, v in asdict(self).items()}


def augment_channel(waves: torch.Tensor, lengths: torch.Tensor, spec: ChannelAugment, rng: np.random.Generator,
                    sample_rate: int = 16000) -> tuple[torch.Tensor, dict]:
    """A fresh channel per row: waves [N, L] (valid `lengths` [N]) -> (views [N, L], draws: numpy arrays [N] per range).

    Time-aligned with the input: the room response is causal with a unit direct path at lag 0 and the result is cut
    to L, so sample i of a view is sample i of the crop plus its own reverberation and noise; from lengths[n] on it is 0.
    """
    if waves.ndim != 2 or lengths.shape != (waves.shape[0],):
        raise ValueError(f"expected waves [N, L] and lengths [N]; got {tuple(waves.shape)} and {tuple(lengths.shape)}")
    n, width = waves.shape
    draws = {k: rng.uniform(*getattr(spec, k), size=n) for k in ("snr_db", "rt60_s", "drr_db", "noise_beta", "peak")}
    rir = room_impulse_response(draws["rt60_s"], draws["drr_db"], sample_rate, rng)  # [N, R]
    wet = reverberate(waves, lengths, rir, width)  # [N, L]: the tail past the crop's end is cut, nothing shifts
    noise = coloured_noise(draws["noise_beta"], width, rng)  # [N, L]
    noisy = add_noise_at_snr(wet, noise.to(wet.dtype), torch.from_numpy(draws["snr_db"]).to(wet.dtype), lengths)
    return normalise_peak(noisy, torch.from_numpy(draws["peak"]).to(wet.dtype)), draws


@dataclass
class ChannelViewsCollator:
    """Training crops with channel views: rows -> {"input_values": [B, L], "lengths": [B], ("target_values": [B, L])}.

    The crops are AudioCollator's (same offsets and lengths as without augmentation). target_view "same": one
    augmented view feeds both the context and the targets (plain augmentation); "augmented": input_values and
    target_values are the same crop under two independent channels; "clean": the context sees an augmented view,
    the targets the crop itself (the paper's best setting on LibriSpeech).
    """

    crops: AudioCollator
    augment: ChannelAugment
    target_view: str = "augmented"

    def __post_init__(self) -> None:
        if self.target_view not in TARGET_VIEWS:
            raise ValueError(f"target_view must be one of {TARGET_VIEWS}; got {self.target_view!r}")
        if not self.crops.train:
            raise ValueError("ChannelViewsCollator is for training crops; evaluation batches are never augmented")

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Crop, then draw the channels from `generator` (else the crop collator's); never from global state."""
        gen = generator if generator is not None else self.crops.generator
        if gen is None:
            raise ValueError("channel views need a torch.Generator (pass generator=; the training loop always does)")
        batch = self.crops(rows, generator=gen)
        # one seed drawn after the crops, so the crops are the ones the unaugmented collator would take
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        x, lengths = batch["input_values"], batch["lengths"]  # [B, L], [B]
        if self.target_view == "augmented":  # both views in one batched call: [2B, L]
            views, _ = augment_channel(torch.cat([x, x]), torch.cat([lengths, lengths]), self.augment, rng,
                                       self.crops.sample_rate)
            past, target = views.chunk(2)
            return {"input_values": past, "lengths": lengths, "target_values": target}
        past, _ = augment_channel(x, lengths, self.augment, rng, self.crops.sample_rate)
        if self.target_view == "clean":
            return {"input_values": past, "lengths": lengths, "target_values": x}
        return {"input_values": past, "lengths": lengths}
