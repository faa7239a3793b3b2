"""The named decoding strategies (`multissl generate --strategy`): plain data, so the CLI can list them without torch."""
from __future__ import annotations

from typing import Any

# Named strategies (CLI --strategy) -> generate() keyword arguments; defaults follow the lecture advice.
STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False, "num_beams": 1},
    "sample": {"do_sample": True, "num_beams": 1, "top_k": 0, "top_p": 1.0},
    "top-k": {"do_sample": True, "num_beams": 1, "top_k": 40, "top_p": 1.0},
    "top-p": {"do_sample": True, "num_beams": 1, "top_k": 0, "top_p": 0.9},
    "beam": {"do_sample": False, "num_beams": 4},
}


def check_decoding_args(strategy: str, **values: Any) -> None:
    """Range checks of every decoding argument given (None = not given), before any model is loaded.

    The values are checked whatever the strategy: `--top-p 1.5` is an error with beam search too,
    rather than silently unused. Messages use the keyword names generate() takes.
    """
    import math

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decoding strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    rules = {
        "max_new_tokens": (lambda v: v >= 1, "must be >= 1"),
        "num_beams": (lambda v: v >= 1, "must be >= 1"),
        "num_return_sequences": (lambda v: v >= 1, "must be >= 1"),
        "min_tokens_to_keep": (lambda v: v >= 1, "must be >= 1"),
        "no_repeat_ngram_size": (lambda v: v >= 0, "must be >= 0 (0 disables it)"),
        "top_k": (lambda v: v >= 0, "must be >= 0 (0 disables it)"),
        "top_p": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
        "temperature": (lambda v: math.isfinite(v) and v > 0, "must be > 0 (use --strategy greedy for no sampling)"),
        "length_penalty": (lambda v: math.isfinite(v), "must be a finite number"),
    }
    for key, value in values.items():
        if value is not None and key in rules and not rules[key][0](value):
            raise ValueError(f"{key} {rules[key][1]}; got {value}")
