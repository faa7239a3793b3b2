"""FixMatch and UDA for text classification: a HF text encoder + linear head, B labeled + μB unlabeled sentences a step.

    loss = L_sup(f(x_l), y) + λ_u · L_unsup(f(weak u) [targets, no gradient], f(strong u))
    fixmatch: L_unsup = (1/μB) Σ_b 1[max q_b >= τ] CE(argmax q_b, f(strong u_b)),     q_b = softmax(f(weak u_b))
    uda:      L_unsup = (1/μB) Σ_b 1[max q_b > β] KL(softmax(f(weak u_b) / T) || softmax(f(strong u_b)))
    L_sup = CE, or with `tsa_schedule` UDA's training-signal annealing (rows already above η_t are left out).

Views. The weak view is the sentence as it is (UDA's "original" side; FixMatch's flip-and-shift has no text analogue
that keeps the meaning for sure). The strong view is token noise (multissl/modalities/text/token_noise.py, knobs in
`noise`): per token, deletion, replacement by a random ordinary vocabulary token, replacement by [MASK], and
neighbour swaps, never touching [CLS]/[SEP]/padding, drawn on the whole padded batch from the batch's seeded
generator. UDA augmented text with back-translation and TF-IDF word replacement: back-translation needs two
translation models (a download and far more compute than the classifier itself on a CPU) and TF-IDF replacement
needs corpus statistics inside the collator; random token noise is the offline, vectorised stand-in (EDA-style
perturbations, Wei & Zou 2019), so the numbers here are for that noise, not for the paper's augmentation.

Decisions:
* Two forwards a step: [labeled; strong] with gradient, weak under no_grad. A transformer has no batch statistics
  (LayerNorm is per token), so this equals one concatenated forward while skipping the backward through μB rows that
  only make targets. Dropout follows the model's mode (training: on in both forwards).
* `threshold`: τ for fixmatch (default the paper's 0.95; "freematch": FreeMatch's self-adaptive per-class thresholds,
  state in buffers, updated in training forward as the image FixMatch does), β for uda (default 0.8).
* Training progress (steps done, total steps) is a buffer set in on_step_end, so TSA's η_t continues after a resume.
* `lambda_u: 0` is the supervised-only baseline on exactly the same labeled batches: the data hook draws no
  unlabeled stream and the loss is the labeled term alone. With `label_fraction: 1` as well it is the all-labels
  supervised bound (every training row, cross-entropy only): the text results table's upper row.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from multissl.data.batches import DataRequest
from multissl.data.semi_supervised import LabeledUnlabeledSource, training_streams
from multissl.modalities.text.sentences import SentenceCollator, load_tokenizer
from multissl.modalities.text.token_noise import TokenNoise, WeakStrongSentences
from multissl.models.base import MethodConfig, MethodModel
from multissl.models.common.backbones import build_backbone, resolve_backbone_config, text_features
from multissl.models.common.labels import check_labels
from multissl.objectives.adaptive_threshold import FreeMatchState, freematch_class_thresholds, freematch_update
from multissl.objectives.distributed import is_distributed
from multissl.objectives.pseudo_label import TSA_SCHEDULES, MaskedLoss, fixmatch_loss, tsa_cross_entropy, tsa_threshold, uda_consistency_loss
from multissl.paths import MINILM

ALGORITHMS = ("fixmatch", "uda")
DEFAULT_THRESHOLD = {"fixmatch": 0.95, "uda": 0.8}  # FixMatch's τ; UDA's β of its confidence-masking runs
POOLERS = ("avg", "cls")
DEFAULT_NOISE = {"delete_prob": 0.1, "replace_prob": 0.1, "mask_prob": 0.1, "swap_prob": 0.1}


def _whole(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


def _number(name: str, value: object, low: float, high: float, what: str, open_low: bool = False,
            open_high: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, Real) and low <= float(value) <= high
    if not ok or (open_low and float(value) == low) or (open_high and float(value) == high):
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return float(value)


class TextSemiConfig(MethodConfig):
    """algorithm (fixmatch | uda), text encoder (backbone_config dict or local backbone_path; default all-MiniLM-L6-v2),
    pooler (avg | cls), max_seq_length, classes, the labeled subset (labels_per_class | label_fraction, label_seed),
    μ, threshold (τ / β / "freematch"), λ_u, target_temperature (UDA's sharpening T), tsa_schedule (null | linear |
    log | exp), the strong view's `noise` (delete_prob, replace_prob, mask_prob, swap_prob) and classifier_lr_scale s
    (the head is W = s W' with W' the trained parameter: under Adam the head then learns s times faster than the
    backbone, which the loop's single learning rate cannot say otherwise)."""

    model_type = "multissl_text_semi"

    def __init__(self, algorithm: str = "fixmatch", backbone_config: dict | None = None, backbone_path: str | None = None,
                 tokenizer_path: str | None = None, pooler: str = "avg", max_seq_length: int = 64,
                 num_classes: int | None = None, text_column: str = "text", label_column: str = "label",
                 labels_per_class: int | None = None, label_fraction: float | None = None, label_seed: int | None = None,
                 mu: int = 7, threshold: float | str | None = None, freematch_momentum: float = 0.999,
                 lambda_u: float = 1.0, target_temperature: float = 0.4, tsa_schedule: str | None = None,
                 noise: dict | None = None, classifier_lr_scale: float = 1.0, **kwargs):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
        if pooler not in POOLERS:
            raise ValueError(f"pooler must be one of {POOLERS}; got {pooler!r}")
        if backbone_config is None and backbone_path is None:
            backbone_path = MINILM  # the offline default: real all-MiniLM-L6-v2 weights from its pip package
        for name, value in (("text_column", text_column), ("label_column", label_column)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty column name; got {value!r}")
        if labels_per_class is not None and label_fraction is not None:
            raise ValueError(f"give exactly one of labels_per_class or label_fraction; got labels_per_class="
                             f"{labels_per_class!r} and label_fraction={label_fraction!r}")
        if label_fraction is not None:
            label_fraction = _number("label_fraction", label_fraction, 0.0, 1.0, "in (0, 1] (the labeled fraction of "
                                     "each class; 1 with lambda_u 0 is the all-labels bound)", open_low=True)
        if threshold is None:
            threshold = DEFAULT_THRESHOLD[algorithm]
        elif threshold == "freematch":
            if algorithm != "fixmatch":
                raise ValueError("threshold 'freematch' (self-adaptive thresholds) applies to algorithm fixmatch; for "
                                 "uda give a confidence β in [0, 1]")
        else:
            threshold = _number("threshold", threshold, 0.0, 1.0, "a confidence in [0, 1] (or 'freematch' with fixmatch)")
        if tsa_schedule is not None and tsa_schedule not in TSA_SCHEDULES:
            raise ValueError(f"tsa_schedule must be null or one of {TSA_SCHEDULES}; got {tsa_schedule!r}")
        self.algorithm, self.pooler = algorithm, pooler
        self.backbone_config = resolve_backbone_config(backbone_config, backbone_path, {})
        self.backbone_path = backbone_path
        self.tokenizer_path = tokenizer_path or backbone_path or MINILM
        self.max_seq_length = _whole("max_seq_length", max_seq_length, 4)
        self.num_classes = None if num_classes is None else _whole("num_classes", num_classes, 2)
        self.text_column, self.label_column = text_column, label_column
        self.labels_per_class = None if labels_per_class is None else _whole("labels_per_class", labels_per_class, 1)
        self.label_fraction = label_fraction
        self.label_seed = None if label_seed is None else _whole("label_seed", label_seed, 0)
        self.mu, self.threshold = _whole("mu", mu, 1), threshold
        self.freematch_momentum = _number("freematch_momentum", freematch_momentum, 0.0, 1.0, "in [0, 1)", open_high=True)
        self.lambda_u = _number("lambda_u", lambda_u, 0.0, float("inf"), "a finite number >= 0 (0: supervised only)",
                                open_high=True)
        self.target_temperature = _number("target_temperature", target_temperature, 0.0, float("inf"), "> 0",
                                          open_low=True, open_high=True)
        self.tsa_schedule = tsa_schedule
        self.classifier_lr_scale = _number("classifier_lr_scale", classifier_lr_scale, 0.0, float("inf"), "a finite "
                                           "number > 0", open_low=True, open_high=True)
        self.noise = TokenNoise.from_dict(DEFAULT_NOISE if noise is None else noise).to_dict()
        super().__init__(**kwargs)


@dataclass
class TextSemiOutput(ModelOutput):
    """loss = supervised_loss + λ_u unsupervised_loss; mask_rate: kept fraction of μB; accuracy on the labeled rows;
    tsa_threshold / tsa_kept_rate (TSA only); freematch_threshold (FreeMatch only); logits [B, C] of the labeled rows."""

    loss: torch.Tensor | None = None
    supervised_loss: torch.Tensor | None = None
    unsupervised_loss: torch.Tensor | None = None
    mask_rate: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    tsa_threshold: torch.Tensor | None = None
    tsa_kept_rate: torch.Tensor | None = None
    freematch_threshold: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class TextSemiCollator:
    """labeled(rows) -> {"input_ids", "attention_mask": [B, T], "labels": [B]}; unlabeled(rows) -> {"weak_input_ids",
    "weak_attention_mask", "strong_input_ids", "strong_attention_mask": [μB, T]}. Called on one list of rows it gives
    both from those rows (the contract's single-collator form); training draws the streams separately."""

    def __init__(self, config: TextSemiConfig):
        self.encode = SentenceCollator(config.tokenizer_path, config.max_seq_length, (config.text_column,))
        self.column, self.num_classes = config.label_column, config.num_classes
        self.views = WeakStrongSentences(config.tokenizer_path, config.max_seq_length, TokenNoise.from_dict(config.noise),
                                         config.text_column)

    def labeled(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Token ids of the sentences as they are, and their labels."""
        missing = [i for i, r in enumerate(rows) if self.column not in r]
        if missing:
            raise ValueError(f"text_semi: labeled row {missing[0]} has no label column {self.column!r} (columns: "
                             f"{', '.join(map(str, rows[missing[0]]))}); set model.label_column")
        labels = torch.tensor([int(r[self.column]) for r in rows], dtype=torch.long)  # [B]
        if self.num_classes is not None:
            check_labels(labels, self.num_classes, f"text_semi: label column {self.column!r}")
        return {**self.encode(rows), "labels": labels}

    def unlabeled(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The weak view (the sentence) and the strong view (token noise); only the text column is read."""
        return self.views(rows, generator)

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {**self.labeled(rows, generator), **self.unlabeled(rows, generator)}


def make_text_semi_collator(config: TextSemiConfig, train: bool = True):
    """Both streams for training; the plain tokenised sentences for embed() / classify()."""
    if train:
        return TextSemiCollator(config)
    return SentenceCollator(config.tokenizer_path, config.max_seq_length, (config.text_column,))


def tiny_text_semi_config() -> TextSemiConfig:
    """A 2-layer, 32-wide random BERT over MiniLM's vocabulary, 20 classes (python_docs_topics, its default dataset)."""
    bert = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 64}
    return TextSemiConfig(backbone_config=bert, tokenizer_path=MINILM, max_seq_length=16, num_classes=20,
                          labels_per_class=1, mu=2, threshold=0.05)


def _pad_cat(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (ids [N_i, T_i], mask [N_i, T_i]) pairs -> one batch [ΣN_i, max T_i] (pads are masked out)."""
    t = max(ids.shape[1] for ids, _ in parts)
    ids = torch.cat([F.pad(i, (0, t - i.shape[1])) for i, _ in parts])
    mask = torch.cat([F.pad(m, (0, t - m.shape[1])) for _, m in parts])
    return ids, mask


def _check_ids(ids: torch.Tensor, mask: torch.Tensor | None, name: str) -> None:
    if ids.dim() != 2 or mask is None or mask.shape != ids.shape:
        raise ValueError(f"text_semi forward: {name} and its attention mask must both be [N, T]; got "
                         f"{tuple(ids.shape)} and {None if mask is None else tuple(mask.shape)}")


class TextSemiModel(MethodModel):
    """Text encoder + linear head; forward(input_ids, attention_mask [B, T], labels [B], weak_/strong_ ids and masks
    [μB, T]) -> TextSemiOutput."""

    config_class = TextSemiConfig
    tiny_config = staticmethod(tiny_text_semi_config)
    make_collator = staticmethod(make_text_semi_collator)
    base_model_prefix = "text_semi"
    main_input_name = "input_ids"

    def __init__(self, config: TextSemiConfig):
        if config.num_classes is None:
            raise ValueError("text_semi: num_classes is required (the model is built before the data is read); set "
                             "model.num_classes in the recipe, e.g. 20 for python_docs_topics")
        if (config.labels_per_class is None) == (config.label_fraction is None):
            raise ValueError("text_semi: set exactly one of model.labels_per_class (labeled rows per class) or "
                             "model.label_fraction (fraction of each class labeled)")
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        if getattr(self.backbone, "pooler", None) is not None:  # we pool last_hidden_state; an unused pooler breaks DDP
            self.backbone.pooler.requires_grad_(False)
        self.classifier = nn.Linear(self.backbone.config.hidden_size, config.num_classes)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # training progress for TSA (resumable)
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.long))
        if config.threshold == "freematch":  # τ_0 = 1/C, p~_0 = uniform (FreeMatch's start)
            c = config.num_classes
            self.register_buffer("freematch_threshold", torch.tensor(1.0 / c))
            self.register_buffer("freematch_class_marginal", torch.full((c,), 1.0 / c))
        self.post_init()
        with torch.no_grad():  # W' = W / s: the head starts as it would with s = 1
            self.classifier.weight.div_(config.classifier_lr_scale)
            self.classifier.bias.div_(config.classifier_lr_scale)

    @classmethod
    def make_batch_source(cls, config: TextSemiConfig, data: DataRequest, *, batch_size: int, seed: int,
                          world_size: int = 1, rank: int = 0) -> torch.utils.data.Dataset:
        """B labeled sentences (+ labels) and μB unlabeled sentences (weak + strong views, no labels) per item."""
        collate = TextSemiCollator(config)
        label_seed = seed if config.label_seed is None else config.label_seed
        labeled, unlabeled = training_streams(data.load(), config.label_column, labels_per_class=config.labels_per_class,
                                              label_fraction=config.label_fraction, seed=label_seed,
                                              lambda_u=config.lambda_u)
        mu = config.mu if config.lambda_u > 0 else 0  # λ_u = 0: the supervised baseline draws no unlabeled rows
        return LabeledUnlabeledSource(labeled, unlabeled, collate.labeled, collate.unlabeled, batch_size, mu, seed,
                                      world_size, rank)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled sentence features [B, D] (what k-NN and the linear probe read)."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return text_features(out, attention_mask, self.config.pooler)

    def classify(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class logits [B, C] of token ids [B, T] (the semi-supervised classifier itself)."""
        s = self.config.classifier_lr_scale  # W = s W': Adam's step on W' is ~lr, so W moves ~s lr a step
        return F.linear(self.embed(input_ids, attention_mask), self.classifier.weight * s, self.classifier.bias * s)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Record the progress TSA's η_t reads."""
        self.steps_done.fill_(step + 1)
        self.total_steps.fill_(max_steps)

    def _supervised(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[MaskedLoss, torch.Tensor | None]:
        """(labeled loss, kept fraction) and η_t: plain CE, or TSA's CE over the rows not yet fitted above η_t."""
        if self.config.tsa_schedule is None:
            return MaskedLoss(F.cross_entropy(logits, labels), torch.ones(())), None
        total = int(self.total_steps)
        eta = tsa_threshold(int(self.steps_done), max(total, 1), self.config.num_classes, self.config.tsa_schedule)
        return tsa_cross_entropy(logits, labels, eta), torch.tensor(eta)

    def _thresholds(self, weak_logits: torch.Tensor) -> float | torch.Tensor:
        """τ (or β), or FreeMatch's per-class τ_t(c) [C] after updating the state with this batch (training only)."""
        if self.config.threshold != "freematch":
            return self.config.threshold
        state = FreeMatchState(self.freematch_threshold, self.freematch_class_marginal)
        if self.training:
            state = freematch_update(state, weak_logits.softmax(-1), self.config.freematch_momentum,
                                     gather_distributed=is_distributed())
            self.freematch_threshold.copy_(state.global_threshold)
            self.freematch_class_marginal.copy_(state.class_marginal)
        return freematch_class_thresholds(state)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, weak_input_ids: torch.Tensor | None = None,
                weak_attention_mask: torch.Tensor | None = None, strong_input_ids: torch.Tensor | None = None,
                strong_attention_mask: torch.Tensor | None = None, **_: object) -> TextSemiOutput:
        _check_ids(input_ids, attention_mask, "input_ids")
        if labels is None:  # prediction only
            return TextSemiOutput(logits=self.classify(input_ids, attention_mask))
        b = input_ids.shape[0]
        if labels.shape != (b,):
            raise ValueError(f"text_semi forward: labels must be [B] = [{b}]; got {tuple(labels.shape)}")
        check_labels(labels, self.config.num_classes, "text_semi forward")
        unlabeled = (weak_input_ids, weak_attention_mask, strong_input_ids, strong_attention_mask)
        if any(x is None for x in unlabeled) and not all(x is None for x in unlabeled):
            raise ValueError("text_semi forward: give all four of weak_/strong_input_ids and weak_/strong_attention_mask "
                             "(the unlabeled rows' two views) or none")
        if weak_input_ids is None:  # labeled rows only (the λ_u = 0 baseline's batches)
            logits_l = self.classify(input_ids, attention_mask)  # [B, C]
        else:
            _check_ids(weak_input_ids, weak_attention_mask, "weak_input_ids")
            _check_ids(strong_input_ids, strong_attention_mask, "strong_input_ids")
            if strong_input_ids.shape[0] != weak_input_ids.shape[0]:
                raise ValueError(f"text_semi forward: weak and strong views need the same μB rows; got "
                                 f"{weak_input_ids.shape[0]} and {strong_input_ids.shape[0]}")
            ids, mask = _pad_cat([(input_ids, attention_mask), (strong_input_ids, strong_attention_mask)])
            logits = self.classify(ids, mask)  # [B + μB, C], with gradient
            logits_l, strong = logits[:b], logits[b:]  # [B, C], [μB, C]
            with torch.no_grad():  # targets only: no graph for the weak rows
                weak = self.classify(weak_input_ids, weak_attention_mask)  # [μB, C]
        sup, eta = self._supervised(logits_l, labels)
        fields = {"supervised_loss": sup.loss.detach(), "logits": logits_l,
                  "accuracy": (logits_l.detach().argmax(-1) == labels).float().mean()}
        if eta is not None:
            fields.update(tsa_threshold=eta, tsa_kept_rate=sup.mask_rate.detach())
        if weak_input_ids is None:
            return TextSemiOutput(loss=sup.loss, **fields)
        if self.config.algorithm == "fixmatch":
            with torch.no_grad():
                threshold = self._thresholds(weak)
            unsup = fixmatch_loss(weak, strong, threshold)
        else:
            unsup = uda_consistency_loss(weak, strong, self.config.target_temperature, self.config.threshold)
        if self.config.threshold == "freematch":
            fields["freematch_threshold"] = self.freematch_threshold.detach().clone()
        return TextSemiOutput(loss=sup.loss + self.config.lambda_u * unsup.loss, unsupervised_loss=unsup.loss.detach(),
                              mask_rate=unsup.mask_rate.detach(), **fields)

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain HF text encoder (the classifier head stays in the multissl folder)."""
        return self.backbone

    def save_export_extras(self, out_dir: Path) -> None:
        """Ship the tokenizer with the exported encoder and in final/."""
        load_tokenizer(self.config.tokenizer_path).save_pretrained(out_dir)
