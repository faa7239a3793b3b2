"""`python_docs_topics`: which standard-library package a `python_docs` paragraph was written for (labeled text).

A frozen-feature task for the text encoders (k-NN and linear probe): the label of a paragraph is the
top-level package of its `source` module (`email.mime.text` -> `email`, `_pydecimal` -> `decimal`),
restricted to the NUM_TOPICS most frequent packages that have at least MIN_PER_SPLIT paragraphs in every
split. The language-reference topics (`pydoc_data.topics`) are not a package and are left out. Rows and
splits are python_docs' own (sha1 of the text: test < 0.1, validation [0.1, 0.2), train the rest), so a
paragraph is in the same split in both datasets and an encoder pre-trained on python_docs' train split
never saw a validation or test paragraph of this task.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from multissl.data.python_docs import corpus_rows, split_of
from multissl.data.splits import check_split

SPLITS = ("train", "validation", "test", "all")
NUM_TOPICS = 20
MIN_PER_SPLIT = 8  # paragraphs of a topic needed in each of train / validation / test to be a class
# Pure-Python twins of C modules are documented under the public name; pydoc_data is the language reference.
ALIASES = {"_pydecimal": "decimal", "_pyio": "io", "_pydatetime": "datetime"}
EXCLUDED = {"pydoc_data"}


def topic_of(source: str) -> str:
    """The top-level package of a dotted module name, private twins mapped to their public name."""
    top = source.split(".")[0]
    return ALIASES.get(top, top.lstrip("_"))


def choose_topics(rows: Sequence[tuple[str, str]], num_topics: int = NUM_TOPICS,
                  min_per_split: int = MIN_PER_SPLIT) -> list[str]:
    """The `num_topics` most frequent packages (ties: by name) with >= min_per_split rows in each split, sorted by name."""
    if num_topics < 2:
        raise ValueError(f"num_topics must be >= 2 (a classification task); got {num_topics}")
    per_split = Counter((topic_of(src), split_of(text)) for text, src in rows if src.split(".")[0] not in EXCLUDED)
    totals: Counter = Counter()
    for (t, _), n in per_split.items():
        totals[t] += n
    eligible = [t for t in totals if all(per_split[(t, s)] >= min_per_split for s in ("train", "validation", "test"))]
    ranked = sorted(eligible, key=lambda t: (-totals[t], t))
    if len(ranked) < num_topics:
        raise ValueError(f"num_topics={num_topics}: only {len(ranked)} packages have >= {min_per_split} paragraphs "
                         "in every split")
    return sorted(ranked[:num_topics])


def load_python_docs_topics(split: str = "train", num_topics: int = NUM_TOPICS, cache: bool = True,
                            stdlib: str | Path | None = None):
    """Columns `text`, `source` (module), `topic` (package) and `label` (ClassLabel over the sorted topic names)."""
    check_split("python_docs_topics", split, SPLITS)
    import datasets

    everything = corpus_rows("all", cache, stdlib)
    topics = choose_topics(everything, num_topics)  # from all splits, so every split has the same classes
    index = {t: i for i, t in enumerate(topics)}
    rows = [(text, src, topic_of(src)) for text, src in everything
            if src.split(".")[0] not in EXCLUDED and topic_of(src) in index and (split == "all" or split_of(text) == split)]
    features = datasets.Features({"text": datasets.Value("string"), "source": datasets.Value("string"),
                                  "topic": datasets.Value("string"), "label": datasets.ClassLabel(names=topics)})
    return datasets.Dataset.from_dict(
        {"text": [r[0] for r in rows], "source": [r[1] for r in rows], "topic": [r[2] for r in rows],
         "label": [index[r[2]] for r in rows]}, features=features)
