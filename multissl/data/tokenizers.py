"""`trained:<dataset>/<unigram|bpe>/<vocab size>` tokenizer specs: trained on a dataset on first use, then cached.

Lets recipes and tiny test configs name a tokenizer that does not exist yet. It lives in the data
layer because training one reads a dataset; plain folders and `pkg:` paths need nothing from here.
"""
from __future__ import annotations

from pathlib import Path

from multissl.modalities.text.tokenizer import MODEL_TYPES, get_tokenizer, train_tokenizer
from multissl.paths import cache_dir

TRAINED_PREFIX = "trained:"


def trained_tokenizer_dir(spec: str) -> Path:
    """`trained:<built-in dataset>/<unigram|bpe>/<vocab size>` -> a tokenizer folder under $MULTISSL_CACHE/tokenizers/."""
    from multissl.data import load_dataset_by_name

    parts = spec[len(TRAINED_PREFIX):].split("/")
    if len(parts) != 3 or parts[1] not in MODEL_TYPES or not parts[2].isdigit():
        raise ValueError(f"tokenizer {spec!r} must look like 'trained:<dataset>/<unigram|bpe>/<vocab size>', "
                         "e.g. 'trained:python_docs/unigram/8000'")
    name, model_type, vocab = parts[0], parts[1], int(parts[2])
    out = cache_dir() / "tokenizers" / f"{name}-{model_type}-{vocab}-v2"  # v2: python_docs lost its validation rows from train
    if not (out / "tokenizer.json").is_file():
        texts = load_dataset_by_name(name, split="train")["text"]
        train_tokenizer(texts, out, vocab, model_type)
    return out


def resolve_tokenizer(spec: str) -> str:
    """A spec that get_tokenizer understands: `trained:` specs become their (trained, cached) folder; others pass through."""
    return str(trained_tokenizer_dir(spec)) if spec.startswith(TRAINED_PREFIX) else spec


def load_tokenizer_spec(spec: str):
    """A transformers tokenizer from a folder, a `pkg:` path or a `trained:` spec (cached per process)."""
    return get_tokenizer(resolve_tokenizer(spec))
