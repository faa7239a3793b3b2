"""Class-id checks shared by the methods that train on labels (supervised, fixmatch, ...)."""
from __future__ import annotations

import torch


def check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
    """Raise one clear ValueError unless `labels` is an integer tensor [B] of class ids in [0, num_classes)."""
    if labels.dim() != 1 or labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{where}: labels must be integer class ids [B]; got dtype {labels.dtype}, shape {tuple(labels.shape)}")
    bad = (labels < 0) | (labels >= num_classes)  # [B]
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(f"{where}: label {value} is outside [0, num_classes = {num_classes}); set model.num_classes to the "
                         f"number of classes in the data (labels must be ids 0..num_classes-1)")
