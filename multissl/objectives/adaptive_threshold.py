"""FreeMatch's self-adaptive thresholds (Wang et al. 2023, Sec. 3.2) as pure state updates and a mask.

Why FreeMatch rather than FlexMatch's curriculum pseudo-labelling: FreeMatch's state is two small tensors
(a global confidence EMA τ_t and a class-marginal EMA p~_t [C]) updated from the current batch only, so it is
a pure function of (state, batch) with nothing tied to the dataset. FlexMatch needs a per-example memory
[N_unlabeled] of the last confident prediction, addressed by dataset index, and a warm-up rule that counts
the still-unused examples: more state, and the model would have to carry unlabeled indices in every batch.

    τ_0 = 1/C,  p~_0(c) = 1/C
    τ_t = λ τ_{t-1} + (1 - λ) mean_b max_c q_b(c)
    p~_t(c) = λ p~_{t-1}(c) + (1 - λ) mean_b q_b(c)
    τ_t(c) = MaxNorm(p~_t)(c) · τ_t = p~_t(c) / max_c' p~_t(c') · τ_t
    mask_b = 1[max_c q_b(c) >= τ_t(argmax_c q_b)]

q_b are the weak-view predictions on the unlabeled batch (no gradient). The paper updates with the current
batch before masking it; freematch_step does both in that order.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from multissl.objectives.distributed import gather_no_grad


class FreeMatchState(NamedTuple):
    """global_threshold τ_t: scalar tensor []; class_marginal p~_t: [C]. Save both with the model's state."""

    global_threshold: torch.Tensor
    class_marginal: torch.Tensor


def freematch_init_state(num_classes: int, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> FreeMatchState:
    """τ_0 = 1/C and p~_0 = uniform 1/C, as in the paper (a threshold that starts low and rises with confidence)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    return FreeMatchState(torch.tensor(1.0 / num_classes, dtype=dtype, device=device),
                          torch.full((num_classes,), 1.0 / num_classes, dtype=dtype, device=device))


def _check(state: FreeMatchState, probs: torch.Tensor) -> None:
    c = state.class_marginal.shape[0] if state.class_marginal.dim() == 1 else -1
    if state.global_threshold.dim() != 0 or state.class_marginal.dim() != 1:
        raise ValueError(f"state must hold a scalar global_threshold and a [C] class_marginal; got shapes "
                         f"{tuple(state.global_threshold.shape)} and {tuple(state.class_marginal.shape)}")
    if probs.dim() != 2 or probs.shape[1] != c:
        raise ValueError(f"probs must be [B, C] with C = {c}; got {tuple(probs.shape)}")


def freematch_update(state: FreeMatchState, probs: torch.Tensor, momentum: float = 0.999,
                     gather_distributed: bool = False) -> FreeMatchState:
    """New state from the weak-view probabilities probs [B, C] of this step's unlabeled batch. Pure; no gradient.

    gather_distributed=True averages over every process's batch, so all ranks keep the same thresholds.
    """
    _check(state, probs)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1]; got {momentum}")
    probs = probs.detach()
    if gather_distributed:
        probs = gather_no_grad(probs)  # [world * B, C]
    probs = probs.to(state.class_marginal.dtype)
    tau = momentum * state.global_threshold + (1.0 - momentum) * probs.max(-1).values.mean()
    marginal = momentum * state.class_marginal + (1.0 - momentum) * probs.mean(0)
    return FreeMatchState(tau.detach(), marginal.detach())


def freematch_class_thresholds(state: FreeMatchState) -> torch.Tensor:
    """τ_t(c) = p~_t(c) / max_c' p~_t(c') · τ_t, [C]: classes the model predicts less often get a lower bar."""
    return state.class_marginal / state.class_marginal.max() * state.global_threshold


def freematch_mask(state: FreeMatchState, probs: torch.Tensor) -> torch.Tensor:
    """Bool [B]: max_c q_b(c) >= τ_t(argmax_c q_b) for probs q [B, C]."""
    _check(state, probs)
    confidence, pseudo = probs.detach().max(-1)  # [B], [B]
    thresholds = freematch_class_thresholds(state).to(device=confidence.device, dtype=confidence.dtype)  # [C]
    return confidence >= thresholds[pseudo]


def freematch_step(state: FreeMatchState, weak_logits: torch.Tensor, momentum: float = 0.999,
                   gather_distributed: bool = False) -> tuple[torch.Tensor, FreeMatchState]:
    """The paper's order: update the state with softmax(weak_logits) [B, C], then mask that batch. (mask [B], state).

    The per-class thresholds can go straight to fixmatch_loss(weak, strong, threshold=freematch_class_thresholds(s)).
    """
    probs = weak_logits.detach().softmax(-1)
    new_state = freematch_update(state, probs, momentum, gather_distributed)
    return freematch_mask(new_state, probs), new_state
