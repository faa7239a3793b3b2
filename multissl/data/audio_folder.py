"""A local audio folder as a `datasets.Dataset` without torchcodec/FFmpeg (datasets' Audio feature needs torchcodec).

Same layout rules as `datasets`' audiofolder: the label is the parent folder's name, and
`train/`, `validation/`, `test/` sub-folders are splits. The `audio` column holds
{"path": str, "bytes": None} (what `Audio(decode=False)` gives), which the audio collators
decode with soundfile (WAV/FLAC/OGG).
"""
from __future__ import annotations

import os
from pathlib import Path

from multissl.data.splits import SPLIT_DIRS  # the same split folders as every other local dataset

SOUNDFILE_EXTS = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def audio_files(root: Path) -> list[Path]:
    """Sorted audio files under `root` (hidden folders skipped)."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in SOUNDFILE_EXTS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_audio_folder(path: str | os.PathLike, split: str = "train") -> datasets.Dataset:  # noqa: F821
    """Folder of WAV/FLAC/OGG files -> Dataset with columns audio ({"path", "bytes"}) and label (ClassLabel of parent folder)."""
    import datasets

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    splits = {s: root / s for s in SPLIT_DIRS if (root / s).is_dir()}
    if splits:
        if split == "all":
            folders = list(splits.values())
        elif split in splits:
            folders = [splits[split]]
        else:
            raise ValueError(f"{root} has no split {split!r}; available: {', '.join(splits)} (or 'all')")
    elif split in ("train", "all"):
        folders = [root]
    else:
        raise ValueError(f"{root} has no train/validation/test sub-folders, so split {split!r} does not exist (use 'train')")
    files = [f for folder in folders for f in audio_files(folder)]
    if not files:
        raise ValueError(f"{root}: no audio files ({', '.join(SOUNDFILE_EXTS)}) for split {split!r}")
    empty = next((f for f in files if f.stat().st_size == 0), None)  # a stat each: cheap, unlike decoding
    if empty is not None:
        raise ValueError(f"{str(empty)!r} is empty; expected a {empty.suffix} audio file")
    # label names come from every split so train and test share one mapping
    all_files = [f for folder in splits.values() for f in audio_files(folder)] if splits else files
    names = sorted({f.parent.name for f in all_files})
    features = datasets.Features({
        "audio": {"path": datasets.Value("string"), "bytes": datasets.Value("binary")},
        "label": datasets.ClassLabel(names=names),
    })
    return datasets.Dataset.from_dict(
        {"audio": [{"path": str(f), "bytes": None} for f in files], "label": [names.index(f.parent.name) for f in files]},
        features=features,
    )
