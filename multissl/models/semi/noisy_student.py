"""Noisy Student (Xie et al. 2020) with data distillation (Radosavovic et al. 2018): a clean teacher, a noised student.

    round 0:      loss = CE(f~(x_l), y)
    round r >= 1: loss = CE(f~(x_l), y) + λ_u · (1/μB) Σ_b w_b · H(p̄_b, softmax(f~(A_strong(u_b)))),
                  p̄_b = (1/V) Σ_v softmax(f_teacher(A_weak_v(u_b))),   w_b = 1[max_c p̄_bc >= τ] (τ optional, else 1)

f_teacher is the student frozen at the end of round r-1 and predicts with no noise (eval mode: no dropout, BatchNorm
running statistics) on V weak (flip / shift) views, averaged: data distillation's ensemble over transformations
(V = 1: plain Noisy Student). f~ is the student with its noise: dropout (`dropout`) on the pooled features before the
classifier, and for the unlabeled rows the strong view (RandAugment + Cutout: the paper's input noise).

Decisions:
* The rounds, the frozen teacher and how they differ from the paper's offline loop (a fresh student trained from
  scratch on a relabeled set each iteration; here one run, the student continues): rounds.py.
* The student is the same size as the teacher (the paper's equal-or-larger student; equal here, so "iterating" means
  the student becomes the next teacher with no change of architecture).
* Student noise: input noise through the strong view and dropout before the classifier (the paper's 0.5 on the final
  layer). Stochastic depth is not applied: the Hugging Face ResNet backbone has no drop-path. Labeled rows get the
  family's labeled view (weak by default; `labeled_view: strong` noises them too), with the same dropout.
* Soft targets by default (`soft`, the paper's choice for in-domain unlabeled data); soft=False uses the argmax.
  Confidence filtering (`threshold`) is off by default; the paper filters at 0.3 on its out-of-domain pool. The
  paper's class balancing (duplicating / dropping pseudo-labeled images per class) needs the whole pool and is
  not done.
* `teacher_views` V is a config value: `views_for(config)` = (V, 1) is what the family's collator, data hook and
  forward's shape check read.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep
from multissl.models.semi.config import number, whole
from multissl.models.semi.rounds import RoundsConfig, SelfTrainingModel, pseudo_label_loss


class NoisyStudentConfig(RoundsConfig):
    """The family's fields + rounds + teacher_views V (weak views averaged for the targets), soft targets, optional
    confidence threshold τ (None: keep every row) and the student's dropout before the classifier."""

    model_type = "multissl_noisy_student"

    def __init__(self, teacher_views: int = 1, soft: bool = True, threshold: float | None = None,
                 dropout: float = 0.5, **kwargs):
        self.teacher_views = whole("teacher_views (weak views the teacher's targets are averaged over)", teacher_views, 1)
        if not isinstance(soft, bool):
            raise ValueError(f"soft must be true (teacher probabilities as targets) or false (argmax); got {soft!r}")
        if threshold is not None:
            threshold = number("threshold (the teacher confidence a target needs; null: keep all)", threshold, 0.0, 1.0)
        self.soft, self.threshold = soft, threshold
        self.dropout = number("dropout (the student's dropout before the classifier)", dropout, 0.0, 1.0,
                              high_open=True)
        super().__init__(**kwargs)


def tiny_noisy_student_config() -> NoisyStudentConfig:
    """A config that runs forward+backward in milliseconds (tests); digits' 10 classes."""
    return NoisyStudentConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=2, mu=2,
                              rounds=2, teacher_views=2, augment={"hflip_prob": 0.0})


class NoisyStudentModel(SelfTrainingModel):
    """Student backbone + dropout + linear classifier and its frozen teacher; unlabeled rows come as V weak views for
    the teacher (u_weak [μB, V, 3, S, S]) and one strong view for the student (u_strong [μB, 1, 3, S, S])."""

    config_class = NoisyStudentConfig
    tiny_config = staticmethod(tiny_noisy_student_config)
    base_model_prefix = "noisy_student"
    unlabeled_views = (1, 1)  # the class default; views_for reads the config's V

    def __init__(self, config: NoisyStudentConfig):
        super().__init__(config)
        self.student_dropout = nn.Dropout(config.dropout)
        self.post_init()

    @classmethod
    def views_for(cls, config: NoisyStudentConfig) -> tuple[int, int]:
        """V = teacher_views weak views (the teacher's) and one strong view (the student's) of each unlabeled row."""
        return (config.teacher_views, 1)

    def student_logits(self, *parts: torch.Tensor) -> list[torch.Tensor]:
        """The noised student's logits of several batches in one pass: dropout on the features, then the classifier."""
        features = self.student_dropout(self.embed(torch.cat(parts)))  # [ΣN_i, D]
        return list(self.classifier(features).split([p.shape[0] for p in parts]))

    def unlabeled_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                       u_strong: torch.Tensor | None) -> SemiStep:
        """Labeled CE + the (optionally filtered) CE of the noised strong views against the teacher's averaged targets."""
        probs = self.teacher_probs(u_weak)  # [μB, C]: mean over the V clean views, no gradient
        logits_l, logits_u = self.student_logits(x_l, u_strong[:, 0])  # [B, C], [μB, C]
        c = self.config
        mode = "all" if c.threshold is None else "top"
        unsup = pseudo_label_loss(logits_u, probs, mode, threshold=c.threshold, soft=c.soft)
        return SemiStep(F.cross_entropy(logits_l, labels), unsup.loss, labeled_logits=logits_l,
                        unlabeled_logits=logits_u, mask_rate=unsup.mask_rate)
