"""`multissl list`: registered methods and built-in datasets, one line each."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `list` sub-command."""
    p = subparsers.add_parser("list", help="list methods and built-in datasets")
    p.add_argument("what", nargs="?", choices=["all", "methods", "datasets"], default="all")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per method / dataset from the registry's tables (imports no method and no torch)."""
    from multissl.registry import DATASETS, METHODS

    if args.what in ("all", "methods"):
        print("methods:")
        for name, spec in sorted(METHODS.items()):
            print(f"  {name:<16} [{spec.modality}] {spec.description}")
    if args.what in ("all", "datasets"):
        print("datasets:")
        for name, spec in sorted(DATASETS.items()):
            print(f"  {name:<16} [{spec.modality}] {spec.description}")
    return 0
