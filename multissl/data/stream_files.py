"""What a stream reads: a split's shard files (one kind per folder), tar shards checked before any is opened, and
the columns datasets yields renamed to multissl's (WebDataset fields) with images/audio kept encoded.

Nothing here holds a position or a window: that is streaming.py's RowStream, which calls these once when it opens.
Pickled WebDataset fields (.pth) are refused here, before datasets could unpickle them.
"""
from __future__ import annotations

import tarfile
from pathlib import Path

STREAM_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".txt": "text", ".md": "text",
                   ".tar": "webdataset"}
# WebDataset fields decoded through a (restricted) unpickler by datasets' webdataset builder: refused up front.
PICKLED_FIELDS = {"pth"}


def stream_files(path: Path, split: str) -> tuple[str, list[str]]:
    """(builder, sorted files) of one split of a local file or folder; `train/`, `validation/`, `test/` are splits."""
    from multissl.data.splits import SPLIT_DIRS

    if not path.exists():
        raise FileNotFoundError(f"dataset path {str(path)!r} does not exist")
    if path.is_file():
        if split not in ("train", "all"):
            raise ValueError(f"{str(path)!r} is a single file: split {split!r} does not exist (use 'train' or 'all')")
        files = [path]
    else:
        splits = [s for s in SPLIT_DIRS if (path / s).is_dir()]
        if splits and split != "all" and split not in splits:
            raise ValueError(f"{str(path)!r} has no split {split!r}; available splits: {', '.join(splits)} (or 'all')")
        roots = [path / split] if split in splits else [path]
        files = sorted(p for root in roots for p in root.rglob("*") if p.is_file() and p.suffix.lower() in STREAM_BUILDERS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
    builders = {STREAM_BUILDERS.get(p.suffix.lower()) for p in files}
    if not files or None in builders:
        raise ValueError(f"streaming reads shard files ({', '.join(sorted(STREAM_BUILDERS))}); {str(path)!r} has none for "
                         f"split {split!r}; write a folder of images/audio/text into shards with `multissl data shard`")
    if len(builders) > 1:
        raise ValueError(f"cannot stream {str(path)!r}: it mixes file kinds {sorted(builders)}; keep one kind per folder")
    return builders.pop(), [str(p) for p in files]


def check_tar(file: str) -> None:
    """ValueError unless `file` is a tar whose members datasets would not unpickle (headers only, no data read)."""
    try:
        with tarfile.open(file, "r:") as tar:
            for member in tar:
                if member.name.rsplit(".", 1)[-1].lower() in PICKLED_FIELDS:
                    raise ValueError(f"{file!r} member {member.name!r} would be unpickled; multissl never unpickles "
                                     "data files: store tensors as .npy")
    except tarfile.TarError as err:
        raise ValueError(f"{file!r} is not a readable (uncompressed) tar: {err}") from err


def stream_columns(ds, webdataset: bool = False):
    """`ds` with multissl's column names (WebDataset fields renamed) and images/audio kept encoded: a window holds
    bytes, and rows are decoded per batch (RowStream.decoded)."""
    import datasets

    if webdataset:
        ds = _webdataset_columns(ds)
    for name, feature in (ds.features or {}).items():
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            ds = ds.cast_column(name, type(feature)(decode=False))
    return ds


def _webdataset_columns(ds):
    """WebDataset fields -> multissl's column names: image, audio, label (`cls`), caption or text (`txt`)."""
    import datasets

    features = ds.features or {}
    pickled = [n for n in features if n.rsplit(".", 1)[-1].lower() in PICKLED_FIELDS]
    if pickled:  # datasets would decode them with an unpickler: never unpickle data from disk or the hub
        raise ValueError(f"WebDataset field(s) {pickled} are pickled tensors (.pth), which multissl never unpickles; "
                         "store arrays as .npy or in parquet instead")
    kinds = {n: type(f) for n, f in features.items()}
    has_image = any(k is datasets.Image for k in kinds.values())
    rename = {}
    for name, kind in kinds.items():
        ext = name.rsplit(".", 1)[-1].lower()
        if kind is datasets.Image:
            rename[name] = "image"
        elif kind is datasets.Audio:
            rename[name] = "audio"
        elif ext == "cls":
            rename[name] = "label"
        elif ext in ("txt", "text"):
            rename[name] = "caption" if has_image else "text"
    if len(set(rename.values())) < len(rename):
        raise ValueError(f"WebDataset samples hold several fields of one kind {sorted(rename)}; keep one image/audio/text field")
    ds = ds.remove_columns([c for c in ("__key__", "__url__") if c in features])
    return ds.rename_columns({k: v for k, v in rename.items() if k != v})
