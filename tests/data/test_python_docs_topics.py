"""python_docs_topics: package labels of python_docs paragraphs, same hash splits, enough rows per class per split."""
from collections import Counter

import pytest

from multissl.data.python_docs import load_python_docs, split_of
from multissl.data.python_docs_topics import MIN_PER_SPLIT, choose_topics, load_python_docs_topics, topic_of

SPLITS = ("train", "validation", "test")


def test_topic_of_maps_modules_to_their_top_level_package():
    assert topic_of("email.mime.text") == "email"
    assert topic_of("asyncio") == "asyncio"
    assert topic_of("_pydecimal") == "decimal" and topic_of("_pyio") == "io"  # pure-Python twins, public name
    assert topic_of("_collections_abc") == "collections_abc"


def _paragraphs(word: str, n: int) -> list[str]:
    return [f"This paragraph number {i} explains the {word} package in plain English words." for i in range(n)]


@pytest.fixture(scope="module")
def fake_stdlib(tmp_path_factory):
    """Three packages with 150, 120 and 3 docstring paragraphs, a private twin, and language-reference topics."""
    root = tmp_path_factory.mktemp("stdlib")
    for pkg, n in (("alpha", 150), ("beta", 120), ("gamma", 3)):
        (root / pkg).mkdir()
        (root / pkg / "__init__.py").write_text('"""' + "\n\n".join(_paragraphs(pkg, n)) + '\n"""\n')
    (root / "_pyalpha.py").write_text('"""' + "\n\n".join(_paragraphs("private twin", 30)) + '\n"""\n')
    (root / "pydoc_data").mkdir()
    topics = {f"t{i}": p for i, p in enumerate(_paragraphs("reference", 400))}
    (root / "pydoc_data" / "topics.py").write_text(f"topics = {topics!r}\n")
    return root


def test_loader_on_a_fake_stdlib(fake_stdlib):
    ds = {s: load_python_docs_topics(s, num_topics=2, stdlib=fake_stdlib) for s in (*SPLITS, "all")}
    assert ds["all"].column_names == ["text", "source", "topic", "label"]
    assert ds["all"].features["label"].names == ["alpha", "beta"]  # gamma is too small; pydoc_data is not a package
    assert set(ds["all"]["topic"]) == {"alpha", "beta"}
    assert all(ds["all"].features["label"].names[y] == t for y, t in zip(ds["all"]["label"], ds["all"]["topic"]))
    assert all(t == topic_of(s) for t, s in zip(ds["all"]["topic"], ds["all"]["source"]))
    assert sorted(t for s in SPLITS for t in ds[s]["text"]) == sorted(ds["all"]["text"])
    for s in SPLITS:  # each row sits in its python_docs split (sha1 of the text)
        assert all(split_of(t) == s for t in ds[s]["text"])
        assert min(Counter(ds[s]["topic"]).values()) >= MIN_PER_SPLIT
    with pytest.raises(ValueError, match="num_topics=3: only 2 packages"):
        load_python_docs_topics("train", num_topics=3, stdlib=fake_stdlib)


def test_choose_topics_ranks_by_size_and_needs_every_split():
    rows = [(t, "big.mod") for t in _paragraphs("big", 300)] + [(t, "mid") for t in _paragraphs("mid", 200)]
    rows += [(t, "_small") for t in _paragraphs("small", 150)] + [(t, "pydoc_data.topics") for t in _paragraphs("r", 900)]
    assert choose_topics(rows, 2) == ["big", "mid"]
    assert choose_topics(rows, 3) == ["big", "mid", "small"]
    test_only = [(t, "leaky") for t in _paragraphs("leaky", 5000) if split_of(t) != "validation"]
    assert "leaky" not in choose_topics(rows + test_only, 3)  # no validation rows: never a class, however big
    with pytest.raises(ValueError, match="num_topics must be >= 2"):
        choose_topics(rows, 1)


def test_real_corpus_task():
    ds = {s: load_python_docs_topics(s) for s in SPLITS}  # the cached corpus (built once, ~5 s, on a new machine)
    docs = {s: set(load_python_docs(s)["text"]) for s in SPLITS}
    names = ds["train"].features["label"].names
    assert len(names) == 20 and names == sorted(names) and {"asyncio", "email", "logging"} <= set(names)
    for s in SPLITS:
        counts = Counter(ds[s]["label"])
        assert len(counts) == 20 and min(counts.values()) >= MIN_PER_SPLIT
        assert set(ds[s]["text"]) <= docs[s]  # the same rows as python_docs' split of that name
    assert max(Counter(ds["test"]["label"]).values()) / len(ds["test"]) < 0.15  # no class dominates


def test_unknown_split():
    with pytest.raises(ValueError, match="python_docs_topics.*'dev'"):
        load_python_docs_topics("dev")
