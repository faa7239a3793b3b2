"""ReMixMatch (Berthelot et al. 2020): distribution alignment + augmentation anchoring on top of MixMatch's MixUp.

    p_b = softmax(f(A_weak(u_b)));  p~(y) ← m p~(y) + (1 - m) mean_b p_b            (running model marginal)
    q_b = Sharpen(Normalize(p_b · p(y) / p~(y)), T)                                  (no gradient: the anchor)
    X̂ = ((x_b, one_hot(y_b))), Û = ((û_b,k, q_b)) for the weak view k = 0 and the K strong views k = 1..K
    X', U' = MixMatch's MixUp over Concat(X̂, Û) (λ ~ Beta(α, α), λ' = max(λ, 1 - λ))
    loss = H(X') + w(t) · (λ_u H(U') + λ_Û1 H(q, f(û_1)) + λ_r CE(r, g(Rotate(û_1, r))))
    H: soft cross-entropy averaged over rows; û_1 the first strong view (not mixed); g a 4-way rotation head.

Decisions:
* p(y), the labeled class marginal, is uniform: the family picks labels_per_class rows of every class, so the labeled
  set is exactly class-balanced (with label_fraction it is the data's class balance; uniform is then an
  approximation on imbalanced data). p~(y) is a model buffer [C] (uniform at the start), so it is saved with the
  model and in every checkpoint, and a resumed run continues it exactly. It is an EMA (alignment_momentum; the
  paper averages the last 128 batches: 0.99 forgets at a similar pace) updated in training forward only, from this
  micro-batch's weak-view predictions (gathered over processes), before they are aligned: the paper's order.
* Augmentation anchoring: the guess comes from the weak view alone; K strong views (RandAugment + Cutout, the
  family's strong policy; the paper uses CTAugment) are targets. K is the knob `strong_views`, default 2 (the
  paper's 8 strong views of 224 unlabeled rows a step is beyond a CPU), read by the family's collator, data hook and
  shape check through `views_for(config)`. Labeled rows get the family's labeled view: weak by default (the recipes'
  runs); `labeled_view: strong` is the paper's strongly augmented labeled rows.
* The guess is a no-grad pass over the weak views in the model's current mode; then ONE concatenated forward over
  [mixed rows (B + (1 + K)·μB); û_1; rotated û_1] so BatchNorm sees the whole step's batch.
* λ_u (default the paper's 1.5) and the ramp-up are the family's: the base multiplies unsupervised_loss by
  λ_u · w(t), so this step returns L_U + (λ_Û1 H(û_1) + λ_r L_rot) / λ_u, giving the total above (all three
  unlabeled terms ramp). USB leaves the rotation term un-ramped; the base's un-ramped slot (SemiStep.auxiliary_loss)
  would do that, but it is not used: it would change every existing run (the recipe ramps over 100 steps, and even
  without a ramp λ_u · (λ_r L / λ_u) is not in general bit-equal to λ_r L).
* pre_mixup_weight λ_Û1 (paper 0.5) and rotation_weight λ_r (paper 0.5; 0 builds no rotation head) are knobs. The
  rotation of each û_1 row (0/90/180/270°) and the MixUp draws come from one CPU generator seeded from torch's
  global RNG, which the loop seeds per (run seed, step): deterministic per seed, replayed exactly on resume.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from multissl.modalities.image.rotation import NUM_ROTATIONS, four_rotations
from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, number, whole
from multissl.models.semi.mixmatch import mixup_alpha_value, step_generator
from multissl.models.semi.uda import sharpening_temperature
from multissl.objectives.distributed import gather_no_grad, is_distributed
from multissl.objectives.mixup import distribution_alignment, mixmatch_mixup, update_marginal
from multissl.objectives.pseudo_label import sharpen, soft_cross_entropy

STRONG_VIEWS = 2  # K's default: strong views per unlabeled row (the paper's 8 does not fit a CPU step; docstring)


def random_rotations(images: torch.Tensor, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image [N, C, S, S] by r·90° anticlockwise, r ~ U{0..3} per row: (rotated [N, C, S, S], r [N])."""
    n = images.shape[0]
    r = torch.randint(0, NUM_ROTATIONS, (n,), generator=generator).to(images.device)  # [N]
    rotated, _ = four_rotations(images)  # [N, 4, C, S, S]: 4 whole-batch ops, then pick one per row
    return rotated[torch.arange(n, device=images.device), r], r


class ReMixMatchConfig(SemiSupervisedConfig):
    """The family's fields + sharpen_temperature (T), mixup_alpha (α), pre_mixup_weight (λ_Û1), rotation_weight (λ_r),
    alignment_momentum (EMA momentum of the model marginal p~(y)) and strong_views (K strong views of each unlabeled
    row); λ_u defaults to the paper's 1.5."""

    model_type = "multissl_remixmatch"

    def __init__(self, sharpen_temperature: float = 0.5, mixup_alpha: float = 0.75, pre_mixup_weight: float = 0.5,
                 rotation_weight: float = 0.5, alignment_momentum: float = 0.99, strong_views: int = STRONG_VIEWS,
                 lambda_u: float = 1.5, **kwargs):
        self.sharpen_temperature = sharpening_temperature("sharpen_temperature", sharpen_temperature)
        self.mixup_alpha = mixup_alpha_value(mixup_alpha)
        self.pre_mixup_weight = number("pre_mixup_weight (λ_Û1, weight of the unmixed strong-view loss)",
                                       pre_mixup_weight, 0.0, float("inf"), high_open=True)
        self.rotation_weight = number("rotation_weight (λ_r, 0: no rotation loss)", rotation_weight, 0.0,
                                      float("inf"), high_open=True)
        self.alignment_momentum = number("alignment_momentum", alignment_momentum, 0.0, 1.0, high_open=True)
        self.strong_views = whole("strong_views (K, strong views of each unlabeled row; the first is also û_1)",
                                  strong_views, 1)
        super().__init__(lambda_u=lambda_u, **kwargs)


def tiny_remixmatch_config() -> ReMixMatchConfig:
    """A config that runs forward+backward in milliseconds (tests); 10 classes to fit digits, its default dataset."""
    return ReMixMatchConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=4, mu=2,
                            augment={"hflip_prob": 0.0})


class ReMixMatchModel(SemiSupervisedModel):
    """Backbone + linear classifier (+ a 4-way rotation head when rotation_weight > 0); unlabeled rows come as one weak
    and K = strong_views strong views (u_weak [μB, 1, ...], u_strong [μB, K, ...]); p~(y) is the buffer
    `model_marginal` [C]."""

    config_class = ReMixMatchConfig
    tiny_config = staticmethod(tiny_remixmatch_config)
    base_model_prefix = "remixmatch"
    unlabeled_views = (1, STRONG_VIEWS)  # the default; views_for reads the config's K

    @classmethod
    def views_for(cls, config: ReMixMatchConfig) -> tuple[int, int]:
        """One weak view (the anchor) and K = strong_views strong views of each unlabeled row."""
        return (1, config.strong_views)

    def __init__(self, config: ReMixMatchConfig):
        super().__init__(config)
        self.register_buffer("model_marginal", torch.full((config.num_classes,), 1.0 / config.num_classes))
        # The rotation head is a small Linear on the backbone features (as in the paper's code).
        self.rotation_head = nn.Linear(self.classifier.in_features, NUM_ROTATIONS) if config.rotation_weight > 0 else None
        self.post_init()

    def guess(self, weak_logits: torch.Tensor) -> torch.Tensor:
        """Aligned, sharpened targets [μB, C] from weak-view logits [μB, C]; updates p~(y) first in training mode."""
        probs = weak_logits.detach().float().softmax(-1)  # [μB, C]
        if self.training:
            seen = gather_no_grad(probs) if is_distributed() else probs  # every process keeps the same p~(y)
            self.model_marginal.copy_(update_marginal(self.model_marginal, seen, self.config.alignment_momentum))
        aligned = distribution_alignment(probs, self.model_marginal)  # p(y) uniform (class-balanced labels)
        return sharpen(aligned, self.config.sharpen_temperature).to(weak_logits.dtype)

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """Anchor guess from the weak view, MixUp of labeled + all unlabeled views, one forward for the rest."""
        c, b, n = self.config.num_classes, x_l.shape[0], u_weak.shape[0]
        weak = u_weak[:, 0]  # [μB, 3, S, S]
        strong = u_strong.transpose(0, 1).flatten(0, 1)  # view-major [K·μB, 3, S, S]; strong[:μB] is û_1
        with torch.no_grad():
            guess = self.guess(self.classify(weak))  # [μB, C]
        views = 1 + u_strong.shape[1]
        targets = torch.cat([F.one_hot(labels, c).to(guess.dtype), guess.repeat(views, 1)])  # [B + (1+K)μB, C]
        generator = step_generator()
        mixed = mixmatch_mixup(torch.cat([x_l, weak, strong]), targets, self.config.mixup_alpha, generator=generator)
        parts = [mixed.inputs, strong[:n]]
        if self.rotation_head is not None:
            rotated, r = random_rotations(strong[:n], generator)
            parts.append(rotated)
        feats = self.embed(torch.cat(parts))  # one pass: [B + (1+K)μB + μB (+ μB), D]
        m = mixed.inputs.shape[0]
        logits = self.classifier(feats[:m + n])  # the rotated rows feed the rotation head only
        logits_x, logits_u, logits_u1 = logits[:b], logits[b:m], logits[m:]  # [B, C], [(1+K)μB, C], [μB, C]
        unsup = soft_cross_entropy(logits_u, mixed.targets[b:])
        extra = self.config.pre_mixup_weight * soft_cross_entropy(logits_u1, guess)
        if self.rotation_head is not None:
            extra = extra + self.config.rotation_weight * F.cross_entropy(self.rotation_head(feats[m + n:]), r)
        # The base multiplies by λ_u·w(t); dividing the extra terms by λ_u (> 0 whenever this runs) gives them λ·w(t).
        unsup = unsup + extra / self.config.lambda_u
        return SemiStep(soft_cross_entropy(logits_x, mixed.targets[:b]), unsup, labeled_logits=None,
                        unlabeled_logits=logits_u1)
