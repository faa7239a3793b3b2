"""Recipes: a YAML file naming a method, a dataset, the method's config kwargs and TrainArgs.

Every value is checked when the recipe is read (types by TrainArgs' annotations, ranges below); the
`model:` section is checked against the method's config in the loop's build_config
(recipe_checks.build_method_config), because only the method knows its keys.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from multissl.evaluation.defaults import C_AUTO
from multissl.evaluation.protocols import PROTOCOLS, evaluate_model
from multissl.training.recipe_checks import Bound, RecipeError, boolean, mapping, real_number, string, whole_number

__all__ = ["EVAL_ALIASES", "EVAL_PROTOCOLS", "EVAL_RULES", "PROTOCOL_ONLY", "RECIPE_KEYS", "TRAIN_KEYS", "TRAIN_RULES",
           "Recipe", "RecipeError", "TrainArgs", "apply_overrides", "check_eval", "eval_keys", "load_recipe",
           "recipe_from_dict"]


@dataclass
class TrainArgs:
    """Optimisation and bookkeeping settings shared by every method."""

    max_steps: int = 100
    batch_size: int = 64  # per process
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine decays to learning_rate * min_lr_ratio
    optimizer: str = "adamw"  # adamw | sgd | lars (LARS: large-batch SimCLR/BYOL, multissl/training/lars.py)
    momentum: float = 0.9  # for sgd and lars
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    save_every: int = 0  # 0 = only the final model
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    stop_after_steps: int | None = None  # stop early (time-boxed jobs); the schedule still follows max_steps
    progress: bool = True
    # Speed knobs (docs/performance.md; set up by multissl/training/performance.py).
    lars_trust_coefficient: float = 0.001  # LARS's eta (You et al. 2017; SimCLR uses 0.001)
    fused: bool = False  # one fused optimizer kernel (adamw, sgd)
    foreach: bool | None = None  # multi-tensor optimizer kernels (adamw, sgd); null = torch's choice
    tf32: bool = False  # TensorFloat-32 matmuls/convolutions on CUDA (no effect elsewhere)
    compile: bool = False  # torch.compile every backbone; the loss, gathers, queues and hooks stay eager
    channels_last: bool = False  # NHWC weights for the convolutions (convnets on GPUs)
    attention: str | None = None  # sdpa | eager | flash_attention_2 for every transformer backbone; null = default
    gradient_checkpointing: bool = False  # recompute transformer layers in backward (less memory, more time)
    report_to: list[str] = field(default_factory=list)  # experiment trackers beside metrics.jsonl: tensorboard, trackio


@dataclass
class Recipe:
    """Everything a run needs: method, data, model config kwargs, training args, end-of-run evaluation."""

    method: str
    dataset: str | None = None
    dataset_split: str = "train"
    dataset_args: dict = field(default_factory=dict)
    streaming: dict | None = None  # None: load the dataset whole; {shuffle_buffer: rows}: stream its shard files
    model: dict = field(default_factory=dict)
    train: TrainArgs = field(default_factory=TrainArgs)
    eval: dict = field(default_factory=dict)
    source: str = "<dict>"

    def to_dict(self) -> dict:
        """Plain-dict form (for recipe.yaml in a run folder)."""
        out = dataclasses.asdict(self)
        out.pop("source")
        if out["streaming"] is None:  # recipes that do not stream read (and resume) as before the key existed
            out.pop("streaming")
        out["train"]["betas"] = list(self.train.betas)
        return out


RECIPE_KEYS = {f.name for f in fields(Recipe)} - {"source"}
TRAIN_KEYS = {f.name: f for f in fields(TrainArgs)}
EVAL_PROTOCOLS = set(PROTOCOLS)  # the names `multissl eval` uses: knn, linear-probe

Check = Callable[[Any, str, str], Any]  # (value, dotted key, recipe source) -> the typed value, or RecipeError


def _whole(lo: int, hi: int | None = None, text: str | None = None, nullable: bool = False) -> Check:
    return lambda v, k, s: whole_number(v, k, s, Bound(lo=lo, hi=hi, text=text), nullable=nullable)


def _real(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False, nullable: bool = False) -> Check:
    return lambda v, k, s: real_number(v, k, s, Bound(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open), nullable=nullable)


def _mixed_precision(value: Any, key: str, source: str) -> str:
    # YAML 1.1 (PyYAML) reads a bare `no` as false: `mixed_precision: no` means "no".
    return string("no" if value is False else value, key, source, ("no", "fp16", "bf16"))


def _betas(value: Any, key: str, source: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RecipeError(f"{source}: {key} must be a pair [beta1, beta2] of numbers in [0, 1); got {value!r}")
    return tuple(real_number(b, f"{key}[{i}]", source, Bound(lo=0, hi=1, hi_open=True)) for i, b in enumerate(value))


ATTENTION_CHOICES = ("sdpa", "eager", "flash_attention_2")  # transformers' attn_implementation names
TRACKERS = ("tensorboard", "trackio")  # Accelerate trackers that log offline into the run folder / a local store


def _report_to(value: Any, key: str, source: str) -> list[str]:
    """A tracker name or a list of them (each once); `--report-to tensorboard` and `--set train.report_to=tensorboard`."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or any(n not in TRACKERS for n in names) or len(set(names)) != len(names):
        raise RecipeError(f"{source}: {key} must be a list of distinct names from {list(TRACKERS)}; got {value!r}")
    return list(names)


# One rule per TrainArgs field (a test keeps the two in step, None allowed exactly where the annotation says so).
# warmup_steps and stop_after_steps are also bounded by max_steps, checked once all fields are read.
TRAIN_RULES: dict[str, Check] = {
    "max_steps": _whole(1),
    "batch_size": _whole(1),
    "learning_rate": _real(0, lo_open=True),
    "weight_decay": _real(0),
    "warmup_steps": _whole(0),
    "min_lr_ratio": _real(0, 1),
    "optimizer": lambda v, k, s: string(v, k, s, ("adamw", "sgd", "lars")),
    "momentum": _real(0, 1, hi_open=True),
    "betas": _betas,
    "max_grad_norm": _real(0, lo_open=True, nullable=True),  # null = no clipping
    "gradient_accumulation_steps": _whole(1),
    "mixed_precision": _mixed_precision,
    "seed": _whole(0, 2**64 - 1, "in [0, 2**64 - 1]"),  # torch.manual_seed's range
    "save_every": _whole(0),  # 0 = only the final model
    # 0 is refused: it reads as "keep none" (then save_every and --resume would be pointless) while the pruner
    # treats it as "keep all"; a recipe that wants every checkpoint says so with a large number.
    "keep_checkpoints": _whole(1),
    "log_every": _whole(1),
    "num_workers": _whole(0),
    "stop_after_steps": _whole(1, nullable=True),
    "progress": boolean,
    "lars_trust_coefficient": _real(0, lo_open=True),
    "fused": boolean,
    "foreach": lambda v, k, s: None if v is None else boolean(v, k, s),
    "tf32": boolean,
    "compile": boolean,
    "channels_last": boolean,
    "attention": lambda v, k, s: None if v is None else string(v, k, s, ATTENTION_CHOICES),
    "gradient_checkpointing": boolean,
    "report_to": _report_to,
}


def _train_args(train_in: Any, source: str) -> TrainArgs:
    """TrainArgs from the `train:` mapping, every value typed and range-checked."""
    train_in = mapping(train_in, "train", source)
    unknown = set(train_in) - set(TRAIN_KEYS)
    if unknown:
        raise RecipeError(f"{source}: unknown train key(s) {sorted(map(str, unknown))}; allowed: {sorted(TRAIN_KEYS)}")
    train = TrainArgs(**{k: TRAIN_RULES[k](v, f"train.{k}", source) for k, v in train_in.items()})
    # warmup_steps == max_steps is a plain linear ramp; more would mean the LR never reaches learning_rate.
    whole_number(train.warmup_steps, "train.warmup_steps", source,
                 Bound(lo=0, hi=train.max_steps, text=f"in [0, train.max_steps = {train.max_steps}]"))
    whole_number(train.stop_after_steps, "train.stop_after_steps", source,
                 Bound(lo=1, hi=train.max_steps, text=f"in [1, train.max_steps = {train.max_steps}]"), nullable=True)
    _check_optimizer_kernels(train, source)
    return train


def _check_optimizer_kernels(train: TrainArgs, source: str) -> None:
    """fused and foreach pick one implementation of AdamW/SGD: both at once, or either with LARS, is an error."""
    if train.fused and train.foreach:
        raise RecipeError(f"{source}: train.fused and train.foreach are two implementations of one optimizer step; set one")
    if train.optimizer == "lars" and (train.fused or train.foreach):
        raise RecipeError(f"{source}: train.fused / train.foreach apply to adamw and sgd; train.optimizer is lars")


# Arguments of evaluate_model that are not `eval.<protocol>` keys: the model, the dataset (the `dataset` key, which
# the loop pops) and the protocol (the section's name).
_EVAL_POSITIONAL = ("model_dir_or_model", "dataset_name", "protocol")
PROTOCOL_ONLY = {"knn": ("k", "temperature"), "linear-probe": ("C", "max_iter")}  # ignored by the other protocol
EVAL_ALIASES = {"split_test": "split"}  # old key -> its name now; a recipe may use either, not both
_text: Check = lambda v, k, s: string(v, k, s)  # noqa: E731


def _c_value(value: Any, key: str, source: str) -> float | str:
    """The linear probe's C: a number > 0, or `auto` (chosen on the validation split)."""
    if value == C_AUTO:
        return C_AUTO
    if isinstance(value, str):
        raise RecipeError(f"{source}: {key} must be a finite number > 0 or {C_AUTO!r}; got {value!r}")
    return real_number(value, key, source, Bound(lo=0, lo_open=True))


EVAL_RULES: dict[str, Check] = {  # one per evaluate_model keyword argument (a test keeps them in step), and dataset
    "dataset": _text,
    "dataset_args": lambda v, k, s: None if v is None else mapping(v, k, s),
    "label_column": _text,
    "split_train": _text,
    "split": _text,  # absent: the end-of-run evaluation scores validation when the data has it, else test
    "k": _whole(1),
    "temperature": _real(0, lo_open=True),
    "C": _c_value,
    "max_iter": _whole(1),
    "batch_size": _whole(1),
    "device": lambda v, k, s: None if v is None else string(v, k, s),
    "progress": boolean,
}


def eval_keys(protocol: str) -> set[str]:
    """The keys `eval.<protocol>` may set: evaluate_model's keyword arguments used by that protocol, and dataset."""
    params = set(inspect.signature(evaluate_model).parameters) - set(_EVAL_POSITIONAL) | {"dataset"}
    return params - {k for p, keys in PROTOCOL_ONLY.items() if p != protocol for k in keys}


def check_eval(evals: Any, source: str) -> dict:
    """The `eval:` section ({protocol: {evaluate_model kwargs} or null}) with typed, range-checked values."""
    evals = mapping(evals, "eval", source)
    unknown = set(evals) - EVAL_PROTOCOLS
    if unknown:
        raise RecipeError(f"{source}: unknown eval protocol(s) {sorted(map(str, unknown))}; allowed: {sorted(EVAL_PROTOCOLS)}")
    out = {}
    for protocol, kwargs in evals.items():
        kwargs, allowed = mapping(kwargs, f"eval.{protocol}", source), eval_keys(protocol)
        bad = set(kwargs) - allowed - set(EVAL_ALIASES)
        if bad:
            raise RecipeError(f"{source}: unknown eval.{protocol} key(s) {sorted(map(str, bad))}; allowed: {sorted(allowed)}")
        for old, new in EVAL_ALIASES.items():
            if old in kwargs and new in kwargs:
                raise RecipeError(f"{source}: eval.{protocol} sets both {old!r} and {new!r} (the same setting); keep {new!r}")
        out[protocol] = {EVAL_ALIASES.get(k, k): EVAL_RULES[EVAL_ALIASES.get(k, k)](v, f"eval.{protocol}.{k}", source)
                         if EVAL_ALIASES.get(k, k) in EVAL_RULES else v for k, v in kwargs.items()}
    return out


def _streaming(value: Any, source: str) -> dict | None:
    """The `streaming:` section: absent or false = load whole; true or {shuffle_buffer: rows} = stream shard files."""
    from multissl.data.streaming import stream_options

    if value is None or value is False:
        return None
    options = {} if value is True else mapping(value, "streaming", source)
    try:
        return stream_options(options)  # defaults filled in, so recipe.yaml records what ran
    except ValueError as err:
        raise RecipeError(f"{source}: {err}") from err


def recipe_from_dict(data: dict, source: str = "<dict>") -> Recipe:
    """Validate a recipe dict: unknown keys are errors that list the allowed ones; values are typed and range-checked."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping, got {type(data).__name__}")
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        raise RecipeError(f"{source}: unknown recipe key(s) {sorted(map(str, unknown))}; allowed: {sorted(RECIPE_KEYS)}")
    if "method" not in data:
        raise RecipeError(f"{source}: missing required key 'method'")
    dataset = data.get("dataset")
    return Recipe(
        method=string(data["method"], "method", source),
        dataset=None if dataset is None else string(dataset, "dataset", source),
        dataset_split=string(data.get("dataset_split", "train"), "dataset_split", source),
        dataset_args=mapping(data.get("dataset_args"), "dataset_args", source),
        streaming=_streaming(data.get("streaming"), source),
        model=mapping(data.get("model"), "model", source),  # values: build_config (needs the method's config)
        train=_train_args(data.get("train"), source),
        eval=check_eval(data.get("eval"), source),
        source=source,
    )


# A second `key=` after whitespace in one --set value: `--set "a=1 b=2"`.
def section_for(data: dict, keys: list[str], message: Callable[[int, Any], str]) -> dict:
    """The nested dict at data[keys[0]][keys[1]]..., creating absent or empty sections (`eval:` with nothing under
    it); RecipeError(message(n, value)) when the value after the first n keys is not a mapping."""
    node = data
    for n, key in enumerate(keys, start=1):
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            raise RecipeError(message(n, node))
    return node


_ANOTHER_PAIR = re.compile(r"\s+(?=[A-Za-z_][\w-]*(?:\.[\w-]+)*=)")


def apply_overrides(data: dict, overrides: list[str], source: str | None = None) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a recipe dict, in place; one key per override.

    A value like `512 model.context_dim=256` (several pairs in one --set) is an error that shows the repeated
    form: splitting it would guess, since a string value may itself hold spaces and '=' (quote it to keep it).
    """
    where = f"{source}: " if source else ""
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise RecipeError(f"{where}override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise RecipeError(f"{where}override {item!r}: the key {key!r} has an empty part; expected key.sub=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise RecipeError(f"{where}override {item!r}: the value is not valid YAML ({' '.join(str(err).split())})") from err
        if isinstance(value, str) and raw.strip()[:1] not in ("'", '"') and _ANOTHER_PAIR.search(raw):
            repeated = " ".join(f"--set {p}" for p in _ANOTHER_PAIR.split(item.strip()))
            raise RecipeError(f"{where}override {item!r} holds several key=value pairs; repeat --set for each: {repeated}")
        def message(n: int, bad: Any, item: str = item, parts: list[str] = parts) -> str:
            return f"{where}override {item!r}: {'.'.join(parts[:n])} is {bad!r}, not a mapping"

        node = section_for(data, parts[:-1], message)
        node[parts[-1]] = value
    return data


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a YAML recipe file, applying optional `key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    return recipe_from_dict(apply_overrides(data, overrides or [], source=str(path)), source=str(path))
