"""`multissl finetune --model DIR --dataset NAME (--labels-per-class N | --label-fraction F) --output-dir DIR`:
fine-tune an encoder on a few labels vs the same network from scratch on the same labels, printed as JSON."""
from __future__ import annotations

import argparse
import json

# Torch-free: `multissl finetune --help` imports nothing heavy (the logic is multissl/training/finetune.py).
from multissl.evaluation.defaults import REPORT_SPLIT, TUNE_SPLIT

# The budget both arms get (= multissl.training.finetune.finetune's defaults; a test keeps them in step). The
# learning rate is glyphs' validation pick for 1% of the labels (10% preferred 2e-2; docs/results/finetune.md).
DEFAULTS = {"max_steps": 200, "batch_size": 64, "learning_rate": 2e-3, "weight_decay": 1e-4, "warmup_steps": 20,
            "seed": 0, "label_seed": 0, "save_every": 100}


def _key_value(text: str) -> tuple[str, str]:
    """Parse KEY=VALUE for --dataset-arg."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `finetune` sub-command."""
    p = subparsers.add_parser("finetune", help="fine-tune an encoder on 1%%/10%% of the labels vs from scratch (SimCLR's "
                                               "semi-supervised protocol)")
    p.add_argument("--model", required=True,
                   help="an encoder folder (multissl export), a run folder, or RUN/final: a vision backbone")
    p.add_argument("--dataset", required=True, help="a built-in dataset name or a local path with a label column")
    p.add_argument("--output-dir", required=True,
                   help="folder for encoder/, pretrained/ and scratch/ (two run folders) and finetune.json")
    p.add_argument("--labels-per-class", type=int, default=None, metavar="N", help="labeled rows of each class")
    p.add_argument("--label-fraction", type=float, default=None, metavar="F",
                   help="fraction of each class that is labeled, e.g. 0.01 or 0.1 (give this or --labels-per-class)")
    p.add_argument("--label-seed", type=int, default=DEFAULTS["label_seed"],
                   help=f"seed of the class-balanced labeled subset (default {DEFAULTS['label_seed']})")
    p.add_argument("--split", default=TUNE_SPLIT, metavar="NAME",
                   help=f"split both classifiers are scored on (default {TUNE_SPLIT}, for choosing settings; "
                        f"--split {REPORT_SPLIT} once for a reported number)")
    p.add_argument("--target", default="label", help="label column (default label)")
    p.add_argument("--dataset-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="extra loader argument (repeatable), e.g. path=DIR for a generated dataset")
    p.add_argument("--steps", type=int, default=DEFAULTS["max_steps"],
                   help=f"optimizer steps of each arm (default {DEFAULTS['max_steps']})")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help=f"labeled rows per step, at most the labeled set (default {DEFAULTS['batch_size']})")
    p.add_argument("--lr", type=float, default=DEFAULTS["learning_rate"],
                   help=f"AdamW peak learning rate, cosine decay (default {DEFAULTS['learning_rate']})")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"],
                   help=f"AdamW weight decay (default {DEFAULTS['weight_decay']})")
    p.add_argument("--warmup-steps", type=int, default=DEFAULTS["warmup_steps"],
                   help=f"linear warm-up steps (default {DEFAULTS['warmup_steps']})")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                   help=f"training seed of both arms: head init, batches, crops (default {DEFAULTS['seed']})")
    p.add_argument("--image-size", type=int, default=None,
                   help="input size (default: the encoder's, from its config or image processor)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers that augment ahead (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted fine-tuning in --output-dir (finished arms are kept)")
    p.add_argument("--scratch-from", default=None, metavar="DIR",
                   help="score the scratch arm of this earlier fine-tuning (same architecture, labels, budget and "
                        "seeds: checked) instead of training an identical one, e.g. when comparing encoders")
    p.add_argument("--device", default=None, help="device for scoring, e.g. cpu or cuda (training: Accelerate's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fine-tune and train from scratch, then print the result dict (settings, both accuracies, gain) as JSON."""
    from multissl.training.finetune import finetune

    result = finetune(
        args.model, args.dataset, args.output_dir, labels_per_class=args.labels_per_class,
        label_fraction=args.label_fraction, label_seed=args.label_seed, split=args.split, label_column=args.target,
        dataset_args=dict(args.dataset_arg), max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, seed=args.seed, image_size=args.image_size,
        num_workers=args.num_workers, save_every=DEFAULTS["save_every"], resume=args.resume,
        scratch_from=args.scratch_from,
        progress=not args.no_progress, device=args.device,
    )
    print(json.dumps(result, indent=2))
    return 0
