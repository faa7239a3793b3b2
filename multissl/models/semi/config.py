"""The fields every semi-supervised image method shares, validated once: backbone, classes, labeled subset, μ, λ_u.

An algorithm's config subclasses SemiSupervisedConfig, sets its own `model_type` and adds only its knobs; the data
hook, the classifier, the ramp-up of λ_u and the entropy term read these shared fields (base.py).
"""
from __future__ import annotations

from dataclasses import fields
from numbers import Integral, Real

from multissl.modalities.image.ssl_views import SSLViewAugment
from multissl.models.base import MethodConfig
from multissl.models.common.vision import set_backbone_fields
from multissl.models.semi.rampup import RAMPUPS

AUGMENT_KEYS = tuple(f.name for f in fields(SSLViewAugment) if f.name != "image_size")
LABELED_VIEWS = ("weak", "strong")  # the SSLViewAugment policy of the labeled rows' one view


def whole(name: str, value: object, low: int) -> int:
    """value as an int >= low, or one clear ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


def number(name: str, value: object, low: float, high: float, *, high_open: bool = False) -> float:
    """value as a float in [low, high] ([low, high) with high_open), or one clear ValueError naming `name`."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and low <= float(value) and (
        float(value) < high if high_open else float(value) <= high)
    if not ok:
        raise ValueError(f"{name} must be a number in [{low}, {high}{')' if high_open else ']'}; got {value!r}")
    return float(value)


class SemiSupervisedConfig(MethodConfig):
    """Backbone, image size, classes, the labeled subset (labels_per_class | label_fraction), μ, λ_u and its ramp-up.

    num_classes and one of labels_per_class / label_fraction are required to build a model (None is allowed here only
    because transformers builds a default config). lambda_u = 0 is the supervised-only baseline on exactly the same
    labeled batches (no unlabeled stream is drawn); with label_fraction = 1 it is the all-labels bound. rampup_steps: λ_u
    is multiplied by w(t), t = step / rampup_steps (0: no ramp-up), with rampup "sigmoid" (Laine & Aila's
    exp(-5 (1 - t)^2), the default) or "linear" (min(1, t), MixMatch's); rampup.py. entropy_weight: weight of the
    entropy-minimisation term on the unlabeled predictions, a term any algorithm can add (0: off). labeled_view: the
    view of each labeled row, "weak" (flip and shift, the default) or "strong" (+ RandAugment and Cutout, as
    ReMixMatch's paper). augment: SSLViewAugment's knobs (weak view = flip and shift; strong view adds RandAugment and
    Cutout).
    """

    model_type = "multissl_semi_supervised"

    def __init__(self, backbone_config: dict | None = None, backbone_path: str | None = None, image_size: int = 32,
                 num_classes: int | None = None, label_column: str = "label", labels_per_class: int | None = None,
                 label_fraction: float | None = None, label_seed: int | None = None, mu: int = 7,
                 lambda_u: float = 1.0, rampup_steps: int = 0, rampup: str = "sigmoid", entropy_weight: float = 0.0,
                 labeled_view: str = "weak", augment: dict | None = None, **kwargs):
        set_backbone_fields(self, backbone_config, backbone_path, image_size)
        if num_classes is not None:
            num_classes = whole("num_classes (the number of classes in the label column)", num_classes, 2)
        if not isinstance(label_column, str) or not label_column:
            raise ValueError(f"label_column must be a non-empty column name; got {label_column!r}")
        if labels_per_class is not None and label_fraction is not None:
            raise ValueError(f"give exactly one of labels_per_class or label_fraction; got labels_per_class="
                             f"{labels_per_class!r} and label_fraction={label_fraction!r}")
        if labels_per_class is not None:
            labels_per_class = whole("labels_per_class", labels_per_class, 1)
        if label_fraction is not None:
            # 1.0 with lambda_u = 0 is the all-labels bound with this very network, views and budget
            label_fraction = number("label_fraction (the fraction of each class that is labeled)", label_fraction,
                                    0.0, 1.0)
            if label_fraction == 0.0:
                raise ValueError("label_fraction must be > 0 (the fraction of each class that is labeled); got 0")
        if label_seed is not None:
            label_seed = whole("label_seed", label_seed, 0)
        augment = dict(augment or {})
        unknown = sorted(set(augment) - set(AUGMENT_KEYS))
        if unknown:
            raise ValueError(f"augment: unknown key(s) {unknown}; allowed: {list(AUGMENT_KEYS)}")
        self.num_classes, self.label_column = num_classes, label_column
        self.labels_per_class, self.label_fraction, self.label_seed = labels_per_class, label_fraction, label_seed
        self.mu = whole("mu (unlabeled rows per labeled row)", mu, 1)
        self.lambda_u = number("lambda_u (0: supervised only)", lambda_u, 0.0, float("inf"), high_open=True)
        self.rampup_steps = whole("rampup_steps", rampup_steps, 0)
        if not isinstance(rampup, str) or rampup not in RAMPUPS:
            raise ValueError(f"rampup must be one of {list(RAMPUPS)} (the shape of λ_u's ramp-up); got {rampup!r}")
        self.rampup = rampup
        self.entropy_weight = number("entropy_weight", entropy_weight, 0.0, float("inf"), high_open=True)
        if not isinstance(labeled_view, str) or labeled_view not in LABELED_VIEWS:
            raise ValueError(f"labeled_view must be one of {list(LABELED_VIEWS)} (the augmentation of the labeled rows); "
                             f"got {labeled_view!r}")
        self.labeled_view = labeled_view
        self.augment = augment
        super().__init__(**kwargs)
