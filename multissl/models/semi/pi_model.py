"""Π-model (Laine & Aila 2017): two stochastic views of each unlabeled image must get the same prediction.

    loss = CE(f(x_l), y) + λ_u · w(t) · (1 / (C μB)) Σ_b ‖softmax(f(A(u_b))) − sg(softmax(f(A'(u_b))))‖²

A and A' are two independent draws of the weak augmentation (flip and shift; the paper also relies on dropout and
Gaussian input noise, which the default ResNet has none of: the augmentation is the stochasticity here). w(t) is the
paper's sigmoid ramp-up exp(−5 (1 − t/T)²) over `rampup_steps` (the family's; base.py).

Decisions:
* Target side detached (sg above) by default, as the common implementations do (e.g. TorchSSL's Π-model):
  the second view is a fixed target for this step. Laine & Aila differentiate both passes;
  `detach_target: false` gives exactly that.
* Consistency on the unlabeled rows only (the paper also applies it to the labeled rows of the minibatch; here the
  labeled stream has one view and the unlabeled set holds every other training row).
* One concatenated forward over [labeled; view 1; view 2] (the family's logits_of): BatchNorm normalises with the
  whole step's statistics, as the paper's network saw one minibatch.
* MSE of the softmaxes (the paper's) or `consistency: kl` (KL(p_target ‖ p_student)).
* The entropy term (entropy_weight) reads the first view's predictions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig
from multissl.objectives.consistency import CONSISTENCY_KINDS, consistency_loss


def check_consistency(value: object) -> str:
    """The consistency kind ("mse" | "kl"), or one clear ValueError naming `consistency`."""
    if value not in CONSISTENCY_KINDS:
        raise ValueError(f"consistency must be one of {list(CONSISTENCY_KINDS)}; got {value!r}")
    return str(value)


class PiModelConfig(SemiSupervisedConfig):
    """The family's fields + consistency ("mse": the paper's squared error of softmaxes; "kl") and detach_target
    (True: the second view is a constant target, as common implementations; False: Laine & Aila's two-sided)."""

    model_type = "multissl_pi_model"

    def __init__(self, consistency: str = "mse", detach_target: bool = True, **kwargs):
        self.consistency = check_consistency(consistency)
        if not isinstance(detach_target, bool):
            raise ValueError(f"detach_target must be true or false; got {detach_target!r}")
        self.detach_target = detach_target
        super().__init__(**kwargs)


def tiny_pi_model_config() -> PiModelConfig:
    """A config that trains in milliseconds (tests); 10 classes for digits, its default dataset."""
    return PiModelConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=2, mu=2,
                         augment={"hflip_prob": 0.0})


class PiModel(SemiSupervisedModel):
    """Backbone + linear classifier; each unlabeled row comes as two weak views (u_weak [μB, 2, 3, S, S])."""

    config_class = PiModelConfig
    tiny_config = staticmethod(tiny_pi_model_config)
    base_model_prefix = "pi_model"
    unlabeled_views = (2, 0)

    def __init__(self, config: PiModelConfig):
        super().__init__(config)
        self.post_init()

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """CE on the labeled rows + the squared distance between the two views' softmaxes (one forward for all)."""
        logits_l, first, second = self.logits_of(x_l, u_weak[:, 0], u_weak[:, 1])  # [B, C], [μB, C], [μB, C]
        unsup = consistency_loss(first, second, kind=self.config.consistency, detach_target=self.config.detach_target)
        return SemiStep(F.cross_entropy(logits_l, labels), unsup, labeled_logits=logits_l, unlabeled_logits=first)
