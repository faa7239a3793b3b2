"""`multissl export --model RUN/final --out DIR`: the encoder alone, as a plain Hugging Face folder."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `export` sub-command."""
    p = subparsers.add_parser("export", help="export a trained model's encoder as a plain transformers folder")
    p.add_argument("--model", required=True, help="a multissl model folder (e.g. runs/simclr/final)")
    p.add_argument("--out", required=True, help="destination folder (written atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the multissl model and save its encoder with save_encoder."""
    from multissl.models.export import save_encoder
    from multissl.models.loading import load_model

    out = save_encoder(load_model(args.model), args.out)
    print(f"exported encoder to {out} (load it with transformers.AutoModel.from_pretrained)")
    return 0
