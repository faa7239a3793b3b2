"""Zero-shot classification with a dual encoder: class names through prompt templates, ensembled (CLIP, Sec. 3.1.4)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from multissl.evaluation.dual_encoder import encode_images, encode_texts

# A small generic ensemble; pass task-specific templates for real use (CLIP used 80 for ImageNet).
DEFAULT_TEMPLATES = ("a photo of a {}.", "a picture of the {}.", "an image showing a {}.", "a drawing of a {}.")


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """The class names as a list; ValueError for an empty list, blank/non-string names or duplicates."""
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty; zero-shot classification needs at least one class name")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"class_names must be non-blank strings; got {bad[:3]}")
    counts = Counter(n.strip().lower() for n in names)
    dups = sorted({n for n in names if counts[n.strip().lower()] > 1})
    if dups:
        raise ValueError(f"class_names has duplicates (compared case-insensitively): {dups}; each class must be named once")
    return names


def check_templates(templates: Sequence[str]) -> list[str]:
    """Templates as a list; each must contain exactly one '{}' placeholder for the class name."""
    out = list(templates)
    if not out:
        raise ValueError("templates is empty; pass at least one, e.g. 'a photo of a {}.'")
    bad = [t for t in out if not isinstance(t, str) or t.count("{}") != 1]
    if bad:
        raise ValueError(f"every template needs exactly one '{{}}' for the class name; bad: {bad[:3]}")
    return out


@torch.no_grad()
def class_embeddings(model: Any, class_names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES,
                     batch_size: int = 256) -> torch.Tensor:
    """Prompt-ensembled class embeddings [C, P]: each class through all T templates, normalised, averaged, renormalised."""
    names, temps = check_class_names(class_names), check_templates(templates)
    prompts = [t.format(name) for name in names for t in temps]  # class-major [C*T]
    emb = encode_texts(model, prompts, batch_size=batch_size)  # [C*T, P], unit rows
    return F.normalize(emb.view(len(names), len(temps), -1).mean(dim=1), dim=-1)  # [C, P]


@dataclass
class ZeroShotResult:
    """logits [N, C] (scale * cosine), probs [N, C] (softmax), predictions [N]; accuracy {"top1", "top5"} when labels given."""

    logits: torch.Tensor
    probs: torch.Tensor
    predictions: torch.Tensor
    class_names: list[str]
    accuracy: dict[str, float] | None = None


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """{"top{k}": fraction of rows whose label is among the k highest logits}; logits [N, C], labels [N]; k > C skipped."""
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must be [N={logits.shape[0]}]; got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {logits.shape[1]}); got range [{labels.min()}, {labels.max()}]")
    valid = [k for k in ks if k <= logits.shape[1]]
    if not valid:
        return {}
    top = logits.topk(max(valid), dim=1).indices  # [N, kmax]
    hit = top == labels[:, None]  # [N, kmax]
    return {f"top{k}": float(hit[:, :k].any(dim=1).float().mean()) for k in valid}


@torch.no_grad()
def zero_shot_classify(model: Any, images: Sequence[Any] | torch.Tensor, class_names: Sequence[str],
                       templates: Sequence[str] = DEFAULT_TEMPLATES, labels: Sequence[int] | torch.Tensor | None = None,
                       ks: Sequence[int] = (1, 5), batch_size: int = 256) -> ZeroShotResult:
    """Classify N images (PIL / arrays / pixel_values [N, 3, S, S]) among C class names; top-k accuracy if labels [N]."""
    names = check_class_names(class_names)
    classes = class_embeddings(model, names, templates, batch_size)  # [C, P]
    image_emb = encode_images(model, images, batch_size)  # [N, P]
    scale = model.scale().detach().float().cpu() if hasattr(model, "scale") else torch.tensor(100.0)
    logits = scale * image_emb @ classes.T  # [N, C]
    result = ZeroShotResult(logits=logits, probs=logits.softmax(dim=1), predictions=logits.argmax(dim=1), class_names=names)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        result.accuracy = topk_accuracy(logits, labels, ks)
    return result
