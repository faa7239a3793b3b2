"""SemiSupervisedModel: what every semi-supervised image algorithm shares; each algorithm adds one `semi_step`.

    loss = L_sup + λ_u · w(t) · L_unsup + L_aux + λ_H · H(unlabeled predictions)
    w(t) = exp(-5 (1 - t/T)^2) (rampup: sigmoid, the default) or min(1, t/T) (rampup: linear), T = rampup_steps

Shared here (one place, so the methods differ only where their papers differ):
* The data hook: split_labeled picks the labeled subset (labels_per_class | label_fraction, seeded by label_seed,
  default the run seed); each step draws B labeled rows (one view + label: weak, or strong with
  `labeled_view: strong`) and μB unlabeled rows as `views_for(config) = (weak, strong)` views each (by default the
  class's `unlabeled_views`; an algorithm whose view count is a knob overrides views_for), label column removed.
  `unlabeled_index = True` also passes each unlabeled row's index into the unlabeled set (Temporal Ensembling keeps
  a per-row ensemble).
* λ_u = 0 is the supervised-only baseline of every algorithm on exactly the same labeled batches: no unlabeled stream
  is drawn and the loss is the labeled cross-entropy (semi_step is not called).
* The training progress (steps done, total) is a buffer updated in on_step_end, so ramp-ups and schedules continue
  exactly after a resume (it is in every checkpoint) and forward needs no argument for it.
* The entropy term (Grandvalet & Bengio) is added here to whatever algorithm runs, on the predictions its
  semi_step returns as `unlabeled_logits`.
* L_aux, an algorithm's `auxiliary_loss` (None: none), is added WITHOUT λ_u and its ramp-up: for terms that should act
  from the first step at their own weight (e.g. a self-supervised side task), logged as `auxiliary_loss`.
* The classifier is one linear layer on the backbone's pooled features; `classify` is the semi-supervised
  classifier itself, `embed` the features k-NN and the linear probe read, the export is the plain HF backbone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.data.batches import DataRequest
from multissl.data.semi_supervised import LabeledUnlabeledSource, training_streams
from multissl.modalities.image.ssl_views import SSLViewAugment, WeakStrongCollator
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.labels import check_labels
from multissl.models.common.vision import backbone_and_dim, check_pixels
from multissl.models.semi.config import SemiSupervisedConfig
from multissl.models.semi.rampup import RAMPUPS
from multissl.objectives.pseudo_label import entropy_loss

INDEX_COLUMN = "unlabeled_index"


class SemiStep(NamedTuple):
    """What an algorithm's semi_step returns: its labeled loss, its unlabeled loss (scalars), the labeled rows'
    logits [B, C] (for accuracy; None when the algorithm mixes them), the unlabeled predictions the entropy term reads
    ([N, C] or None), the fraction of unlabeled rows a mask kept (or None), an adaptive confidence threshold in
    force (e.g. FreeMatch's global τ_t; None for fixed thresholds) for logging, and an auxiliary loss (scalar or
    None) that the base adds as it is: neither λ_u nor the ramp-up multiply it."""

    supervised_loss: torch.Tensor
    unsupervised_loss: torch.Tensor
    labeled_logits: torch.Tensor | None = None
    unlabeled_logits: torch.Tensor | None = None
    mask_rate: torch.Tensor | None = None
    threshold: torch.Tensor | None = None
    auxiliary_loss: torch.Tensor | None = None


@dataclass
class SemiSupervisedOutput(ModelOutput):
    """loss = supervised_loss + unsup_weight · unsupervised_loss + auxiliary_loss + entropy_weight · entropy; accuracy
    on the labeled rows; mask_rate where the algorithm masks; logits [B, C] of the labeled rows (prediction: of x_l)."""

    loss: torch.Tensor | None = None
    supervised_loss: torch.Tensor | None = None
    unsupervised_loss: torch.Tensor | None = None
    unsup_weight: torch.Tensor | None = None
    auxiliary_loss: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    mask_rate: torch.Tensor | None = None
    threshold: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class SemiSupervisedCollator:
    """labeled(rows) -> {"x_l": [B, 3, S, S], "labels": [B]} (config.labeled_view: a weak or a strong view);
    unlabeled(rows) -> {"u_weak": [μB, Vw, 3, S, S], "u_strong": [μB, Vs, 3, S, S]} (a key only when its count is > 0)
    (+ "u_index": [μB] with `with_index`), views = (Vw, Vs).

    Called on one list of rows it uses them as both streams (the contract's single-collator form, for the
    registry-wide tests); training draws the two streams separately (SemiSupervisedModel.make_batch_source).
    """

    def __init__(self, config: SemiSupervisedConfig, views: tuple[int, int], with_index: bool = False):
        augment = SSLViewAugment(image_size=config.image_size, **config.augment)
        self.column, self.num_classes, self.with_index = config.label_column, config.num_classes, with_index
        self.labeled_kind = config.labeled_view  # "weak" | "strong"
        strong = self.labeled_kind == "strong"
        self.one_view = WeakStrongCollator(augment, num_weak=int(not strong), num_strong=int(strong))
        self.views = WeakStrongCollator(augment, num_weak=views[0], num_strong=views[1])

    def labeled(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One view (weak, or strong with labeled_view: strong) and the label of each labeled row."""
        missing = [i for i, r in enumerate(rows) if self.column not in r]
        if missing:
            raise ValueError(f"labeled row {missing[0]} has no label column {self.column!r} (columns: "
                             f"{', '.join(map(str, rows[missing[0]]))}); set model.label_column")
        labels = torch.tensor([int(r[self.column]) for r in rows], dtype=torch.long)  # [B]
        if self.num_classes is not None:
            check_labels(labels, self.num_classes, f"label column {self.column!r}")
        images = self.one_view([{"image": r.get("image")} for r in rows])[self.labeled_kind][:, 0]  # [B, 3, S, S]
        return {"x_l": images, "labels": labels}

    def unlabeled(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The algorithm's views of each unlabeled row; only the image (and index) is read, so no label can pass."""
        views = self.views([{"image": r.get("image")} for r in rows])
        out = {f"u_{kind}": views[kind] for kind in ("weak", "strong") if kind in views}
        if self.with_index:
            if not all(INDEX_COLUMN in r for r in rows):
                raise ValueError(f"unlabeled rows need their {INDEX_COLUMN!r} (added by the data hook)")
            out["u_index"] = torch.tensor([int(r[INDEX_COLUMN]) for r in rows], dtype=torch.long)  # [μB]
        return out

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.with_index:
            rows = [{**r, INDEX_COLUMN: i} for i, r in enumerate(rows)]
        return {**self.labeled(rows, generator), **self.unlabeled(rows, generator)}


class SemiSupervisedModel(MethodModel):
    """Backbone + linear classifier; forward(x_l [B,3,S,S], labels [B], u_weak [μB,Vw,3,S,S], u_strong [μB,Vs,3,S,S],
    u_index [μB]) -> SemiSupervisedOutput. Subclasses set config_class, unlabeled_views (or override views_for when
    the counts are config knobs) and implement semi_step; their __init__ adds any modules of their own after
    super().__init__ and then calls self.post_init()."""

    unlabeled_views: ClassVar[tuple[int, int]] = (1, 1)  # (weak, strong) views of each unlabeled row: views_for's default
    unlabeled_index: ClassVar[bool] = False  # pass u_index (row ids into the unlabeled set)
    main_input_name = "x_l"

    def __init__(self, config: SemiSupervisedConfig):
        name = getattr(config, "model_type", "").removeprefix("multissl_")
        if config.num_classes is None:
            raise ValueError(f"{name}: num_classes is required (the model is built before the data is read); set "
                             f"model.num_classes in the recipe, e.g. 26 for glyphs, 10 for digits")
        if (config.labels_per_class is None) == (config.label_fraction is None):
            raise ValueError(f"{name}: set exactly one of model.labels_per_class (labeled rows per class) or "
                             f"model.label_fraction (fraction of each class labeled)")
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.classifier = nn.Linear(dim, config.num_classes)
        # Training progress for ramp-ups and schedules: saved with the model, so a resume continues it exactly.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.long))

    # ---- data ---------------------------------------------------------------------------------------

    @classmethod
    def views_for(cls, config: SemiSupervisedConfig) -> tuple[int, int]:
        """(weak, strong) views of each unlabeled row under `config`, read by the collator, the data hook and forward's
        shape check: the class's unlabeled_views; algorithms whose counts are knobs (MixMatch's K) override it."""
        return cls.unlabeled_views

    @classmethod
    def make_collator(cls, config: SemiSupervisedConfig, train: bool = True):
        """Both streams' views for training; plain resized images for embed() (every vision method's eval inputs)."""
        if not train:
            return EvalImageCollator(config.image_size)
        return SemiSupervisedCollator(config, cls.views_for(config), cls.unlabeled_index)

    @classmethod
    def make_batch_source(cls, config: SemiSupervisedConfig, data: DataRequest, *, batch_size: int, seed: int,
                          world_size: int = 1, rank: int = 0) -> torch.utils.data.Dataset:
        """B labeled rows (one view + label) and μB unlabeled rows (the algorithm's views, no label) per item."""
        label_seed = seed if config.label_seed is None else config.label_seed
        labeled, unlabeled = training_streams(data.load(), config.label_column, labels_per_class=config.labels_per_class,
                                              label_fraction=config.label_fraction, seed=label_seed,
                                              lambda_u=config.lambda_u)
        if unlabeled is not None and cls.unlabeled_index:
            cls.check_unlabeled_rows(config, len(unlabeled))
            unlabeled = unlabeled.add_column(INDEX_COLUMN, list(range(len(unlabeled))))
        collate = SemiSupervisedCollator(config, cls.views_for(config), cls.unlabeled_index)
        mu = config.mu if config.lambda_u > 0 else 0  # λ_u = 0: the supervised baseline draws no unlabeled rows
        return LabeledUnlabeledSource(labeled, unlabeled, collate.labeled, collate.unlabeled, batch_size, mu, seed,
                                      world_size, rank)

    @classmethod
    def check_unlabeled_rows(cls, config: SemiSupervisedConfig, n: int) -> None:
        """Hook for algorithms with per-row state (Temporal Ensembling): refuse a split that does not fit it."""

    # ---- features and predictions -----------------------------------------------------------------

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] (what k-NN and the linear probe read)."""
        return vision_features(self.backbone, pixel_values)

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class logits [B, C] of images [B, 3, S, S] (the semi-supervised classifier itself)."""
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, H, W]")
        return self.classifier(self.embed(pixel_values))

    def logits_of(self, *parts: torch.Tensor) -> list[torch.Tensor]:
        """Logits of several image batches ([N_i, 3, S, S] each) from ONE pass, so BatchNorm normalises with the
        whole step's statistics (as FixMatch's and MixMatch's code do), split back into [N_i, C] per part."""
        logits = self.classify(torch.cat(parts))
        return list(logits.split([p.shape[0] for p in parts]))

    def progress(self) -> float:
        """Fraction of training done, steps_done / total_steps in [0, 1] (0 before the first step)."""
        total = int(self.total_steps)
        return min(int(self.steps_done) / total, 1.0) if total else 0.0

    def unsup_weight(self) -> float:
        """λ_u · w(t): the config's ramp-up (sigmoid or linear) over rampup_steps optimizer steps (w = 1 without)."""
        ramp = RAMPUPS[self.config.rampup]
        return self.config.lambda_u * ramp(int(self.steps_done), self.config.rampup_steps)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Record progress (0-based `step` just finished) for ramp-ups; subclasses call super() first."""
        self.steps_done.fill_(step + 1)
        self.total_steps.fill_(max_steps)

    # ---- the algorithm ----------------------------------------------------------------------------

    def semi_step(self, x_l: torch.Tensor, labels: torch.Tensor, u_weak: torch.Tensor | None,
                  u_strong: torch.Tensor | None, u_index: torch.Tensor | None) -> SemiStep:
        """The algorithm: labeled images x_l [B, 3, S, S], labels [B], unlabeled views u_weak [μB, Vw, 3, S, S] and
        u_strong [μB, Vs, 3, S, S] (None when the algorithm asks for 0 of that kind), u_index [μB] or None."""
        raise NotImplementedError

    def forward(self, x_l: torch.Tensor, labels: torch.Tensor | None = None, u_weak: torch.Tensor | None = None,
                u_strong: torch.Tensor | None = None, u_index: torch.Tensor | None = None,
                **_: object) -> SemiSupervisedOutput:
        check_pixels(x_l, 4, "x_l", "[B, C, H, W]")
        if labels is None:  # prediction only
            return SemiSupervisedOutput(logits=self.classify(x_l))
        b = x_l.shape[0]
        if labels.shape != (b,):
            raise ValueError(f"forward: labels must be [B] = [{b}]; got {tuple(labels.shape)}")
        check_labels(labels, self.config.num_classes, "forward")  # CUDA would only assert on a bad id
        weak_n, strong_n = self.views_for(self.config)
        if u_weak is None and u_strong is None:  # labeled rows only: the λ_u = 0 baseline's batches
            logits = self.classify(x_l)
            loss = F.cross_entropy(logits, labels)
            return SemiSupervisedOutput(loss=loss, supervised_loss=loss.detach(), accuracy=self._accuracy(logits, labels),
                                        logits=logits)
        for name, views, count in (("u_weak", u_weak, weak_n), ("u_strong", u_strong, strong_n)):
            if count and (views is None or views.dim() != 5 or views.shape[1] != count):
                got = None if views is None else tuple(views.shape)
                raise ValueError(f"forward: {name} must be [μB, {count}, C, H, W] for this algorithm; got {got}")
        if self.unlabeled_index and u_index is None:
            raise ValueError("forward: this algorithm needs u_index [μB] (unlabeled row ids)")
        step = self.semi_step(x_l, labels, u_weak if weak_n else None, u_strong if strong_n else None, u_index)
        weight = self.unsup_weight()
        loss = step.supervised_loss + weight * step.unsupervised_loss
        if step.auxiliary_loss is not None:  # at its own weight from step 0: neither λ_u nor the ramp-up
            loss = loss + step.auxiliary_loss
        entropy = None
        if step.unlabeled_logits is not None:
            entropy = entropy_loss(step.unlabeled_logits)
            if self.config.entropy_weight > 0:
                loss = loss + self.config.entropy_weight * entropy
        logits = None if step.labeled_logits is None else step.labeled_logits.detach()
        return SemiSupervisedOutput(
            loss=loss, supervised_loss=step.supervised_loss.detach(), unsupervised_loss=step.unsupervised_loss.detach(),
            unsup_weight=torch.tensor(weight), entropy=None if entropy is None else entropy.detach(),
            auxiliary_loss=None if step.auxiliary_loss is None else step.auxiliary_loss.detach(),
            mask_rate=None if step.mask_rate is None else step.mask_rate.detach(),
            threshold=None if step.threshold is None else step.threshold.detach(),
            accuracy=None if logits is None else self._accuracy(logits, labels), logits=logits)

    @staticmethod
    def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logits.detach().argmax(-1) == labels).float().mean()

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
