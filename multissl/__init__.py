"""multissl: self-supervised learning on text, audio, images and image-text pairs.

Importing the package registers every method with AutoConfig/AutoModel, so
`transformers.AutoModel.from_pretrained(run_dir / "final")` rebuilds multissl models.
"""
__version__ = "0.1.0"

from multissl import models as _models  # noqa: F401,E402  (registers methods)
from multissl.registry import DATASETS, METHODS, get_method, register_dataset, register_method  # noqa: E402

__all__ = ["DATASETS", "METHODS", "get_method", "register_dataset", "register_method", "__version__"]
