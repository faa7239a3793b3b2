"""Local files and folders as a `datasets.Dataset`, with the builder inferred from what is there.

* a folder of images -> "imagefolder"; of audio -> "audiofolder" (without torchcodec installed,
  our soundfile-backed `load_audio_folder` with the same layout rules; labels from sub-folder names,
  `train/` / `test/` sub-folders become splits, as `datasets` does it);
* `.txt` / `.md` files, or a folder of them -> "text", ONE ROW PER PARAGRAPH (blocks separated by a
  blank line; pass `sample_by="line"` for one row per line);
* `.jsonl` / `.json` -> "json", `.csv` -> "csv", `.parquet` -> "parquet";
* a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` -> `datasets.load_from_disk`.

Only packaged builders over local files are used, so nothing is fetched from the Hub.

Bad input is one ValueError line naming the file and what was expected, raised before `datasets` runs:
unreadable files/folders, a missing split (listing those there are), empty text/JSON/CSV files (skipped
in a folder unless nothing else is left), images PIL cannot open. Content (not UTF-8: byte offset;
malformed JSON or ragged CSV: line) is checked up front when text files total <= PRESCAN_BYTES; bigger
inputs skip that second read (a cached reload stays free) and get the same diagnosis if `datasets`
fails. What `datasets` raises while loading becomes a ValueError chained (`from`) to it.
"""
from __future__ import annotations

import codecs
import csv
import itertools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from multissl.data.splits import SPLIT_DIRS

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff"}
TABULAR_BUILDERS = {".txt": "text", ".md": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# imagefolder/audiofolder read these as per-file metadata, not as data.
METADATA_NAMES = {"metadata.csv", "metadata.jsonl", "metadata.json", "metadata.parquet"}
TEXT_BUILDERS = ("text", "json", "csv")  # builders whose files we can check as text
EXPECTED = {"text": "UTF-8 text", "json": "JSON lines (one object per line) or a JSON document", "csv": "a CSV file with a header row"}
PRESCAN_BYTES = 32 * 2**20  # check the content of text inputs up to this total size before loading


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


def check_readable(path: Path) -> None:
    """ValueError naming the first file or folder under `path` (hidden ones skipped) this process may not read."""
    def denied(p: str, what: str) -> ValueError:
        return ValueError(f"cannot read {what} {p!r}: permission denied; make it readable (e.g. chmod -R a+rX {str(path)!r})")

    if path.is_file():
        if not os.access(path, os.R_OK):
            raise denied(str(path), "file")
        return

    def on_error(err: OSError) -> None:
        raise denied(str(err.filename), "folder") from err

    for root, dirs, files in os.walk(path, onerror=on_error):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and not os.access(os.path.join(root, name), os.R_OK):
                raise denied(os.path.join(root, name), "file")


def _is_blank(file: str) -> bool:
    """Whether a file holds nothing but whitespace (reads only until the first other byte)."""
    with open(file, "rb") as fh:
        while chunk := fh.read(1 << 16):
            if chunk.strip():
                return False
    return True


def _bad_encoding(file: str, encoding: str) -> str | None:
    """One line locating the first byte `encoding` cannot decode (offset and line), or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(file, "rb") as fh:
        for number, line in enumerate(itertools.chain(fh, [b""]), 1):  # b"": flush a sequence cut off at the end
            held = decoder.getstate()[0]  # bytes carried over from the previous line, counted in err.start
            try:
                decoder.decode(line, final=not line)
            except UnicodeDecodeError as err:
                pos = offset - len(held) + err.start
                return (f"{file!r} is not {encoding} text: byte 0x{(held + line)[err.start]:02x} at offset {pos} "
                        f"(line {number - (not line)}) cannot be decoded; re-encode it to {encoding} "
                        f"(e.g. iconv -f latin1 -t utf-8) or pass encoding=...")
            offset += len(line)
    return None


def _bad_json(file: str, encoding: str) -> str | None:
    """One line naming the first malformed JSON line (JSON lines) or the error in a whole JSON document."""
    if file.lower().endswith(".json"):
        text = Path(file).read_text(encoding=encoding, errors="replace")
        try:
            json.loads(text)
            return None  # one JSON document (a list of rows, or rows under a `field=`)
        except json.JSONDecodeError as err:
            try:  # JSON lines in a .json file start with a whole object on the first line
                json_lines = isinstance(json.loads(next(ln for ln in text.splitlines() if ln.strip())), dict)
            except json.JSONDecodeError:
                json_lines = False
            if not json_lines:
                return f"{file!r} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
    with open(file, encoding=encoding, errors="replace") as fh:  # JSON lines, streamed
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                return f"{file!r} line {number} is not valid JSON ({err.msg} at column {err.colno}); expected one JSON object per line"
            if not isinstance(row, dict):
                return f"{file!r} line {number} is a JSON {type(row).__name__}; expected one JSON object per line"
    return None


def _bad_csv(file: str, encoding: str, sep: str) -> str | None:
    """One line naming the first row whose field count differs from the header's, or None."""
    with open(file, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                return (f"{file!r} line {reader.line_num} has {len(row)} fields but the header has {len(header)}; "
                        f"expected the same number on every row (quote fields that contain {sep!r})")
    return None


def content_problem(files: list[str], builder: str, kwargs: dict[str, Any]) -> str | None:
    """The first encoding / JSON / CSV problem in `files` as one line naming the file, or None."""
    encoding = kwargs.get("encoding") or "utf-8"
    for file in files:
        problem = None if kwargs.get("encoding_errors") not in (None, "strict") else _bad_encoding(file, encoding)
        if problem is None and builder == "json":
            problem = _bad_json(file, encoding)
        if problem is None and builder == "csv":
            problem = _bad_csv(file, encoding, kwargs.get("delimiter") or kwargs.get("sep") or ",")
        if problem:
            return problem
    return None


def split_files(path: Path, builder: str) -> dict[str, list[str]]:
    """{split: files} as the load will see them: ours for data files, `datasets`' own patterns for folders."""
    if builder not in ("imagefolder", "audiofolder"):
        return _data_files(path, builder)
    from datasets.data_files import DataFilesDict, get_data_patterns

    base = path.expanduser().resolve().as_posix()  # what load_dataset(data_dir=...) resolves
    found = DataFilesDict.from_patterns(get_data_patterns(base), base_path=base)
    return {str(name): sorted(str(f) for f in files) for name, files in found.items()}


def _check_files(splits: dict[str, list[str]], builder: str, source: str, kwargs: dict[str, Any]) -> dict[str, list[str]]:
    """The splits without empty text files; ValueError for files that are empty or unopenable (see module doc)."""
    if builder in TEXT_BUILDERS:
        kept = {name: [f for f in files if not _is_blank(f)] for name, files in splits.items()}
        for name, files in splits.items():
            if not kept[name]:  # a blank file holds no rows; skipped unless nothing else is left
                names = ", ".join(Path(f).name for f in files[:5]) + (", ..." if len(files) > 5 else "")
                what = f"{files[0]!r} is empty" if len(files) == 1 else \
                    f"every {builder} file of split {name!r} in {source!r} is empty ({names})"
                raise ValueError(f"{what}; expected {EXPECTED[builder]}")
        files = [f for fs in kept.values() for f in fs]
        if sum(os.path.getsize(f) for f in files) <= PRESCAN_BYTES and (problem := content_problem(files, builder, kwargs)):
            raise ValueError(problem)
        return kept
    from PIL import Image

    for file in (f for fs in splits.values() for f in fs):
        suffix = Path(file).suffix.lower()
        if os.path.getsize(file) == 0:
            raise ValueError(f"{file!r} is empty; expected a {suffix or builder} file with data")
        if builder == "imagefolder" and suffix in IMAGE_EXTS:
            try:
                with Image.open(file):
                    pass  # the header only: identifying the format is cheap, decoding is left for later
            except (OSError, SyntaxError) as err:
                raise ValueError(f"{file!r}: PIL cannot open it as an image ({type(err).__name__}: {err}); "
                                 f"expected a valid {suffix} file; fix or remove it") from err
    return splits


def _root_cause(err: BaseException) -> BaseException:
    """The innermost exception of a chain (datasets wraps the real reason in DatasetGenerationError)."""
    while (inner := err.__cause__ or err.__context__) is not None and inner is not err:
        err = inner
    return err


def check_split(names: list[str], split: str, source: str) -> None:
    """ValueError unless `split` is one of `names` or "all", listing the splits there are."""
    if split != "all" and split not in names:
        raise ValueError(
            f"{source!r} has no split {split!r}; available splits: {', '.join(sorted(names))} (or 'all'). "
            f"To get a test split, put files under {source}/train/ and {source}/test/"
        )


def select_split(dsets: Any, split: str, source: str):
    """One split of a DatasetDict ("all" concatenates every split), with an error listing the splits."""
    import datasets

    if isinstance(dsets, datasets.Dataset):
        if split not in ("train", "all"):
            raise ValueError(f"{source!r} holds a single dataset; split {split!r} does not exist (use 'train' or 'all')")
        return dsets
    if split == "all":
        return datasets.concatenate_datasets([dsets[name] for name in sorted(dsets)])
    check_split(list(dsets), split, source)
    return dsets[split]


def load_local_dataset(path: str | Path, split: str = "train", **kwargs: Any):
    """Load a local file/folder with the inferred packaged builder; kwargs go to `datasets.load_dataset`."""
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path {str(path)!r} does not exist")
    source = str(path)
    check_readable(path)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        return select_split(datasets.load_from_disk(source), split, source)
    builder = infer_builder(path)
    if builder == "audiofolder" and not _has_torchcodec():
        # datasets' Audio feature decodes through torchcodec (FFmpeg); without it, list the files ourselves
        # with the same layout rules and let the collators decode with soundfile.
        from multissl.data.audio_folder import load_audio_folder

        return load_audio_folder(path, split=split)
    splits = split_files(path, builder)
    check_split(list(splits), split, source)  # a missing split fails here, before any loading
    if builder == "text":
        kwargs.setdefault("sample_by", "paragraph")
    splits = _check_files(splits, builder, source, kwargs)
    try:
        if builder in ("imagefolder", "audiofolder"):
            dsets = datasets.load_dataset(builder, data_dir=source, **kwargs)
        else:
            dsets = datasets.load_dataset(builder, data_files=splits, **kwargs)
    except (datasets.exceptions.DatasetGenerationError, ValueError, OSError, StopIteration) as err:
        files = [f for fs in splits.values() for f in fs]
        cause = _root_cause(err)
        reason = content_problem(files, builder, kwargs) if builder in TEXT_BUILDERS else None
        if reason is None and "corresponds to no data" in str(cause):  # e.g. a CSV with only a header, JSON []
            reason = f"{source!r} has no rows in split {split!r}; expected {EXPECTED.get(builder, 'data files')} with at least one row"
        reason = reason or (f"cannot load {source!r} with datasets' {builder!r} builder: "
                            f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}")
        raise ValueError(reason) from err
    if builder == "text" and kwargs.get("sample_by") == "paragraph":
        # `datasets` splits on exactly "\n\n": strip the stray newlines of longer gaps, drop blank rows.
        dsets = dsets.map(lambda b: {"text": [t.strip() for t in b["text"]]}, batched=True)
        dsets = dsets.filter(lambda b: [bool(t) for t in b["text"]], batched=True)
    return select_split(dsets, split, source)
