"""Self-training / pseudo-labelling in rounds: a frozen teacher labels the unlabeled rows, the student learns them.

    round 0:      loss = CE(f(x_l), y)
    round r >= 1: loss = CE(f(x_l), y) + λ_u · (1/μB) Σ_{b ∈ S} w_b · CE(argmax p_b, f(A_weak'(u_b))),
                  p_b = softmax(f_teacher(A_weak(u_b))),  f_teacher = the student frozen at the end of round r-1

The lecture's three variants (select_pseudo_labels), `mode`:
  top:      S = the `fraction` most confident rows of the batch (confidence max_c p_bc), or those with confidence
            >= `threshold`; w_b = 1                                    ("add only a few most confident predictions")
  all:      S = every row, w_b = 1                                     ("add all predictions")
  weighted: S = every row, w_b = max_c p_bc                            ("add all, weighted by their confidence")

Decisions:
* The rounds, the frozen teacher and how they differ from offline self-training: rounds.py.
* `fraction` ranks the teacher's confidences within each step's μB unlabeled rows, not over the whole unlabeled set:
  the loop never holds the whole set, and a per-row confidence table would have to be re-filled for a full epoch
  after every refresh before its ranking meant anything. Per batch, the expected share kept is the same and a row's
  selection depends on its batch-mates; `threshold` is the batch-independent (global) criterion.
* The teacher sees one weak view, the student an independently drawn weak view of the same row (no strong
  augmentation, no dropout: plain self-training; noisy_student.py adds the noise): offline self-training trains the
  student on the pseudo-labeled rows with its usual training augmentation. Labeled rows and the student's views go
  through one forward (BatchNorm statistics of the whole step); the teacher predicts in eval mode.
* The sum is divided by all μB rows (FixMatch's convention), so "top" contributes in proportion to what it keeps.
* Entropy minimisation is the family's `entropy_weight` term, on the student's unlabeled predictions (rounds >= 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep
from multissl.models.semi.config import number
from multissl.models.semi.rounds import RoundsConfig, SelfTrainingModel, pseudo_label_loss
from multissl.objectives.pseudo_label import SELECTION_MODES

DEFAULT_FRACTION = 0.5  # "top" with neither fraction nor threshold: the more confident half of each batch


class PseudoLabelConfig(RoundsConfig):
    """The family's fields + rounds (RoundsConfig) + mode: top | all | weighted; for top, exactly one of fraction
    (the share of each batch kept, default 0.5) or threshold (a confidence in [0, 1])."""

    model_type = "multissl_pseudo_label"

    def __init__(self, mode: str = "top", fraction: float | None = None, threshold: float | None = None, **kwargs):
        if mode not in SELECTION_MODES:
            raise ValueError(f"mode must be one of {list(SELECTION_MODES)}; got {mode!r}")
        if mode == "top":
            if fraction is not None and threshold is not None:
                raise ValueError(f"mode 'top' takes exactly one of fraction or threshold; got fraction={fraction!r} "
                                 f"and threshold={threshold!r}")
            if fraction is None and threshold is None:
                fraction = DEFAULT_FRACTION
        elif fraction is not None or threshold is not None:
            raise ValueError(f"fraction/threshold apply only to mode 'top'; mode {mode!r} keeps every row (got "
                             f"fraction={fraction!r}, threshold={threshold!r})")
        if fraction is not None:
            fraction = number("fraction (the share of each batch's unlabeled rows kept)", fraction, 0.0, 1.0)
            if fraction == 0.0:
                raise ValueError("fraction (the share of each batch's unlabeled rows kept) must be > 0; got 0")
        if threshold is not None:
            threshold = number("threshold (the teacher confidence a pseudo-label needs)", threshold, 0.0, 1.0)
        self.mode, self.fraction, self.threshold = mode, fraction, threshold
        super().__init__(**kwargs)


def tiny_pseudo_label_config() -> PseudoLabelConfig:
    """A config that runs forward+backward in milliseconds (tests); digits' 10 classes."""
    return PseudoLabelConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=2, mu=2,
                             rounds=2, augment={"hflip_prob": 0.0})


class PseudoLabelModel(SelfTrainingModel):
    """Student backbone + linear classifier and its frozen teacher; unlabeled rows come as two weak views
    (u_weak [μB, 2, 3, S, S]: view 0 for the teacher, view 1 for the student)."""

    config_class = PseudoLabelConfig
    tiny_config = staticmethod(tiny_pseudo_label_config)
    base_model_prefix = "pseudo_label"
    unlabeled_views = (2, 0)

    def __init__(self, config: PseudoLabelConfig):
        super().__init__(config)
        self.post_init()

    def unlabeled_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                       u_strong: torch.Tensor | None) -> SemiStep:
        """Labeled CE + the selected, weighted pseudo-label CE of the student's weak view (one forward)."""
        probs = self.teacher_probs(u_weak[:, :1])  # [μB, C], no gradient
        logits_l, logits_u = self.student_logits(x_l, u_weak[:, 1])  # [B, C], [μB, C]
        c = self.config
        unsup = pseudo_label_loss(logits_u, probs, c.mode, fraction=c.fraction, threshold=c.threshold)
        return SemiStep(F.cross_entropy(logits_l, labels), unsup.loss, labeled_logits=logits_l,
                        unlabeled_logits=logits_u, mask_rate=unsup.mask_rate, threshold=unsup.cut)
