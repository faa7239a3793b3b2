"""Virtual Adversarial Training (Miyato et al. 2018): the prediction must not move under the worst small perturbation.

    loss = CE(f(x_l), y) + λ_u · w(t) · LDS + λ_H · H,   LDS = (1/μB) Σ_b KL(p(u_b) ‖ p(u_b + r_adv,b)),  ‖r_adv,b‖₂ = ε

r_adv is the direction of largest KL change, found by `power_iterations` steps of d <- ∇_r KL(p(u) ‖ p(u + ξ d/‖d‖))
from Gaussian d (multissl/objectives/vat.py). The clean prediction p(u) is a constant (no gradient), so the
gradient reaches the network through the perturbed pass only. H = the mean entropy of p(u) (the family's
entropy_weight): entropy_weight 1 with λ_u 1 is the paper's VAT+EntMin.

Decisions:
* BatchNorm: the labeled pass is the only one that updates running statistics (as the authors' code:
  update_batch_stats=False elsewhere). The clean unlabeled pass, the power iterations and the adversarial pass run
  inside frozen_batchnorm_statistics: they still normalise with their own batch's statistics (training mode) but
  leave running_mean / running_var / num_batches_tracked untouched. Unlike the family's other algorithms the labeled
  and unlabeled rows are therefore NOT one concatenated pass: p(u) and p(u + r) must see the same batch composition,
  or the power iteration would chase the difference between two normalisations rather than the curvature of KL.
* ε (`epsilon`) is required: it is in the units of the normalised input (pixels in [-1, 1] here), so it depends on
  the data; the paper's 2.5 for SVHN (32x32 RGB, pixels in [0, 1]) is 5.0 on this scale. ξ (`xi`) defaults to 1e-3,
  not the paper's 1e-6, which is below float32 resolution for inputs of order 1 (see objectives/vat.py).
* The perturbation's start d is drawn from torch's global RNG, which the loop reseeds per micro-batch, so a resumed
  run replays it. The adversarial passes are on the unlabeled weak views only (as the authors' semi-supervised code).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, number, whole
from multissl.objectives.vat import kl_with_logits, vat_perturbation


@contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorm layers of `module` in training mode normalise with batch statistics but update no
    running statistics (nor num_batches_tracked); eval-mode layers are untouched. Restored on exit, even on error."""
    layers = [m for m in module.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    for m in layers:  # training + track_running_stats False: F.batch_norm gets no running buffers to update
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


class VATConfig(SemiSupervisedConfig):
    """The family's fields + epsilon ε > 0 (required: the perturbation's L2 norm per image, in normalised-pixel units),
    xi ξ > 0 (the power iteration's finite-difference step) and power_iterations K >= 1 (the paper's 1)."""

    model_type = "multissl_vat"

    def __init__(self, epsilon: float | None = None, xi: float = 1e-3, power_iterations: int = 1, **kwargs):
        if epsilon is not None:
            epsilon = number("epsilon (the adversarial perturbation's L2 norm)", epsilon, 0.0, float("inf"),
                             high_open=True)
            if epsilon == 0.0:
                raise ValueError("epsilon (the adversarial perturbation's L2 norm) must be > 0; got 0")
        self.epsilon = epsilon
        self.xi = number("xi (the power iteration's finite-difference step)", xi, 0.0, float("inf"), high_open=True)
        if self.xi == 0.0:
            raise ValueError("xi (the power iteration's finite-difference step) must be > 0; got 0")
        self.power_iterations = whole("power_iterations", power_iterations, 1)
        super().__init__(**kwargs)


def tiny_vat_config() -> VATConfig:
    """A config that trains in milliseconds (tests); 10 classes for digits, its default dataset."""
    return VATConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=2, mu=2,
                     epsilon=2.0, entropy_weight=1.0, augment={"hflip_prob": 0.0})


class VATModel(SemiSupervisedModel):
    """Backbone + linear classifier; each unlabeled row comes as one weak view (u_weak [μB, 1, 3, S, S])."""

    config_class = VATConfig
    tiny_config = staticmethod(tiny_vat_config)
    base_model_prefix = "vat"
    unlabeled_views = (1, 0)

    def __init__(self, config: VATConfig):
        if config.epsilon is None:
            raise ValueError("vat: epsilon is required (the perturbation's L2 norm per image in normalised-pixel units, "
                             "which depends on the data); e.g. model.epsilon: 5.0 for 32x32 RGB (the paper's SVHN 2.5 "
                             "on [0, 1] pixels, rescaled to [-1, 1])")
        super().__init__(config)
        self.post_init()

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """CE on the labeled rows + LDS on the unlabeled rows (their extra passes leave BatchNorm's statistics alone)."""
        c = self.config
        logits_l = self.classify(x_l)  # [B, C]: the one pass that updates BatchNorm's running statistics
        u = u_weak[:, 0]  # [μB, 3, S, S]
        with frozen_batchnorm_statistics(self):
            logits_u = self.classify(u)  # [μB, C] p(u): the LDS target (detached there) and the entropy term's input
            r_adv = vat_perturbation(self.classify, u, eps=c.epsilon, xi=c.xi, power_iterations=c.power_iterations,
                                     clean_logits=logits_u)  # [μB, 3, S, S], a constant
            logits_adv = self.classify(u + r_adv)  # [μB, C]
        lds = kl_with_logits(logits_u, logits_adv)
        return SemiStep(F.cross_entropy(logits_l, labels), lds, labeled_logits=logits_l, unlabeled_logits=logits_u)
