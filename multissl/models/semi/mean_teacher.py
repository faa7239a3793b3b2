"""Mean Teacher (Tarvainen & Valpola 2017): the target is the prediction of an EMA of the student's weights.

    loss = CE(f_θ(x_l), y) + λ_u · w(t) · (1 / (C μB)) Σ_b ‖softmax(f_θ(A(u_b))) − softmax(f_θ'(A'(u_b)))‖²
    θ' <- α_t θ' + (1 − α_t) θ   after every optimizer step,   α_t = min(1 − 1/(t + 1), α)   (t = steps done)

The student f_θ sees one weak view of each unlabeled row, the teacher f_θ' (no gradient) another independent weak
view. α is `ema_rampup_momentum` while λ_u ramps up (t < rampup_steps) and `ema_momentum` after, as the paper
(0.99 then 0.999); set both equal for a fixed momentum. The min(1 − 1/(t + 1), ·) start is the authors' code's: until
t reaches α/(1 − α) the teacher is the plain average of every student so far (the initialisation counts as one), not
mostly the random initialisation.

Decisions:
* The teacher (backbone + classifier) is what the model is evaluated and exported as, as in the paper (which reports
  the teacher): in eval mode `classify` and `embed` read the teacher, and `encoder_for_export` is the teacher
  backbone. In training mode they read the student, so the family's λ_u = 0 baseline (which trains through
  `classify`) trains the student; its evaluation then scores the EMA of a supervised-only student.
* Teacher BatchNorm: the teacher runs in train mode on its own view (batch statistics, as the authors' code), so its
  running statistics are its OWN, measured on its own activations each step; only its parameters are averaged.
  Copying the student's statistics instead was measured to hurt: on digits the eval-mode teacher scored 0.765 with
  them and 0.855 once its statistics were re-measured on its own activations (student 0.855). In the λ_u = 0
  baseline the teacher never runs a training forward, so there the student's statistics are copied after each
  step (they lag the averaged weights: that baseline's teacher scored 0.883 vs 0.905 re-measured).
* Consistency on unlabeled rows only (the paper's minibatch also puts the labeled rows through it); the student's
  labeled and unlabeled rows share one forward (BatchNorm statistics of the whole step); MSE of softmaxes (the
  paper's) or `consistency: kl`. The entropy term reads the student's unlabeled predictions.
* The teacher is model state (parameters without gradient + buffers): it is in every checkpoint and in
  save_pretrained, so a resumed run continues the same teacher.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from multissl.models.common.backbones import vision_features
from multissl.models.common.ema import ema_update, make_teacher
from multissl.models.common.vision import TINY_RESNET, check_pixels
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, number
from multissl.models.semi.pi_model import check_consistency
from multissl.objectives.consistency import consistency_loss


class MeanTeacherConfig(SemiSupervisedConfig):
    """The family's fields + ema_momentum α (after λ_u's ramp-up; the paper's 0.999), ema_rampup_momentum (during
    it; the paper's 0.99), both in [0, 1], and consistency ("mse" | "kl")."""

    model_type = "multissl_mean_teacher"

    def __init__(self, ema_momentum: float = 0.999, ema_rampup_momentum: float = 0.99, consistency: str = "mse",
                 **kwargs):
        self.ema_momentum = number("ema_momentum", ema_momentum, 0.0, 1.0)
        self.ema_rampup_momentum = number("ema_rampup_momentum", ema_rampup_momentum, 0.0, 1.0)
        self.consistency = check_consistency(consistency)
        super().__init__(**kwargs)


def tiny_mean_teacher_config() -> MeanTeacherConfig:
    """A config that trains in milliseconds (tests); 10 classes for digits, its default dataset."""
    return MeanTeacherConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=2, mu=2,
                             augment={"hflip_prob": 0.0})


def ema_momentum_at(steps_done: int, momentum: float, rampup_momentum: float, rampup_steps: int) -> float:
    """α_t = min(1 − 1/(t + 1), α), α = rampup_momentum while t < rampup_steps else momentum (t = steps done >= 1)."""
    alpha = rampup_momentum if steps_done < rampup_steps else momentum
    return min(1.0 - 1.0 / (steps_done + 1), alpha)


class MeanTeacherModel(SemiSupervisedModel):
    """Student (backbone, classifier) + EMA teacher (teacher_backbone, teacher_classifier); each unlabeled row comes
    as two weak views (u_weak [μB, 2, 3, S, S]): view 0 for the student, view 1 for the teacher."""

    config_class = MeanTeacherConfig
    tiny_config = staticmethod(tiny_mean_teacher_config)
    base_model_prefix = "mean_teacher"
    unlabeled_views = (2, 0)

    def __init__(self, config: MeanTeacherConfig):
        super().__init__(config)
        self.teacher_backbone = make_teacher(self.backbone)
        self.teacher_classifier = make_teacher(self.classifier)
        self.post_init()
        with torch.no_grad():  # post_init re-initialised both copies independently: the teacher starts as the student
            ema_update(self.teacher_backbone, self.backbone, 0.0, copy_buffers=True)
            ema_update(self.teacher_classifier, self.classifier, 0.0, copy_buffers=True)

    def student_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The student's class logits [B, C] of images [B, 3, S, S]."""
        return self.classifier(vision_features(self.backbone, pixel_values))

    def teacher_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The teacher's class logits [B, C] of images [B, 3, S, S] (no gradient flows into its weights)."""
        return self.teacher_classifier(vision_features(self.teacher_backbone, pixel_values))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Features [B, D]: the teacher's in eval mode (what evaluation and the export read), the student's in training."""
        return vision_features(self.backbone if self.training else self.teacher_backbone, pixel_values)

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class logits [B, C]: the teacher's in eval mode (the paper's evaluated model), the student's in training."""
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, H, W]")
        return self.student_logits(pixel_values) if self.training else self.teacher_logits(pixel_values)

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """CE on the labeled rows + the squared distance between the student's and the teacher's softmaxes."""
        b = x_l.shape[0]
        student = self.student_logits(torch.cat([x_l, u_weak[:, 0]]))  # [B + μB, C]: one pass for BatchNorm
        logits_l, logits_u = student[:b], student[b:]  # [B, C], [μB, C]
        with torch.no_grad():
            target = self.teacher_logits(u_weak[:, 1])  # [μB, C], another weak view
        unsup = consistency_loss(logits_u, target, kind=self.config.consistency)  # the target is detached inside
        return SemiStep(F.cross_entropy(logits_l, labels), unsup, labeled_logits=logits_l, unlabeled_logits=logits_u)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """After each optimizer step: progress (super), then teacher <- EMA of the student's parameters (its BatchNorm
        statistics are its own; copied from the student only in the λ_u = 0 baseline, where the teacher never runs)."""
        super().on_step_end(step, max_steps)
        c = self.config
        alpha = ema_momentum_at(int(self.steps_done), c.ema_momentum, c.ema_rampup_momentum, c.rampup_steps)
        ema_update(self.teacher_backbone, self.backbone, alpha, copy_buffers=c.lambda_u == 0)
        ema_update(self.teacher_classifier, self.classifier, alpha, copy_buffers=c.lambda_u == 0)

    def encoder_for_export(self) -> PreTrainedModel:
        """The teacher's plain HF vision backbone (the model the paper evaluates)."""
        return self.teacher_backbone
