"""Every `multissl ...` command shown in README.md and docs/*.md parses with the real CLI, and every
recipe / benchmark file a doc names exists: docs that drift from the code fail here."""
import re
import shlex
from pathlib import Path

import pytest

from multissl.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    """(doc name, command line) for each line in a fenced code block or backticks that starts with `multissl `."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        lines, in_block = [], False
        for ln in text.splitlines():  # lines inside ``` fences (any language)
            if ln.lstrip().startswith("```"):
                in_block = not in_block
            elif in_block and lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + " " + ln.strip()  # a shell line continued with a backslash
            elif in_block:
                lines.append(ln.split(" #")[0].rstrip())
        # inline mentions count when they carry arguments (`multissl export` alone just names the command)
        lines += [c for c in re.findall(r"`(multissl [^`\n]+)`", text) if " --" in c]
        for line in lines:
            line = line.split(" #")[0].strip()
            line = re.sub(r"^.*?-m multissl\.cli ", "multissl ", line)  # accelerate launch ... -m multissl.cli train ...
            if line.startswith("multissl ") and "..." not in line and "<" not in line:
                found.append((doc.name, line))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 20 and any(doc == "README.md" for doc, _ in COMMANDS)


@pytest.mark.parametrize("doc,line", COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_documented_command_parses(doc, line):
    argv = shlex.split(line)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        if exit_.code == 0:  # --help
            return
        pytest.fail(f"{doc}: `{line}` does not parse (exit {exit_.code})")
    recipe = getattr(args, "recipe", None)
    if recipe:
        assert (ROOT / recipe).is_file(), f"{doc}: `{line}` names a missing recipe {recipe}"


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_named_recipes_and_benchmarks_exist(doc):
    names = set(re.findall(r"((?:recipes|benchmarks)/[\w./-]+\.(?:yaml|py))", doc.read_text()))
    missing = sorted(n for n in names if not (ROOT / n).is_file())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"
