"""docs/own_data.md: every fenced block (write a sample folder, train on it, evaluate) runs as written.

Each `multissl train` line gets `--set train.max_steps=2 ...` appended so the test stays short; everything else
runs exactly as the page shows, in a fresh working directory.
"""
import shlex
from pathlib import Path

import pytest

from multissl.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "own_data.md"
FAST = ["train.max_steps=2", "train.batch_size=8", "train.log_every=1", "train.warmup_steps=0", "train.progress=false",
        "train.num_workers=0", "train.save_every=0"]


def _blocks() -> dict[str, list[str]]:
    """{section title: command lines} for the ```bash blocks of the page."""
    out, title, block = {}, None, None
    for ln in PAGE.read_text().splitlines():
        if ln.startswith("## "):
            title = ln[3:].strip()
        elif ln.startswith("```bash"):
            block = out.setdefault(title, [])
        elif ln.startswith("```"):
            block = None
        elif block is not None and ln.strip():
            block.append(ln)
    return out


BLOCKS = _blocks()


def test_the_page_covers_the_four_kinds():
    assert {"Images (SimCLR)", "Text (GPT next-token LM)", "Audio (CPC)", "Image–caption pairs (CLIP)"} <= set(BLOCKS)


@pytest.mark.parametrize("title", sorted(BLOCKS))
def test_block_runs(title, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    for line in BLOCKS[title]:
        argv = shlex.split(line)
        assert argv[0] == "multissl", line
        argv = argv[1:]
        if argv[0] == "train":
            argv += ["--set", *FAST]
        if argv[:2] == ["data", "sample"]:
            argv += ["--per-split", "120" if argv[2] == "text" else "16"]  # text: enough 128-token blocks for a batch
        assert cli_main(argv) == 0, f"{title}: `{line}` failed:\n{capsys.readouterr().err}"
    out = capsys.readouterr().out
    assert "saved model to" in out
    if "eval" in " ".join(BLOCKS[title]) or title.startswith(("Images", "Audio")):
        assert "accuracy" in out  # the recipe's own evaluation ran on the folder's validation split


def test_a_folder_without_held_out_splits_trains_and_says_the_evaluation_was_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["data", "sample", "images", "--out", "full", "--per-split", "16"]) == 0
    (tmp_path / "full" / "train").rename(tmp_path / "only_train")
    assert cli_main(["train", str(ROOT / "recipes" / "simclr_digits.yaml"), "--output-dir", "run",
                     "--set", "dataset=only_train", *FAST]) == 0
    out = capsys.readouterr().out
    assert "eval knn skipped: 'only_train' has no 'validation' or 'test' split" in out and "saved model to" in out


def test_sample_never_writes_into_an_existing_folder(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    assert cli_main(["data", "sample", "text", "--out", str(tmp_path / "mine")]) != 0
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "mine" / "keep.txt").read_text() == "mine"
