"""`multissl export --model RUN/final --out DIR [--tower vision|text]`: an encoder alone, as a plain Hugging Face folder."""
from __future__ import annotations

import argparse

TOWERS = ("vision", "text")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `export` sub-command."""
    p = subparsers.add_parser("export", help="export a trained model's encoder as a plain transformers folder")
    p.add_argument("--model", required=True, help="a multissl model folder (e.g. runs/simclr/final)")
    p.add_argument("--out", required=True, help="destination folder (written atomically)")
    p.add_argument("--tower", choices=TOWERS, default=None,
                   help="CLIP models only: which tower to export (vision: + image processor, the default; "
                        "text: + tokenizer)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the multissl model and save its encoder with save_encoder (or one CLIP tower with save_tower).

    The export's model card takes the run's recipe.yaml and eval.json from the model folder's parent (RUN/final ->
    RUN/) when they are there.
    """
    from multissl.models.export import save_encoder
    from multissl.models.loading import load_model
    from multissl.models.model_card import load_context

    model = load_model(args.model)
    context = load_context(args.model)
    if args.tower is None:
        out = save_encoder(model, args.out, context)
        what = "encoder"
    else:
        from multissl.models.clip import ClipModel, save_tower

        # Only a dual encoder has two towers; for any other method --tower would silently mean nothing.
        if not isinstance(model, ClipModel):
            raise ValueError(f"--tower applies to CLIP models only; {args.model} is a "
                             f"{getattr(model.config, 'model_type', type(model).__name__)!r} model "
                             f"(drop --tower to export its encoder)")
        out = save_tower(model, args.out, args.tower, context)
        what = f"{args.tower} tower"
    print(f"exported {what} to {out} (a plain transformers folder with its processor/tokenizer and README.md; "
          "docs/exports.md lists the loaders)")
    return 0
