"""Batching dataset rows with an audio column into padded waveforms + lengths for raw-waveform models."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from multissl.modalities.audio.crops import pad_batch, random_crop_batch
from multissl.modalities.audio.io import decode_audio


@dataclass
class AudioCollator:
    """rows -> {"input_values": [B, L] float32, "lengths": [B] long} at `sample_rate`.

    train=True: a random `crop_samples` window of every clip (shorter clips zero-padded).
    train=False: whole clips (the first `max_samples` when set), zero-padded to the longest.
    Every batch is at least `min_samples` wide (the encoder's receptive field), so a clip shorter
    than that still yields one frame: it is zero-padded and its length marks the real samples.
    """

    sample_rate: int = 16000
    crop_samples: int = 16000
    min_samples: int = 1
    train: bool = True
    max_samples: int | None = None
    audio_column: str = "audio"
    generator: torch.Generator | None = None

    def waveforms(self, rows: list[dict]) -> list[torch.Tensor]:
        """Decode every row's audio to mono [T_i] at sample_rate (errors name the row and its file)."""
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        waves = []
        for i, row in enumerate(rows):
            if self.audio_column not in row:
                raise KeyError(f"row {i}: no {self.audio_column!r} column; columns are {sorted(row)}")
            source = f"row {i}" + (f" ({row['file']})" if "file" in row else "")
            waves.append(decode_audio(row[self.audio_column], self.sample_rate, source=source))
        return waves

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Collate rows into the model's inputs (see class doc); `generator` (else self.generator) draws the crops."""
        waves = self.waveforms(rows)
        if self.train:
            gen = generator if generator is not None else self.generator
            batch, lengths = random_crop_batch(waves, max(self.crop_samples, self.min_samples), gen)
        else:
            if self.max_samples is not None:
                waves = [w[: self.max_samples] for w in waves]
            batch, lengths = pad_batch(waves, min_length=self.min_samples)
        return {"input_values": batch, "lengths": lengths}
