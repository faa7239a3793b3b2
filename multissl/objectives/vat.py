"""Virtual Adversarial Training (Miyato et al. 2018): the adversarial direction by power iteration and the LDS loss.

r_adv is the direction (of norm ε) in which the prediction changes most, measured by KL(p(x) || p(x + r)).
Its second-order approximation is the top eigenvector of the Hessian H of that KL at r = 0; K power iterations
d <- ∇_r KL(p(x) || p(x + r))|_{r = ξ d} ∝ H d (for small ξ) estimate it without forming H.

The model is a callable `logits_fn(x) -> [B, C]`: the caller decides how (for example with batch-norm statistics
frozen during the extra passes, as the authors do). The power iterations differentiate only with respect to the
perturbation (torch.autograd.grad), so no parameter's .grad is touched by them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def l2_normalize_per_sample(d: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """d / ||d_b||_2 for each sample b, the norm taken over all non-batch dims of d [B, ...]."""
    if d.dim() < 2:
        raise ValueError(f"d must be [B, ...] with at least one non-batch dim; got {tuple(d.shape)}")
    norm = d.flatten(1).norm(dim=1).clamp_min(eps)  # [B]
    return d / norm.reshape(-1, *([1] * (d.dim() - 1)))


def kl_with_logits(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """mean over B of KL(softmax(target_logits) || softmax(logits)), both [B, C]; the target is detached."""
    if target_logits.dim() != 2 or target_logits.shape != logits.shape:
        raise ValueError(f"target_logits and logits must both be [B, C]; got {tuple(target_logits.shape)} and "
                         f"{tuple(logits.shape)}")
    target_logp = F.log_softmax(target_logits.detach(), dim=-1)
    return (target_logp.exp() * (target_logp - F.log_softmax(logits, dim=-1))).sum(-1).mean()


def vat_perturbation(logits_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, eps: float,
                     xi: float = 1e-3, power_iterations: int = 1, clean_logits: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """r_adv [B, ...] with ||r_adv_b||_2 = ε for every sample b of x [B, ...] (Miyato et al., Alg. 1). No gradient.

    d starts as Gaussian noise drawn from `generator`; each of the K power iterations sets
    d <- ∇_r KL(p(x) || p(x + r)) at r = ξ · d / ||d||, and r_adv = ε · d / ||d||. clean_logits [B, C] (p(x)) may be
    passed to save a forward pass; it is detached either way. ξ: the finite-difference step. The paper's 1e-6 is
    below float32 resolution for inputs of order 1 (x + r rounds back to nearly x): on a small MLP the float32
    direction had mean cosine 0.35 to the exact (float64) one at ξ = 1e-6 and 0.9999 at ξ = 1e-3, hence the
    default 1e-3 (scale it with the size of x; 1e-6 is fine in float64). ε: the perturbation norm, in the units
    of x (dataset-dependent, so it has no default).
    """
    if eps <= 0 or xi <= 0:
        raise ValueError(f"eps and xi must be > 0; got eps={eps}, xi={xi}")
    if power_iterations < 1:
        raise ValueError(f"power_iterations must be >= 1; got {power_iterations}")
    if x.dim() < 2:
        raise ValueError(f"x must be [B, ...] with at least one non-batch dim; got {tuple(x.shape)}")
    x = x.detach()
    if clean_logits is None:
        with torch.no_grad():
            clean_logits = logits_fn(x)
    clean_logits = clean_logits.detach()
    if clean_logits.dim() != 2 or clean_logits.shape[0] != x.shape[0]:
        raise ValueError(f"logits_fn must return [B, C] with B = {x.shape[0]}; got {tuple(clean_logits.shape)}")
    noise_device = x.device if generator is None else generator.device
    d = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=noise_device).to(x.device)  # [B, ...]
    with torch.enable_grad():  # works even when the caller runs under no_grad
        for _ in range(power_iterations):
            r = (xi * l2_normalize_per_sample(d)).requires_grad_(True)
            # Summed over the batch (not averaged): each sample's gradient is its own, and 1/B would only
            # shrink an already tiny ξ-scaled gradient towards underflow before normalisation.
            kl = kl_with_logits(clean_logits, logits_fn(x + r)) * x.shape[0]
            (d,) = torch.autograd.grad(kl, r)
    return (eps * l2_normalize_per_sample(d.detach())).detach()


def vat_loss(logits_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, eps: float, xi: float = 1e-3,
             power_iterations: int = 1, clean_logits: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """VAT's LDS loss: mean over B of KL(p(x) || p(x + r_adv)), x [B, ...]; the clean prediction p(x) is detached.

    The gradient reaches the model only through the perturbed pass p(x + r_adv) (r_adv itself is a constant).
    """
    x = x.detach()
    if clean_logits is None:
        with torch.no_grad():
            clean_logits = logits_fn(x)
    r_adv = vat_perturbation(logits_fn, x, eps=eps, xi=xi, power_iterations=power_iterations,
                             clean_logits=clean_logits, generator=generator)
    return kl_with_logits(clean_logits, logits_fn(x + r_adv))
