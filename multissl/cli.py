"""`multissl <command>`: every module in multissl/commands/ adds one sub-command (add_parser(subparsers))."""
from __future__ import annotations

import argparse
import os
import sys

from multissl import commands
from multissl._discover import import_submodules
from multissl.errors import TrainingDivergedError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered sub-command."""
    parser = argparse.ArgumentParser(
        prog="multissl",
        description="Self-supervised learning on text, audio, images and image-text pairs (Hugging Face + Accelerate).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in import_submodules(commands):
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one clear line (set MULTISSL_DEBUG=1 for the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, TypeError, OSError, TrainingDivergedError) as err:
        if os.environ.get("MULTISSL_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"multissl {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
