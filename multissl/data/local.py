"""Local files and folders as a `datasets.Dataset`, with the builder inferred from what is there.

* a folder of images -> "imagefolder"; of audio -> "audiofolder" (without torchcodec installed,
  our soundfile-backed `load_audio_folder` with the same layout rules; labels from sub-folder names,
  `train/` / `test/` sub-folders become splits, as `datasets` does it);
* `.txt` / `.md` files, or a folder of them -> "text", ONE ROW PER PARAGRAPH (blocks separated by a
  blank line; pass `sample_by="line"` for one row per line);
* `.jsonl` / `.json` -> "json", `.csv` -> "csv", `.parquet` -> "parquet";
* a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` -> `datasets.load_from_disk`.

Only packaged builders over local files are used, so nothing is fetched from the Hub.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff"}
TABULAR_BUILDERS = {".txt": "text", ".md": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# imagefolder/audiofolder read these as per-file metadata, not as data.
METADATA_NAMES = {"metadata.csv", "metadata.jsonl", "metadata.json", "metadata.parquet"}
SPLIT_DIRS = ("train", "validation", "test")


def _has_torchcodec() -> bool:
    """Whether `datasets` can decode audio itself (it needs torchcodec and FFmpeg)."""
    import importlib.util

    return importlib.util.find_spec("torchcodec") is not None


def infer_builder(path: Path) -> str:
    """The `datasets` packaged builder for a local file or folder, or a ValueError saying why not."""
    if path.is_file():
        builder = TABULAR_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(
                f"cannot load {str(path)!r}: unsupported file type {path.suffix!r}; "
                f"expected one of {', '.join(sorted(TABULAR_BUILDERS))} or a folder of images/audio"
            )
        return builder
    files = [p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)]
    suffixes = Counter(p.suffix.lower() for p in files if p.name not in METADATA_NAMES)
    if any(s in IMAGE_EXTS for s in suffixes):
        return "imagefolder"
    if any(s in AUDIO_EXTS for s in suffixes):
        return "audiofolder"
    builders = {TABULAR_BUILDERS[s] for s in suffixes if s in TABULAR_BUILDERS}
    if len(builders) == 1:
        return builders.pop()
    if not builders:
        raise ValueError(
            f"cannot load folder {str(path)!r}: found no images ({', '.join(sorted(IMAGE_EXTS))}), "
            f"audio ({', '.join(sorted(AUDIO_EXTS))}) or data files ({', '.join(sorted(TABULAR_BUILDERS))})"
        )
    raise ValueError(f"cannot load folder {str(path)!r}: it mixes data file kinds {sorted(builders)}; keep one kind")


def _data_files(path: Path, builder: str) -> dict[str, list[str]]:
    """{split: sorted files} for a file or folder; `train/`, `validation/`, `test/` sub-folders become splits."""
    exts = {s for s, b in TABULAR_BUILDERS.items() if b == builder}
    if path.is_file():
        return {"train": [str(path)]}

    def collect(folder: Path) -> list[str]:
        return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)

    splits = {name: collect(path / name) for name in SPLIT_DIRS if (path / name).is_dir()}
    splits = {name: files for name, files in splits.items() if files}
    return splits or {"train": collect(path)}


def select_split(dsets: Any, split: str, source: str):
    """One split of a DatasetDict ("all" concatenates every split), with an error listing the splits."""
    import datasets

    if isinstance(dsets, datasets.Dataset):
        if split not in ("train", "all"):
            raise ValueError(f"{source!r} holds a single dataset; split {split!r} does not exist (use 'train' or 'all')")
        return dsets
    if split == "all":
        return datasets.concatenate_datasets([dsets[name] for name in sorted(dsets)])
    if split not in dsets:
        raise ValueError(
            f"{source!r} has no split {split!r}; available splits: {', '.join(sorted(dsets))} (or 'all'). "
            f"To get a test split, put files under {source}/train/ and {source}/test/"
        )
    return dsets[split]


def load_local_dataset(path: str | Path, split: str = "train", **kwargs: Any):
    """Load a local file/folder with the inferred packaged builder; kwargs go to `datasets.load_dataset`."""
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path {str(path)!r} does not exist")
    source = str(path)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        return select_split(datasets.load_from_disk(source), split, source)
    builder = infer_builder(path)
    if builder == "audiofolder" and not _has_torchcodec():
        # datasets' Audio feature decodes through torchcodec (FFmpeg); without it, list the files
        # ourselves with the same layout rules and let the collators decode with soundfile.
        from multissl.modalities.audio.folder import load_audio_folder

        return load_audio_folder(path, split=split)
    if builder in ("imagefolder", "audiofolder"):
        dsets = datasets.load_dataset(builder, data_dir=source, **kwargs)
    else:
        if builder == "text":
            kwargs.setdefault("sample_by", "paragraph")
        dsets = datasets.load_dataset(builder, data_files=_data_files(path, builder), **kwargs)
    if builder == "text" and kwargs.get("sample_by") == "paragraph":
        # `datasets` splits on exactly "\n\n": strip the stray newlines of longer gaps, drop blank rows.
        dsets = dsets.map(lambda b: {"text": [t.strip() for t in b["text"]]}, batched=True)
        dsets = dsets.filter(lambda b: [bool(t) for t in b["text"]], batched=True)
    return select_split(dsets, split, source)
