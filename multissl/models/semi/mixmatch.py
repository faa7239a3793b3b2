"""MixMatch (Berthelot et al. 2019): guessed labels from K weak views, MixUp over labeled + unlabeled, soft CE + L2.

    q_b = Sharpen((1/K) Σ_k softmax(f(A_weak,k(u_b))), T)                    (no gradient: a label guess)
    X̂ = ((x_b, one_hot(y_b))), Û = ((A_weak,k(u_b), q_b)) for every k;  W = Shuffle(Concat(X̂, Û))
    X' = MixUp(X̂_i, W_i), U' = MixUp(Û_i, W_{|X̂|+i}),  λ ~ Beta(α, α), λ' = max(λ, 1 - λ)
    loss = (1/|X'|) Σ H(p', f(x')) + λ_u · w(t) · (1/(C|U'|)) Σ ||q' - softmax(f(u'))||²

Decisions:
* K weak views of each unlabeled row: the knob `guess_views`, default 2 (the paper's K for every experiment); the
  family's collator, data hook and shape check read it through `views_for(config)`.
* The guess is one no-grad pass over the K·μB weak views in the model's current mode (training: BatchNorm batch
  statistics, as the authors' code guesses with training=True). The mixed batch (B + K·μB rows) is then ONE
  concatenated forward, so BatchNorm normalises labeled and unlabeled mixed rows together (the authors interleave
  separate passes to get the same effect).
* MixUp is mixmatch_mixup (multissl/objectives/mixup.py): λ per row, λ' >= 0.5 keeps each mixed row closer to its own
  row, so the first B rows stay "labeled" for L_X. Its draws (λ, the shuffle) come from a CPU torch.Generator seeded
  from torch's global RNG, which the loop seeds per (run seed, step): the mixing is the same on CPU and GPU and a
  resumed run replays it exactly.
* L_X and L_U are mixmatch_loss's terms; λ_u and its ramp-up are the family's (lambda_u · a sigmoid ramp over
  rampup_steps by default; `rampup: linear` is the paper's linear ramp, over its first 16k steps). The default
  λ_u = 100 is the paper's CIFAR-10 value. Labeled rows are mixed, so the step reports no labeled accuracy; the
  entropy term (if on) reads the mixed unlabeled rows' predictions. The paper's EMA of weights for evaluation is not
  used (the classifier is scored as trained, like every method of the family).
"""
from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F

from multissl.models.common.vision import TINY_RESNET
from multissl.models.semi.base import SemiStep, SemiSupervisedModel
from multissl.models.semi.config import SemiSupervisedConfig, whole
from multissl.models.semi.uda import sharpening_temperature
from multissl.objectives.mixup import mixmatch_loss, mixmatch_mixup
from multissl.objectives.pseudo_label import sharpen

GUESS_VIEWS = 2  # K's default: weak views averaged into each label guess (the paper's K = 2)


def mixup_alpha_value(value: object) -> float:
    """MixUp's Beta(α, α) concentration α > 0, or one clear ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value) > 0.0 or value == float("inf"):
        raise ValueError(f"mixup_alpha must be a number > 0 (MixUp's Beta(alpha, alpha)); got {value!r}")
    return float(value)


def step_generator() -> torch.Generator:
    """A CPU generator for this step's MixUp draws, seeded from torch's global RNG (which the loop seeds per step)."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))


def guess_labels(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """MixMatch's guess: probs [K, N, C] (K augmentations of N rows) -> Sharpen(mean over K, T) [N, C], detached."""
    return sharpen(probs.detach().mean(0), temperature)


class MixMatchConfig(SemiSupervisedConfig):
    """The family's fields + sharpen_temperature (T of the guess), mixup_alpha (α of Beta(α, α)) and guess_views (K
    weak views averaged into each guess); λ_u defaults to the paper's 100 (L_U is a mean squared error over classes,
    far smaller than a cross-entropy)."""

    model_type = "multissl_mixmatch"

    def __init__(self, sharpen_temperature: float = 0.5, mixup_alpha: float = 0.75, guess_views: int = GUESS_VIEWS,
                 lambda_u: float = 100.0, **kwargs):
        self.sharpen_temperature = sharpening_temperature("sharpen_temperature", sharpen_temperature)
        self.guess_views = whole("guess_views (K, weak views of each unlabeled row averaged into its guess)",
                                 guess_views, 1)
        self.mixup_alpha = mixup_alpha_value(mixup_alpha)
        super().__init__(lambda_u=lambda_u, **kwargs)


def tiny_mixmatch_config() -> MixMatchConfig:
    """A config that runs forward+backward in milliseconds (tests); 10 classes to fit digits, its default dataset."""
    return MixMatchConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=10, labels_per_class=4, mu=2,
                          augment={"hflip_prob": 0.0})


class MixMatchModel(SemiSupervisedModel):
    """Backbone + linear classifier; unlabeled rows come as K = guess_views weak views (u_weak [μB, K, 3, S, S])."""

    config_class = MixMatchConfig
    tiny_config = staticmethod(tiny_mixmatch_config)
    base_model_prefix = "mixmatch"
    unlabeled_views = (GUESS_VIEWS, 0)  # the default; views_for reads the config's K

    @classmethod
    def views_for(cls, config: MixMatchConfig) -> tuple[int, int]:
        """K = guess_views weak views of each unlabeled row, no strong view."""
        return (config.guess_views, 0)

    def __init__(self, config: MixMatchConfig):
        super().__init__(config)
        self.post_init()

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """Guess, mix, one forward of the mixed batch; L_X (soft CE) as supervised, L_U (squared error) as unsupervised."""
        b, n, k = x_l.shape[0], u_weak.shape[0], u_weak.shape[1]
        views = u_weak.transpose(0, 1).flatten(0, 1)  # view-major [K·μB, 3, S, S]: rows k·μB .. (k+1)·μB - 1 = view k
        with torch.no_grad():
            probs = self.classify(views).softmax(-1).reshape(k, n, -1)  # [K, μB, C]
            guess = guess_labels(probs, self.config.sharpen_temperature)  # [μB, C]
        targets = torch.cat([F.one_hot(labels, self.config.num_classes).to(guess.dtype), guess.repeat(k, 1)])  # [B+KμB, C]
        mixed = mixmatch_mixup(torch.cat([x_l, views]), targets, self.config.mixup_alpha, generator=step_generator())
        logits_x, logits_u = self.logits_of(mixed.inputs[:b], mixed.inputs[b:])  # [B, C], [K·μB, C]: one pass
        # λ_u is applied by the base (with its ramp-up), so the objective's own weight is 1 here.
        loss = mixmatch_loss(logits_x, mixed.targets[:b], logits_u, mixed.targets[b:], lambda_u=1.0)
        return SemiStep(loss.loss_x, loss.loss_u, labeled_logits=None, unlabeled_logits=logits_u)
