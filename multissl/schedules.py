"""Schedules as pure functions of the step: learning rate, EMA momentum, temperatures."""
from __future__ import annotations

import math


def warmup_cosine(step: int, max_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """LR multiplier at `step`: linear warm-up from 0 to 1, then cosine decay to `min_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_ramp(step: int, max_steps: int, start: float, end: float) -> float:
    """Cosine interpolation from `start` (step 0) to `end` (last step); e.g. BYOL momentum 0.996 -> 1."""
    progress = min(1.0, step / max(1, max_steps - 1))
    return end - (end - start) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_warmup_value(step: int, warmup_steps: int, start: float, end: float) -> float:
    """Linear ramp from `start` to `end` over `warmup_steps`, then constant (DINO teacher temperature)."""
    if step >= warmup_steps:
        return end
    return start + (end - start) * step / max(1, warmup_steps)
