"""Hand-crafted audio features for baselines and probes: MFCC and log-mel (torchaudio), pooled per utterance."""
from __future__ import annotations

import torch
import torchaudio

from multissl.modalities.audio.crops import frame_mask


def _frames(lengths: torch.Tensor, hop: int) -> torch.Tensor:
    """Frames torchaudio's centred STFT yields for `lengths` samples [B] -> [B]."""
    return torch.div(lengths, hop, rounding_mode="floor") + 1


def log_mel(
    waves: torch.Tensor, lengths: torch.Tensor, sample_rate: int = 16000, n_mels: int = 40,
    win_ms: float = 25.0, hop_ms: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel spectrogram of [B, L] waveforms -> (features [B, T, n_mels], frame_lengths [B]); 25 ms / 10 ms frames."""
    win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=win, win_length=win, hop_length=hop, n_mels=n_mels
    ).to(waves.device)
    spec = mel(waves)  # [B, n_mels, T]
    return torch.log(spec + 1e-6).transpose(1, 2), _frames(lengths, hop)  # log(0 + eps) keeps silence finite


def mfcc(
    waves: torch.Tensor, lengths: torch.Tensor, sample_rate: int = 16000, n_mfcc: int = 13, n_mels: int = 40,
    win_ms: float = 25.0, hop_ms: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MFCCs of [B, L] waveforms -> (features [B, T, n_mfcc], frame_lengths [B]); 25 ms / 10 ms frames."""
    win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
    transform = torchaudio.transforms.MFCC(
        sample_rate=sample_rate, n_mfcc=n_mfcc,
        melkwargs={"n_fft": win, "win_length": win, "hop_length": hop, "n_mels": n_mels},
    ).to(waves.device)
    return transform(waves).transpose(1, 2), _frames(lengths, hop)  # [B, T, n_mfcc]


def masked_mean(features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
    """Mean of [B, T, F] over the first frame_lengths[b] frames of each row -> [B, F]."""
    mask = frame_mask(frame_lengths.clamp(min=1, max=features.shape[1]), features.shape[1])  # [B, T]
    weights = mask.to(features.dtype).unsqueeze(-1)  # [B, T, 1]
    return (features * weights).sum(1) / weights.sum(1)


def pooled_mfcc(waves: torch.Tensor, lengths: torch.Tensor, sample_rate: int = 16000, n_mfcc: int = 13) -> torch.Tensor:
    """Utterance-level MFCC features: the mean over valid frames, [B, L] -> [B, n_mfcc] (the CPC paper's baseline)."""
    feats, frames = mfcc(waves, lengths, sample_rate=sample_rate, n_mfcc=n_mfcc)
    return masked_mean(feats, frames)


class PooledMFCC(torch.nn.Module):
    """A parameter-free 'model' whose embed(input_values [B, L], lengths [B]) -> [B, n_mfcc] is the MFCC baseline."""

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 13):
        super().__init__()
        self.sample_rate, self.n_mfcc = sample_rate, n_mfcc

    def embed(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Mean MFCC vector of each utterance's valid frames: [B, L] -> [B, n_mfcc]."""
        if lengths is None:
            lengths = torch.full((input_values.shape[0],), input_values.shape[1], device=input_values.device)
        return pooled_mfcc(input_values, lengths, self.sample_rate, self.n_mfcc)
