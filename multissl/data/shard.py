"""`multissl data shard`: a local folder of images, audio, text or image–caption pairs -> parquet shards to stream.

The folder is read with the same layout rules as any local dataset (multissl.data.local: class sub-folders give
`label`, `train/` / `validation/` / `test/` sub-folders are splits, a metadata.jsonl/csv beside images gives
`caption`), its rows are put in one seeded random order (a stream's shuffle window then mixes classes instead of
reading one class folder after another), and every split is cut into `<split>/part-NNNNN.parquet` files of
`shard_size` rows. The whole output is written in a temp folder and renamed into place; an existing folder is
never touched.

Why parquet and not WebDataset tar: one typed format for all four kinds (class names survive as a ClassLabel in
the schema, captions and labels stay typed), the same folder also loads whole (`load_dataset_by_name(out)`, which
the end-of-run evaluation uses) and pyarrow is already installed. multissl still *reads* WebDataset tars.
Images and audio are stored as their original encoded file bytes (nothing is re-encoded).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("images", "audio", "text", "captions")
COLUMNS = {"images": ("image",), "audio": ("audio",), "text": ("text",), "captions": ("image", "caption")}
ROW_GROUP = 64  # rows per parquet row group: what a streaming reader holds in memory at once, per file


def _splits(src: Path) -> list[str]:
    from multissl.data.splits import SPLIT_DIRS

    found = [s for s in SPLIT_DIRS if (src / s).is_dir()] if src.is_dir() else []
    return found or ["train"]


def _load(src: Path, split: str, kind: str):
    """One split of the source folder as a map-style dataset, image/audio columns undecoded ({"path", "bytes"})."""
    import datasets

    from multissl.data.local import load_local_dataset

    ds = load_local_dataset(src, split=split)
    missing = [c for c in COLUMNS[kind] if c not in ds.column_names]
    if missing:
        expected = {"images": "an image folder", "audio": "an audio folder (WAV/FLAC/OGG)",
                    "text": "text/JSON lines/CSV files with a 'text' column",
                    "captions": "an image folder with a metadata.jsonl or metadata.csv giving file_name and caption"}[kind]
        raise ValueError(f"--kind {kind}: {str(src)!r} (split {split!r}) has columns {ds.column_names}, not "
                         f"{' and '.join(missing)}; expected {expected}")
    for name, feature in ds.features.items():
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            ds = ds.cast_column(name, type(feature)(decode=False))
    return ds


def _features(ds, kind: str):
    """The shards' schema: images as datasets.Image (encoded bytes), audio as a plain {path, bytes} struct (decoded
    by multissl's collators with soundfile, no torchcodec needed), everything else as it was."""
    import datasets

    features = datasets.Features(ds.features)
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            features[name] = datasets.Image()  # read back decoded (the source was cast to decode=False to copy bytes)
    if kind == "audio":
        features["audio"] = {"path": datasets.Value("string"), "bytes": datasets.Value("binary")}
    return features


def _embedded(value: dict | None) -> dict | None:
    """{"path", "bytes"} with the file's bytes read in and only the file name kept (no absolute paths in shards)."""
    if value is None:
        return None
    data = value.get("bytes")
    path = value.get("path") or ""
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise ValueError(f"cannot read {path!r} while sharding: {err}") from err
    return {"path": Path(path).name, "bytes": data}


def _write_split(ds, out: Path, split: str, kind: str, shard_size: int, seed: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = _features(ds, kind)
    schema = features.arrow_schema  # carries datasets' feature metadata (Image, ClassLabel names)
    blobs = [n for n in ds.column_names if n in ("image", "audio")]
    ds = ds.shuffle(seed=seed)
    (out / split).mkdir(parents=True)
    count = -(-len(ds) // shard_size)
    for k in range(count):
        columns = ds[k * shard_size: (k + 1) * shard_size]  # one shard in memory at a time
        for name in blobs:
            columns[name] = [_embedded(v) for v in columns[name]]
        table = pa.Table.from_pydict(columns, schema=schema)
        pq.write_table(table, out / split / f"part-{k:05d}.parquet", row_group_size=ROW_GROUP)
    return len(ds)


def shard_folder(src: str | Path, out: str | Path, kind: str, shard_size: int = 1000, seed: int = 0) -> dict[str, int]:
    """Write the folder `src` as parquet shards under the new folder `out`; returns {split: rows written}."""
    from multissl.atomic import atomic_dir

    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"--shard-size must be a whole number >= 1 (rows per shard); got {shard_size!r}")
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"SRC {str(src)!r} does not exist")
    if out.exists():
        raise FileExistsError(f"--out {str(out)!r} already exists; data shard never overwrites: name a new folder")
    if out.resolve().is_relative_to(src.resolve()):
        raise ValueError(f"--out {str(out)!r} is inside SRC {str(src)!r}; write the shards somewhere else")
    loaded = {split: _load(src, split, kind) for split in _splits(src)}  # every split checked before writing
    counts: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        for split, ds in loaded.items():
            counts[split] = _write_split(ds, tmp, split, kind, shard_size, seed)

    atomic_dir(out, write)
    return counts
