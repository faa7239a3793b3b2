"""CPC's K-step InfoNCE (van den Oord et al., 2018), every step and position scored at once.

For context c_t and future frame z_{t+k} the score is s_k = z_{t+k}^T W_k c_t; the caller passes
the predictions p_{t,k} = W_k c_t. Each (b, t, k) is an InfoNCE row: the positive z_{b,t+k}
against N negatives drawn once per (b, t) and shared by the K steps (as in CPC_audio):
"sequence" draws them from the valid frames of the same utterance, "batch" from the valid frames
of the whole batch. A row is counted only when t + k is a real (unpadded) frame. This is
`info_nce(p, z_pos, z_neg, temperature=1, normalize=False)` on those rows, averaged per step and
then over the steps (tests check both the formula and that equivalence).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

NEGATIVE_MODES = ("batch", "sequence")


class CPCLoss(NamedTuple):
    """loss: scalar; step_loss/step_accuracy: [K] (NaN for a step with no valid row)."""

    loss: torch.Tensor
    step_loss: torch.Tensor
    step_accuracy: torch.Tensor


def sample_negative_indices(
    frame_lengths: torch.Tensor, num_frames: int, num_negatives: int, mode: str = "batch",
    noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flat indices into the [B*T] frames for N negatives per (b, t): [B, T, N], only valid frames are drawn.

    `noise` ([B, T, N], uniform in [0, 1)) makes the draw explicit; otherwise it comes from `generator`.
    """
    if mode not in NEGATIVE_MODES:
        raise ValueError(f"negatives must be one of {NEGATIVE_MODES}; got {mode!r}")
    B, T, N = frame_lengths.shape[0], num_frames, num_negatives
    device = frame_lengths.device
    if noise is None:
        noise = torch.rand(B, T, N, generator=generator, device=generator.device if generator else device).to(device)
    if noise.shape != (B, T, N):
        raise ValueError(f"negative noise must have shape {(B, T, N)}; got {tuple(noise.shape)}")
    lengths = frame_lengths.clamp(min=1, max=T)  # [B]
    if mode == "sequence":
        # uniform over the b-th utterance's own valid frames
        t_neg = (noise * lengths[:, None, None]).long().clamp(max=T - 1)  # [B, T, N]
        t_neg = torch.minimum(t_neg, lengths[:, None, None] - 1)
        return torch.arange(B, device=device)[:, None, None] * T + t_neg
    valid = (torch.arange(T, device=device)[None, :] < lengths[:, None]).flatten().nonzero().squeeze(1)  # [V]
    pick = (noise * valid.numel()).long().clamp(max=valid.numel() - 1)  # [B, T, N] uniform over valid frames
    return valid[pick]


def cpc_loss(
    predictions: torch.Tensor, z: torch.Tensor, frame_lengths: torch.Tensor, num_negatives: int = 16,
    negatives: str = "batch", noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
) -> CPCLoss:
    """K-step InfoNCE: predictions [B, T, K, D] (W_k c_t), encodings z [B, T, D], frame_lengths [B] -> CPCLoss."""
    B, T, K, D = predictions.shape
    if z.shape != (B, T, D):
        raise ValueError(f"z must be [B, T, D] = {(B, T, D)} to match predictions {tuple(predictions.shape)}; got {tuple(z.shape)}")
    steps = torch.arange(1, K + 1, device=z.device)  # [K]
    target_t = torch.arange(T, device=z.device)[:, None] + steps[None, :]  # [T, K]
    valid = target_t[None] < frame_lengths.clamp(max=T)[:, None, None]  # [B, T, K]
    # index_select, not fancy indexing: its backward is an index_add, several times faster than index_put on CPU
    positives = z.index_select(1, target_t.clamp(max=T - 1).flatten()).view(B, T, K, D)  # clamped rows are masked below
    neg_index = sample_negative_indices(frame_lengths, T, num_negatives, negatives, noise, generator)  # [B, T, N]
    negs = z.reshape(B * T, D).index_select(0, neg_index.flatten()).view(B, T, num_negatives, D)  # [B, T, N, D]
    pos_score = (predictions * positives).sum(-1, keepdim=True)  # [B, T, K, 1]
    neg_score = torch.matmul(predictions, negs.transpose(-1, -2))  # [B, T, K, D] @ [B, T, D, N] -> [B, T, K, N]
    logits = torch.cat([pos_score, neg_score], dim=-1)  # [B, T, K, 1+N]; class 0 is the positive
    row_loss = torch.logsumexp(logits, dim=-1) - logits[..., 0]  # [B, T, K] cross-entropy with target 0
    correct = (logits.argmax(-1) == 0).to(z.dtype)  # [B, T, K]
    w = valid.to(z.dtype)
    count = w.sum((0, 1))  # [K]
    step_loss = (row_loss * w).sum((0, 1)) / count  # [K]; NaN where count == 0
    step_accuracy = (correct * w).sum((0, 1)) / count  # [K]
    has_rows = count > 0
    if not bool(has_rows.any()):
        raise ValueError(f"no valid CPC rows: every utterance has <= 1 frame (frame_lengths={frame_lengths.tolist()})")
    loss = step_loss[has_rows].mean()
    return CPCLoss(loss, step_loss.detach(), step_accuracy.detach())
