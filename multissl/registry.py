"""Registries of methods and built-in datasets: `multissl list`, the CLI and the tests read them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

METHODS: dict[str, "MethodSpec"] = {}
DATASETS: dict[str, "DatasetSpec"] = {}


@dataclass
class MethodSpec:
    """What the training loop, CLI and tests need to know about one method.

    model_class: a PreTrainedModel whose forward(**batch) returns a ModelOutput with .loss.
    make_collator(config, train=True) -> callable(list[dict]) -> dict of tensors (the adapter).
    tiny_config() -> a config small enough for a CPU unit test.
    """

    name: str
    model_class: type
    config_class: type
    make_collator: Callable[..., Callable[[list[dict]], dict]]
    tiny_config: Callable[[], Any]
    modality: str
    description: str
    default_dataset: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class DatasetSpec:
    """A built-in offline dataset: load(split=..., **kwargs) -> datasets.Dataset."""

    name: str
    load: Callable[..., Any]
    modality: str
    description: str


def register_method(
    name: str,
    *,
    config_class: type,
    make_collator: Callable[..., Callable[[list[dict]], dict]],
    tiny_config: Callable[[], Any],
    modality: str,
    description: str,
    default_dataset: str | None = None,
    **extra: Any,
) -> Callable[[type], type]:
    """Class decorator: register a PreTrainedModel as method `name` (and with AutoConfig/AutoModel)."""

    def wrap(model_class: type) -> type:
        if name in METHODS and METHODS[name].model_class is not model_class:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name].model_class.__name__}")
        _register_auto(config_class, model_class)
        if "save_encoder" not in vars(model_class):
            model_class.save_encoder = _save_encoder  # model.save_encoder(dir): every method exports the same way
        METHODS[name] = MethodSpec(
            name=name,
            model_class=model_class,
            config_class=config_class,
            make_collator=make_collator,
            tiny_config=tiny_config,
            modality=modality,
            description=description,
            default_dataset=default_dataset,
            extra=extra,
        )
        return model_class

    return wrap


def _save_encoder(self, out_dir: "str | Path") -> "Path":  # noqa: F821
    """Write this model's encoder as a plain Hugging Face folder (see multissl.models.export.save_encoder)."""
    from multissl.models.export import save_encoder

    return save_encoder(self, out_dir)


def _register_auto(config_class: type, model_class: type) -> None:
    """Make AutoConfig/AutoModel.from_pretrained rebuild our models after `import multissl`."""
    from transformers import AutoConfig, AutoModel

    try:
        AutoConfig.register(config_class.model_type, config_class)
    except ValueError:  # already registered (module re-imported)
        pass
    try:
        AutoModel.register(config_class, model_class)
    except ValueError:
        pass


def register_dataset(name: str, *, modality: str, description: str) -> Callable[[Callable], Callable]:
    """Function decorator: register a built-in dataset loader under `name`."""

    def wrap(fn: Callable) -> Callable:
        DATASETS[name] = DatasetSpec(name=name, load=fn, modality=modality, description=description)
        return fn

    return wrap


def get_method(name: str) -> MethodSpec:
    """Look up a registered method, with an error that lists the known ones."""
    import multissl.models  # noqa: F401  (registers every method)

    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS)) or '(none)'}")
    return METHODS[name]


def get_dataset_spec(name: str) -> DatasetSpec | None:
    """Look up a built-in dataset by name, or None when `name` is not built in."""
    import multissl.data  # noqa: F401  (registers every built-in dataset)

    return DATASETS.get(name)
