"""`python_docs`: English text shipped with the Python interpreter itself (no download).

The corpus is the docstrings of the standard library's pure-Python modules (module, class and
function docstrings, read with `ast` so nothing is imported or executed) plus the language
reference topics in `pydoc_data/topics.py`. Files are visited in sorted order, so the corpus is
identical across runs on the same Python version. It is cached as JSON under
`$MULTISSL_CACHE` (default `~/.cache/multissl`)/python_docs/.

Splits come from sha1 of the paragraph text (row order and Python's salted hash() play no part):
a fraction below 0.1 is `test`, in [0.1, 0.2) `validation`, the rest `train`.
"""
from __future__ import annotations

import ast
import json
import os
import platform
import re
import sysconfig
from pathlib import Path

from multissl.atomic import atomic_write_text
from multissl.data.splits import check_split, hash_fraction
from multissl.paths import cache_dir

SPLITS = ("train", "validation", "test", "all")
TEST_FRACTION = 0.1  # sha1 fraction < 0.1: test (the same rows as before validation existed)
VALIDATION_FRACTION = 0.1  # [0.1, 0.2): validation, for tuning recipes and probes; the rest is train
MIN_WORDS = 8
MIN_LETTER_FRACTION = 0.8  # letters+spaces over characters: keeps prose, drops code and tables
BUILD_VERSION = 2  # bump when the extraction rules change, so stale caches are not reused
# Not documentation prose (tests, GUI demos, vendored tools) or not part of every build.
SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages",
             "dist-packages", "lib-dynload", "__pycache__", "pydoc_data"}
_WS = re.compile(r"\s+")


def stdlib_sources(stdlib: Path) -> list[tuple[str, Path]]:
    """Sorted (module name, file) for the stdlib's .py files outside SKIP_DIRS (private modules included)."""
    out = []
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith((".", "_")) and "-" not in d)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            rel = Path(root, name).relative_to(stdlib).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out.append((".".join(parts), Path(root, name)))
    return out


def docstrings(file: Path) -> list[str]:
    """Module, class and function docstrings of a source file, in source order."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:  # a stdlib file written for another Python version
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, kinds)), key=lambda n: getattr(n, "lineno", 0))
    return [d for d in (ast.get_docstring(n) for n in nodes) if d]


def topics(file: Path) -> list[str]:
    """The language-reference topic texts of pydoc_data/topics.py, sorted by topic name."""
    if not file.exists():
        return []
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "topics" for t in node.targets):
            table = ast.literal_eval(node.value)
            return [table[k] for k in sorted(table)]
    return []


def paragraphs(text: str) -> list[str]:
    """Blank-line-separated blocks of `text`, whitespace collapsed, keeping only English prose."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        if ">>>" in block or "::" in block.rstrip()[-2:]:  # doctests and the line introducing a code block
            continue
        clean = _WS.sub(" ", block).strip()
        if len(clean.split(" ")) < MIN_WORDS:
            continue
        letters = sum(ch.isalpha() or ch == " " for ch in clean)
        if letters / len(clean) >= MIN_LETTER_FRACTION:
            out.append(clean)
    return out


def build_rows(stdlib: Path) -> list[tuple[str, str]]:
    """Deduplicated (text, source) rows from the stdlib docstrings and pydoc topics."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    sources = [(module, doc) for module, file in stdlib_sources(stdlib) for doc in docstrings(file)]
    sources += [("pydoc_data.topics", doc) for doc in topics(stdlib / "pydoc_data" / "topics.py")]
    for module, doc in sources:
        for para in paragraphs(doc):
            if para not in seen:  # first occurrence wins: inherited/copied docstrings repeat verbatim
                seen.add(para)
                rows.append((para, module))
    return rows


def cached_rows(stdlib: Path, use_cache: bool = True) -> list[tuple[str, str]]:
    """build_rows, cached per Python version and BUILD_VERSION (written to a temp file, then renamed)."""
    key = f"v{BUILD_VERSION}-{platform.python_implementation()}-{platform.python_version()}"
    path = cache_dir() / "python_docs" / f"{key}.json"
    if use_cache and path.exists():
        return [tuple(r) for r in json.loads(path.read_text(encoding="utf-8"))]
    rows = build_rows(stdlib)
    if use_cache:
        atomic_write_text(path, json.dumps(rows, ensure_ascii=True))
    return rows


def split_of(text: str) -> str:
    """The split a paragraph belongs to: 'test' (sha1 fraction < 0.1), 'validation' ([0.1, 0.2)) or 'train'."""
    f = hash_fraction(text)
    if f < TEST_FRACTION:
        return "test"
    return "validation" if f < TEST_FRACTION + VALIDATION_FRACTION else "train"


def corpus_rows(split: str = "all", cache: bool = True, stdlib: str | Path | None = None) -> list[tuple[str, str]]:
    """(text, source) rows of one split (or 'all'), from the cache when `stdlib` is the running interpreter's."""
    check_split("python_docs", split, SPLITS)
    root = Path(stdlib) if stdlib is not None else Path(sysconfig.get_paths()["stdlib"])
    rows = cached_rows(root, use_cache=cache and stdlib is None)
    return rows if split == "all" else [r for r in rows if split_of(r[0]) == split]


def load_python_docs(split: str = "train", cache: bool = True, stdlib: str | Path | None = None):
    """Columns `text` (one cleaned paragraph) and `source` (module); by sha1 of the text: test 10%, validation 10%."""
    check_split("python_docs", split, SPLITS)
    import datasets

    rows = corpus_rows(split, cache, stdlib)
    features = datasets.Features({"text": datasets.Value("string"), "source": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"text": [r[0] for r in rows], "source": [r[1] for r in rows]}, features=features
    )
