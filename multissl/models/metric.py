"""Supervised metric learning on any HF vision backbone: backbone -> Linear embedding -> ONE loss chosen by `loss`.

Losses (all in multissl.objectives, tested there against their formulas):
  arcface / subcenter_arcface  s*cos(theta_y + m) softmax over class weights (sub_centers rows per class)
  cosface                      s*(cos(theta_y) - m) softmax over class weights
  center                       softmax CE (Linear classifier) + center_weight * center loss (Wen et al. 2016)
  n_pair                       N-pair: P classes x 2 rows, raw inner products + l2_reg (Sohn 2016)
  triplet                      triplets mined from the batch (triplet_mining: all | semi_hard | batch_hard) on
                               L2-normalised embeddings
  supcon                       supervised contrastive loss, one view per row, positives = same-class rows

Decisions:
* Triplets are mined from the batch (objectives/triplet_mining.py), not random: with P x K batches most random
  triplets already satisfy the margin and give zero loss. The default is "all": every valid triplet of the batch,
  averaged over those still violating the margin. On glyphs' validation split (seed 0) it reached R@1 0.730 against
  0.357 for semi-hard (per positive pair the closest negative farther than the positive) and 0.180 for batch-hard
  (per anchor the farthest positive and closest negative), which collapsed every embedding onto one point from random
  init (random init's level). Mining runs under no_grad; the loss is `triplet_loss` on the mined rows.
* Center update in forward (training mode only), right after the loss is computed from the old
  centers: Algorithm 1 of the paper updates the centers once per mini-batch with that batch's
  features, and forward is the one place that has them (on_step_end gets no batch; keeping the last
  features on the model would be hidden state, and would drop all but the last micro-batch under
  gradient accumulation). The centers are a buffer (saved with the model and in checkpoints, so a
  resumed run replays them exactly); with gather_distributed the update uses the global batch, so
  every process keeps the same centers.
* Pair losses (n_pair, triplet, supcon) train on class-balanced batches (data/class_split.py:
  ClassBalancedBatches, P classes x samples_per_class rows); the class-weight losses on plain
  shuffled batches unless samples_per_class is set.
* `train_classes` trains on those classes only (a model's class row j is train_classes[j]); retrieval on
  the other classes is multissl.evaluation.metric_eval.evaluate_retrieval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from multissl.data.batches import BatchSource, DataRequest
from multissl.data.class_split import ClassBalancedBatches, select_classes
from multissl.modalities.image.image_batch import ImageBatch
from multissl.modalities.image.views import EvalImageCollator
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import vision_features
from multissl.models.common.vision import TINY_RESNET, backbone_and_dim, check_pixels, set_backbone_fields
from multissl.objectives.center_loss import CenterLossState, center_loss
from multissl.objectives.contrastive import supcon_loss
from multissl.objectives.margin_softmax import ArcFaceHead, CosFaceHead
from multissl.objectives.metric_losses import triplet_loss
from multissl.objectives.n_pair import n_pair_loss
from multissl.objectives.triplet_mining import TRIPLET_MINING, all_triplets, batch_hard_triplets, semi_hard_triplets

LOSSES = ("arcface", "subcenter_arcface", "cosface", "center", "n_pair", "triplet", "supcon")
CLASS_LOSSES = ("arcface", "subcenter_arcface", "cosface", "center")  # a weight row / center per class: need num_classes
DEFAULT_MARGIN = {"arcface": 0.5, "subcenter_arcface": 0.5, "cosface": 0.35, "triplet": 0.2}  # radians | cosine | distance
DEFAULT_SAMPLES_PER_CLASS = {"n_pair": 2, "triplet": 4, "supcon": 4}  # 0 elsewhere: plain shuffled batches


class MetricConfig(MethodConfig):
    """Backbone, embedding width, the loss and its hyper-parameters, the training classes, batch composition."""

    model_type = "multissl_metric"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 embedding_dim: int = 128, loss: str = "arcface", num_classes: int | None = None,
                 train_classes: list[int] | None = None, label_column: str = "label", margin: float | None = None,
                 scale: float = 64.0, sub_centers: int = 3, center_weight: float = 0.01, center_alpha: float = 0.5,
                 l2_reg: float = 0.002, loss_temperature: float = 0.1, triplet_mining: str = "all",
                 samples_per_class: int | None = None,
                 crop_scale: list[float] | None = (0.6, 1.0), gather_distributed: bool = True, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1; got {embedding_dim}")
        if train_classes is not None:
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in train_classes):
                raise ValueError(f"train_classes must be a list of int class ids; got {train_classes!r}")
            train_classes = [int(c) for c in train_classes]
            if not train_classes or len(set(train_classes)) != len(train_classes) or min(train_classes) < 0:
                raise ValueError(f"train_classes must be a non-empty list of distinct class ids >= 0; got {train_classes}")
            if num_classes is not None and num_classes != len(train_classes):
                raise ValueError(f"num_classes ({num_classes}) must equal len(train_classes) ({len(train_classes)}) or be left out")
            num_classes = len(train_classes)
        if loss in CLASS_LOSSES and not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"loss {loss!r} keeps a row per class: set num_classes (>= 1) or train_classes; got num_classes={num_classes!r}")
        margin = DEFAULT_MARGIN.get(loss, 0.0) if margin is None else float(margin)
        if loss in ("arcface", "subcenter_arcface") and not 0 <= margin <= math.pi / 2:
            raise ValueError(f"margin is in radians for {loss}, in [0, pi/2]; got {margin}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0; got {margin}")
        if triplet_mining not in TRIPLET_MINING:
            raise ValueError(f"triplet_mining must be one of {', '.join(TRIPLET_MINING)}; got {triplet_mining!r}")
        if samples_per_class is None:
            samples_per_class = DEFAULT_SAMPLES_PER_CLASS.get(loss, 0)
        if samples_per_class == 1 or samples_per_class < 0 or (loss in DEFAULT_SAMPLES_PER_CLASS and samples_per_class < 2):
            raise ValueError(f"samples_per_class must be 0 (plain batches, class-weight losses only) or >= 2 (class-balanced "
                             f"batches, P classes x K rows); got {samples_per_class} for loss {loss!r}")
        if loss == "n_pair" and samples_per_class != 2:
            raise ValueError(f"loss 'n_pair' takes exactly 2 rows per class (anchor, positive): samples_per_class must be 2; got {samples_per_class}")
        for name, value, ok in (("scale", scale, scale > 0), ("sub_centers", sub_centers, sub_centers >= 1),
                                ("center_weight", center_weight, center_weight >= 0), ("center_alpha", center_alpha, 0 <= center_alpha <= 1),
                                ("l2_reg", l2_reg, l2_reg >= 0), ("loss_temperature", loss_temperature, loss_temperature > 0)):
            if not ok:
                raise ValueError(f"{name} out of range; got {value} (scale, loss_temperature > 0; sub_centers >= 1; "
                                 f"center_weight, l2_reg >= 0; center_alpha in [0, 1])")
        self.embedding_dim, self.loss, self.num_classes, self.train_classes = embedding_dim, loss, num_classes, train_classes
        self.label_column, self.margin, self.scale, self.sub_centers = label_column, margin, float(scale), sub_centers
        self.center_weight, self.center_alpha, self.l2_reg = float(center_weight), float(center_alpha), float(l2_reg)
        self.loss_temperature, self.samples_per_class = float(loss_temperature), samples_per_class
        self.triplet_mining = triplet_mining
        self.crop_scale = list(crop_scale) if crop_scale is not None else None
        self.gather_distributed = gather_distributed
        super().__init__(**kwargs)


@dataclass
class MetricOutput(ModelOutput):
    """loss; accuracy (class-weight losses: argmax class == label); embeddings: raw [B, E] before L2 normalisation."""

    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


class MetricTrainCollator:
    """Rows with image + label -> {"pixel_values": [B, 3, S, S] (light random crops), "labels": [B] model class rows}."""

    def __init__(self, config: MetricConfig):
        self.batch = ImageBatch(config.image_size, train=True, crop_scale=config.crop_scale)
        self.label_column, self.train_classes = config.label_column, config.train_classes
        self.lookup = None
        if config.train_classes is not None:  # dataset class id -> model row, -1 for classes held out
            self.lookup = torch.full((max(config.train_classes) + 1,), -1, dtype=torch.long)
            self.lookup[torch.tensor(config.train_classes)] = torch.arange(len(config.train_classes))

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        values = [r.get(self.label_column) for r in rows]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            bad = next(v for v in values if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0))
            raise ValueError(f"label column {self.label_column!r} must hold int class ids >= 0 (e.g. a ClassLabel); got {bad!r}")
        labels = torch.tensor(values, dtype=torch.long)  # [B]
        if self.lookup is not None:
            known = labels < self.lookup.numel()
            labels = torch.where(known, self.lookup[labels.clamp_max(self.lookup.numel() - 1)], -1)
            if bool((labels < 0).any()):
                raise ValueError(f"a row's label is not one of train_classes {self.train_classes}: filter the data with "
                                 f"multissl.data.class_split.select_classes (make_batch_source does)")
        return {"pixel_values": self.batch(rows), "labels": labels}


def make_metric_collator(config: MetricConfig, train: bool = True):
    """Light crops + class rows for training; plain resized images (no labels) for embed()."""
    return MetricTrainCollator(config) if train else EvalImageCollator(config.image_size)


def tiny_metric_config() -> MetricConfig:
    """A config that runs forward+backward in milliseconds on glyphs (26 classes) (tests)."""
    return MetricConfig(backbone_config=TINY_RESNET, image_size=16, embedding_dim=8, loss="arcface", num_classes=26, scale=16.0)


def n_pair_rows(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchor, positive) row indices [N] each from labels [2N] holding N distinct classes exactly twice."""
    order = torch.argsort(labels, stable=True)  # same-class rows adjacent, in batch order
    if labels.numel() % 2 or not labels.numel():
        raise ValueError(f"loss 'n_pair' needs batches of N classes x 2 rows; got {labels.numel()} rows")
    pairs = order.view(-1, 2)  # [N, 2]
    first = labels[pairs[:, 0]]
    if not bool((first == labels[pairs[:, 1]]).all()) or bool((first[1:] == first[:-1]).any()):
        raise ValueError("loss 'n_pair' needs every class of the batch exactly twice (samples_per_class: 2 gives such batches)")
    return pairs[:, 0], pairs[:, 1]


class MetricModel(MethodModel):
    """Backbone -> Linear embedding [B, E] -> the configured metric-learning loss; embed() is the L2-normalised embedding."""

    config_class = MetricConfig
    tiny_config = staticmethod(tiny_metric_config)
    make_collator = staticmethod(make_metric_collator)
    base_model_prefix = "metric"
    main_input_name = "pixel_values"

    def __init__(self, config: MetricConfig):
        super().__init__(config)
        self.backbone, dim = backbone_and_dim(config)
        self.embedding = nn.Linear(dim, config.embedding_dim)
        e, c = config.embedding_dim, config.num_classes
        if config.loss in ("arcface", "subcenter_arcface"):
            k = config.sub_centers if config.loss == "subcenter_arcface" else 1
            self.head = ArcFaceHead(c, e, sub_centers=k, margin=config.margin, scale=config.scale)
        elif config.loss == "cosface":
            self.head = CosFaceHead(c, e, margin=config.margin, scale=config.scale)
        elif config.loss == "center":
            self.classifier = nn.Linear(e, c)
            self.centers = CenterLossState(c, e, alpha=config.center_alpha)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):  # PyTorch's default: transformers' std-0.02 normal would shrink the raw embedding
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (ArcFaceHead, CosFaceHead)):
            init.normal_(module.weight)  # only the rows' directions matter: isotropic
        elif isinstance(module, CenterLossState):
            init.zeros_(module.centers)

    @classmethod
    def make_batch_source(cls, config: MetricConfig, data: DataRequest, *, batch_size: int, seed: int,
                          world_size: int = 1, rank: int = 0) -> torch.utils.data.Dataset:
        """The training classes only; P x K class-balanced batches when samples_per_class > 0, else shuffled batches."""
        dataset = data.load()
        if config.train_classes is not None:
            dataset = select_classes(dataset, config.label_column, config.train_classes)
        collate = make_metric_collator(config, train=True)
        k = config.samples_per_class
        if not k:
            return BatchSource(dataset, collate, batch_size, seed, world_size, rank)
        if batch_size % k:
            raise ValueError(f"train.batch_size ({batch_size}) must be a multiple of samples_per_class ({k}): P classes x K rows")
        return ClassBalancedBatches(dataset, collate, config.label_column, batch_size // k, k, seed, world_size, rank)

    def raw_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, E] before normalisation, from images [B, 3, S, S]."""
        check_pixels(pixel_values, 4, "pixel_values", "[B, C, H, W]")
        return self.embedding(vision_features(self.backbone, pixel_values))  # [B, D] -> [B, E]

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings [B, E] (what retrieval ranks by cosine)."""
        return F.normalize(self.raw_embeddings(pixel_values), dim=1)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_: object) -> MetricOutput:
        if labels is None:
            raise ValueError("labels [B] are required: metric learning is supervised (the training collator adds them)")
        cfg = self.config
        e = self.raw_embeddings(pixel_values)  # [B, E]
        if labels.shape != (e.shape[0],):
            raise ValueError(f"labels must have shape [{e.shape[0]}]; got {tuple(labels.shape)}")
        accuracy = None
        if cfg.loss in ("arcface", "subcenter_arcface", "cosface"):
            loss = self.head(e, labels)
            accuracy = (self.head.cosines(e.detach()).argmax(1) == labels).float().mean()
        elif cfg.loss == "center":
            logits = self.classifier(e)  # [B, C]
            loss = F.cross_entropy(logits, labels) + cfg.center_weight * center_loss(e, labels, self.centers.centers)
            accuracy = (logits.detach().argmax(1) == labels).float().mean()
            if self.training:  # Algorithm 1 step 6, after the loss read the old centers (see the module docstring)
                self.centers.update(e, labels, gather_distributed=cfg.gather_distributed)
        elif cfg.loss == "n_pair":
            anchor, positive = n_pair_rows(labels)
            loss = n_pair_loss(e[anchor], e[positive], l2_reg=cfg.l2_reg, gather_distributed=cfg.gather_distributed)
        elif cfg.loss == "triplet":
            loss = self._triplet(e, labels)
        else:  # supcon: one view per row, the other same-class rows are the positives
            loss = supcon_loss(e[:, None], labels, cfg.loss_temperature, gather_distributed=cfg.gather_distributed)
        return MetricOutput(loss=loss, accuracy=accuracy, embeddings=e)

    def _triplet(self, e: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """triplet_loss on the triplets the configured mining picks from embeddings e [B, E] -> scalar."""
        cfg = self.config
        if cfg.triplet_mining == "all":
            anchor, positive, negative = all_triplets(labels)
        else:
            mine = semi_hard_triplets if cfg.triplet_mining == "semi_hard" else batch_hard_triplets
            anchor, positive, negative = mine(e, labels)
        if not anchor.numel():  # no class with two rows, or one class only: nothing to learn, still on the graph
            return e.sum() * 0.0
        reduction = "mean_nonzero" if cfg.triplet_mining == "all" else "mean"
        return triplet_loss(e[anchor], e[positive], e[negative], cfg.margin, reduction=reduction)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF vision backbone (the embedding layer stays with the multissl model)."""
        return self.backbone
