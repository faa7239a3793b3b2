"""UDA (Xie et al. 2020): confident, sharpened weak-view predictions train strong views through a KL consistency.

    loss = L_sup + λ_u · (1/μB) Σ_b 1[max p_b > β] KL(softmax(f(A_weak(u_b)) / T) || softmax(f(A_strong(u_b))))
    p_b = softmax(f(A_weak(u_b))) (unsharpened; the mask uses it with a strict '>'), no gradient on the target side
    L_sup = CE(f(x_l), y), or with `tsa_schedule` training-signal annealing: labeled rows whose true-class probability
            already exceeds η_t = α_t (1 - 1/C) + 1/C are left out (sum over the kept rows / max(#kept, 1)),
            α_t = t | 1 - exp(-5t) | exp(5(t - 1)) for linear | log | exp, t = the training progress in [0, 1]

Decisions:
* The target side is UDA's "original" input; here it is the family's weak view (flip and shift), and the strong view
  is RandAugment + Cutout (the paper's image recipe: RandAugment on the noised side). The loss is
  uda_consistency_loss (multissl/objectives/pseudo_label.py): target detached, mask on the unsharpened confidence.
* One concatenated forward over [labeled; unlabeled weak; unlabeled strong], as FixMatch: BatchNorm normalises with
  the whole step's statistics. The weak rows' logits are used only as (detached) targets.
* TSA reads t = steps_done / total_steps from the base's progress buffers (saved in every checkpoint), so η_t
  continues exactly after a resume; the η_t in force is returned as the step's `threshold` for the logs. TSA applies
  to the labeled loss of this algorithm only: the λ_u = 0 baseline is the family's plain labeled CE.
* Defaults are the paper's: T = 0.4, β = 0.8; TSA off (null) unless a schedule is named (the paper advises exp when
  labels are very few, so the digits recipe uses exp).
"""
from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, number
from multissl.objectives.pseudo_label import TSA_SCHEDULES, tsa_cross_entropy, tsa_threshold, uda_consistency_loss


def sharpening_temperature(name: str, value: object) -> float:
    """A sharpening temperature T in (0, 1] (1: no sharpening), or one clear ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be a sharpening temperature in (0, 1] (1: no sharpening); got {value!r}")
    return float(value)


class UDAConfig(SemiSupervisedConfig):
    """The family's fields + target_temperature (T, sharpens the target), threshold (β, confidence mask on the weak view) and
    tsa_schedule (null: plain labeled CE | linear | log | exp: training-signal annealing)."""

    model_type = "multissl_uda"

    def __init__(self, target_temperature: float = 0.4, threshold: float = 0.8, tsa_schedule: str | None = None, **kwargs):
        self.target_temperature = sharpening_temperature("target_temperature", target_temperature)
        self.threshold = number("threshold (UDA's confidence β)", threshold, 0.0, 1.0)
        if tsa_schedule is not None and tsa_schedule not in TSA_SCHEDULES:
            raise ValueError(f"tsa_schedule must be null (no annealing) or one of {TSA_SCHEDULES}; got {tsa_schedule!r}")
        self.tsa_schedule = tsa_schedule
        super().__init__(**kwargs)


def tiny_uda_config() -> UDAConfig:
    """A config that runs forward+backward in milliseconds (tests); 10 classes to fit digits, its default dataset."""
    return UDAConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=4, mu=2,
                     threshold=0.5, tsa_schedule="linear", augment={"hflip_prob": 0.0})


class UDAModel(SemiSupervisedModel):
    """Backbone + linear classifier; unlabeled rows come as one weak and one strong view (u_weak, u_strong [μB, 1, ...])."""

    config_class = UDAConfig
    tiny_config = staticmethod(tiny_uda_config)
    base_model_prefix = "uda"
    unlabeled_views = (1, 1)

    def __init__(self, config: UDAConfig):
        super().__init__(config)
        self.post_init()

    def tsa_eta(self) -> float | None:
        """TSA's η_t at the current progress (None when tsa_schedule is null)."""
        if self.config.tsa_schedule is None:
            return None
        return tsa_threshold(self.progress(), 1.0, self.config.num_classes, self.config.tsa_schedule)

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """(TSA-)CE on the labeled rows + the masked KL from sharpened weak to strong predictions (one forward)."""
        logits_l, weak, strong = self.logits_of(x_l, u_weak[:, 0], u_strong[:, 0])  # [B, C], [μB, C], [μB, C]
        eta = self.tsa_eta()
        supervised = F.cross_entropy(logits_l, labels) if eta is None else tsa_cross_entropy(logits_l, labels, eta).loss
        unsup = uda_consistency_loss(weak, strong, self.config.target_temperature, self.config.threshold)  # weak detached
        return SemiStep(supervised, unsup.loss, labeled_logits=logits_l, unlabeled_logits=strong,
                        mask_rate=unsup.mask_rate,
                        threshold=None if eta is None else torch.tensor(eta, device=logits_l.device))
