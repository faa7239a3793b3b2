"""`multissl tokenizer train --input FILES|DATASET --vocab-size N --model-type unigram|bpe --out DIR`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `tokenizer` sub-command (one action: train)."""
    p = subparsers.add_parser("tokenizer", help="train a sentencepiece tokenizer saved as a transformers fast tokenizer")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = actions.add_parser("train", help="train on text files/folders or a built-in text dataset (e.g. python_docs)")
    t.add_argument("--input", nargs="+", required=True,
                   help="text files, folders of *.txt, or one built-in text dataset name (its train split)")
    t.add_argument("--vocab-size", type=int, default=8000, help="number of pieces, special tokens included (default 8000)")
    t.add_argument("--model-type", default="unigram", help="unigram (default) or bpe")
    t.add_argument("--character-coverage", type=float, default=0.9995, help="share of characters kept (rest -> <unk>)")
    t.add_argument("--out", required=True, help="output folder (written atomically); load with AutoTokenizer.from_pretrained")
    t.set_defaults(func=run)


def input_texts(inputs: list[str]) -> list[str]:
    """Texts from one built-in dataset name, or from the lines of the given files / folders of *.txt."""
    from multissl.data import builtin_dataset_names, load_dataset_by_name
    from multissl.modalities.text.tokenizer import read_text_files

    if len(inputs) == 1 and inputs[0] in builtin_dataset_names():
        ds = load_dataset_by_name(inputs[0], split="train")
        if "text" not in ds.column_names:
            raise ValueError(f"dataset {inputs[0]!r} has no 'text' column (columns: {ds.column_names}); it is not a text dataset")
        return list(ds["text"])
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.rglob("*.txt"))
            if not found:
                raise FileNotFoundError(f"--input folder {item!r} holds no *.txt files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            known = ", ".join(builtin_dataset_names())
            raise FileNotFoundError(f"--input {item!r} is neither a file, a folder nor a built-in dataset ({known})")
    return read_text_files(files)


def run(args: argparse.Namespace) -> int:
    """Train and save; print the folder, vocabulary size and an example encoding."""
    from transformers import AutoTokenizer

    from multissl.modalities.text.tokenizer import train_tokenizer

    out = train_tokenizer(input_texts(args.input), args.out, args.vocab_size, args.model_type, args.character_coverage)
    tok = AutoTokenizer.from_pretrained(out)
    example = "Return the number of items."
    print(f"saved {args.model_type} tokenizer ({len(tok)} tokens) to {out}")
    print(f"{example!r} -> {tok.convert_ids_to_tokens(tok(example)['input_ids'])}")
    return 0
