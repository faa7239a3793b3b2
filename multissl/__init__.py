"""multissl: self-supervised learning on text, audio, images and image-text pairs.

`import multissl` is cheap (no torch): the method and dataset tables are plain data, and each method's
module is imported when it is used. `multissl.load(path)` loads a saved run folder;
`multissl.register_auto_classes()` lets transformers' `AutoModel.from_pretrained(run/final)` rebuild
every multissl model type.
"""
from __future__ import annotations

from typing import Any

from multissl.api import embed, train  # torch-free module: its functions import the loop and models when called
from multissl.registry import DATASETS, METHODS, get_method, register_auto_classes, register_dataset, register_method

__version__ = "0.1.0"

__all__ = ["DATASETS", "METHODS", "embed", "get_method", "load", "register_auto_classes", "register_dataset",
           "register_method", "train", "__version__"]


def load(path: str) -> Any:
    """A saved multissl model folder (RUN/final or a checkpoint's model) as its MethodModel, in eval mode."""
    from multissl.models.loading import load_model

    return load_model(path).eval()
