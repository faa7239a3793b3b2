"""`multissl zero-shot --model DIR --image a.png --labels "cat,dog,car"`: ranked labels with probabilities."""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `zero-shot` sub-command."""
    p = subparsers.add_parser("zero-shot", help="zero-shot image classification with a trained CLIP model")
    p.add_argument("--model", required=True, help="a CLIP model folder (e.g. runs/clip/final)")
    p.add_argument("--image", required=True, action="append", help="an image file (repeatable)")
    p.add_argument("--labels", required=True, help='comma-separated class names, e.g. "cat,dog,car"')
    p.add_argument("--template", action="append", default=None, metavar="TEXT",
                   help="prompt template with one {} for the label (repeatable: the prompts are ensembled); "
                        "default: a small generic ensemble")
    p.add_argument("--top", type=int, default=None, help="print only the N best labels (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--invert", action="store_true",
                   help="invert the images' colours first (recipes/clip_digits.yaml trains on digits stored as light ink "
                        "on a dark background; a scan of dark ink on white paper needs --invert)")
    p.set_defaults(func=run)


def _open_image(path: str):
    """A PIL image from a file, with an error naming the file."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise FileNotFoundError(f"--image {path!r}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"--image {path!r}: not a readable image ({err})") from err


def run(args: argparse.Namespace) -> int:
    """Load the model, classify every image, print its labels from most to least probable."""
    from multissl.evaluation.zero_shot import DEFAULT_TEMPLATES, zero_shot_classify
    from multissl.models.loading import load_model

    labels = [label.strip() for label in args.labels.split(",")]
    if any(not label for label in labels):
        raise ValueError(f"--labels {args.labels!r}: empty label (expected comma-separated names like 'cat,dog,car')")
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be >= 1; got {args.top}")
    images = [_open_image(p) for p in args.image]
    if args.invert:
        from PIL import ImageOps

        images = [ImageOps.invert(im.convert("RGB")) for im in images]
    model = load_model(args.model)
    if not hasattr(model, "get_text_features"):
        raise TypeError(f"{args.model}: a {type(model).__name__} is not an image-text (CLIP) model")
    result = zero_shot_classify(model, images, labels, args.template or DEFAULT_TEMPLATES)
    report = []
    for path, probs in zip(args.image, result.probs):
        order = probs.argsort(descending=True)[: args.top]
        report.append({"image": path, "labels": [{"label": labels[i], "probability": float(probs[i])} for i in order.tolist()]})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(label) for label in labels)
    for entry in report:
        print(entry["image"])
        for rank, item in enumerate(entry["labels"], 1):
            print(f"  {rank:>2}. {item['label']:<{width}}  {item['probability']:.4f}")
    return 0
