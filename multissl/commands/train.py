"""`multissl train RECIPE --output-dir DIR [--resume] [--set key=value ...] [--report-to T] [--accelerate-config F]`."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

TRACKERS = ("tensorboard", "trackio")  # = multissl.training.config.TRACKERS (kept here: add_parser imports nothing heavy)


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
    p.add_argument("--report-to", dest="report_to", nargs="+", choices=TRACKERS, default=None, metavar="TRACKER",
                   help="also log metrics.jsonl's scalars to these trackers (offline): tensorboard (into "
                        "<output-dir>/tensorboard/), trackio; same as --set train.report_to=[...]")
    p.add_argument("--accelerate-config", metavar="FILE", default=None,
                   help="run under `accelerate launch --config_file FILE` (e.g. FSDP, or N GPUs; docs/performance.md)")
    p.set_defaults(func=run)


def report_to_override(report_to: list[str] | None) -> list[str]:
    """--report-to as a recipe override (train.report_to=[...]); nothing when the flag is absent."""
    return [f"train.report_to={json.dumps(list(report_to))}"] if report_to else []


def launch_command(args: argparse.Namespace) -> list[str]:
    """The `accelerate launch --config_file FILE -m multissl.cli train ...` argv that --accelerate-config runs."""
    cmd = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
           str(args.accelerate_config), "-m", "multissl.cli", "train", str(args.recipe), "--output-dir", str(args.output_dir)]
    cmd += ["--resume"] if args.resume else ["--overwrite"] if args.overwrite else []
    cmd += [f"--set={item}" for item in args.overrides]  # one flag each: a value may itself hold spaces
    cmd += ["--report-to", *args.report_to] if args.report_to else []
    return cmd


def run(args: argparse.Namespace) -> int:
    """Load the recipe, train, print the end-of-run evaluation as JSON (or relaunch under `accelerate launch`)."""
    if args.accelerate_config:
        return _relaunch(args)
    from multissl.training import load_recipe, train

    recipe = load_recipe(args.recipe, args.overrides + report_to_override(args.report_to))
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


def _relaunch(args: argparse.Namespace) -> int:
    """Run this same command under Accelerate's launcher with the config file; its exit code is ours."""
    if not Path(args.accelerate_config).is_file():
        raise FileNotFoundError(f"--accelerate-config {str(args.accelerate_config)!r} does not exist (write one with "
                                "`accelerate config --config_file FILE`, or see docs/performance.md)")
    if "LOCAL_RANK" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ:
        raise ValueError("--accelerate-config: this process already runs under `accelerate launch`; drop the flag")
    if not Path(args.recipe).is_file():  # fail here, not once per launched process
        raise FileNotFoundError(f"recipe file {str(args.recipe)!r} does not exist")
    return subprocess.run(launch_command(args), check=False).returncode
