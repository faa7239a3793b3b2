"""`multissl data build NAME --out DIR`: generate a dataset the library can build offline (spoken_digits)."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `data` sub-command (and its `build` action)."""
    from multissl.data.espeak_voices import ALL_ACCENTS, ALL_VARIANTS, DIGITS

    p = subparsers.add_parser("data", help="build offline datasets (spoken_digits with espeak-ng)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="generate a dataset into a new folder")
    b.add_argument("name", choices=["spoken_digits"], help="what to build")
    b.add_argument("--out", required=True, help="a new (or empty) output folder")
    b.add_argument("--voices", nargs="+", default=list(ALL_ACCENTS), metavar="ACCENT",
                   help=f"espeak-ng English accents (default: all {len(ALL_ACCENTS)}: {' '.join(ALL_ACCENTS)})")
    b.add_argument("--variants", nargs="+", default=list(ALL_VARIANTS), metavar="VARIANT",
                   help=f"espeak-ng voice variants; speaker = accent+variant (default: {' '.join(ALL_VARIANTS)})")
    b.add_argument("--words", nargs="+", default=list(DIGITS), help="words to speak (default: the ten digits)")
    b.add_argument("--repeats", type=int, default=4, help="takes per (speaker, word), each with its own speed/pitch; "
                                                          "the last max(1, repeats // 4) are the test split (default 4)")
    b.add_argument("--seed", type=int, default=0, help="seed of the per-take speed/pitch draws")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the requested dataset and print where it is and how to load it."""
    from multissl.data.spoken_digits import build_spoken_digits, read_metadata

    out = build_spoken_digits(args.out, accents=args.voices, variants=args.variants, words=args.words,
                              repeats=args.repeats, seed=args.seed, progress=not args.no_progress)
    rows = read_metadata(out)
    speakers = {r["speaker"] for r in rows}
    n_train = sum(r["split"] == "train" for r in rows)
    print(f"wrote {len(rows)} clips ({len(speakers)} speakers, {n_train} train / {len(rows) - n_train} test) to {out}")
    print(f"load it with: load_dataset_by_name('spoken_digits', path={str(out)!r}) "
          f"or a recipe's `dataset: spoken_digits` + `dataset_args: {{path: {out}}}`")
    return 0
