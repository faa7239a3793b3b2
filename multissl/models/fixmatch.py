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
* The labeled / unlabeled split is made by the data hook (make_batch_source) with split_labeled, seeded by
  `label_seed` (default: the run seed); the unlabeled rows reach the collator without their label column.
* `lambda_u: 0` is the supervised-only baseline on exactly the same labeled batches: the data hook then draws
  no unlabeled stream (so BatchNorm sees the labeled rows alone) and the loss is the labeled CE.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.data.batches import DataRequest
from multissl.data.semi_supervised import LabeledUnlabeledSource, semi_supervised_split
from multissl.modalities.image.ssl_views import SSLViewAugment, WeakStrongCollator
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.labels import check_labels
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields
from multissl.objectives.adaptive_threshold import FreeMatchState, freematch_class_thresholds, freematch_update
from multissl.objectives.distributed import is_distributed
from multissl.objectives.pseudo_label import fixmatch_loss

DEFAULT_THRESHOLD = 0.95  # the paper's τ
AUGMENT_KEYS = tuple(f.name for f in fields(SSLViewAugment) if f.name != "image_size")


def _whole(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


class FixMatchConfig(MethodConfig):
    """Backbone, image size, classes, the labeled subset (labels_per_class | label_fraction), μ, τ, λ_u, views.

    threshold: a confidence τ in [0, 1] (None: the paper's 0.95) or "freematch" (self-adaptive per-class
    thresholds, EMA momentum `freematch_momentum`). augment: SSLViewAugment's knobs (hflip_prob,
    crop_padding_fraction, randaugment_ops, randaugment_magnitude, cutout_range); the weak view is flip-and-shift,
    the strong view adds RandAugment and Cutout; labeled rows get the weak view. num_classes and one of
    labels_per_class / label_fraction are required to build a model (None is allowed here only because
    transformers builds a default config).
    """

    model_type = "multissl_fixmatch"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 num_classes: int | None = None, label_column: str = "label", labels_per_class: int | None = None,
                 label_fraction: float | None = None, label_seed: int | None = None, mu: int = 7,
                 threshold: float | str | None = None, freematch_momentum: float = 0.999, lambda_u: float = 1.0,
                 augment: dict | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if num_classes is not None:
            num_classes = _whole("num_classes (the number of classes in the label column)", num_classes, 2)
        if not isinstance(label_column, str) or not label_column:
            raise ValueError(f"label_column must be a non-empty column name; got {label_column!r}")
        if labels_per_class is not None and label_fraction is not None:
            raise ValueError(f"give exactly one of labels_per_class or label_fraction; got labels_per_class="
                             f"{labels_per_class!r} and label_fraction={label_fraction!r}")
        if labels_per_class is not None:
            labels_per_class = _whole("labels_per_class", labels_per_class, 1)
        if label_fraction is not None and (isinstance(label_fraction, bool) or not isinstance(label_fraction, Real)
                                           or not 0.0 < float(label_fraction) < 1.0):
            raise ValueError(f"label_fraction must be in (0, 1) (the fraction of each class that is labeled); "
                             f"got {label_fraction!r}")
        if label_seed is not None:
            label_seed = _whole("label_seed", label_seed, 0)
        if threshold is None:
            threshold = DEFAULT_THRESHOLD
        elif threshold != "freematch" and (isinstance(threshold, bool) or not isinstance(threshold, Real)
                                           or not 0.0 <= float(threshold) <= 1.0):
            raise ValueError(f"threshold must be a confidence in [0, 1] or 'freematch'; got {threshold!r}")
        if isinstance(freematch_momentum, bool) or not isinstance(freematch_momentum, Real) or \
                not 0.0 <= float(freematch_momentum) < 1.0:
            raise ValueError(f"freematch_momentum must be in [0, 1); got {freematch_momentum!r}")
        if isinstance(lambda_u, bool) or not isinstance(lambda_u, Real) or not 0.0 <= float(lambda_u) < float("inf"):
            raise ValueError(f"lambda_u must be a finite number >= 0 (0: supervised only); got {lambda_u!r}")
        augment = dict(augment or {})
        unknown = sorted(set(augment) - set(AUGMENT_KEYS))
        if unknown:
            raise ValueError(f"augment: unknown key(s) {unknown}; allowed: {list(AUGMENT_KEYS)}")
        self.num_classes, self.label_column = num_classes, label_column
        self.labels_per_class = labels_per_class
        self.label_fraction = None if label_fraction is None else float(label_fraction)
        self.label_seed, self.mu = label_seed, _whole("mu", mu, 1)
        self.threshold = threshold if threshold == "freematch" else float(threshold)
        self.freematch_momentum, self.lambda_u = float(freematch_momentum), float(lambda_u)
        self.augment = augment
        super().__init__(**kwargs)


@dataclass
class FixMatchOutput(ModelOutput):
    """loss = supervised_loss + λ_u unsupervised_loss; mask_rate: kept fraction of μB; accuracy on the labeled rows;
    freematch_threshold: τ_t (FreeMatch only); logits [B, C] of the labeled rows."""

    loss: torch.Tensor | None = None
    supervised_loss: torch.Tensor | None = None
    unsupervised_loss: torch.Tensor | None = None
    mask_rate: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    freematch_threshold: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class FixMatchCollator:
    """labeled(rows) -> {"x_l": [B, 3, S, S], "labels": [B]}; unlabeled(rows) -> {"x_weak", "x_strong": [μB, 3, S, S]}.

    Called on one list of rows, it uses those rows as both streams (the contract's single-collator form, for the
    registry-wide tests); training draws the two streams separately (FixMatchModel.make_batch_source).
    """

    def __init__(self, config: FixMatchConfig):
        augment = SSLViewAugment(image_size=config.image_size, **config.augment)
        self.column, self.num_classes = config.label_column, config.num_classes
        self.weak = WeakStrongCollator(augment, num_weak=1, num_strong=0)
        self.pair = WeakStrongCollator(augment, num_weak=1, num_strong=1)

    def labeled(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Weak views and labels of labeled rows (FixMatch augments labeled data weakly)."""
        missing = [i for i, r in enumerate(rows) if self.column not in r]
        if missing:
            raise ValueError(f"fixmatch: labeled row {missing[0]} has no label column {self.column!r} (columns: "
                             f"{', '.join(map(str, rows[missing[0]]))}); set model.label_column")
        labels = torch.tensor([int(r[self.column]) for r in rows], dtype=torch.long)  # [B]
        if self.num_classes is not None:
            check_labels(labels, self.num_classes, f"fixmatch: label column {self.column!r}")
        images = self.weak([{"image": r.get("image")} for r in rows])["weak"][:, 0]  # [B, 3, S, S]
        return {"x_l": images, "labels": labels}

    def unlabeled(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A weak and a strong view of each row; only the image is read, so no label can pass."""
        views = self.pair([{"image": r.get("image")} for r in rows])
        return {"x_weak": views["weak"][:, 0], "x_strong": views["strong"][:, 0]}  # [μB, 3, S, S] each

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {**self.labeled(rows, generator), **self.unlabeled(rows, generator)}


def make_fixmatch_collator(config: FixMatchConfig, train: bool = True):
    """Both streams' views for training; plain resized images for embed() (every vision method's eval inputs)."""
    return FixMatchCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_fixmatch_config() -> FixMatchConfig:
    """A config that runs forward+backward in milliseconds (tests); 26 classes to fit glyphs, its default dataset."""
    return FixMatchConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=26, labels_per_class=4, mu=2,
                          threshold=0.5, augment={"hflip_prob": 0.0})


class FixMatchModel(MethodModel):
    """Backbone + linear classifier; forward(x_l [B,3,S,S], labels [B], x_weak, x_strong [μB,3,S,S]) -> FixMatchOutput."""

    config_class = FixMatchConfig
    tiny_config = staticmethod(tiny_fixmatch_config)
    make_collator = staticmethod(make_fixmatch_collator)
    base_model_prefix = "fixmatch"
    main_input_name = "x_l"

    def __init__(self, config: FixMatchConfig):
        if config.num_classes is None:
            raise ValueError("fixmatch: num_classes is required (the model is built before the data is read); set "
                             "model.num_classes in the recipe, e.g. 26 for glyphs, 10 for digits")
        if (config.labels_per_class is None) == (config.label_fraction is None):
            raise ValueError("fixmatch: set exactly one of model.labels_per_class (labeled rows per class) or "
                             "model.label_fraction (fraction of each class labeled)")
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.classifier = nn.Linear(dim, config.num_classes)
        if config.threshold == "freematch":  # τ_0 = 1/C, p~_0 = uniform (FreeMatch's start)
            c = config.num_classes
            self.register_buffer("freematch_threshold", torch.tensor(1.0 / c))
            self.register_buffer("freematch_class_marginal", torch.full((c,), 1.0 / c))
        self.post_init()

    @classmethod
    def make_batch_source(cls, config: FixMatchConfig, data: DataRequest, *, batch_size: int, seed: int,
                          world_size: int = 1, rank: int = 0) -> torch.utils.data.Dataset:
        """B labeled rows (weak views + labels) and μB unlabeled rows (weak + strong views, no labels) per item."""
        label_seed = seed if config.label_seed is None else config.label_seed
        labeled, unlabeled = semi_supervised_split(data.load(), config.label_column, seed=label_seed,
                                                   labels_per_class=config.labels_per_class,
                                                   label_fraction=config.label_fraction)
        collate = FixMatchCollator(config)
        mu = config.mu if config.lambda_u > 0 else 0  # λ_u = 0: the supervised baseline draws no unlabeled rows
        return LabeledUnlabeledSource(labeled, unlabeled, collate.labeled, collate.unlabeled, batch_size, mu, seed,
                                      world_size, rank)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] (what k-NN and the linear probe read)."""
        return vision_features(self.backbone, pixel_values)

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class logits [B, C] of images [B, 3, S, S] (the semi-supervised classifier itself)."""
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, H, W]")
        return self.classifier(self.embed(pixel_values))

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

    def forward(self, x_l: torch.Tensor, labels: torch.Tensor | None = None, x_weak: torch.Tensor | None = None,
                x_strong: torch.Tensor | None = None, **_: object) -> FixMatchOutput:
        check_pixels(x_l, 4, "x_l", "[B, C, H, W]")
        if labels is None:  # prediction only
            return FixMatchOutput(logits=self.classify(x_l))
        b = x_l.shape[0]
        if labels.shape != (b,):
            raise ValueError(f"fixmatch forward: labels must be [B] = [{b}]; got {tuple(labels.shape)}")
        check_labels(labels, self.config.num_classes, "fixmatch forward")  # CUDA would only assert on a bad id
        if (x_weak is None) != (x_strong is None):
            raise ValueError("fixmatch forward: give both x_weak and x_strong (the unlabeled rows' two views) or neither")
        parts = [x_l]
        if x_weak is not None:
            check_pixels(x_weak, 4, "x_weak", "[μB, C, H, W]")
            if x_strong.shape != x_weak.shape:
                raise ValueError(f"fixmatch forward: x_strong must match x_weak's shape {tuple(x_weak.shape)}; got "
                                 f"{tuple(x_strong.shape)}")
            parts += [x_weak, x_strong]
        logits = self.classifier(self.embed(torch.cat(parts)))  # one pass for BatchNorm: [B (+ 2μB), C]
        logits_l = logits[:b]  # [B, C]
        supervised = F.cross_entropy(logits_l, labels)
        accuracy = (logits_l.detach().argmax(-1) == labels).float().mean()
        if x_weak is None:  # labeled rows only (the λ_u = 0 baseline's batches)
            return FixMatchOutput(loss=supervised, supervised_loss=supervised.detach(), accuracy=accuracy, logits=logits_l)
        weak, strong = logits[b:].chunk(2)  # [μB, C] each
        unsup = fixmatch_loss(weak, strong, self._thresholds(weak))  # pseudo-labels from weak, detached inside
        adaptive = self.freematch_threshold.detach().clone() if self.config.threshold == "freematch" else None
        return FixMatchOutput(loss=supervised + self.config.lambda_u * unsup.loss, supervised_loss=supervised.detach(),
                              unsupervised_loss=unsup.loss.detach(), mask_rate=unsup.mask_rate.detach(),
                              accuracy=accuracy, freematch_threshold=adaptive, logits=logits_l)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
