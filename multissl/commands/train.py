"""`multissl train RECIPE --output-dir DIR [--resume] [--set key=value ...]`."""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `train` sub-command."""
    p = subparsers.add_parser("train", help="train a method from a YAML recipe (works under `accelerate launch`)")
    p.add_argument("recipe", help="path to a recipe YAML (see recipes/)")
    p.add_argument("--output-dir", required=True, help="run folder: checkpoints/, metrics.jsonl, loss_curve.png, final/")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    mode.add_argument("--overwrite", action="store_true",
                      help="--output-dir holds a run: move it aside to <dir>.replaced-<time> (never deleted), then train")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override recipe values, e.g. --set train.max_steps=50 model.loss_temperature=0.2 (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the recipe, train, print the end-of-run evaluation as JSON."""
    from multissl.training import load_recipe, train

    recipe = load_recipe(args.recipe, args.overrides)
    result = train(recipe, args.output_dir, resume=args.resume, overwrite=args.overwrite)
    if result.moved_aside is not None:
        print(f"moved the previous run to {result.moved_aside}")
    if result.final_dir is not None:
        print(f"saved model to {result.final_dir}")
    for protocol, metrics in result.eval.items():
        print(json.dumps(metrics))
        if "accuracy" in metrics:
            print(f"{protocol} accuracy: {metrics['accuracy']:.4f}")
    return 0
