"""Temporal Ensembling (Laine & Aila 2017): each unlabeled image's target is an EMA of its own past predictions.

    Z_i <- α Z_i + (1 − α) z_i,    z~_i = Z_i / (1 − α^{t_i}),    z_i = softmax(f(A(u_i)))
    loss = CE(f(x_l), y) + λ_u · w(t) · (1 / (C μB)) Σ_{i seen before} ‖z_i − z~_i‖²

Z [N, C] and t [N] (visits per row) are model buffers sized by the unlabeled set, indexed by u_index (the row's id in
the unlabeled set, passed by the family's data hook); α = `ensemble_momentum` (the paper's 0.6).

Decisions:
* The size of the unlabeled set is a required config field, `num_unlabeled_rows`: the model (and its buffers) is built
  before the data is read, a saved folder must rebuild buffers of the right shape from its config.json alone, and
  a wrong value is caught before training by check_unlabeled_rows with one line giving the right value (the split
  is a pure function of dataset, labels_per_class | label_fraction and seed, so the value is stable per recipe).
  Buffers grown on demand would avoid the field but break resuming and multi-process buffer sync.
* Per-row update at each visit, not once per epoch: the paper accumulates a whole epoch's predictions and updates Z
  between epochs; here row i's Z_i and t_i are updated right after its target is read, in the same forward. Each row
  is visited once per pass over the unlabeled set (the unlabeled stream is a permutation per epoch), so Z_i still
  averages one prediction per epoch; t_i counts the row's own visits (the paper's t is the epoch number: the same).
  The target of a visit is read BEFORE that visit's prediction enters Z (the paper's order: targets from earlier
  epochs only). Updated in training mode only; under several processes every process applies the whole global
  batch's update (gathered), so the buffers stay identical across processes.
* Rows never visited (t_i = 0) have no target and are left out of the sum (normalised by μB all the same). The paper
  uses a zero target there, harmless only because w(t) ≈ 0 in its first epoch; mask_rate logs the share of rows
  with a target.
* Consistency on unlabeled rows only; one concatenated forward [labeled; unlabeled] for BatchNorm; the entropy term
  reads the unlabeled predictions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, number, whole
from multissl.models.semi.pi_model import check_consistency
from multissl.objectives.consistency import probs_consistency_loss, temporal_ensemble_targets, temporal_ensemble_update
from multissl.objectives.distributed import gather_no_grad

DIGITS_TRAIN_ROWS = 1259  # rows of digits' train split (the tiny config's unlabeled count derives from it)


class TemporalEnsemblingConfig(SemiSupervisedConfig):
    """The family's fields + num_unlabeled_rows (required: the size of the unlabeled set, i.e. the training split's
    rows minus the labeled ones), ensemble_momentum α in [0, 1) (the paper's 0.6) and consistency ("mse" | "kl")."""

    model_type = "multissl_temporal_ensembling"

    def __init__(self, num_unlabeled_rows: int | None = None, ensemble_momentum: float = 0.6,
                 consistency: str = "mse", **kwargs):
        if num_unlabeled_rows is not None:
            num_unlabeled_rows = whole("num_unlabeled_rows (rows of the unlabeled set)", num_unlabeled_rows, 1)
        self.num_unlabeled_rows = num_unlabeled_rows
        self.ensemble_momentum = number("ensemble_momentum", ensemble_momentum, 0.0, 1.0, high_open=True)
        self.consistency = check_consistency(consistency)
        super().__init__(**kwargs)


def tiny_temporal_ensembling_config() -> TemporalEnsemblingConfig:
    """A config that trains in milliseconds (tests) on digits' train split, its default dataset (10 x 2 labeled)."""
    return TemporalEnsemblingConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=2,
                                    mu=2, num_unlabeled_rows=DIGITS_TRAIN_ROWS - 10 * 2, augment={"hflip_prob": 0.0})


class TemporalEnsemblingModel(SemiSupervisedModel):
    """Backbone + linear classifier + the ensemble buffers (ensemble [N, C], ensemble_counts [N]); each unlabeled row
    comes as one weak view (u_weak [μB, 1, 3, S, S]) with its id u_index [μB]."""

    config_class = TemporalEnsemblingConfig
    tiny_config = staticmethod(tiny_temporal_ensembling_config)
    base_model_prefix = "temporal_ensembling"
    unlabeled_views = (1, 0)
    unlabeled_index = True

    def __init__(self, config: TemporalEnsemblingConfig):
        if config.num_unlabeled_rows is None:
            raise ValueError("temporal_ensembling: num_unlabeled_rows is required (the per-row ensemble is sized before "
                             "the data is read); set model.num_unlabeled_rows to the training split's rows minus the "
                             "labeled ones (a wrong value is refused before training with the right one)")
        super().__init__(config)
        n, c = config.num_unlabeled_rows, config.num_classes
        # Per-run state: in every checkpoint and in save_pretrained, so a resumed run continues the same targets.
        self.register_buffer("ensemble", torch.zeros(n, c))  # Z [N, C]
        self.register_buffer("ensemble_counts", torch.zeros(n, dtype=torch.long))  # t [N]
        self.post_init()

    @classmethod
    def check_unlabeled_rows(cls, config: TemporalEnsemblingConfig, n: int) -> None:
        """Refuse a split whose unlabeled set is not exactly the ensemble's size, naming the right value."""
        if config.num_unlabeled_rows != n:
            raise ValueError(f"temporal_ensembling: model.num_unlabeled_rows must be {n}, the number of unlabeled rows "
                             f"of this split (its rows minus the labeled ones); got {config.num_unlabeled_rows}")

    @torch.no_grad()
    def _accumulate(self, u_index: torch.Tensor, probs: torch.Tensor) -> None:
        """Z, t <- temporal_ensemble_update for this step's rows (every process's rows: the state stays in sync)."""
        index, probs = gather_no_grad(u_index), gather_no_grad(probs)  # [W μB], [W μB, C]
        ensemble, counts = temporal_ensemble_update(self.ensemble, self.ensemble_counts, index, probs,
                                                    self.config.ensemble_momentum)
        self.ensemble.copy_(ensemble)
        self.ensemble_counts.copy_(counts)

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """CE on the labeled rows + the squared distance of each seen row's softmax to its bias-corrected ensemble."""
        logits_l, logits_u = self.logits_of(x_l, u_weak[:, 0])  # [B, C], [μB, C]
        alpha = self.config.ensemble_momentum
        target = temporal_ensemble_targets(self.ensemble, self.ensemble_counts, u_index, alpha)  # [μB, C], before update
        seen = self.ensemble_counts[u_index] > 0  # [μB]
        if bool(seen.any()):  # mean over the seen rows x their share = the sum over seen rows / (C μB)
            unsup = probs_consistency_loss(logits_u[seen], target[seen], kind=self.config.consistency) * seen.float().mean()
        else:
            unsup = logits_u.sum() * 0.0  # a zero that keeps the graph (every parameter still gets a gradient)
        if self.training:
            self._accumulate(u_index, logits_u.detach().softmax(-1))
        return SemiStep(F.cross_entropy(logits_l, labels), unsup, labeled_logits=logits_l, unlabeled_logits=logits_u,
                        mask_rate=seen.float().mean())
