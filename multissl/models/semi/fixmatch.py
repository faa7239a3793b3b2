"""FixMatch (Sohn et al. 2020): a few labeled images + pseudo-labels from weak views that train strong views.

    loss = CE(f(x_l), y) + λ_u · (1/μB) Σ_b 1[max q_b >= τ] CE(argmax q_b, f(A_strong(u_b))),   q_b = softmax(f(A_weak(u_b)))

Decisions:
* One concatenated forward over [labeled (weak view); unlabeled weak; unlabeled strong], as the paper's code:
  BatchNorm normalises with statistics of the whole step's batch, not with three differently augmented batches.
* The pseudo-label side is detached (in fixmatch_loss), so no gradient flows through q_b.
* `threshold: freematch` replaces the fixed τ with FreeMatch's self-adaptive per-class thresholds (Wang et al.
  2023). Its state (global confidence EMA τ_t [], class marginal EMA p~_t [C]) is a model buffer, so it is in
  save_pretrained and in every checkpoint: a resumed run continues the same thresholds. It is updated in forward,
  in training mode only, from this micro-batch's weak-view probabilities, before they are masked: that is the
  paper's order (update, then threshold the same batch), and forward is the one place that has them (on_step_end
  gets no batch; keeping the last batch on the model would be hidden state and would drop all but the last
  micro-batch under gradient accumulation, while BatchNorm's running statistics update per micro-batch too).
  Under several processes the update averages the global batch (gather), so every process keeps the same state.
* The labeled / unlabeled split, the λ_u = 0 supervised baseline, the ramp-up and the entropy term are the family's
  (multissl/models/semi/base.py).
"""
from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, number
from multissl.objectives.adaptive_threshold import FreeMatchState, freematch_class_thresholds, freematch_update
from multissl.objectives.distributed import is_distributed
from multissl.objectives.pseudo_label import fixmatch_loss

DEFAULT_THRESHOLD = 0.95  # the paper's τ


class FixMatchConfig(SemiSupervisedConfig):
    """The family's fields (SemiSupervisedConfig) + threshold: a confidence τ in [0, 1] (None: the paper's 0.95) or
    "freematch" (self-adaptive per-class thresholds, EMA momentum `freematch_momentum`)."""

    model_type = "multissl_fixmatch"

    def __init__(self, threshold: float | str | None = None, freematch_momentum: float = 0.999, **kwargs):
        if threshold is None:
            threshold = DEFAULT_THRESHOLD
        elif threshold != "freematch" and (isinstance(threshold, bool) or not isinstance(threshold, Real)
                                           or not 0.0 <= float(threshold) <= 1.0):
            raise ValueError(f"threshold must be a confidence in [0, 1] or 'freematch'; got {threshold!r}")
        self.threshold = threshold if threshold == "freematch" else float(threshold)
        self.freematch_momentum = number("freematch_momentum", freematch_momentum, 0.0, 1.0, high_open=True)
        super().__init__(**kwargs)


def tiny_fixmatch_config() -> FixMatchConfig:
    """A config that runs forward+backward in milliseconds (tests); 26 classes to fit glyphs, its default dataset."""
    return FixMatchConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=26, labels_per_class=4, mu=2,
                          threshold=0.5, augment={"hflip_prob": 0.0})


class FixMatchModel(SemiSupervisedModel):
    """Backbone + linear classifier; unlabeled rows come as one weak and one strong view (u_weak, u_strong [μB, 1, ...])."""

    config_class = FixMatchConfig
    tiny_config = staticmethod(tiny_fixmatch_config)
    base_model_prefix = "fixmatch"
    unlabeled_views = (1, 1)

    def __init__(self, config: FixMatchConfig):
        super().__init__(config)
        if config.threshold == "freematch":  # τ_0 = 1/C, p~_0 = uniform (FreeMatch's start)
            c = config.num_classes
            self.register_buffer("freematch_threshold", torch.tensor(1.0 / c))
            self.register_buffer("freematch_class_marginal", torch.full((c,), 1.0 / c))
        self.post_init()

    def freematch_state(self) -> FreeMatchState:
        """The current FreeMatch state (threshold: freematch only)."""
        return FreeMatchState(self.freematch_threshold, self.freematch_class_marginal)

    def _thresholds(self, weak_logits: torch.Tensor) -> float | torch.Tensor:
        """τ, or FreeMatch's per-class τ_t(c) [C] after updating the state with this batch (training only)."""
        if self.config.threshold != "freematch":
            return self.config.threshold
        state = self.freematch_state()
        if self.training:
            with torch.no_grad():
                state = freematch_update(state, weak_logits.detach().softmax(-1), self.config.freematch_momentum,
                                         gather_distributed=is_distributed())
                self.freematch_threshold.copy_(state.global_threshold)
                self.freematch_class_marginal.copy_(state.class_marginal)
        return freematch_class_thresholds(state)

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """CE on the labeled rows + the confidence-masked pseudo-label CE of the strong views (one forward for all)."""
        logits_l, weak, strong = self.logits_of(x_l, u_weak[:, 0], u_strong[:, 0])  # [B, C], [μB, C], [μB, C]
        unsup = fixmatch_loss(weak, strong, self._thresholds(weak))  # pseudo-labels from weak, detached inside
        adaptive = self.freematch_threshold.clone() if self.config.threshold == "freematch" else None
        return SemiStep(F.cross_entropy(logits_l, labels), unsup.loss, labeled_logits=logits_l,
                        unlabeled_logits=strong, mask_rate=unsup.mask_rate, threshold=adaptive)
