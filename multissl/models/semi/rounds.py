"""Self-training in rounds, shared by pseudo_label.py and noisy_student.py: a frozen teacher refreshed once per round.

    rounds R split the run's T optimizer steps into R equal rounds: round(n) = floor(n R / T) after n steps.
    round 0:       labeled CE only (no teacher yet: the first teacher is trained on the labels alone);
    end of round r-1 (n = ceil(r T / R), r = 1 .. R-1): teacher <- a frozen copy of the student (exactly once);
    round r >= 1:  labeled CE + λ_u · L_u, the unlabeled targets made by that teacher with no gradient.

Decisions (where this differs from offline self-training, which relabels the whole unlabeled set once per round and
trains a fresh model on labels + pseudo-labels):
* One training loop, one optimizer and one LR schedule span all rounds, and the student continues from its own
  weights at a boundary (a warm start) instead of being re-initialised: the loop owns the optimizer, and re-drawing
  weights under live Adam moments would be neither a fresh start nor a continuation. The teacher is the frozen
  snapshot of the student at the boundary, so round r's targets come from generation r-1, as in the offline recipe.
* Targets are computed on the fly, each time a row is drawn, on that draw's weak view(s), instead of once per row per
  round: the teacher is frozen during the round, so a row's target changes only with its augmentation.
* The teacher is a submodule (`teacher.backbone`, `teacher.classifier`, requires_grad False) and the round it belongs to
  a buffer (`teacher_round`), so save_pretrained, every step checkpoint and a resume carry them; the refresh happens
  in on_step_end (after the optimizer step), which the loop calls after every step, resumed or not.
* The teacher always predicts in eval mode (BatchNorm running statistics, no dropout): `train()` keeps it there, so the
  loop's model.train() neither noises its targets nor moves its BatchNorm statistics.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from multissl.models.common.backbones import vision_features
from multissl.models.common.ema import make_teacher
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, whole
from multissl.objectives.pseudo_label import select_pseudo_labels, soft_cross_entropy


class RoundsConfig(SemiSupervisedConfig):
    """The family's fields + rounds R >= 2 (round 0 trains the first teacher on labels only; R - 1 teachers follow)."""

    model_type = "multissl_self_training_rounds"  # an abstract base: the methods set their own

    def __init__(self, rounds: int = 3, **kwargs):
        self.rounds = whole("rounds (teacher -> student generations; round 0 is supervised only)", rounds, 2)
        super().__init__(**kwargs)


def round_of(steps_done: int, total_steps: int, rounds: int) -> int:
    """The round r = floor(steps_done · R / T) in [0, R - 1] that step number steps_done + 1 trains in (T = total_steps)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1; got {total_steps}")
    return min(steps_done * rounds // total_steps, rounds - 1)


class PseudoLabelLoss(NamedTuple):
    """The weighted pseudo-label CE, the fraction of rows selected, and the lowest selected confidence ("top" only)."""

    loss: torch.Tensor
    mask_rate: torch.Tensor
    cut: torch.Tensor | None


def pseudo_label_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, mode: str = "all", *,
                      fraction: float | None = None, threshold: float | None = None, soft: bool = False
                      ) -> PseudoLabelLoss:
    """(1/N) Σ_{b selected} w_b · CE(t_b, softmax(student_logits_b)): student_logits [N, C], teacher_probs [N, C].

    Selection and weights w_b are select_pseudo_labels(teacher_probs, mode, fraction, threshold): "top" keeps the
    `fraction` most confident rows of THIS batch (or those with confidence >= `threshold`), w = 1; "all" keeps every
    row, w = 1; "weighted" keeps every row, w_b = max_c p_bc. t_b is the one-hot argmax (soft=False) or the teacher's
    distribution p_b (soft=True). The sum is divided by all N rows, as FixMatch's masked loss, so the term's scale
    says how much of the batch took part. Targets and weights carry no gradient. cut: with `fraction`, the lowest
    confidence kept (the batch's effective threshold, for logging); else None.
    """
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(f"student_logits and teacher_probs must both be [N, C]; got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_probs.shape)}")
    probs = teacher_probs.detach()
    indices, _, weights = select_pseudo_labels(probs, mode, fraction=fraction, threshold=threshold)
    n, c = probs.shape
    row_weight = torch.zeros(n, dtype=student_logits.dtype, device=probs.device).index_copy(
        0, indices, weights.to(student_logits.dtype))  # [N], 0 for the rows not selected
    targets = probs if soft else F.one_hot(probs.argmax(-1), c).to(probs.dtype)  # [N, C]
    loss = soft_cross_entropy(student_logits, targets, row_weight)  # mean over all N rows of w_b · CE_b
    mask_rate = torch.tensor(indices.numel() / n, dtype=student_logits.dtype, device=student_logits.device)
    ranked = mode == "top" and fraction is not None and indices.numel() > 0  # a cut that moves with the batch
    cut = probs.max(-1).values[indices].min() if ranked else None
    return PseudoLabelLoss(loss, mask_rate, cut)


class SelfTrainingModel(SemiSupervisedModel):
    """SemiSupervisedModel + a frozen teacher (backbone + classifier) refreshed from the student at each round boundary.

    Subclasses implement `unlabeled_step(x_l, labels, u_weak, u_strong) -> SemiStep` for rounds >= 1; round 0 is the
    labeled cross-entropy here. Their __init__ calls super().__init__(config) and then self.post_init().
    """

    def __init__(self, config: RoundsConfig):
        super().__init__(config)
        self.teacher = make_teacher(nn.ModuleDict({"backbone": self.backbone, "classifier": self.classifier}))
        self.teacher.eval()
        # The round whose teacher `teacher` holds (0: none yet): saved, so a resumed run knows where it stands.
        self.register_buffer("teacher_round", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> SelfTrainingModel:
        """Train/eval the student; the teacher always predicts in eval mode (no noise, frozen BatchNorm statistics)."""
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def refresh_teacher(self) -> None:
        """teacher <- an exact copy of the student's backbone and classifier (parameters and buffers)."""
        self.teacher["backbone"].load_state_dict(self.backbone.state_dict())
        self.teacher["classifier"].load_state_dict(self.classifier.state_dict())

    @torch.no_grad()
    def teacher_probs(self, views: torch.Tensor) -> torch.Tensor:
        """The teacher's class probabilities of views [N, V, 3, S, S] averaged over the V views -> [N, C] (V > 1: data
        distillation's ensemble over transformations). No gradient; eval mode."""
        n, v = views.shape[:2]
        x = views.flatten(0, 1)  # [N·V, 3, S, S]
        logits = self.teacher["classifier"](vision_features(self.teacher["backbone"], x))  # [N·V, C]
        return logits.float().softmax(-1).view(n, v, -1).mean(1).to(logits.dtype)  # [N, C]

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Record progress; at the end of the last step of a round (not of the run), freeze the student as the teacher."""
        super().on_step_end(step, max_steps)
        done = step + 1
        now = round_of(done, max_steps, self.config.rounds)
        if done < max_steps and now > int(self.teacher_round):
            self.refresh_teacher()
            self.teacher_round.fill_(now)

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """Round 0: the labeled CE alone (the unlabeled views are not even forwarded). Later: unlabeled_step."""
        if int(self.teacher_round) == 0:
            logits_l = self.student_logits(x_l)[0]  # [B, C]
            zero = logits_l.new_zeros(())
            return SemiStep(F.cross_entropy(logits_l, labels), zero, labeled_logits=logits_l, mask_rate=zero)
        return self.unlabeled_step(x_l, labels, u_weak, u_strong)

    def student_logits(self, *parts: torch.Tensor) -> list[torch.Tensor]:
        """The student's training logits of several batches in one pass (BatchNorm); subclasses may add noise."""
        return self.logits_of(*parts)

    def unlabeled_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                       u_strong: torch.Tensor | None) -> SemiStep:
        """Rounds >= 1: the algorithm's labeled + pseudo-labeled losses (the teacher exists)."""
        raise NotImplementedError
