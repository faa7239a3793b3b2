"""`multissl data sample KIND --out DIR`: small folders in the layouts multissl reads as "your own data".

Each is written from a built-in dataset so a newcomer has a real folder to look at, copy and train on:

* images   -> DIR/{train,validation,test}/<class>/<n>.png            (digits; labels from folder names)
* text     -> DIR/{train,validation,test}/<n>.txt, paragraphs separated by a blank line   (python_docs)
* audio    -> DIR/{train,validation,test}/<speaker>/<n>.wav, 16 kHz    (the shipped spoken_digits)
* captions -> DIR/{train,validation,test}/<n>.png + metadata.jsonl {"file_name", "caption", "label"} (digits_captions)

How multissl finds splits: sub-folders named train / validation / test become splits (multissl/data/splits.py);
a folder without them is all `train`. The folder is written to a temp name and renamed, and an existing DIR is
never touched.
"""
from __future__ import annotations

import json
from pathlib import Path

from multissl.atomic import atomic_dir
from multissl.data.splits import SPLIT_DIRS

KINDS = ("images", "text", "audio", "captions")
DEFAULT_PER_SPLIT = {"train": 200, "validation": 50, "test": 50}


def _images(out: Path, per_split: dict[str, int]) -> None:
    from multissl.data import load_dataset_by_name

    for split in SPLIT_DIRS:
        ds = load_dataset_by_name("digits", split=split)
        for i, row in enumerate(ds.select(range(min(per_split[split], len(ds))))):
            folder = out / split / str(row["label"])
            folder.mkdir(parents=True, exist_ok=True)
            row["image"].save(folder / f"{i}.png")


def _text(out: Path, per_split: dict[str, int]) -> None:
    from multissl.data import load_dataset_by_name

    for split in SPLIT_DIRS:
        ds = load_dataset_by_name("python_docs", split=split)
        rows = ds.select(range(min(per_split[split], len(ds))))["text"]
        (out / split).mkdir(parents=True, exist_ok=True)
        for start in range(0, len(rows), 50):  # 50 paragraphs per file, blank line between paragraphs
            (out / split / f"{start // 50}.txt").write_text("\n\n".join(rows[start:start + 50]) + "\n", encoding="utf-8")


def _audio(out: Path, per_split: dict[str, int]) -> None:
    import numpy as np
    import soundfile as sf

    from multissl.data import load_dataset_by_name

    for split in SPLIT_DIRS:
        ds = load_dataset_by_name("spoken_digits", split=split, labels_as="str")
        for i, row in enumerate(ds.select(range(min(per_split[split], len(ds))))):
            folder = out / split / row["speaker"].replace("+", "_")
            folder.mkdir(parents=True, exist_ok=True)
            audio = row["audio"]
            sf.write(folder / f"{i}.wav", np.asarray(audio["array"], dtype=np.float32), audio["sampling_rate"])


def _captions(out: Path, per_split: dict[str, int]) -> None:
    from multissl.data import load_dataset_by_name

    for split in SPLIT_DIRS:
        ds = load_dataset_by_name("digits_captions", split=split)
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, row in enumerate(ds.select(range(min(per_split[split], len(ds))))):
            row["image"].save(folder / f"{i}.png")
            lines.append(json.dumps({"file_name": f"{i}.png", "caption": row["caption"], "label": row["label"]}))
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


WRITERS = {"images": _images, "text": _text, "audio": _audio, "captions": _captions}


def write_sample(kind: str, out: str | Path, per_split: dict[str, int] | None = None) -> Path:
    """Write a sample folder of `kind` (one of KINDS) at `out` (must not exist); returns its path."""
    if kind not in WRITERS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; multissl never writes into an existing folder: pass a new --out")
    per_split = {**DEFAULT_PER_SPLIT, **(per_split or {})}
    return atomic_dir(out, lambda tmp: WRITERS[kind](tmp, per_split))
