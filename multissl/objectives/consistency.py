"""Consistency regularisation: Π-model, Temporal Ensembling (Laine & Aila 2017) and Mean Teacher (Tarvainen & Valpola 2017).

All three penalise disagreement between a student prediction and a target prediction of the same
unlabeled input under different noise; they differ only in where the target comes from (a second
noisy pass, an EMA of past predictions, an EMA of the weights). The loss, the ramp-up of its weight
and the temporal-ensemble update are pure functions here; the ensemble tensors and the EMA teacher
are model-side state.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONSISTENCY_KINDS = ("mse", "kl")


def sigmoid_rampup(step: float, rampup_steps: float) -> float:
    """Laine & Aila's ramp-up weight exp(-5 (1 - t)^2), t = clip(step / rampup_steps, 0, 1); 1.0 when rampup_steps == 0.

    Multiply the unsupervised weight by it: it rises from exp(-5) ~ 0.0067 at step 0 to 1 at rampup_steps, so the
    consistency term barely acts while the network's predictions are still noise.
    """
    if rampup_steps < 0:
        raise ValueError(f"rampup_steps must be >= 0; got {rampup_steps}")
    if rampup_steps == 0:
        return 1.0
    t = min(max(float(step) / float(rampup_steps), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def _check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must both be [B, C] with the same shape; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


def consistency_loss(student_logits: torch.Tensor, target_logits: torch.Tensor, kind: str = "mse",
                     detach_target: bool = True) -> torch.Tensor:
    """Consistency between softmax(student_logits) and softmax(target_logits), both [B, C]. Scalar.

    kind="mse": mean over B and C of (p_s - p_t)^2, i.e. 1/(C|B|) sum_i ||p_s,i - p_t,i||^2 (Laine & Aila Eq. in
    Alg. 1; Mean Teacher's squared-error consistency). kind="kl": mean over B of KL(p_t || p_s).
    detach_target=True stops the gradient into the target (Mean Teacher, and Temporal Ensembling whose target is a
    constant); the Π-model of Laine & Aila differentiates both passes: pass detach_target=False there.
    """
    _check_pair("student_logits", student_logits, "target_logits", target_logits)
    return probs_consistency_loss(student_logits, target_logits.softmax(-1), kind=kind, detach_target=detach_target)


def probs_consistency_loss(student_logits: torch.Tensor, target_probs: torch.Tensor, kind: str = "mse",
                           detach_target: bool = True) -> torch.Tensor:
    """Like consistency_loss but the target is already a distribution [B, C] (e.g. a temporal-ensemble row). Scalar."""
    if kind not in CONSISTENCY_KINDS:
        raise ValueError(f"kind must be one of {CONSISTENCY_KINDS}; got {kind!r}")
    _check_pair("student_logits", student_logits, "target_probs", target_probs)
    if detach_target:
        target_probs = target_probs.detach()
    if kind == "mse":
        return F.mse_loss(student_logits.softmax(-1), target_probs, reduction="mean")
    # KL(p_t || p_s) = sum_c p_t (log p_t - log p_s); xlogy makes 0 log 0 = 0 for one-hot-like targets.
    kl = torch.xlogy(target_probs, target_probs) - target_probs * F.log_softmax(student_logits, dim=-1)  # [B, C]
    return kl.sum(-1).mean()


def _check_ensemble(ensemble: torch.Tensor, counts: torch.Tensor, indices: torch.Tensor) -> None:
    if ensemble.dim() != 2:
        raise ValueError(f"ensemble must be [N, C]; got {tuple(ensemble.shape)}")
    if counts.shape != ensemble.shape[:1]:
        raise ValueError(f"counts must be [N] = [{ensemble.shape[0]}]; got {tuple(counts.shape)}")
    if indices.dim() != 1 or indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"indices must be an integer tensor [B]; got {indices.dtype} {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= ensemble.shape[0]):
        raise ValueError(f"indices must lie in [0, {ensemble.shape[0]}); got min {int(indices.min())}, "
                         f"max {int(indices.max())}")


def temporal_ensemble_update(ensemble: torch.Tensor, counts: torch.Tensor, indices: torch.Tensor,
                             predictions: torch.Tensor, alpha: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal Ensembling's accumulation for the rows `indices` [B]: Z <- alpha Z + (1 - alpha) z. Pure.

    ensemble Z [N, C] (zeros at start), counts [N] (how many times each row was accumulated), predictions z [B, C]
    (the network's softmax outputs for those rows; no gradient is kept). Returns new (ensemble, counts); untouched
    rows are copied (N * C values per step: cheap next to a forward pass, and it keeps the update pure). Each row
    must appear at most once in `indices` (the order of two updates would be ambiguous).
    """
    _check_ensemble(ensemble, counts, indices)
    if predictions.shape != (indices.shape[0], ensemble.shape[1]):
        raise ValueError(f"predictions must be [B, C] = [{indices.shape[0]}, {ensemble.shape[1]}]; got "
                         f"{tuple(predictions.shape)}")
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1); got {alpha}")
    if torch.unique(indices).numel() != indices.numel():
        raise ValueError("indices must not repeat a row within one update")
    z = predictions.detach().to(ensemble.dtype)  # [B, C]
    old = ensemble.detach()
    new_ensemble = old.clone()
    new_ensemble[indices] = alpha * old[indices] + (1.0 - alpha) * z
    new_counts = counts.clone()
    new_counts[indices] += 1
    return new_ensemble, new_counts


def temporal_ensemble_targets(ensemble: torch.Tensor, counts: torch.Tensor, indices: torch.Tensor,
                              alpha: float = 0.6) -> torch.Tensor:
    """Bias-corrected targets z~ = Z / (1 - alpha^t) for the rows `indices` [B] -> [B, C], t = counts[row].

    Z starts at zero, so after t updates it is (1 - alpha^t) times a weighted average of the predictions; the
    division undoes that start-up shrinkage (Laine & Aila Alg. 2). Rows never updated (t = 0) give a zero target,
    as in the paper, where the ramp-up weight is ~0 during the first epoch anyway.
    """
    _check_ensemble(ensemble, counts, indices)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1); got {alpha}")
    t = counts[indices].to(ensemble.dtype)  # [B]
    scale = 1.0 - torch.pow(torch.full_like(t, alpha), t)  # [B]; 0 where t == 0
    rows = ensemble[indices].detach()  # [B, C]
    return torch.where(t[:, None] > 0, rows / scale.clamp_min(torch.finfo(rows.dtype).tiny)[:, None],
                       torch.zeros_like(rows))
