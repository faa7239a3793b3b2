"""Fixed-window random crops and padded batching of variable-length waveforms, with lengths."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def conv_output_length(lengths: torch.Tensor, kernels: Sequence[int], strides: Sequence[int]) -> torch.Tensor:
    """Frames produced by unpadded 1-D convs from `lengths` samples [B] -> [B] (may be <= 0 when too short)."""
    out = lengths.clone()
    for k, s in zip(kernels, strides):
        out = torch.div(out - k, s, rounding_mode="floor") + 1
    return out


def receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples that one output frame of a stack of unpadded convs sees (465 for CPC's (10,8,4,4,4)/(5,4,2,2,2))."""
    field, jump = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * jump
        jump *= s
    return field


def pad_batch(waves: Sequence[torch.Tensor], min_length: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [T_i] waveforms with zeros to [B, max(max T_i, min_length)]; returns (batch, lengths [B])."""
    lengths = torch.tensor([w.shape[0] for w in waves], dtype=torch.long)
    width = max(int(lengths.max()), min_length)
    batch = torch.zeros(len(waves), width, dtype=torch.float32)
    for i, w in enumerate(waves):  # one copy per clip: clips have different lengths, nothing to vectorise
        batch[i, : w.shape[0]] = w
    return batch, lengths


def random_crop_batch(
    waves: Sequence[torch.Tensor], window: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop a random `window`-sample span of each [T_i] clip -> ([B, window], lengths [B]).

    Clips shorter than the window are kept whole, left-aligned and zero-padded; their length says
    how many samples are real so the model can mask the padded frames.
    """
    if window <= 0:
        raise ValueError(f"crop window must be positive; got {window}")
    lengths = torch.tensor([w.shape[0] for w in waves], dtype=torch.long)
    slack = (lengths - window).clamp(min=0)  # [B] how far each crop may start
    starts = (torch.rand(len(waves), generator=generator) * (slack + 1)).long().clamp(max=slack)  # [B] uniform
    crops = [w[s: s + window] for w, s in zip(waves, starts.tolist())]
    batch, crop_lengths = pad_batch(crops, min_length=window)
    return batch, crop_lengths


def frame_mask(frame_lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Boolean [B, T] mask, True on the first frame_lengths[b] frames of each row."""
    return torch.arange(num_frames, device=frame_lengths.device)[None, :] < frame_lengths[:, None]
