"""Supervised bound: the same HF vision backbone as the SSL methods + a linear head, cross-entropy on the labels.

Every results table reads random init | SSL method | this, with the same backbone, data and step
budget. Training views are the pretext methods' light random crops (ImageBatch), so the bound sees the
same augmentation strength they do; `embed` returns the backbone features, so k-NN and the linear probe
score this model exactly as they score every SSL method.

With `labels_per_class` or `label_fraction` set, the data hook trains on a class-balanced labeled subset of the
training split only (split_labeled: seeded by `label_seed`, default the run seed, chosen by row index), so the
same recipe with `backbone_path` (a pretrained encoder) or without (random init) is the SimCLR paper's 1% / 10%
fine-tuning protocol and its from-scratch baseline on exactly the same labels (`multissl finetune`).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.data.batches import BatchSource, DataRequest
from multissl.data.semi_supervised import labeled_unlabeled_rows
from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.labels import check_labels
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields


class SupervisedConfig(MethodConfig):
    """Backbone (any HF vision config dict), image size, number of classes, label column, smoothing, crop scale,
    and an optional labeled subset.

    `num_classes` has no default that could be right (the loop builds the model before it reads the
    data), so it must be set; None is allowed here only because transformers builds a default config.
    `crop_scale: null` trains on plain resized images (no augmentation). `labels_per_class` (k rows of each
    class) or `label_fraction` (round(f * n_c) rows of class c, at least one), at most one of them: train on
    that class-balanced subset only, chosen with `label_seed` (None: the run seed); neither: every row.
    """

    model_type = "multissl_supervised"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 num_classes: int | None = None, label_column: str = "label", label_smoothing: float = 0.0,
                 crop_scale: list[float] | None = (0.6, 1.0), labels_per_class: int | None = None,
                 label_fraction: float | None = None, label_seed: int | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 2):
            raise ValueError(f"num_classes must be a whole number >= 2 (the number of classes in the label column); got {num_classes!r}")
        if not isinstance(label_column, str) or not label_column:
            raise ValueError(f"label_column must be a non-empty column name; got {label_column!r}")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")
        if crop_scale is not None:
            crop_scale = [float(v) for v in crop_scale]
            if len(crop_scale) != 2 or not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
                raise ValueError(f"crop_scale must be [lo, hi] with 0 < lo <= hi <= 1 (area fraction of a random crop), "
                                 f"or null for no crop; got {crop_scale!r}")
        if labels_per_class is not None and label_fraction is not None:
            raise ValueError(f"give at most one of labels_per_class or label_fraction; got labels_per_class="
                             f"{labels_per_class!r} and label_fraction={label_fraction!r}")
        for name, value in (("labels_per_class", labels_per_class), ("label_seed", label_seed)):
            low = 1 if name == "labels_per_class" else 0
            if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < low):
                raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
        if label_fraction is not None and (isinstance(label_fraction, bool) or not isinstance(label_fraction, Real)
                                           or not 0.0 < float(label_fraction) <= 1.0):
            raise ValueError(f"label_fraction must be in (0, 1] (the fraction of each class that is labeled); "
                             f"got {label_fraction!r}")
        self.labels_per_class = None if labels_per_class is None else int(labels_per_class)
        self.label_fraction = None if label_fraction is None else float(label_fraction)
        self.label_seed = None if label_seed is None else int(label_seed)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.label_column = label_column
        self.label_smoothing = float(label_smoothing)
        self.crop_scale = crop_scale
        super().__init__(**kwargs)


@dataclass
class SupervisedOutput(ModelOutput):
    """loss: cross-entropy (with label smoothing if set); accuracy: top-1 on this batch; logits [B, C]."""

    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class SupervisedCollator:
    """Rows with `image` and the label column -> {"pixel_values": [B, 3, S, S], "labels": [B]} (light random crops)."""

    def __init__(self, config: SupervisedConfig):
        self.column, self.num_classes = config.label_column, config.num_classes
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        # The crops draw from the global RNG, which BatchSource seeds per micro-batch (as for the pretext methods).
        missing = [i for i, r in enumerate(rows) if self.column not in r]
        if missing:
            raise ValueError(f"supervised: row {missing[0]} has no label column {self.column!r} (columns: "
                             f"{', '.join(map(str, rows[missing[0]]))}); set model.label_column to the column that holds the labels")
        values = [r[self.column] for r in rows]
        odd = [i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, Integral)]
        if odd:
            raise ValueError(f"supervised: label column {self.column!r} must hold integer class ids; row {odd[0]} has "
                             f"{values[odd[0]]!r} (map names to ids 0..num_classes-1 first, e.g. a datasets ClassLabel)")
        labels = torch.tensor(values, dtype=torch.long)  # [B]
        if self.num_classes is not None:
            check_labels(labels, self.num_classes, f"supervised: label column {self.column!r}")
        return {"pixel_values": self.batch(rows), "labels": labels}


def make_supervised_collator(config: SupervisedConfig, train: bool = True):
    """Augmented images + labels for training; plain resized images for embed() (the SSL methods' eval inputs)."""
    return SupervisedCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_supervised_config() -> SupervisedConfig:
    """A config that runs forward+backward in milliseconds (tests); 26 classes to fit glyphs, its default dataset."""
    return SupervisedConfig(backbone_config=TINY_RESNET, image_size=16, num_classes=26)


def labeled_subset_rows(config: SupervisedConfig, dataset: object, seed: int) -> list[int]:
    """Row indices (ascending) of `dataset` the data hook trains on: split_labeled on the label column with
    config.labels_per_class | label_fraction, seeded by config.label_seed (None: `seed`, the run seed)."""
    label_seed = seed if config.label_seed is None else config.label_seed
    labeled, _ = labeled_unlabeled_rows(dataset, config.label_column, labels_per_class=config.labels_per_class,
                                        label_fraction=config.label_fraction, seed=label_seed)
    return labeled


class SupervisedModel(MethodModel):
    """Backbone + linear head; forward(pixel_values [B, 3, S, S], labels [B]) -> cross-entropy, accuracy, logits [B, C]."""

    config_class = SupervisedConfig
    tiny_config = staticmethod(tiny_supervised_config)
    make_collator = staticmethod(make_supervised_collator)
    base_model_prefix = "supervised"
    main_input_name = "pixel_values"

    def __init__(self, config: SupervisedConfig):
        if config.num_classes is None:
            raise ValueError("supervised: num_classes is required (the model is built before the data is read); set "
                             "model.num_classes in the recipe to the number of classes, e.g. 26 for glyphs, 10 for digits")
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.classifier = nn.Linear(dim, config.num_classes)
        self.post_init()

    @classmethod
    def make_batch_source(cls, config: SupervisedConfig, data: DataRequest, *, batch_size: int, seed: int,
                          world_size: int = 1, rank: int = 0) -> torch.utils.data.Dataset:
        """Every row (the default hook), or only the labeled subset when labels_per_class / label_fraction is set."""
        if config.labels_per_class is None and config.label_fraction is None:
            return super().make_batch_source(config, data, batch_size=batch_size, seed=seed, world_size=world_size,
                                             rank=rank)
        if data.streaming is not None:
            raise ValueError("supervised: labels_per_class / label_fraction choose rows by index, which a streamed "
                             "dataset has not; drop the recipe's streaming: key")
        dataset = data.load()
        labeled = labeled_subset_rows(config, dataset, seed)
        return BatchSource(dataset.select(labeled), cls.make_collator(config, train=True), batch_size, seed,
                           world_size, rank)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, D] (the head is not used: downstream protocols see what the SSL methods expose)."""
        return vision_features(self.backbone, pixel_values)

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class logits [B, C] of images [B, 3, S, S] (the classifier itself: what fine-tuning is scored on)."""
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, H, W]")
        return self.classifier(self.embed(pixel_values))

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_: object) -> SupervisedOutput:
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, H, W]")
        logits = self.classifier(self.embed(pixel_values))  # [B, num_classes]
        if labels is None:  # prediction only
            return SupervisedOutput(logits=logits)
        check_labels(labels, self.config.num_classes, "supervised forward")  # CUDA would only assert on a bad id
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"supervised forward: labels [B] must match pixel_values' batch {logits.shape[0]}; got {labels.shape[0]}")
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        acc = (logits.argmax(-1) == labels).float().mean().detach()
        return SupervisedOutput(loss=loss, accuracy=acc, logits=logits)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone."""
        return self.backbone
