"""CLIP on digits_captions: zero-shot accuracy on held-out digits by class name, vs chance and vs linear probes.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_clip_zero_shot.py [--run-dir runs/clip] [--retrain]
Trains recipes/clip_digits.yaml into --run-dir unless its final/ exists (or --retrain). Then, on the
359 test images (never seen in training), for the trained model and the same config at random init:
* zero-shot top-1/top-5 with class names as words ("seven") or numerals ("7"), through
  (a) one caption template used in training, (b) an ensemble of 4 templates never used in training;
* linear probes (logistic regression fitted on the 1438 training images) on the same image
  embeddings the zero-shot classifier uses (projected, L2-normalised) and on the vision tower's features;
* exact-pair image<->text retrieval recall@1/5/10 and median rank on the test pairs, and the
  fraction of queries whose top-1 retrieved item has the query's label ("label@1": a caption
  here only says which digit it is, so ~36 test images fit each caption equally well).
Chance is 1/10 top-1, 5/10 top-5.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _runs import train_or_reuse  # benchmarks/ is on sys.path when a script here runs

from multissl.data import load_dataset_by_name
from multissl.data.digits_captions import NUMBER_WORDS
from multissl.evaluation import extract_features, linear_probe_accuracy
from multissl.evaluation.clip_retrieval import evaluate_retrieval
from multissl.evaluation.dual_encoder import encode_images, encode_texts
from multissl.evaluation.zero_shot import zero_shot_classify
from multissl.models.clip import make_clip_collator
from multissl.models.loading import load_model
from multissl.registry import get_method
from multissl.training import build_config, build_model, load_recipe

SEEN = ["a handwritten digit {}"]  # one of the dataset's caption templates
UNSEEN = ["a picture of the number {}.", "an image of a {}.", "this is the digit {}", "{}"]


def evaluate(model, train_ds, test_ds) -> dict:
    """Every number of one row of the results table."""
    labels = torch.tensor(test_ds["label"])
    out = {}
    for names_kind, names in (("words", list(NUMBER_WORDS)), ("numerals", [str(d) for d in range(10)])):
        for temps_kind, temps in (("seen", SEEN), ("unseen", UNSEEN)):
            acc = zero_shot_classify(model, test_ds["image"], names, temps, labels=labels).accuracy
            out[f"zero_shot_{names_kind}_{temps_kind}"] = acc
    y_train = torch.tensor(train_ds["label"])
    proj = linear_probe_accuracy(encode_images(model, train_ds["image"]), y_train, encode_images(model, test_ds["image"]), labels)
    collate = make_clip_collator(model.config, train=False)
    tr, _ = extract_features(model, train_ds.select_columns(["image"]), collate, label_column=None, progress=False)
    te, _ = extract_features(model, test_ds.select_columns(["image"]), collate, label_column=None, progress=False)
    tower = linear_probe_accuracy(tr, y_train, te, labels)
    out["linear_probe_embeddings"], out["linear_probe_tower"] = proj["accuracy"], tower["accuracy"]
    out["retrieval"] = evaluate_retrieval(model, test_ds)
    img, txt = encode_images(model, test_ds["image"]), encode_texts(model, test_ds["caption"])
    for direction, (q, k) in (("image_to_text", (img, txt)), ("text_to_image", (txt, img))):
        out["retrieval"][direction]["label@1"] = float((labels[(q @ k.T).argmax(1)] == labels).float().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/clip_digits.yaml")
    ap.add_argument("--run-dir", default="runs/clip")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    recipe, run = load_recipe(args.recipe), Path(args.run_dir)
    train_s = train_or_reuse(recipe, run, args.retrain)
    spec = get_method(recipe.method)
    torch.manual_seed(recipe.train.seed)
    random_model = build_model(spec, build_config(spec, recipe.model)).eval()  # same towers, MiniLM loaded, rest random
    train_ds = load_dataset_by_name("digits_captions", split="train")
    test_ds = load_dataset_by_name("digits_captions", split="test")
    results = {"random init": evaluate(random_model, train_ds, test_ds), "CLIP": evaluate(load_model(run / "final"), train_ds, test_ds)}
    print(f"recipe={args.recipe} steps={recipe.train.max_steps} batch={recipe.train.batch_size} train_s={train_s}")
    print("| model | zero-shot words, seen template (top-1 / top-5) | words, 4 unseen templates | numerals, seen | "
          "numerals, unseen | linear probe: embeddings | linear probe: vision tower |\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        zs = [r[f"zero_shot_{n}_{t}"] for n in ("words", "numerals") for t in ("seen", "unseen")]
        cells = " | ".join(f"{a['top1']:.4f} / {a['top5']:.4f}" for a in zs)
        print(f"| {name} | {cells} | {r['linear_probe_embeddings']:.4f} | {r['linear_probe_tower']:.4f} |")
    print("| chance | 0.1000 / 0.5000 | | | | 0.1 | 0.1 |")
    print("\n| model | direction | R@1 | R@5 | R@10 | median rank | label@1 |\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for direction in ("image_to_text", "text_to_image"):
            m = r["retrieval"][direction]
            print(f"| {name} | {direction} | {m['recall@1']:.4f} | {m['recall@5']:.4f} | {m['recall@10']:.4f} | {m['median_rank']:.1f} | {m['label@1']:.4f} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
