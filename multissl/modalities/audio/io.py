"""Reading audio into mono float waveforms at the model's sampling rate (soundfile + torchaudio, no FFmpeg).

Accepted inputs (`decode_audio`): a path to a WAV/FLAC/OGG file; a `datasets` audio dict
({"array", "sampling_rate"} or, with `Audio(decode=False)`, {"path", "bytes"}); a torchcodec
AudioDecoder (what `datasets` 4+ yields when torchcodec is installed); a 1-D/2-D array.
Stereo is mixed down to mono (mean of channels); other rates are resampled; silence is kept as is.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF


def resample(wave: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Resample [..., T] from orig_sr to target_sr (band-limited sinc, torchaudio); a no-op when equal."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sampling rates must be positive; got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return wave
    return AF.resample(wave, int(orig_sr), int(target_sr))


def to_mono(wave: torch.Tensor, channels_first: bool = True) -> torch.Tensor:
    """Mix [C, T] (or [T, C] with channels_first=False) down to [T] by averaging channels; [T] passes through."""
    if wave.ndim == 1:
        return wave
    if wave.ndim != 2:
        raise ValueError(f"expected a [T] or [C, T] waveform; got shape {tuple(wave.shape)}")
    return wave.mean(dim=0 if channels_first else 1)


def load_audio(path: str | os.PathLike | io.BytesIO, target_sr: int | None = None) -> tuple[torch.Tensor, int]:
    """Read an audio file (WAV/FLAC/OGG via libsndfile) as a mono float32 [T] waveform, resampled to target_sr."""
    import soundfile as sf

    name = getattr(path, "name", None) or str(path)
    if isinstance(path, (str, os.PathLike)) and not Path(path).is_file():
        raise FileNotFoundError(f"{name}: no such audio file")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # [T, C]
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"{name}: not a readable audio file (expected WAV/FLAC/OGG that libsndfile can decode): {err}") from err
    wave = to_mono(torch.from_numpy(data), channels_first=False)  # [T]
    return check_waveform(resample(wave, sr, target_sr or sr), name), int(target_sr or sr)


def check_waveform(wave: torch.Tensor, source: str = "waveform") -> torch.Tensor:
    """Reject empty or non-finite [T] waveforms with an error naming `source`; returns float32 [T]."""
    if wave.ndim != 1:
        raise ValueError(f"{source}: expected a mono [T] waveform; got shape {tuple(wave.shape)}")
    if wave.numel() == 0:
        raise ValueError(f"{source}: empty audio (0 samples)")
    if not torch.isfinite(wave).all():
        raise ValueError(f"{source}: audio contains NaN or inf samples")
    return wave.float()


def _array_to_mono(array: Any, source: str) -> torch.Tensor:
    """[T], [C, T] or [T, C] array-like -> [T]; the shorter axis of a 2-D array is taken as channels."""
    wave = torch.as_tensor(np.asarray(array, dtype=np.float32))
    if wave.ndim == 2:
        wave = to_mono(wave, channels_first=wave.shape[0] <= wave.shape[1])
    if wave.ndim != 1:
        raise ValueError(f"{source}: expected a [T] or [C, T] array; got shape {tuple(wave.shape)}")
    return wave


def decode_audio(value: Any, target_sr: int, source: str = "audio") -> torch.Tensor:
    """Turn one dataset audio value (see module doc) into a mono float32 [T] waveform at target_sr."""
    if isinstance(value, (str, os.PathLike)):
        return load_audio(value, target_sr)[0]
    if isinstance(value, dict):
        if value.get("array") is not None:
            sr = value.get("sampling_rate")
            if sr is None:
                raise ValueError(f"{source}: audio dict has 'array' but no 'sampling_rate'")
            wave = _array_to_mono(value["array"], source)
            return check_waveform(resample(wave, int(sr), target_sr), source)
        if value.get("bytes") is not None:
            buf = io.BytesIO(value["bytes"])
            buf.name = value.get("path") or source
            return load_audio(buf, target_sr)[0]
        if value.get("path"):
            return load_audio(value["path"], target_sr)[0]
        raise ValueError(f"{source}: audio dict needs 'array'+'sampling_rate', 'bytes' or 'path'; got keys {sorted(value)}")
    if hasattr(value, "get_all_samples"):  # torchcodec AudioDecoder from datasets' Audio feature
        samples = value.get_all_samples()
        wave = to_mono(samples.data)  # [C, T] -> [T]
        return check_waveform(resample(wave, int(samples.sample_rate), target_sr), source)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{source}: a bare array has no sampling rate; pass {{'array': ..., 'sampling_rate': ...}}")
    raise TypeError(f"{source}: cannot read audio from a {type(value).__name__}")
