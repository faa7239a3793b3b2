"""`multissl perplexity --model DIR --dataset NAME`: exp(mean token NLL) of a language model, printed as JSON.

The same arguments back `multissl eval perplexity` (eval.py calls add_perplexity_arguments / run).
"""
from __future__ import annotations

import argparse
import json


def add_perplexity_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by `multissl perplexity` and `multissl eval perplexity`."""
    p.add_argument("--model", required=True, help="a bert_mlm / gpt_lm folder (RUN/final) or a local HF causal-LM folder")
    p.add_argument("--dataset", default="python_docs", help="a built-in text dataset or a local path (default python_docs)")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch (default 32)")
    p.add_argument("--block-size", type=int, default=None, help="tokens per block (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MLM masks (default 0)")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `perplexity` sub-command."""
    p = subparsers.add_parser("perplexity", help="perplexity of a trained masked / causal LM on a text dataset")
    add_perplexity_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the result as JSON."""
    from multissl.evaluation.perplexity import evaluate_perplexity

    result = evaluate_perplexity(args.model, args.dataset, split=args.split, batch_size=args.batch_size,
                                 block_size=args.block_size, device=args.device, progress=not args.no_progress,
                                 seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0
