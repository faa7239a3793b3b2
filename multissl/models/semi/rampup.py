"""The ramp-ups w(t) of λ_u the family's base can apply (config `rampup`): w multiplies the unsupervised loss.

    sigmoid: w(t) = exp(-5 (1 - t)^2)   (Laine & Aila; Π-model, Temporal Ensembling, Mean Teacher)
    linear:  w(t) = t                   (MixMatch, ReMixMatch: λ_u rises linearly over the first steps)
    t = clip(step / rampup_steps, 0, 1); w = 1 when rampup_steps = 0 (no ramp-up)

sigmoid is the tested objective multissl.objectives.consistency.sigmoid_rampup; linear is written here, next to it in
this table, because the objectives package belongs to the objectives' owners.
"""
from __future__ import annotations

from collections.abc import Callable

from multissl.objectives.consistency import sigmoid_rampup


def linear_rampup(step: float, rampup_steps: float) -> float:
    """min(1, step / rampup_steps), clipped at 0 below; 1.0 when rampup_steps == 0 (no ramp-up)."""
    if rampup_steps < 0:
        raise ValueError(f"rampup_steps must be >= 0; got {rampup_steps}")
    if rampup_steps == 0:
        return 1.0
    return min(max(float(step) / float(rampup_steps), 0.0), 1.0)


RAMPUPS: dict[str, Callable[[float, float], float]] = {"sigmoid": sigmoid_rampup, "linear": linear_rampup}
