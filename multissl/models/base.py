"""The method contract: every method is a `MethodModel` subclass with a `MethodConfig`, in one file.

What the training loop, the CLI and the tests may ask of a method is written here, typed, with a
default where one makes sense; the loop never probes with getattr. To add a method, see
docs/architecture.md ("Adding a method").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from multissl.data.batches import BatchSource, DataRequest


class Collator(Protocol):
    """The modality adapter: rows of a datasets.Dataset -> a dict of tensors for forward(**batch).

    `generator` seeds every random choice (crops, masks, permutations): the loop passes one derived from
    (run seed, micro-batch index, rank), so a resumed run sees the same batches.
    """

    def __call__(self, rows: list[dict], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]: ...


class MethodConfig(PretrainedConfig):
    """Base of every method's config. Rules: `model_type = "multissl_<method name>"`; a single loss
    temperature is called `loss_temperature` (transformers reserves `temperature` for generation); a
    pretrained backbone is named by `backbone_path` (a local folder or pkg: path)."""

    # Not annotated: transformers v5 treats annotated config attributes as fields that __init__ resets.
    backbone_path = None  # str | None; methods with a loadable backbone set it in __init__


class MethodModel(PreTrainedModel):
    """Base of every method: forward(**batch) -> ModelOutput with .loss, plus the hooks below.

    Class attributes a subclass sets: `config_class` (its MethodConfig), `main_input_name` (the first
    argument of forward), and, when its backbone is loaded from `config.backbone_path` with a head,
    `backbone_auto_class` (e.g. AutoModelForMaskedLM). Defining a subclass registers its config and
    model with transformers' AutoConfig / AutoModel, so `AutoModel.from_pretrained(run/final)` works
    once the method's module is imported (multissl.load and multissl.register_auto_classes do that).
    """

    config_class = MethodConfig
    backbone_auto_class: Any = AutoModel

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config_class = cls.__dict__.get("config_class")
        if config_class is not None and config_class is not MethodConfig:
            register_auto(config_class, cls)

    # ---- construction and data (class-level: needed before a model exists) -------------------------

    @classmethod
    def tiny_config(cls) -> MethodConfig:
        """A config small enough that forward + backward runs in milliseconds on a CPU (tests)."""
        raise NotImplementedError(f"{cls.__name__} must define tiny_config()")

    @classmethod
    def make_collator(cls, config: MethodConfig, train: bool = True) -> Collator:
        """The adapter: training views/masks when train=True, deterministic embed() inputs when False."""
        raise NotImplementedError(f"{cls.__name__} must define make_collator(config, train)")

    @classmethod
    def prepare_dataset(cls, config: MethodConfig, dataset: Any) -> Any:
        """Once-per-run work on the training dataset before batching (e.g. tokenise and group text); default: none."""
        return dataset

    @classmethod
    def make_batch_source(cls, config: MethodConfig, data: DataRequest, *, batch_size: int, seed: int,
                          world_size: int = 1, rank: int = 0) -> torch.utils.data.Dataset:
        """The data hook: the recipe's data -> a map-style dataset whose item i is micro-batch i of this process.

        Default: one dataset (data.load()), prepare_dataset, the training collator. A method that draws
        from several datasets or streams at once (labeled + unlabeled, say) overrides this; the loop
        only ever indexes the result by global micro-batch index.
        """
        dataset = cls.prepare_dataset(config, data.load())
        return BatchSource(dataset, cls.make_collator(config, train=True), batch_size, seed, world_size, rank)

    @classmethod
    def build(cls, config: MethodConfig) -> MethodModel:
        """A fresh model for training: random init, then the pretrained backbone when config.backbone_path is set."""
        model = cls(config)
        if config.backbone_path:
            from multissl.models.common.backbones import load_pretrained_backbone

            load_pretrained_backbone(model.backbone, config.backbone_path, cls.backbone_auto_class)
        return model

    # ---- what downstream code uses ---------------------------------------------------------------

    def embed(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Features [B, D] for downstream tasks from the eval collator's batch (make_collator(config, train=False))."""
        raise NotImplementedError(f"{type(self).__name__} must define embed()")

    def encoder_for_export(self) -> PreTrainedModel:
        """The plain Hugging Face encoder that `save_encoder` / `multissl export` writes."""
        raise NotImplementedError(f"{type(self).__name__} must define encoder_for_export()")

    def save_export_extras(self, out_dir: Path) -> None:
        """Write what inference needs beside the encoder (export and final/): tokenizer, image processor, audio feature
        extractor. Default: the modality's standard one (image: the eval transform as a ViTImageProcessor; audio: a
        Wav2Vec2FeatureExtractor at config.sampling_rate); text methods write their tokenizer."""
        from multissl.models.processors import save_modality_processor

        save_modality_processor(self, out_dir)

    def save_encoder(self, out_dir: str | Path, context: Any = None) -> Path:
        """Write encoder_for_export(), its extras and a model card (README.md; `context`: a model_card.CardContext with the
        run's recipe / eval.json) as a plain Hugging Face folder, atomically."""
        from multissl.models.export import save_encoder

        return save_encoder(self, out_dir, context)

    # ---- training-loop hooks ---------------------------------------------------------------------

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter-name prefix (e.g. {"predictor.": 10.0}); the optimizer gives the
        matching parameters lr x scale under the same schedule. Default: none, one learning rate for everything."""
        return {}

    def on_step_end(self, step: int, max_steps: int) -> None:
        """After each optimizer step (0-based `step`): EMA teachers, queues, schedules; default: nothing."""

    def on_train_end(self, out_dir: Path, batch: dict[str, torch.Tensor]) -> Path | None:
        """After the final save, with the last training batch (e.g. MAE's reconstruction grid); default: nothing."""
        return None


def register_auto(config_class: type[PretrainedConfig], model_class: type[PreTrainedModel]) -> None:
    """Make AutoConfig / AutoModel.from_pretrained rebuild this model type (idempotent)."""
    from transformers import AutoConfig

    try:
        AutoConfig.register(config_class.model_type, config_class)
    except ValueError:  # already registered (module re-imported)
        pass
    try:
        AutoModel.register(config_class, model_class)
    except ValueError:
        pass


def config_parameters(config_class: type[PretrainedConfig]) -> dict[str, Any]:
    """{name: inspect.Parameter} of the keyword arguments a method config accepts (a recipe's `model:` section).

    A config that passes **kwargs on to a MethodConfig parent (e.g. FixMatchConfig -> SemiSupervisedConfig) also
    accepts its parent's named arguments: the walk follows the MRO until an __init__ without **kwargs or MethodConfig.
    A subclass's parameter wins over a parent's of the same name.
    """
    import inspect

    found: dict[str, Any] = {}
    for klass in config_class.__mro__:
        if klass is MethodConfig or not issubclass(klass, MethodConfig) or "__init__" not in klass.__dict__:
            continue
        params = inspect.signature(klass.__dict__["__init__"]).parameters
        for n, p in params.items():
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                found.setdefault(n, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    if not found:  # not a MethodConfig (e.g. a test's toy PretrainedConfig): its own signature, as before
        params = inspect.signature(config_class.__init__).parameters
        found = {n: p for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return found


def config_keys(config_class: type[PretrainedConfig]) -> set[str]:
    """The keyword arguments a method config accepts (what a recipe's `model:` section may set)."""
    return set(config_parameters(config_class))
