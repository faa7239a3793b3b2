"""`multissl eval {knn,linear-probe,perplexity} --model DIR --dataset NAME`: evaluation printed as JSON."""
from __future__ import annotations

import argparse
import json

# Torch-free: the defaults table is plain data, so `multissl eval knn --help` stays cheap.
from multissl.evaluation.defaults import C_AUTO, PROTOCOL_DEFAULTS, REPORT_SPLIT, TUNE_SPLIT


def _key_value(text: str) -> tuple[str, str]:
    """Parse KEY=VALUE for --dataset-arg."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _c_value(text: str) -> float | str:
    """Parse --C: a number > 0, or 'auto'."""
    if text.strip().lower() == C_AUTO:
        return C_AUTO
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0 or {C_AUTO!r}, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `eval` sub-command with one action per protocol."""
    p = subparsers.add_parser("eval", help="k-NN / linear-probe accuracy of frozen features, or LM perplexity")
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    knn, probe = PROTOCOL_DEFAULTS["knn"], PROTOCOL_DEFAULTS["linear-probe"]
    for name, help_text in [("knn", "weighted k-NN on cosine similarity (Wu et al. 2018)"),
                            ("linear-probe", "logistic regression on standardised frozen features")]:
        q = protocols.add_parser(name, help=help_text)
        q.add_argument("--model", required=True, help="a saved model folder (e.g. RUN_DIR/final)")
        q.add_argument("--dataset", required=True, help="a built-in dataset name or a local path")
        q.add_argument("--dataset-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="extra loader argument (repeatable), e.g. path=DIR for a generated dataset")
        q.add_argument("--split", default=REPORT_SPLIT, metavar="NAME",
                       help=f"split that is scored (default {REPORT_SPLIT}, the reporting split: read it once per "
                            f"reported number; compare settings with --split {TUNE_SPLIT})")
        q.add_argument("--split-test", dest="split", help=argparse.SUPPRESS)  # the old name of --split
        q.add_argument("--split-train", default="train", help="split the classifier is fitted on (default train)")
        q.add_argument("--target", default="label", help="label column (default label)")
        q.add_argument("--batch-size", type=int, default=256)
        q.add_argument("--device", default=None, help="e.g. cpu or cuda (default: where the model loads)")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "knn":
            q.add_argument("--k", type=int, default=knn["k"],
                           help=f"neighbours (clipped to the train size; default {knn['k']}, as in the recipes)")
            q.add_argument("--temperature", type=float, default=knn["temperature"],
                           help=f"vote weight exp(sim / T) (default {knn['temperature']})")
        else:
            q.add_argument("--C", type=_c_value, default=probe["C"],
                           help=f"inverse L2 strength of the logistic regression (default {probe['C']}), or "
                                f"'{C_AUTO}': chosen on the {TUNE_SPLIT} split from a log grid, then --split is read once")
            q.add_argument("--max-iter", type=int, default=probe["max_iter"],
                           help=f"L-BFGS iterations (default {probe['max_iter']})")
        q.set_defaults(func=run)
    from multissl.commands.perplexity import add_perplexity_arguments

    # perplexity has its own arguments and runner (same as `multissl perplexity`).
    add_perplexity_arguments(protocols.add_parser("perplexity", help="exp(mean token NLL) of a masked / causal LM"))


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the result dict (protocol, settings, fitted and scored splits, accuracy) as JSON."""
    from multissl.evaluation import evaluate_model

    extra = {"k": args.k, "temperature": args.temperature} if args.protocol == "knn" else {"C": args.C, "max_iter": args.max_iter}
    result = evaluate_model(
        args.model, args.dataset, protocol=args.protocol, label_column=args.target,
        split_train=args.split_train, split=args.split, batch_size=args.batch_size,
        device=args.device, progress=not args.no_progress, dataset_args=dict(args.dataset_arg), **extra,
    )
    print(json.dumps(result, indent=2))
    return 0
