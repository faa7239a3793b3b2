"""Artificial-label objectives: sharpening (MixMatch), FixMatch's confidence-masked pseudo-labels, UDA's
consistency and training-signal annealing, entropy minimisation, soft-label CE and self-training selection.

Targets built from the model's own predictions never carry a gradient: the teacher side is detached here,
so a caller cannot forget it. Schedules (the TSA threshold) are pure functions of the step, computed by the
caller and passed in.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

TSA_SCHEDULES = ("linear", "log", "exp")
SELECTION_MODES = ("top", "all", "weighted")


class MaskedLoss(NamedTuple):
    """A loss over a confidence-masked batch and the fraction of rows the mask kept (for logging)."""

    loss: torch.Tensor
    mask_rate: torch.Tensor


def _check_logits(name: str, x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[1] < 2:
        raise ValueError(f"{name} must be [B, C] with C >= 2 classes; got {tuple(x.shape)}")


def _check_same(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    _check_logits(name_a, a)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape [B, C]; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """MixMatch's Sharpen(p, T)_c = p_c^(1/T) / sum_k p_k^(1/T) over the last dim of probs [..., C]."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    # In log space: p^(1/T) overflows/underflows for small T; softmax(log p / T) is the same ratio, stable.
    return torch.softmax(torch.log(probs) / temperature, dim=-1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean_i w_i * (-sum_c t_ic log softmax(logits_i)_c) for logits [B, C], targets [B, C], weights [B] (default 1).

    Targets and weights are constants (detached): they are labels, however they were made.
    """
    _check_same("logits", logits, "targets", targets)
    ce = -(targets.detach() * F.log_softmax(logits, dim=-1)).sum(-1)  # [B]
    if weights is not None:
        if weights.shape != ce.shape:
            raise ValueError(f"weights must be [B] = [{ce.shape[0]}]; got {tuple(weights.shape)}")
        ce = ce * weights.detach()
    return ce.mean()


def fixmatch_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor,
                  threshold: float | torch.Tensor = 0.95) -> MaskedLoss:
    """FixMatch's unlabeled loss: (1/μB) sum_b 1[max q_b >= τ] CE(argmax q_b, strong_logits_b), q_b = softmax(weak_b).

    weak_logits, strong_logits [μB, C]. The pseudo-label and mask come from the weak view with no gradient; the
    sum is divided by all μB unlabeled rows (not by the kept ones), as in the paper (Sohn et al. 2020, Eq. 4).
    threshold: a float τ, or per-class thresholds [C] (row b is compared with τ[argmax q_b]: FreeMatch/FlexMatch).
    Returns (loss, mask_rate = fraction of rows kept).
    """
    _check_same("weak_logits", weak_logits, "strong_logits", strong_logits)
    probs = weak_logits.detach().softmax(-1)  # [μB, C]
    confidence, pseudo = probs.max(-1)  # [μB], [μB]
    if isinstance(threshold, torch.Tensor):
        if threshold.shape != probs.shape[-1:]:
            raise ValueError(f"a tensor threshold must be per class [C] = [{probs.shape[-1]}]; got "
                             f"{tuple(threshold.shape)}")
        row_threshold = threshold.detach().to(device=probs.device, dtype=probs.dtype)[pseudo]  # [μB]
    else:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
        row_threshold = torch.full_like(confidence, threshold)
    mask = (confidence >= row_threshold).to(strong_logits.dtype)  # [μB]
    ce = F.cross_entropy(strong_logits, pseudo, reduction="none")  # [μB]
    return MaskedLoss((ce * mask).mean(), mask.mean())


def uda_consistency_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor, temperature: float = 0.4,
                         threshold: float = 0.8) -> MaskedLoss:
    """UDA's unlabeled loss: mean over all B of 1[max p_b > β] KL(softmax(weak_b / T) || softmax(strong_b)).

    weak_logits [B, C] (original/weakly augmented input; no gradient), strong_logits [B, C] (augmented input).
    The target is sharpened by the softmax temperature T; the confidence mask is taken on the unsharpened
    p_b = softmax(weak_b) with a strict '>' (Xie et al. 2020, Sec. 3.2 and their code). Returns (loss, mask_rate).
    """
    _check_same("weak_logits", weak_logits, "strong_logits", strong_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
    weak = weak_logits.detach()
    mask = (weak.softmax(-1).max(-1).values > threshold).to(strong_logits.dtype)  # [B]
    target_logp = F.log_softmax(weak / temperature, dim=-1)  # [B, C]
    kl = (target_logp.exp() * (target_logp - F.log_softmax(strong_logits, dim=-1))).sum(-1)  # [B]
    return MaskedLoss((kl * mask).mean(), mask.mean())


def tsa_threshold(step: float, total_steps: float, num_classes: int, schedule: str = "linear") -> float:
    """UDA's training-signal-annealing threshold η_t = α_t (1 - 1/K) + 1/K, t = step / total_steps in [0, 1].

    α_t = t (linear), 1 - exp(-5 t) (log: releases signal early), exp(5 (t - 1)) (exp: releases it late).
    """
    if schedule not in TSA_SCHEDULES:
        raise ValueError(f"schedule must be one of {TSA_SCHEDULES}; got {schedule!r}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0; got {total_steps}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    t = min(max(float(step) / float(total_steps), 0.0), 1.0)
    alpha = {"linear": t, "log": 1.0 - math.exp(-5.0 * t), "exp": math.exp(5.0 * (t - 1.0))}[schedule]
    return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


def tsa_mask(logits: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """Bool [B]: keep labeled row b unless the model's probability of its true class exceeds η (UDA's TSA)."""
    _check_logits("logits", logits)
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must be [B] = [{logits.shape[0]}]; got {tuple(labels.shape)}")
    correct = logits.detach().softmax(-1).gather(1, labels[:, None].long()).squeeze(1)  # [B]
    return correct <= threshold


def tsa_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, threshold: float) -> MaskedLoss:
    """Labeled CE with TSA: sum over kept rows / max(#kept, 1), as UDA's code averages (logits [B, C], labels [B]).

    Rows the model already fits above η_t are dropped so a few labels are not memorised early. Returns
    (loss, kept fraction).
    """
    keep = tsa_mask(logits, labels, threshold).to(logits.dtype)  # [B]
    ce = F.cross_entropy(logits, labels.long(), reduction="none")  # [B]
    return MaskedLoss((ce * keep).sum() / keep.sum().clamp_min(1.0), keep.mean())


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Entropy minimisation (Grandvalet & Bengio 2005): mean over B of H(softmax(logits_b)), logits [B, C]. Scalar."""
    _check_logits("logits", logits)
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


def select_pseudo_labels(probs: torch.Tensor, mode: str = "top", *, fraction: float | None = None,
                         threshold: float | None = None, soft: bool = False,
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which unlabeled rows a self-training round adds, as (indices [M], targets, weights [M]).

    probs [N, C]: the teacher's predictions on the unlabeled pool. mode:
      "top": only the most confident rows — the `fraction` of N with the highest max-probability
             (ceil(fraction * N), at least 1, ties to the lower index), or every row with max-probability >= `threshold`;
             exactly one of the two. Weights are 1.
      "all": every row, weight 1.
      "weighted": every row, weighted by its confidence max_c p_c.
    targets are hard argmax labels [M] (long), or the rows of probs [M, C] with soft=True (Noisy Student's soft
    pseudo-labels). indices are sorted ascending. Nothing carries a gradient.
    """
    _check_logits("probs", probs)
    if mode not in SELECTION_MODES:
        raise ValueError(f"mode must be one of {SELECTION_MODES}; got {mode!r}")
    probs = probs.detach()
    n = probs.shape[0]
    confidence = probs.max(-1).values  # [N]
    if mode == "top":
        if (fraction is None) == (threshold is None):
            raise ValueError("mode='top' needs exactly one of fraction or threshold")
        if fraction is not None:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
            k = min(n, max(1, math.ceil(fraction * n - 1e-9)))  # 1e-9: 0.3 * 10 is 3.0000000000000004
            order = torch.sort(confidence, descending=True, stable=True).indices
            indices = order[:k].sort().values
        else:
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
            indices = torch.nonzero(confidence >= threshold).squeeze(1)
    else:
        if fraction is not None or threshold is not None:
            raise ValueError(f"fraction/threshold apply only to mode='top', not {mode!r}")
        indices = torch.arange(n, device=probs.device)
    targets = probs[indices] if soft else probs[indices].argmax(-1)
    weights = confidence[indices] if mode == "weighted" else torch.ones(indices.shape[0], dtype=probs.dtype,
                                                                        device=probs.device)
    return indices, targets, weights
