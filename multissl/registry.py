"""The lazy tables of methods and built-in datasets: name -> "module:attribute" plus what `multissl list` prints.

Nothing here imports torch or transformers: `multissl --help`, `multissl list` and `multissl <cmd> --help`
read these tables as plain data, and a method's module is imported only when that method is used
(like transformers' auto mappings). Adding a built-in method is one file in multissl/models/ plus one
row below; a third-party method calls `register_method(name, "pkg.module:Class", ...)`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for type checkers: importing them at run time would pull in torch
    from multissl.models.base import MethodConfig, MethodModel

MODEL_TYPE_PREFIX = "multissl_"  # a method's config.model_type is MODEL_TYPE_PREFIX + its registered name


def _import_target(target: str) -> Any:
    """'package.module:attribute' -> the attribute (imports the module)."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: where its MethodModel subclass lives and what `multissl list` says about it.

    Everything the loop needs (config class, collator, tiny config, hooks) is on the class itself
    (see multissl.models.base.MethodModel); `model_class` imports it on first use.
    """

    name: str
    target: str  # "multissl.models.simclr:SimCLRModel"
    modality: str  # image | text | audio | image-text
    description: str
    default_dataset: str | None = None

    @property
    def model_class(self) -> type[MethodModel]:
        """The MethodModel subclass (imports its module; registers it with AutoConfig/AutoModel)."""
        return _import_target(self.target)

    @property
    def config_class(self) -> type[MethodConfig]:
        """The method's config class, declared once on the model class."""
        return self.model_class.config_class

    @property
    def model_type(self) -> str:
        """config.model_type of this method's saved folders."""
        return MODEL_TYPE_PREFIX + self.name


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in offline dataset: `load(split=..., **kwargs)` -> datasets.Dataset, imported on first use."""

    name: str
    target: str  # "multissl.data.digits:load_digits"
    modality: str
    description: str

    @property
    def load(self) -> Callable[..., Any]:
        """The loader function."""
        return _import_target(self.target)


def _methods(*rows: tuple) -> dict[str, MethodSpec]:
    return {r[0]: MethodSpec(*r) for r in rows}


METHODS: dict[str, MethodSpec] = _methods(
    ("bert_mlm", "multissl.models.bert_mlm:BertMLMModel", "text",
     "BERT masked LM: 15% tokens, 80/10/10 [MASK]/random/kept, optional NSP", "python_docs"),
    ("byol", "multissl.models.byol:BYOLModel", "image",
     "BYOL: online net + predictor vs EMA target, negative cosine, no negatives", "digits"),
    ("clip", "multissl.models.clip:ClipModel", "image-text",
     "CLIP / LiT: image + text towers, projections, symmetric InfoNCE", "digits_captions"),
    ("colorization", "multissl.models.colorization:ColorizationModel", "image",
     "Colourisation: predict quantised ab (Lab) from L; needs RGB input (or tinting)", "digits"),
    ("cpc", "multissl.models.cpc:CPCModel", "audio",
     "CPC: strided conv encoder + GRU context on raw audio, K-step InfoNCE", "spoken_digits"),
    ("dino", "multissl.models.dino:DINOModel", "image",
     "DINO: multi-crop student vs EMA teacher, centring + sharpening, no negatives", "digits"),
    ("fixmatch", "multissl.models.semi.fixmatch:FixMatchModel", "image",
     "FixMatch: labeled CE + confident weak-view pseudo-labels train strong views (fixed tau or FreeMatch thresholds)",
     "glyphs"),
    ("gpt_lm", "multissl.models.gpt_lm:GPTLMModel", "text",
     "GPT causal LM: next-token cross-entropy on token blocks (teacher forcing)", "python_docs"),
    ("inpainting", "multissl.models.inpainting:InpaintingModel", "image",
     "Context encoder: hide a square region, reconstruct its pixels (loss on the hole only)", "digits"),
    ("jigsaw", "multissl.models.jigsaw:JigsawModel", "image",
     "Jigsaw: 3x3 tiles with gaps/jitter, max-Hamming permutation set, classify the permutation", "digits"),
    ("mae", "multissl.models.mae:MAEModel", "image",
     "MAE: ViT encoder on 25% visible patches, light decoder with mask tokens, loss on masked patches", "digits"),
    ("mean_teacher", "multissl.models.semi.mean_teacher:MeanTeacherModel", "image",
     "Mean Teacher: labeled CE + MSE between student and EMA-teacher softmaxes on two weak views", "digits"),
    ("metric", "multissl.models.metric:MetricModel", "image",
     "Metric learning: embedding + ArcFace/CosFace/center/N-pair/triplet/SupCon; retrieval on held-out classes", "glyphs"),
    ("mixmatch", "multissl.models.semi.mixmatch:MixMatchModel", "image",
     "MixMatch: sharpened mean guess of K weak views, MixUp of labeled + unlabeled, soft CE + squared error", "digits"),
    ("moco", "multissl.models.moco:MoCoModel", "image",
     "MoCo v2: momentum key encoder, FIFO queue of negatives, MLP head, InfoNCE", "digits"),
    ("noisy_student", "multissl.models.semi.noisy_student:NoisyStudentModel", "image",
     "Noisy Student + data distillation: clean teacher's soft targets (averaged views) train a noised student", "digits"),
    ("pi_model", "multissl.models.semi.pi_model:PiModel", "image",
     "Pi-model: labeled CE + MSE between the softmaxes of two weak views of each unlabeled image", "digits"),
    ("pseudo_label", "multissl.models.semi.pseudo_label:PseudoLabelModel", "image",
     "Self-training in rounds: a frozen teacher pseudo-labels weak views (top / all / confidence-weighted)", "digits"),
    ("relative_patch", "multissl.models.relative_patch:RelativePatchModel", "image",
     "Relative patch location: centre + 1 of 8 neighbours with gaps/jitter, 8-way classifier", "digits"),
    ("remixmatch", "multissl.models.semi.remixmatch:ReMixMatchModel", "image",
     "ReMixMatch: distribution-aligned weak-view guesses anchor strong views, MixUp, pre-mixup + rotation losses",
     "digits"),
    ("rotation", "multissl.models.rotation:RotationModel", "image",
     "Rotation prediction: 0/90/180/270 of every image in the batch, 4-way classifier", "digits"),
    ("simclr", "multissl.models.simclr:SimCLRModel", "image",
     "SimCLR: two augmented views, MLP projection head, NT-Xent", "digits"),
    ("simcse", "multissl.models.simcse:SimCSEModel", "text",
     "SimCSE: dropout-noise (unsup) or NLI-triplet (sup) sentence embeddings, InfoNCE", "python_docs"),
    ("supervised", "multissl.models.supervised:SupervisedModel", "image",
     "Supervised bound: the SSL methods' backbone + linear head, cross-entropy on the labels", "glyphs"),
    ("temporal_ensembling", "multissl.models.semi.temporal_ensembling:TemporalEnsemblingModel", "image",
     "Temporal Ensembling: labeled CE + MSE to a per-image EMA of past predictions (bias-corrected)", "digits"),
    ("text_semi", "multissl.models.text_semi:TextSemiModel", "text",
     "Text FixMatch / UDA: labeled CE + weak-sentence targets train token-noised strong views (text encoder + head)",
     "python_docs_topics"),
    ("uda", "multissl.models.semi.uda:UDAModel", "image",
     "UDA: labeled CE (optional TSA) + confidence-masked KL from sharpened weak to strong-view predictions", "digits"),
    ("vat", "multissl.models.semi.vat:VATModel", "image",
     "VAT: labeled CE + KL between clean and virtual-adversarial predictions (+ entropy: VAT+EntMin)", "digits"),
)

# Model types that are not methods but live in a method's module (CPC's exported encoder).
EXTRA_MODEL_TYPES: dict[str, str] = {"multissl_cpc_encoder": "cpc"}

DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec("digits", "multissl.data.digits:load_digits", "image",
                    "scikit-learn handwritten digits: 1797 8x8 greyscale images, 10 classes (train 1259 / validation 179 / test 359)"),
        DatasetSpec("digits_captions", "multissl.data.digits_captions:load_digits_captions", "image-text",
                    "digits with templated captions ('a handwritten digit seven', ...): image, caption, label; "
                    "train 1259 / validation 179 / test 359, the same split as digits"),
        DatasetSpec("glyphs", "multissl.data.glyphs:load_glyphs", "image",
                    "26 capital letters from 23 matplotlib fonts, random colour/texture/warp/blur/noise, RGB 32 or 64 px; "
                    "split by font (train 4992 / validation 1040 / test 1560)"),
        DatasetSpec("python_docs", "multissl.data.python_docs:load_python_docs", "text",
                    "English paragraphs from the Python standard library's docstrings and reference topics (offline); "
                    "train 7690 / validation 946 / test 917"),
        DatasetSpec("python_docs_topics", "multissl.data.python_docs_topics:load_python_docs_topics", "text",
                    "python_docs paragraphs labeled with their stdlib package (20 classes: asyncio, email, ...); "
                    "train 3510 / validation 424 / test 422"),
        DatasetSpec("spoken_digits", "multissl.data.spoken_digits:load_spoken_digits", "audio",
                    "digits spoken by espeak-ng voices (speaker = accent+variant), 16 kHz; columns audio, speaker, word"),
        DatasetSpec("spoken_words", "multissl.data.spoken_words:load_spoken_words", "audio",
                    "30 words (digits + 20 Speech Commands words) x 48 espeak-ng speakers in synthetic rooms with babble / "
                    "coloured noise at 5-20 dB SNR, 16 kHz; built with espeak-ng at first use and cached; split by take "
                    "(train 2880 / validation 1440 / test 1440)"),
    )
}


def register_method(name: str, target: str, *, modality: str, description: str, default_dataset: str | None = None) -> MethodSpec:
    """Add a method (e.g. from another package) to the table; `target` is "module:MethodModelSubclass"."""
    if ":" not in target:
        raise ValueError(f"register_method({name!r}): target must look like 'package.module:Class'; got {target!r}")
    existing = METHODS.get(name)
    if existing is not None and existing.target != target:
        raise ValueError(f"method {name!r} is already registered as {existing.target}")
    METHODS[name] = MethodSpec(name, target, modality, description, default_dataset)
    return METHODS[name]


def register_dataset(name: str, target: str, *, modality: str, description: str) -> DatasetSpec:
    """Add a dataset loader to the table; `target` is "module:function" returning a datasets.Dataset."""
    if ":" not in target:
        raise ValueError(f"register_dataset({name!r}): target must look like 'package.module:function'; got {target!r}")
    DATASETS[name] = DatasetSpec(name, target, modality, description)
    return DATASETS[name]


def get_method(name: str) -> MethodSpec:
    """Look up a registered method, with an error that lists the known ones."""
    if name not in METHODS:
        import difflib

        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown method {name!r}{hint}; known methods: {', '.join(sorted(METHODS)) or '(none)'}")
    return METHODS[name]


def method_for_model_type(model_type: str | None) -> MethodSpec | None:
    """The method whose saved folders have this config.model_type (None for a plain transformers type)."""
    if not model_type or not model_type.startswith(MODEL_TYPE_PREFIX):
        return None
    name = EXTRA_MODEL_TYPES.get(model_type) or model_type[len(MODEL_TYPE_PREFIX):]
    return METHODS.get(name)


def register_auto_classes() -> None:
    """Import every registered method so that transformers' AutoConfig / AutoModel know all multissl model types."""
    for spec in METHODS.values():
        spec.model_class  # noqa: B018  (importing the class registers it; see MethodModel.__init_subclass__)
