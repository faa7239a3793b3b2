"""`multissl eval {knn,linear-probe,perplexity} --model DIR --dataset NAME`: evaluation printed as JSON."""
from __future__ import annotations

import argparse
import json


def _key_value(text: str) -> tuple[str, str]:
    """Parse KEY=VALUE for --dataset-arg."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `eval` sub-command with one action per protocol."""
    p = subparsers.add_parser("eval", help="k-NN / linear-probe accuracy of frozen features, or LM perplexity")
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for name, help_text in [("knn", "weighted k-NN on cosine similarity (Wu et al. 2018)"),
                            ("linear-probe", "logistic regression on standardised frozen features")]:
        q = protocols.add_parser(name, help=help_text)
        q.add_argument("--model", required=True, help="a saved model folder (e.g. RUN_DIR/final)")
        q.add_argument("--dataset", required=True, help="a built-in dataset name or a local path")
        q.add_argument("--dataset-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="extra loader argument (repeatable), e.g. path=DIR for a generated dataset")
        q.add_argument("--split-train", default="train", help="split the classifier is fitted on (default train)")
        q.add_argument("--split-test", default="test", help="split that is scored (default test)")
        q.add_argument("--target", default="label", help="label column (default label)")
        q.add_argument("--batch-size", type=int, default=256)
        q.add_argument("--device", default=None, help="e.g. cpu or cuda (default: where the model loads)")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "knn":
            q.add_argument("--k", type=int, default=200, help="neighbours (clipped to the train size; default 200)")
            q.add_argument("--temperature", type=float, default=0.1, help="vote weight exp(sim / T) (default 0.1)")
        else:
            q.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
            q.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations (default 1000)")
        q.set_defaults(func=run)
    from multissl.commands.perplexity import add_perplexity_arguments

    # perplexity has its own arguments and runner (same as `multissl perplexity`).
    add_perplexity_arguments(protocols.add_parser("perplexity", help="exp(mean token NLL) of a masked / causal LM"))


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the result dict as JSON."""
    from multissl.evaluation import evaluate_model

    extra = {"k": args.k, "temperature": args.temperature} if args.protocol == "knn" else {"C": args.C, "max_iter": args.max_iter}
    result = evaluate_model(
        args.model, args.dataset, protocol=args.protocol, label_column=args.target,
        split_train=args.split_train, split_test=args.split_test, batch_size=args.batch_size,
        device=args.device, progress=not args.no_progress, dataset_args=dict(args.dataset_arg), **extra,
    )
    print(json.dumps(result, indent=2))
    return 0
