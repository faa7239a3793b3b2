"""Every `python benchmarks/X.py ARGS` command shown in README.md, docs/ and the recipes' comments parses with that
script's own argparse parser: a renamed or removed flag fails here instead of in a reader's terminal.

The script runs as __main__ with ArgumentParser.parse_args replaced by "parse, then stop": nothing past the parser
runs (no training, no files), and a command the parser rejects exits 2 as it would for the reader.
"""
import argparse
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "recipes").glob("*.yaml"))]
COMMAND = re.compile(r"python (?:-m )?(benchmarks/\w+\.py)((?: +[^\s`|#]+)*)")


class _Parsed(Exception):
    """Raised by the patched parse_args once the parser has accepted the command line."""


def _commands() -> list[tuple[str, str, list[str]]]:
    """(source name, script, argv) for each documented command that passes arguments (placeholders skipped)."""
    found = set()
    for source in SOURCES:
        text = re.sub(r"\\\n\s*", " ", source.read_text())  # join shell lines continued with a backslash
        for script, args in COMMAND.findall(text):
            if args.strip() and not any(mark in args for mark in ("...", "<", "[", "$")):
                found.add((source.name, script, args.strip()))
    return sorted((name, script, shlex.split(args)) for name, script, args in found)


COMMANDS = _commands()


def test_the_docs_show_benchmark_commands_with_arguments():
    assert len(COMMANDS) >= 10


def _parse_only(self, args=None, namespace=None):
    """ArgumentParser.parse_args that stops the script right after a successful parse."""
    _ORIGINAL(self, args, namespace)  # exits 2 with the parser's message on a bad command line
    raise _Parsed


_ORIGINAL = argparse.ArgumentParser.parse_args


@pytest.mark.parametrize("source,script,argv", COMMANDS, ids=[f"{s}:{c} {' '.join(a)}"[:90] for s, c, a in COMMANDS])
def test_documented_benchmark_command_parses(source, script, argv, monkeypatch, capsys):
    assert (ROOT / script).is_file(), f"{source}: names a missing script {script}"
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _parse_only)
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), *argv])
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as exit_:
        err = capsys.readouterr().err.strip().splitlines()
        if exit_.code == 0:  # --help
            return
        pytest.fail(f"{source}: `python {script} {' '.join(argv)}` does not parse: {err[-1] if err else exit_.code}")
    pytest.fail(f"{source}: `python {script} {' '.join(argv)}` never reached an argument parser")


def test_the_harness_rejects_an_unknown_flag(monkeypatch, capsys):
    """The check above can fail: a flag the script does not define exits 2."""
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _parse_only)
    monkeypatch.setattr(sys, "argv", ["bench_nt_xent.py", "--no-such-flag"])
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "benchmarks" / "bench_nt_xent.py"), run_name="__main__")
    assert exit_.value.code == 2 and "--no-such-flag" in capsys.readouterr().err
