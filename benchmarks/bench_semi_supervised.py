"""Semi-supervised table on digits: every method of the family vs supervised-only on the same few labels vs all labels.

For each seed: every `recipes/<method>_digits.yaml` of the family (the shared budget: 300 steps, 4 labels per class,
B = 32 labeled + 7B unlabeled rows a step, the same ResNet), `train.seed` = the seed, which also picks the labeled rows
(label_seed: null); "supervised-only" is recipes/fixmatch_digits.yaml with model.lambda_u=0 (the labeled stream alone:
exactly the same labeled batches every method sees, no unlabeled rows); "all labels (bound)" is the same with
model.label_fraction=1.0 (every training label, same network, views and steps). Each run's own classifier
(`classify`, the semi-supervised number) is scored once on the chosen split with multissl.evaluation.classifier.

    OMP_NUM_THREADS=1 python benchmarks/bench_semi_supervised.py                        # test split, 3 seeds, writes docs
    OMP_NUM_THREADS=1 python benchmarks/bench_semi_supervised.py --split validation --seeds 0 --methods uda   # tuning
    OMP_NUM_THREADS=1 python benchmarks/bench_semi_supervised.py --split validation --seeds 0 --methods mean_teacher \
        --set model.lambda_u=10 --no-baselines --out runs/semi_tune/mt_lu10      # a candidate setting, own folder

With `--split test` (default) it writes docs/results/semi_supervised.md and .png (with a subset of --methods the page
names the methods it lacks); runs live under --out and are reused
when their final/ exists (--retrain to train again). Tune only with --split validation.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
METHODS = ["fixmatch", "uda", "mixmatch", "remixmatch", "pi_model", "temporal_ensembling", "mean_teacher", "vat",
           "pseudo_label", "noisy_student"]
BASELINES = {"supervised-only": ["model.lambda_u=0"],
             "all labels (bound)": ["model.lambda_u=0", "model.labels_per_class=null", "model.label_fraction=1.0"]}
SEEDS = (0, 1, 2)


def run_one(name: str, recipe_name: str, overrides: list[str], seed: int, out: Path, split: str, retrain: bool) -> dict:
    """Train (or reuse) one row at one seed; its classifier accuracy on `split`."""
    from _runs import train_or_reuse

    from multissl.data import load_dataset_by_name
    from multissl.evaluation.classifier import classifier_accuracy
    from multissl.models.loading import load_model
    from multissl.registry import get_method
    from multissl.training import load_recipe

    recipe = load_recipe(ROOT / "recipes" / f"{recipe_name}_digits.yaml",
                         [f"train.seed={seed}", "train.progress=false", "eval={}", *overrides])
    run = out / f"{name.split(' ')[0]}-seed{seed}"
    seconds = train_or_reuse(recipe, run, retrain)
    stamp = run / "bench_time.json"
    if seconds is None:
        seconds = json.loads(stamp.read_text())["train_s"] if stamp.exists() else None
    else:
        stamp.write_text(json.dumps({"train_s": seconds}))
    model = load_model(run / "final")
    collate = get_method(recipe.method).model_class.make_collator(model.config, train=False)
    scored = classifier_accuracy(model, load_dataset_by_name(recipe.dataset, split=split), collate)
    return {"row": name, "seed": seed, "split": split, "accuracy": scored["accuracy"], "n": scored["n"],
            "train_s": seconds, "steps": recipe.train.max_steps}


def write_docs(rows: list[dict], seeds: list[int], split: str, missing: list[str]) -> None:
    from _report import bar_chart, cell, markdown_table, mean_std

    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["row"], []).append(r)
    md_rows = {name: {"classifier accuracy": [r["accuracy"] for r in rs]} for name, rs in by.items()}
    extra = {name: {"train s / seed": cell([r["train_s"] for r in rs if r["train_s"]], 0)} for name, rs in by.items()}
    base = mean_std(md_rows["supervised-only"]["classifier accuracy"])[0]
    bound = mean_std(md_rows["all labels (bound)"]["classifier accuracy"])[0]
    for name in md_rows:
        m = mean_std(md_rows[name]["classifier accuracy"])[0]
        extra[name]["vs supervised-only"] = f"{m - base:+.3f}"
        extra[name]["gap to all labels"] = f"{bound - m:.3f}"
    methods_arg = "" if not missing else " --methods " + " ".join(m for m in METHODS if m not in missing)
    table = markdown_table(md_rows, ["classifier accuracy"], first="method (n seeds)", extra=extra)
    docs = ROOT / "docs" / "results"
    bar_chart(docs / "semi_supervised.png", {n: {"accuracy": v["classifier accuracy"]} for n, v in md_rows.items()},
              ["accuracy"], f"digits, 4 labels per class: {split} accuracy (mean ± std, {len(seeds)} seeds)",
              reference={"all labels": bound, "supervised-only": base})
    text = f"""# Semi-supervised on digits: supervised-only (same 40 labels) | every method | all labels

Written by `OMP_NUM_THREADS=1 python benchmarks/bench_semi_supervised.py --seeds {' '.join(map(str, seeds))}{methods_arg}`
(do not edit by hand).

* Data: `digits` (data_cards/digits.md), 8x8 scans upscaled to 32 px: train 1259 images, of which 4 per class
  (40) keep their label (class-balanced, chosen by the run seed) and 1219 are unlabeled (label column removed);
  validation 179, test 359. Chance 0.100.
* Budget, the same for every row: 300 steps, B = 32 labeled weak views + μB = 224 unlabeled rows a step (the
  baselines draw no unlabeled rows), the default ResNet, AdamW lr 2e-3, each method's `recipes/<method>_digits.yaml`
  with `train.seed` = the seed. Seeds: {', '.join(map(str, seeds))}.
* Score: the model's own classifier (`classify`), {split} split read once per number. "supervised-only" =
  recipes/fixmatch_digits.yaml with `model.lambda_u=0`; "all labels (bound)" = the same with every training label.
* Machine: {platform.machine()}, a shared 2-core CPU box, no GPU, one thread per run (times are wall seconds, noisy).

{"" if not missing else "* **Not in this table yet** (their runs have not been made at 3 seeds): " + ", ".join(missing)
 + ". The command without --methods trains them and reuses every finished run."}

![accuracy per method](semi_supervised.png)

{table}
"""
    (docs / "semi_supervised.md").write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/semi_table", help="run folders and results-<split>.json go here")
    parser.add_argument("--split", choices=("validation", "test"), default="test")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for the method rows (tuning; give such runs their own --out)")
    parser.add_argument("--no-baselines", action="store_true", help="only the method rows")
    args = parser.parse_args(argv)
    if args.overrides and args.out == parser.get_default("out"):
        parser.error("--set changes the recipe: give its runs their own --out, not the table's")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = [] if args.no_baselines else [(name, "fixmatch", over) for name, over in BASELINES.items()]
    plan += [(m, m, list(args.overrides)) for m in args.methods]
    rows = []
    for seed in args.seeds:
        for name, recipe_name, overrides in plan:
            t0 = time.perf_counter()
            row = run_one(name, recipe_name, overrides, seed, out, args.split, args.retrain)
            rows.append(row)
            print(f"{name:>22} seed {seed}: {args.split} accuracy {row['accuracy']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    (out / f"results-{args.split}.json").write_text(json.dumps(rows, indent=1))
    if args.split == "test" and not args.overrides and not args.no_baselines:  # a subset says which methods it lacks
        write_docs(rows, args.seeds, args.split, [m for m in METHODS if m not in args.methods])
        print("wrote docs/results/semi_supervised.md and .png")


if __name__ == "__main__":
    main()
