"""Export a method's encoder as a plain Hugging Face folder that loads without multissl."""
from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel

from multissl.atomic import atomic_dir


def save_encoder(model: PreTrainedModel, out_dir: str | Path) -> Path:
    """Write model.encoder_for_export() (+ tokenizer/processor extras the model provides) to out_dir, atomically."""
    if not hasattr(model, "encoder_for_export"):
        raise TypeError(f"{type(model).__name__} has no encoder_for_export(); it is not a multissl method model")
    encoder = model.encoder_for_export()

    def write(tmp: Path) -> None:
        encoder.save_pretrained(tmp, safe_serialization=True)
        extras = getattr(model, "save_export_extras", None)
        if extras is not None:
            extras(tmp)  # e.g. the tokenizer a text encoder needs

    return atomic_dir(out_dir, write)
