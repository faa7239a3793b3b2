"""`multissl <command>`: every module in multissl/commands/ adds one sub-command (add_parser(subparsers))."""
from __future__ import annotations

import argparse
import os
import sys

from multissl import commands
from multissl._discover import import_submodules
from multissl.errors import TrainingDivergedError

# Errors that describe the user's input or environment: printed as their message alone.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, TypeError, OSError, TrainingDivergedError)


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
    """Entry point. Every error a user can cause ends in one line on stderr and a non-zero exit code
    (MULTISSL_DEBUG=1 shows the traceback); Ctrl-C / SIGTERM exit with 130 / 143."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:  # RunInterrupted says what was saved and how to resume
        if os.environ.get("MULTISSL_DEBUG"):
            raise
        print(f"multissl {args.command}: interrupted: {str(err) or 'stopped by Ctrl-C; nothing was written'}", file=sys.stderr)
        return int(getattr(err, "exit_code", 130))
    except Exception as err:  # noqa: BLE001 - one line for any failure; the type tells a bug from bad input
        if os.environ.get("MULTISSL_DEBUG"):
            raise
        print(f"multissl {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    """The error's message on one line; for errors not of a user-facing type, its type too (a bug to report)."""
    message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    if "Original Traceback" in message:  # re-raised from a DataLoader worker: keep the original error's own line
        message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
    message = " ".join(message.split()) or type(err).__name__
    if isinstance(err, USER_ERRORS):
        return message
    return f"{message} ({type(err).__name__}; set MULTISSL_DEBUG=1 for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
