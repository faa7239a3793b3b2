"""`multissl data build NAME`: generate a dataset the library builds offline with espeak-ng.

spoken_digits is written to a new folder (`--out DIR`); spoken_words is built into multissl's cache
(`$MULTISSL_CACHE`, the same place `load_dataset_by_name("spoken_words")` builds it at first use).
"""
from __future__ import annotations

import argparse

BUILDABLE = ("spoken_digits", "spoken_words")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `data` sub-command (and its `build` action)."""
    from multissl.data.espeak_voices import ALL_ACCENTS, ALL_VARIANTS

    p = subparsers.add_parser("data", help="build offline datasets (spoken_digits, spoken_words with espeak-ng)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="generate a dataset (spoken_digits into --out, spoken_words into the cache)")
    b.add_argument("name", choices=BUILDABLE, help="what to build")
    b.add_argument("--out", default=None, help="spoken_digits: a new (or empty) output folder (required); "
                                               "spoken_words: not used (it is cached under $MULTISSL_CACHE)")
    b.add_argument("--voices", nargs="+", default=None, metavar="ACCENT",
                   help=f"espeak-ng English accents (spoken_digits default: all {len(ALL_ACCENTS)}: {' '.join(ALL_ACCENTS)}; "
                        f"spoken_words default: its 8)")
    b.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                   help=f"espeak-ng voice variants; speaker = accent+variant (spoken_digits default: {' '.join(ALL_VARIANTS)}; "
                        f"spoken_words default: its 6)")
    b.add_argument("--words", nargs="+", default=None, help="words to speak (default: the ten digits / spoken_words' 30)")
    b.add_argument("--repeats", type=int, default=4, help="spoken_digits: takes per (speaker, word), each with its own "
                                                          "speed/pitch; the last max(1, repeats // 4) are the test split (default 4)")
    b.add_argument("--seed", type=int, default=0, help="seed of the per-take draws")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=run)
    add_shard_parser(actions)
    add_sample_parser(actions)


def add_sample_parser(actions: argparse._SubParsersAction) -> None:
    """`data sample KIND --out DIR`: a small folder in the layout multissl reads as your own data (docs/own_data.md)."""
    s = actions.add_parser("sample", help="write a small example folder (images, text, audio, image-caption pairs) "
                                          "in the layout multissl reads as your own data")
    s.add_argument("kind", choices=("images", "text", "audio", "captions"), help="which layout")
    s.add_argument("--out", required=True, help="a new folder (never an existing one)")
    s.add_argument("--per-split", type=int, default=None, metavar="N",
                   help="rows per split (default: train 200, validation 50, test 50)")
    s.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    """Write the sample folder and say how to train on it."""
    from multissl.data.samples import write_sample

    per = None if args.per_split is None else dict.fromkeys(("train", "validation", "test"), args.per_split)
    out = write_sample(args.kind, args.out, per)
    print(f"wrote {out} (train/ validation/ test/): see docs/own_data.md for the command that trains on it")
    return 0


def add_shard_parser(actions: argparse._SubParsersAction) -> None:
    """`data shard SRC --out DIR --kind KIND`: a local folder -> parquet shards a `streaming:` recipe reads."""
    s = actions.add_parser("shard", help="write a local folder (images, audio, text, image-caption pairs) as parquet shards")
    s.add_argument("src", help="the folder (or file) to shard, laid out as multissl reads local data")
    s.add_argument("--out", required=True, help="a new output folder (refused if it exists)")
    s.add_argument("--kind", required=True, choices=["images", "audio", "text", "captions"], help="what the folder holds")
    s.add_argument("--shard-size", type=int, default=1000, help="rows per parquet file (default 1000)")
    s.add_argument("--seed", type=int, default=0, help="seed of the row order written (default 0)")
    s.set_defaults(func=run_shard)


def run(args: argparse.Namespace) -> int:
    """Build the requested dataset and print where it is and how to load it."""
    if args.name == "spoken_words":
        return _build_spoken_words(args)
    from multissl.data.espeak_voices import ALL_ACCENTS, ALL_VARIANTS, DIGITS
    from multissl.data.spoken_digits import build_spoken_digits, read_metadata

    if args.out is None:
        raise ValueError("multissl data build spoken_digits needs --out DIR (a new or empty folder)")
    out = build_spoken_digits(args.out, accents=args.voices or ALL_ACCENTS, variants=args.variants or ALL_VARIANTS,
                              words=args.words or DIGITS, repeats=args.repeats, seed=args.seed,
                              progress=not args.no_progress)
    rows = read_metadata(out)
    speakers = {r["speaker"] for r in rows}
    n_train = sum(r["split"] == "train" for r in rows)
    print(f"wrote {len(rows)} clips ({len(speakers)} speakers, {n_train} train / {len(rows) - n_train} test) to {out}")
    print(f"load it with: load_dataset_by_name('spoken_digits', path={str(out)!r}) "
          f"or a recipe's `dataset: spoken_digits` + `dataset_args: {{path: {out}}}`")
    return 0


def _build_spoken_words(args: argparse.Namespace) -> int:
    """Build (or find) the cached spoken_words corpus and print its splits."""
    import datasets

    from multissl.data import spoken_words as sw

    if args.out is not None:
        raise ValueError("spoken_words is built into multissl's cache ($MULTISSL_CACHE), not --out; drop --out")
    choice = {"accents": tuple(args.voices or sw.SPOKEN_WORDS_ACCENTS), "variants": tuple(args.variants or sw.SPOKEN_WORDS_VARIANTS),
              "words": tuple(args.words or sw.SPOKEN_WORDS)}
    folder = sw.cached_build(seed=args.seed, progress=not args.no_progress, **choice)
    parts = datasets.load_from_disk(str(folder / "data"))
    sizes = ", ".join(f"{s} {len(parts[s])}" for s in sw.BUILT_SPLITS)
    print(f"spoken_words ({len(parts['train'].features['speaker'].names)} speakers, "
          f"{len(parts['train'].features['word'].names)} words): {sizes} clips in {folder}")
    extra = "".join(f", {k}={list(v)!r}" for k, v in choice.items() if getattr(args, {'accents': 'voices'}.get(k, k)))
    print(f"load it with: load_dataset_by_name('spoken_words', split='train', seed={args.seed}{extra})")
    return 0


def run_shard(args: argparse.Namespace) -> int:
    """Shard the folder and print what was written and how a recipe streams it."""
    import datasets

    from multissl.data.shard import shard_folder

    datasets.disable_progress_bars()  # reading the folder: its bars would bury the one line that matters
    counts = shard_folder(args.src, args.out, args.kind, shard_size=args.shard_size, seed=args.seed)
    files = sum(-(-n // args.shard_size) for n in counts.values())
    print(f"wrote {', '.join(f'{n} {split}' for split, n in counts.items())} rows in {files} parquet file(s) to {args.out}")
    print(f"stream it with a recipe's `dataset: {args.out}` + `streaming: {{shuffle_buffer: 1000}}`")
    return 0
