"""Loading saved multissl model folders with clear errors for missing or corrupt files."""
from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoModel, PreTrainedModel

from multissl.registry import method_for_model_type


def load_model(model_dir: str | Path) -> PreTrainedModel:
    """AutoModel.from_pretrained on a local multissl folder, checking config.json and the safetensors weights first."""
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {str(path)!r} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: no config.json; is this a folder written by save_pretrained / multissl train?")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file}: corrupt JSON ({err})") from err
    spec = method_for_model_type(model_type)
    if spec is not None:
        spec.model_class  # noqa: B018  (imports just this method, which registers its type with AutoModel)
    weights = list(path.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{path}: no *.safetensors weights (multissl never loads pickled .bin checkpoints)")
    for w in weights:
        _check_safetensors(w)
    try:
        return AutoModel.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: could not load model of type {model_type!r}: {err}") from err


def _check_safetensors(file: Path) -> None:
    """Fail early with the file name if a safetensors file is truncated or not safetensors at all."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            f.keys()
    except Exception as err:  # noqa: BLE001 - safetensors raises several error types
        raise ValueError(f"{file}: corrupt or truncated safetensors file ({err})") from err
