"""Value checks for recipes: scalars with ranges, and the `model:` section against a config's signature.

Every failure is one RecipeError line that names the recipe, the dotted key, what was expected and
what was given: `<recipe>: train.batch_size must be a whole number >= 1; got 16.7`.
"""
from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class RecipeError(ValueError):
    """A recipe file or override that does not match the expected schema."""


# ---- scalars ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A numeric range; `text` overrides the generated wording (e.g. a bound that is another key)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    text: str | None = None

    def holds(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return ""


ANY = Bound()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _fail(source: str, key: str, expected: str, value: Any) -> RecipeError:
    return RecipeError(f"{source}: {key} must be {expected}; got {value!r}")


def _parse_number(value: Any) -> float | int | None:
    """int/float as is; a numeric string (PyYAML reads `1e-3` and `1e3` as strings) parsed; else None. Never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
    return None


def whole_number(value: Any, key: str, source: str, bound: Bound = ANY, nullable: bool = False) -> int | None:
    """An int within `bound` (None too when `nullable`). A float or numeric string is accepted only when it is
    integral (16.0, '1e3'): no information is lost, and YAML/JSON tools and `--set` write such numbers; 16.7 is an
    error, never truncated."""
    expected = ("null or " if nullable else "") + f"a whole number {bound.describe()}".rstrip()
    if value is None and nullable:
        return None
    x = _parse_number(value)
    if x is None or (isinstance(x, float) and not (math.isfinite(x) and x.is_integer())):
        raise _fail(source, key, expected, value)
    x = int(x)
    if not bound.holds(x):
        raise _fail(source, key, expected, value)
    return x


def real_number(value: Any, key: str, source: str, bound: Bound = ANY, nullable: bool = False) -> float | None:
    """A finite float within `bound` (None too when `nullable`); ints and numeric strings are accepted (PyYAML reads
    `1e-3` as a string), NaN, inf and booleans are not."""
    expected = ("null or " if nullable else "") + f"a finite number {bound.describe()}".rstrip()
    if value is None and nullable:
        return None
    x = _parse_number(value)
    if x is None or not math.isfinite(x) or not bound.holds(x):
        raise _fail(source, key, expected, value)
    return float(x)


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def boolean(value: Any, key: str, source: str) -> bool:
    """True/False, or the usual spellings as a string ('true', 'no', ...); 1/0 and typos are errors."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(source, key, "true or false", value)


def string(value: Any, key: str, source: str, choices: tuple[str, ...] | None = None) -> str:
    """A non-empty string, one of `choices` when given."""
    if choices is not None:
        if value not in choices:
            raise _fail(source, key, "one of " + "|".join(choices), value)
        return value
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, key, "a non-empty string", value)
    return value


def mapping(value: Any, key: str, source: str, nullable: bool = True) -> dict:
    """A dict copy of a mapping; None gives {} when `nullable`."""
    if value is None and nullable:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(source, key, "a mapping (key: value pairs)", value)
    return dict(value)


# ---- model: ----------------------------------------------------------------------------------------

_SIZE_EXACT = {"depths", "depth", "layers", "heads", "dim", "grid", "embedding_size", "hidden_sizes", "vocab_size",
               "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "n_embd",
               "n_layer", "n_head", "n_inner", "n_positions", "n_ctx", "block_size", "patch_size", "image_size"}
_SIZE_SUFFIX = ("_size", "_sizes", "_dim", "_dims", "_depth", "_depths", "_layers", "_heads", "_steps", "_length",
                "_channels", "_embeddings", "_positions", "_kernels", "_strides")
_SIZE_PREFIX = ("num_", "n_")


def is_size_key(name: str) -> bool:
    """Whether a config key names a size or count (hidden_sizes, num_hidden_layers, n_embd, decoder_dim, ...)."""
    name = str(name).lower()
    return name in _SIZE_EXACT or name.endswith(_SIZE_SUFFIX) or name.startswith(_SIZE_PREFIX)


def _nested(value: Any, key: str, source: str, size: bool) -> Any:
    """Walk dicts/lists; a size-like key (or a list under one) must hold whole numbers or null (returned as ints)."""
    if isinstance(value, Mapping):
        return {k: _nested(v, f"{key}.{k}", source, is_size_key(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_nested(v, f"{key}[{i}]", source, size) for i, v in enumerate(value))
    if size and value is not None:
        if isinstance(value, (str, bool)) or not isinstance(value, (int, float)):  # no '128' or true as a size
            raise _fail(source, key, "a whole number (a size or count)", value)
        return whole_number(value, key, source, Bound(text="(a size or count)"))
    return value


def _expected(param: inspect.Parameter) -> tuple[str, bool, str]:
    """(kind, nullable, element kind) from the annotation string, else from the default's type.

    kind: int | float | bool | str | dict | seq | any; element kind (for seq): int | float | str | any.
    """
    default = param.default
    nullable = default is None
    ann = param.annotation  # a string under `from __future__ import annotations`, else a type or typing object
    if ann is not inspect.Parameter.empty and not isinstance(ann, str):
        ann = ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")
    if isinstance(ann, str) and ann:
        parts = [p.strip() for p in ann.split("|")]
        nullable = nullable or "None" in parts
        base = [p for p in parts if p != "None"]
        if len(base) == 1:
            b = base[0]
            if b in ("int", "float", "bool", "str"):
                return b, nullable, "any"
            if b.startswith(("dict", "Mapping")):
                return "dict", nullable, "any"
            if b.startswith(("list", "tuple", "Sequence")):
                inner = re.findall(r"\b(int|float|str)\b", b)
                element = inner[0] if inner and len(set(inner)) == 1 else _element_kind(default)
                return "seq", nullable, element
    if isinstance(default, bool):
        return "bool", nullable, "any"
    for t in (int, float, str, dict):
        if isinstance(default, t):
            return t.__name__, nullable, "any"
    if isinstance(default, (list, tuple)):
        return "seq", nullable, _element_kind(default)
    return "any", True, "any"


def _element_kind(default: Any) -> str:
    if isinstance(default, (list, tuple)) and default:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in default):
            return "int"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
            return "float"
        if all(isinstance(v, str) for v in default):
            return "str"
    return "any"


_KIND_TEXT = {"int": "a whole number", "float": "a finite number", "bool": "true or false", "str": "a string",
              "dict": "a mapping (key: value pairs)", "seq": "a list"}


def _model_value(name: str, value: Any, param: inspect.Parameter, source: str) -> Any:
    key = f"model.{name}"
    kind, nullable, element = _expected(param)
    if value is None:
        if nullable:
            return None
        raise _fail(source, key, _KIND_TEXT.get(kind, "a value"), value)
    if kind == "int":
        return whole_number(value, key, source)
    if kind == "float":
        return real_number(value, key, source)
    if kind == "bool":
        return boolean(value, key, source)
    if kind == "str":
        if not isinstance(value, str):
            raise _fail(source, key, "a string", value)
        return value
    if kind == "dict":
        return _nested(mapping(value, key, source, nullable=False), key, source, False)
    if kind == "seq":
        if not isinstance(value, (list, tuple)):
            raise _fail(source, key, f"a list{'' if element == 'any' else ' of ' + element + 's'}", value)
        check = {"int": whole_number, "float": real_number}.get(element)
        if check is not None:
            return type(value)(check(v, f"{key}[{i}]", source) for i, v in enumerate(value))
        if element == "str":
            return type(value)(string(v, f"{key}[{i}]", source) for i, v in enumerate(value))
        return _nested(value, key, source, is_size_key(name))
    return _nested(value, key, source, is_size_key(name))


def check_model_values(config_class: type, model: Mapping, source: str) -> dict:
    """Check a recipe's `model:` values against `config_class.__init__`; return the kwargs to pass to it.

    Unknown keys are errors. A parameter typed (by annotation, else by its default) int must be a whole number,
    float a finite number, bool true/false, str a string, dict a mapping, list[...] a list of that; inside nested
    dicts/lists (backbone_config, augment, ...) a size-like key (`is_size_key`) must hold whole numbers. The
    returned copy has those numbers in their expected type (128.0 -> 128, '1e-3' -> 0.001), so torch never sees
    a float size.
    """
    model = mapping(model, "model", source)
    from multissl.models.base import config_parameters  # here: importing models (transformers) is not cheap

    params = config_parameters(config_class)
    unknown = set(model) - set(params)
    if unknown:
        raise RecipeError(f"{source}: unknown model key(s) {sorted(map(str, unknown))} for {config_class.__name__}; "
                          f"allowed: {sorted(params)}")
    return {name: _model_value(name, value, params[name], source) for name, value in model.items()}


@contextmanager
def config_errors(source: str) -> Iterator[None]:
    """Re-raise a ValueError/TypeError from a config's __init__ as one RecipeError line: '<source>: model: ...'."""
    try:
        yield
    except RecipeError:
        raise
    except (ValueError, TypeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        raise RecipeError(f"{source}: model: {message}") from err


def build_method_config(config_class: type, model: Mapping, source: str) -> Any:
    """`config_class(**checked model values)`, every failure a RecipeError naming the recipe and the key."""
    kwargs = check_model_values(config_class, model, source)
    with config_errors(source):
        return config_class(**kwargs)
