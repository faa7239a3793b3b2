"""Fine-tuning protocol (SimCLR, Chen et al. 2020, sec. 6 / B.5): a pretrained encoder + a linear head trained end to end
on 1% / 10% of the labels, against the same network from random init on exactly the same labels and budget.

Both arms are one recipe of the `supervised` method run through the one loop (`train`): the labeled subset is the
method's data hook (labels_per_class | label_fraction, split_labeled seeded by label_seed), and the arms differ only
in `backbone_path` (pretrained: the encoder folder; scratch: the same backbone_config, random init). Steps, batch,
optimiser, schedule, augmentation, training seed and labeled rows are the same. Each arm's own classifier is then
scored on one split (default validation, the tuning split; `split="test"` for a reported number).

Output folder: encoder/ (a method folder's encoder exported as a plain HF folder; absent when given an export),
pretrained/ and scratch/ (ordinary run folders: checkpoints, metrics.jsonl, final/), finetune.json (the result).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import yaml

from multissl.atomic import atomic_write_text
from multissl.evaluation.defaults import TUNE_SPLIT
from multissl.registry import method_for_model_type
from multissl.training import run_dir
from multissl.training.config import Recipe, recipe_from_dict

METHOD = "supervised"  # the recipe both arms train
ARMS = ("pretrained", "scratch")
RESULT_FILE = "finetune.json"
DEFAULT_IMAGE_SIZE = 32  # when neither the encoder folder nor the caller says


@dataclass(frozen=True)
class Encoder:
    """A resolved --model: the folder whose config.json was read, the backbone's config dict, its image size and,
    for a multissl method folder, the loaded method model (its encoder is exported before training)."""

    given: str
    folder: Path
    backbone_config: dict
    image_size: int
    method: str | None = None  # the method that trained it, when known
    method_model: Any = None  # a MethodModel to export from (None: `folder` is a plain HF encoder already)


def _fail(message: str) -> ValueError:
    return ValueError(f"finetune: {message}")


def resolve_encoder(model: str | Path, image_size: int | None = None) -> Encoder:
    """An encoder folder (`multissl export`), a method folder (RUN/final) or a run folder (RUN) -> Encoder; one
    ValueError / FileNotFoundError line when it is none of them or not a vision encoder."""
    path = Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"finetune: model folder {str(model)!r} does not exist")
    if not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
        path = path / "final"  # a run folder: its final model
    if not (path / "config.json").is_file():
        raise _fail(f"{str(model)!r} is not an encoder: no config.json in it or in its final/ (expected a folder "
                    f"written by `multissl export`, a run folder, or RUN/final)")
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    spec = method_for_model_type(model_type)
    if spec is not None:  # a multissl method folder: its encoder_for_export() is the backbone
        from multissl.models.loading import load_model

        method_model = load_model(path)
        encoder = method_model.encoder_for_export()
        _check_vision(type(encoder), model, model_type)
        size = image_size or getattr(method_model.config, "image_size", None) or DEFAULT_IMAGE_SIZE
        return Encoder(str(model), path, _backbone_dict(encoder.config), int(size), spec.name, method_model)
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise _fail(f"{str(model)!r} is not an encoder folder transformers can read ({' '.join(str(err).split())})") from err
    if not list(path.glob("*.safetensors")):
        raise _fail(f"{str(model)!r} has no *.safetensors weights (multissl never loads pickled checkpoints)")
    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError as err:
        raise _fail(f"{str(model)!r} ({model_type!r}) has no transformers AutoModel class to load") from err
    _check_vision(model_class, model, model_type)
    return Encoder(str(model), path, _backbone_dict(config), int(image_size or _export_image_size(path, config)))


def _backbone_dict(config: Any) -> dict:
    """The backbone's architecture as a recipe's backbone_config: the values that differ from the defaults + model_type
    (what `to_dict` adds beyond them, e.g. id2label or dtype, is bookkeeping that a recipe need not carry)."""
    out = config.to_diff_dict()
    for key in ("transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype"):
        out.pop(key, None)
    return {"model_type": config.model_type, **out}


def _check_vision(model_class: type, given: Any, model_type: str | None) -> None:
    if getattr(model_class, "main_input_name", None) != "pixel_values":
        raise _fail(f"{str(given)!r} is not a vision encoder ({model_type!r} reads "
                    f"{getattr(model_class, 'main_input_name', '?')!r}); finetune trains image backbones")


def _export_image_size(path: Path, config: Any) -> int:
    """The export's image processor size, else its config's image_size (ViT), else DEFAULT_IMAGE_SIZE."""
    processor = path / "preprocessor_config.json"
    if processor.is_file():
        size = json.loads(processor.read_text()).get("size")
        size = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
        if isinstance(size, int) and size > 0:
            return size
    size = getattr(config, "image_size", None)
    return size if isinstance(size, int) and size > 0 else DEFAULT_IMAGE_SIZE


def check_label_choice(labels_per_class: Any, label_fraction: Any) -> None:
    """Exactly one of labels_per_class (an int >= 1) or label_fraction (in (0, 1]); else one ValueError line."""
    if (labels_per_class is None) == (label_fraction is None):
        raise _fail("give exactly one of labels_per_class (--labels-per-class N) or label_fraction (--label-fraction F); "
                    f"got {labels_per_class!r} and {label_fraction!r}")
    if labels_per_class is not None and (isinstance(labels_per_class, bool) or not isinstance(labels_per_class, Integral)
                                         or labels_per_class < 1):
        raise _fail(f"labels_per_class must be a whole number >= 1; got {labels_per_class!r}")
    if label_fraction is not None and (isinstance(label_fraction, bool) or not isinstance(label_fraction, Real)
                                       or not 0.0 < float(label_fraction) <= 1.0):
        raise _fail(f"label_fraction must be in (0, 1] (e.g. 0.01 for 1% of each class); got {label_fraction!r}")


def arm_recipes(encoder: Encoder, encoder_dir: Path, dataset: str, *, num_classes: int, label_column: str,
                labels_per_class: int | None, label_fraction: float | None, label_seed: int,
                dataset_args: dict | None = None, train: dict | None = None, crop_scale: list[float] | None = (0.6, 1.0),
                ) -> dict[str, Recipe]:
    """{"pretrained": recipe, "scratch": recipe}: the same supervised recipe, backbone loaded from encoder_dir vs not."""
    model = {"image_size": encoder.image_size, "num_classes": num_classes, "label_column": label_column,
             "labels_per_class": labels_per_class, "label_fraction": label_fraction, "label_seed": label_seed,
             "crop_scale": None if crop_scale is None else list(crop_scale)}
    base = {"method": METHOD, "dataset": dataset, "dataset_split": "train", "dataset_args": dict(dataset_args or {}),
            "train": dict(train or {})}
    return {"pretrained": recipe_from_dict({**base, "model": {**model, "backbone_path": str(encoder_dir.resolve())}},
                                           "finetune (pretrained)"),
            "scratch": recipe_from_dict({**base, "model": {**model, "backbone_config": encoder.backbone_config}},
                                        "finetune (scratch)")}


@dataclass(frozen=True)
class LabeledData:
    """What the training split says before any training: classes, the labeled rows, their count."""

    num_classes: int
    rows: list[int]


def labeled_data(dataset: str, dataset_args: dict | None, label_column: str, labels_per_class: int | None,
                 label_fraction: float | None, label_seed: int) -> LabeledData:
    """Load the train split, check its label column and pick the labeled rows (as the supervised data hook will)."""
    from multissl.data import load_dataset_by_name
    from multissl.data.semi_supervised import labeled_unlabeled_rows

    try:
        train = load_dataset_by_name(dataset, split="train", **(dataset_args or {}))
        rows, _ = labeled_unlabeled_rows(train, label_column, labels_per_class=labels_per_class,
                                         label_fraction=label_fraction, seed=label_seed)
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise _fail(f"dataset {dataset!r} split 'train': {' '.join(str(message).split())}") from err
    feature = train.features.get(label_column) if hasattr(train, "features") else None
    num_classes = int(getattr(feature, "num_classes", 0) or max(train[label_column]) + 1)
    if num_classes < 2:
        raise _fail(f"dataset {dataset!r}: label column {label_column!r} holds a single class; a classifier needs two")
    return LabeledData(num_classes, rows)


def _check_output(out: Path, resume: bool) -> None:
    """Refuse, changing nothing, a folder with a finished fine-tuning, or one with runs unless `resume`."""
    if (out / RESULT_FILE).exists():
        raise _fail(f"{out} already holds a finished fine-tuning ({RESULT_FILE}); choose another --output-dir")
    run_dir.check_writable(out)
    if resume:
        return
    for arm in ARMS:
        found = run_dir.existing_artefacts(out / arm)
        if found:
            raise _fail(f"{out / arm} already holds a run ({', '.join(found)}); pass --resume to continue this "
                        f"fine-tuning, or choose another --output-dir")


def finished_arm(recipe: Recipe, out: Path, hint: str) -> Path:
    """out/final of an arm trained with exactly `recipe` (its recipe.yaml), else one ValueError line ending in `hint`."""
    saved = yaml.safe_load((out / "recipe.yaml").read_text()) if (out / "recipe.yaml").is_file() else None
    if not (out / "final" / "config.json").is_file() or saved != recipe.to_dict():
        what = "has no finished run" if saved is None else "was trained with other settings than these (recipe.yaml)"
        raise _fail(f"{out} {what}; {hint}")
    return out / "final"


def _train_arm(recipe: Recipe, out: Path, resume: bool) -> Path:
    """Train one arm through the one loop; with `resume`, reuse a finished arm or continue its newest checkpoint."""
    from multissl.training import train
    from multissl.training.checkpoint import checkpoint_dirs

    if resume and (out / "final" / "config.json").is_file():
        return finished_arm(recipe, out, "use the same arguments to resume, or choose another --output-dir")
    has_ckpt = resume and bool(checkpoint_dirs(out))
    # A run killed before its first checkpoint cannot be continued: move its artefacts aside (nothing is deleted).
    stale = resume and not has_ckpt and bool(run_dir.existing_artefacts(out))
    return train(recipe, out, resume=has_ckpt, overwrite=stale).final_dir


def score_classifier(final_dir: Path, dataset: Any, label_column: str, batch_size: int = 256, device: str | None = None,
                     progress: bool = True) -> dict[str, float | int]:
    """{"accuracy", "n"} of a trained supervised model's own classifier on `dataset` (its eval collator)."""
    from multissl.evaluation.classifier import classifier_accuracy
    from multissl.models.loading import load_model

    model = load_model(final_dir)
    if device is not None:
        model.to(device)
    collate = type(model).make_collator(model.config, train=False)
    return classifier_accuracy(model, dataset, collate, label_column, batch_size=batch_size, device=device,
                               progress=progress)


def finetune(model: str | Path, dataset: str, output_dir: str | Path, *, labels_per_class: int | None = None,
             label_fraction: float | None = None, label_seed: int = 0, split: str = TUNE_SPLIT,
             label_column: str = "label", dataset_args: dict | None = None, max_steps: int = 200, batch_size: int = 64,
             learning_rate: float = 2e-3, weight_decay: float = 1e-4, warmup_steps: int = 20, seed: int = 0,
             image_size: int | None = None, crop_scale: list[float] | None = (0.6, 1.0), num_workers: int = 0,
             save_every: int = 100, resume: bool = False, scratch_from: str | Path | None = None,
             progress: bool = True, eval_batch_size: int = 256, device: str | None = None) -> dict[str, Any]:
    """Fine-tune `model`'s encoder + a linear head on a class-balanced labeled subset of `dataset`'s train split, train
    the same network from random init on the same rows with the same budget, and score both classifiers on `split`.

    The batch is min(batch_size, labeled rows) (every step then draws a full batch of distinct labeled rows).
    `scratch_from`: another fine-tuning's output folder whose scratch arm was trained with exactly this scratch recipe
    (same architecture, labels, budget and seeds; e.g. a second encoder of the same architecture): it is scored
    instead of training an identical one (checked against its recipe.yaml before anything is trained). Returns
    the JSON-able result (also written to output_dir/finetune.json): "accuracy" is the fine-tuned classifier's,
    "scratch" holds the random-init one's and "gain" their difference.
    """
    check_label_choice(labels_per_class, label_fraction)
    encoder = resolve_encoder(model, image_size)
    labeled = labeled_data(dataset, dataset_args, label_column, labels_per_class, label_fraction, label_seed)
    from multissl.evaluation.protocols import load_split

    scored = load_split(dataset, split, "finetune", dataset_args, "choose another --split or give the data that split",
                        label_column)
    batch = min(batch_size, len(labeled.rows))
    train_args = {"max_steps": max_steps, "batch_size": batch, "learning_rate": learning_rate,
                  "weight_decay": weight_decay, "warmup_steps": min(warmup_steps, max_steps), "seed": seed,
                  "log_every": max(1, min(10, max_steps)), "save_every": save_every, "keep_checkpoints": 1,
                  "num_workers": num_workers, "progress": progress}
    out = Path(output_dir)
    encoder_dir = out / "encoder" if encoder.method_model is not None else encoder.folder
    recipes = arm_recipes(encoder, encoder_dir, dataset, num_classes=labeled.num_classes, label_column=label_column,
                          labels_per_class=labels_per_class, label_fraction=label_fraction, label_seed=label_seed,
                          dataset_args=dataset_args, train=train_args, crop_scale=crop_scale)
    _check_output(out, resume)
    reused = None if scratch_from is None else finished_arm(
        recipes["scratch"], Path(scratch_from) / "scratch", "--scratch-from needs a fine-tuning with the same "
        "architecture, dataset, labels, budget and seeds")
    if encoder.method_model is not None and not (encoder_dir / "config.json").is_file():
        from multissl.models.model_card import load_context

        encoder.method_model.save_encoder(encoder_dir, load_context(encoder.folder))
    atomic_write_text(out / "labeled_rows.json", json.dumps(labeled.rows))
    finals = {arm: reused if arm == "scratch" and reused is not None else _train_arm(recipes[arm], out / arm, resume)
              for arm in ARMS}
    scores = {arm: score_classifier(finals[arm], scored, label_column, eval_batch_size, device, progress) for arm in ARMS}
    result = {
        "protocol": "finetune", "dataset": str(dataset), "model": encoder.given, "encoder": str(encoder_dir),
        "encoder_method": encoder.method, "label_column": label_column, "labels_per_class": labels_per_class,
        "label_fraction": label_fraction, "label_seed": label_seed, "n_labeled": len(labeled.rows),
        "num_classes": labeled.num_classes, "split_train": "train", "split": split, "n_scored": scores["pretrained"]["n"],
        "image_size": encoder.image_size, "steps": max_steps, "batch_size": batch, "learning_rate": learning_rate,
        "weight_decay": weight_decay, "warmup_steps": train_args["warmup_steps"], "seed": seed,
        "accuracy": scores["pretrained"]["accuracy"],
        "pretrained": {"accuracy": scores["pretrained"]["accuracy"], "run": str(out / "pretrained")},
        "scratch": {"accuracy": scores["scratch"]["accuracy"], "run": str(finals["scratch"].parent)},
        "gain": scores["pretrained"]["accuracy"] - scores["scratch"]["accuracy"], "output_dir": str(out),
    }
    atomic_write_text(out / RESULT_FILE, json.dumps(result, indent=2))
    return result


__all__ = ["ARMS", "Encoder", "LabeledData", "arm_recipes", "check_label_choice", "finetune", "labeled_data",
           "finished_arm", "resolve_encoder", "score_classifier"]
