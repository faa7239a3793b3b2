"""The built-in `python_docs` corpus: deterministic, non-empty English prose with train/validation/test by hash."""
import hashlib
import re
import sysconfig
from pathlib import Path

import pytest

from multissl.data import load_dataset_by_name
from multissl.data.python_docs import build_rows, paragraphs, split_of
from multissl.data.splits import hash_fraction


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MULTISSL_CACHE", str(cache))
    try:
        yield {s: load_dataset_by_name("python_docs", split=s) for s in ("all", "train", "validation", "test")}, cache
    finally:
        mp.undo()


def test_non_empty_english_text(corpus):
    ds, _ = corpus
    texts = list(ds["all"]["text"])
    assert ds["all"].column_names == ["text", "source"]
    assert len(texts) > 5000 and sum(map(len, texts)) > 1_000_000
    assert all(t == t.strip() and "\n" not in t and "  " not in t for t in texts)
    assert min(len(t.split()) for t in texts) >= 8
    assert len(set(texts)) == len(texts)
    common = re.compile(r"\b(the|is|of|to|and|a)\b", re.IGNORECASE)
    assert sum(bool(common.search(t)) for t in texts) / len(texts) > 0.9
    assert not any(">>>" in t for t in texts)
    sources = set(ds["all"]["source"])
    assert {"collections", "json", "pydoc_data.topics"} <= sources


def test_splits_partition_by_hash(corpus):
    ds, _ = corpus
    train, val, test, all_ = (list(ds[s]["text"]) for s in ("train", "validation", "test", "all"))
    assert sorted(train + val + test) == sorted(all_)  # a partition: every row in exactly one split
    assert 0.07 < len(test) / len(all_) < 0.13 and 0.07 < len(val) / len(all_) < 0.13
    # test is the sha1 fraction below 0.1 (the rows it held before validation existed), validation [0.1, 0.2)
    assert all(hash_fraction(t) < 0.1 for t in test)
    assert all(0.1 <= hash_fraction(t) < 0.2 for t in val)
    assert all(hash_fraction(t) >= 0.2 for t in train)


def test_split_of_is_sha1_of_the_text():
    for text in ("Return the value.", "A paragraph about sockets.", "x" * 50, "ünïcode text here"):
        f = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16) / 16**12  # independent of splits.py
        assert split_of(text) == ("test" if f < 0.1 else "validation" if f < 0.2 else "train")


def test_deterministic_cache_equals_fresh_build(corpus):
    ds, cache = corpus
    assert list((cache / "python_docs").glob("*.json")), "the corpus is cached under $MULTISSL_CACHE"
    fresh = build_rows(Path(sysconfig.get_paths()["stdlib"]))  # no cache: a second, independent build
    assert [t for t, _ in fresh] == list(ds["all"]["text"])
    assert [s for _, s in fresh] == list(ds["all"]["source"])


def test_extraction_rules_on_a_fake_stdlib(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""The package explains what it is for in plain words here."""\n')
    (tmp_path / "mod.py").write_text(
        '"""Short.\n\nThis paragraph of the module docstring is long enough to be kept in the corpus.\n\n'
        '>>> print("a doctest paragraph that is long enough but is code")\n"""\n'
        "def f():\n    '''A function docstring that says what the function does for its caller.'''\n"
    )
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.py").write_text('"""Tests are skipped even though this docstring is long enough."""\n')
    ds = load_dataset_by_name("python_docs", split="all", stdlib=tmp_path)
    assert list(ds["text"]) == [
        "This paragraph of the module docstring is long enough to be kept in the corpus.",
        "A function docstring that says what the function does for its caller.",
        "The package explains what it is for in plain words here.",
    ]
    assert list(ds["source"]) == ["mod", "mod", "pkg"]


def test_paragraph_filter_drops_code_and_collapses_whitespace():
    text = "Words   that\n   form a proper sentence of English prose here.\n\nx = {1: 2, 3: 4} + [5, 6] * 7 ** 8 // 9"
    assert paragraphs(text) == ["Words that form a proper sentence of English prose here."]


def test_unknown_split():
    with pytest.raises(ValueError, match="python_docs.*'dev'"):
        load_dataset_by_name("python_docs", split="dev")
