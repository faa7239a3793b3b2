"""MixMatch's mixup and loss (Berthelot et al. 2019) and ReMixMatch's distribution alignment (Berthelot et al. 2020).

Randomness (λ ~ Beta(α, α) and the shuffle) comes from an injected torch.Generator, or is passed in
explicitly, so a step can be replayed. The running average of predictions that distribution alignment
needs is state the model owns; here it is updated by a pure function.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from multissl.objectives.pseudo_label import soft_cross_entropy


def sample_gamma(concentration: float, shape: tuple[int, ...], generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """Gamma(concentration, 1) samples of `shape` drawn only from `generator` (Marsaglia & Tsang 2000).

    torch.distributions cannot take a generator, so this is the textbook squeeze-rejection sampler, vectorised:
    every round redraws only the rejected entries (acceptance > 95%, so a handful of rounds). Concentration < 1
    uses Gamma(a) = Gamma(a + 1) * U^(1/a).
    """
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0; got {concentration}")
    a = concentration + 1.0 if concentration < 1.0 else concentration
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    # Work in float64: the acceptance test compares logs of values close to each other.
    out = torch.empty(shape, dtype=torch.float64, device=device)
    todo = torch.ones(shape, dtype=torch.bool, device=device)
    while bool(todo.any()):  # rounds of rejection, not a loop over samples
        x = torch.randn(shape, generator=generator, dtype=torch.float64, device=device)
        u = torch.rand(shape, generator=generator, dtype=torch.float64, device=device)
        v = (1.0 + c * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x**2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = todo & ok
        out = torch.where(take, d * v, out)
        todo = todo & ~ok
    if concentration < 1.0:
        u = torch.rand(shape, generator=generator, dtype=torch.float64, device=device)
        out = out * u.pow(1.0 / concentration)
    return out.to(dtype)


def sample_beta(alpha: float, beta: float, shape: tuple[int, ...], generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """Beta(alpha, beta) samples of `shape` from `generator`: X / (X + Y), X ~ Gamma(alpha), Y ~ Gamma(beta)."""
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"alpha and beta must be > 0; got {alpha} and {beta}")
    x = sample_gamma(alpha, shape, generator, torch.float64, device)
    y = sample_gamma(beta, shape, generator, torch.float64, device)
    return (x / (x + y)).to(dtype)


class Mixed(NamedTuple):
    """MixMatch's mixed batch: inputs [N, ...], targets [N, C], the λ' [N] used and the partner index [N]."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lam: torch.Tensor
    partner: torch.Tensor


def mixmatch_mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.75,
                   generator: torch.Generator | None = None, lam: torch.Tensor | None = None,
                   permutation: torch.Tensor | None = None) -> Mixed:
    """MixMatch's MixUp over the concatenation W = [labeled X̂; unlabeled Û] (inputs [N, ...], targets [N, C]).

    Row i is mixed with partner π(i) of a random permutation π of all N rows (the paper's Shuffle(Concat(X̂, Û))):
    x'_i = λ'_i x_i + (1 - λ'_i) x_π(i), p'_i = λ'_i p_i + (1 - λ'_i) p_π(i), with λ'_i = max(λ_i, 1 - λ_i) and
    λ_i ~ Beta(α, α) per row (as the authors' code draws it). λ' >= 0.5 keeps every mixed row closer to its own
    row, so the first B rows stay "labeled" and the rest "unlabeled" for the two loss terms. `lam` [N] and
    `permutation` [N] may be given explicitly instead of drawn from `generator`. Targets are detached.
    """
    if inputs.dim() < 2:
        raise ValueError(f"inputs must be [N, ...] with at least one feature dim; got {tuple(inputs.shape)}")
    n = inputs.shape[0]
    if targets.dim() != 2 or targets.shape[0] != n:
        raise ValueError(f"targets must be [N, C] with N = {n}; got {tuple(targets.shape)}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0; got {alpha}")
    draw_device = inputs.device if generator is None else generator.device  # draws live where the generator does
    if lam is None:
        lam = sample_beta(alpha, alpha, (n,), generator, inputs.dtype if inputs.is_floating_point() else
                          torch.float32, draw_device).to(inputs.device)
    elif lam.shape != (n,) or bool(((lam < 0) | (lam > 1)).any()):
        raise ValueError(f"lam must be [N] = [{n}] with values in [0, 1]; got shape {tuple(lam.shape)}")
    if permutation is None:
        permutation = torch.randperm(n, generator=generator, device=draw_device).to(inputs.device)
    elif permutation.shape != (n,) or not torch.equal(permutation.sort().values.cpu(), torch.arange(n)):
        raise ValueError(f"permutation must be [N] = [{n}] holding each of 0..{n - 1} once; got shape "
                         f"{tuple(permutation.shape)}")
    lam = torch.maximum(lam, 1.0 - lam)  # [N]
    lam_x = lam.reshape(n, *([1] * (inputs.dim() - 1))).to(inputs.dtype)  # broadcast over feature dims
    lam_p = lam[:, None].to(targets.dtype)  # [N, 1]
    mixed_inputs = lam_x * inputs + (1.0 - lam_x) * inputs[permutation]
    t = targets.detach()
    mixed_targets = lam_p * t + (1.0 - lam_p) * t[permutation]
    return Mixed(mixed_inputs, mixed_targets, lam, permutation)


class MixMatchLoss(NamedTuple):
    """total = loss_x + λ_u loss_u, and both terms (for logging)."""

    total: torch.Tensor
    loss_x: torch.Tensor
    loss_u: torch.Tensor


def mixmatch_loss(logits_x: torch.Tensor, targets_x: torch.Tensor, logits_u: torch.Tensor, targets_u: torch.Tensor,
                  lambda_u: float) -> MixMatchLoss:
    """MixMatch's loss: L_X = mean_i H(p'_i, softmax(logits_x_i)), L_U = 1/(C|U'|) sum ||q'_j - softmax(logits_u_j)||^2.

    logits_x, targets_x [B, C] (the mixed labeled rows); logits_u, targets_u [M, C] (the mixed unlabeled rows).
    λ_u (ramped up by the caller) weighs the unlabeled term. Targets carry no gradient.
    """
    if logits_u.dim() != 2 or logits_u.shape != targets_u.shape:
        raise ValueError(f"logits_u and targets_u must both be [M, C]; got {tuple(logits_u.shape)} and "
                         f"{tuple(targets_u.shape)}")
    if logits_x.dim() != 2 or logits_x.shape[1] != logits_u.shape[1]:
        raise ValueError(f"logits_x [B, C] and logits_u [M, C] must share C; got {tuple(logits_x.shape)} and "
                         f"{tuple(logits_u.shape)}")
    loss_x = soft_cross_entropy(logits_x, targets_x)
    loss_u = F.mse_loss(logits_u.softmax(-1), targets_u.detach(), reduction="mean")
    return MixMatchLoss(loss_x + lambda_u * loss_u, loss_x, loss_u)


def distribution_alignment(probs: torch.Tensor, model_marginal: torch.Tensor,
                           target_marginal: torch.Tensor | None = None) -> torch.Tensor:
    """ReMixMatch's alignment p~ = Normalize(p * p(y) / p~(y)) over the last dim of probs [B, C]. No gradient.

    model_marginal p~(y) [C]: running average of the model's predictions on unlabeled data; target_marginal p(y)
    [C]: the class distribution of the labeled data (uniform when None). Pushes the guessed labels' marginal
    towards p(y), so the guesses cannot collapse onto a few classes.
    """
    _c = probs.shape[-1]
    if probs.dim() != 2 or model_marginal.shape != (_c,):
        raise ValueError(f"probs must be [B, C] and model_marginal [C]; got {tuple(probs.shape)} and "
                         f"{tuple(model_marginal.shape)}")
    if target_marginal is None:
        target_marginal = torch.full_like(model_marginal, 1.0 / _c)
    elif target_marginal.shape != (_c,):
        raise ValueError(f"target_marginal must be [C] = [{_c}]; got {tuple(target_marginal.shape)}")
    ratio = target_marginal / model_marginal.clamp_min(1e-12)  # [C]
    aligned = probs.detach() * ratio.to(probs.dtype)  # [B, C]
    return aligned / aligned.sum(-1, keepdim=True)


def update_marginal(model_marginal: torch.Tensor, probs: torch.Tensor, momentum: float = 0.999) -> torch.Tensor:
    """Pure EMA of the model's class marginal: m * p~(y) + (1 - m) * mean_b probs_b, model_marginal [C], probs [B, C].

    ReMixMatch averages the last 128 batches; an EMA is the constant-memory equivalent (start from uniform 1/C).
    """
    if probs.dim() != 2 or model_marginal.shape != probs.shape[-1:]:
        raise ValueError(f"probs must be [B, C] and model_marginal [C]; got {tuple(probs.shape)} and "
                         f"{tuple(model_marginal.shape)}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1]; got {momentum}")
    return momentum * model_marginal.detach() + (1.0 - momentum) * probs.detach().mean(0).to(model_marginal.dtype)
