"""Text FixMatch and UDA against the supervised-only baseline on python_docs_topics with few labels.

Rows (each mean ± std over seeds 0, 1, 2; seed k draws the labeled subset, the batches and the init of the head):
  supervised only  recipes/text_fixmatch_topics.yaml with model.lambda_u=0: the same labeled batches, no unlabeled rows
  FixMatch         recipes/text_fixmatch_topics.yaml
  UDA              recipes/text_uda_topics.yaml
  frozen MiniLM + logistic regression on the same labeled rows (C chosen on validation): a no-training reference
The number is the accuracy of the model's own classifier (TextSemiModel.classify), not a probe that reads every
training label. Hyperparameters are chosen with `--split validation` (test never read); the default reads test once
per run. Runs go to <out>/<row>-seed<k>/ and are reused when finished (benchmarks/_runs.py), scores to
<out>/scores/, so an interrupted command continues. Prints each row and the ratio of UDA's and FixMatch's training
time to the baseline's; --docs writes docs/results/text_semi.md.

    OMP_NUM_THREADS=1 python benchmarks/bench_text_semi.py --out runs/text_semi --docs

Tuning: OMP_NUM_THREADS=1 python benchmarks/bench_text_semi.py --out runs/text_semi_tune --split validation \
    --seeds 0 --set text_uda_topics:model.tsa_schedule=linear
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import cell, markdown_table, mean_std  # noqa: E402
from _runs import train_or_reuse  # noqa: E402

SEEDS = (0, 1, 2)
ROWS = {  # row -> (recipe, extra --set overrides)
    "supervised only (λ_u = 0)": ("text_fixmatch_topics", ["model.lambda_u=0"]),
    "FixMatch": ("text_fixmatch_topics", []),
    "UDA": ("text_uda_topics", []),
}
SLUG = {"supervised only (λ_u = 0)": "supervised", "FixMatch": "fixmatch", "UDA": "uda"}
REFERENCE = "frozen MiniLM + logistic regression (same labels)"
FROZEN: dict = {}  # split -> (features, labels) of the frozen start, shared by the seeds' reference rows


def topics(split: str):
    """python_docs_topics rows of `split`, shortest first (batches pad little; order does not change accuracy)."""
    from multissl.data.python_docs_topics import load_python_docs_topics

    ds = load_python_docs_topics(split)
    return ds.add_column("n", [len(t) for t in ds["text"]]).sort("n").remove_columns(["n"])


class _Logits(torch.nn.Module):
    """model.classify exposed as embed, so extract_features' batching / eval mode / label removal is reused."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def embed(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.model.classify(**batch)


def classifier_accuracy(model, ds) -> float:
    """mean 1[argmax classify(x) == y] over `ds` with the method's eval collator."""
    from multissl.evaluation.features import extract_features

    collate = type(model).make_collator(model.config, train=False)
    logits, labels = extract_features(_Logits(model), ds, collate, batch_size=64, progress=False)
    return float((logits.argmax(-1) == labels).float().mean())


def recipe(name: str, seed: int, extra: list[str], overrides: dict[str, list[str]]):
    """recipes/<name>.yaml at `seed`, quiet, with the row's and the command line's overrides."""
    from multissl.training import load_recipe

    sets = [f"train.seed={seed}", "train.progress=false", "train.save_every=0", *extra, *overrides.get(name, [])]
    return load_recipe(ROOT / "recipes" / f"{name}.yaml", sets)


def tail_mean(run: Path, key: str, last: int = 3) -> float | None:
    """Mean of the last `last` logged values of metrics.jsonl's `key` (None when never logged)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    values = [r[key] for r in rows if key in r]
    return sum(values[-last:]) / len(values[-last:]) if values else None


def run_row(row: str, seed: int, args, data: dict) -> dict:
    """Train (or reuse) one run and score its classifier; cached in <out>/scores/."""
    name, extra = ROWS[row]
    run = args.out / f"{SLUG[row]}-seed{seed}"
    path = args.out / "scores" / f"{SLUG[row]}-seed{seed}-{args.split}.json"
    if path.is_file() and not args.retrain and (run / "final").is_dir():
        return json.loads(path.read_text())
    seconds = train_or_reuse(recipe(name, seed, extra, args.overrides), run, args.retrain)
    if seconds is not None:
        (run / "train_seconds.json").write_text(json.dumps(seconds))
    from multissl.models.loading import load_model

    model = load_model(run / "final")
    t0 = time.perf_counter()
    scored = {"test": data["test"]} if "test" in data else data  # the runs were tuned on validation; report test once
    out = {s: classifier_accuracy(model, ds) for s, ds in scored.items()}
    out.update(eval_s=time.perf_counter() - t0, train_s=json.loads((run / "train_seconds.json").read_text()),
               mask_rate=tail_mean(run, "mask_rate"), supervised_loss=tail_mean(run, "supervised_loss"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


def reference(seed: int, args, data: dict) -> dict:
    """Frozen MiniLM (the recipes' start) + a C-tuned logistic regression on the run's labeled rows."""
    path = args.out / "scores" / f"reference-seed{seed}-{args.split}.json"
    if path.is_file() and not args.retrain:
        return json.loads(path.read_text())
    from multissl.data.semi_supervised import labeled_unlabeled_rows
    from multissl.evaluation.features import extract_features
    from multissl.evaluation.linear_probe import tuned_linear_probe
    from multissl.registry import get_method
    from multissl.training.loop import build_config, build_model

    t0 = time.perf_counter()
    r = recipe("text_fixmatch_topics", seed, [], args.overrides)
    spec = get_method(r.method)
    config = build_config(spec, r.model, r.source)
    model = build_model(spec, config)
    train = topics("train")
    lab, _ = labeled_unlabeled_rows(train, config.label_column, labels_per_class=config.labels_per_class,
                                    label_fraction=config.label_fraction,
                                    seed=seed if config.label_seed is None else config.label_seed)
    collate = spec.model_class.make_collator(config, train=False)
    if not FROZEN:  # the frozen start is the same for every seed: embed the held-out splits once
        FROZEN.update({s: extract_features(model, ds, collate, batch_size=64, progress=False) for s, ds in data.items()})
    feats = {"train": extract_features(model, train.select(lab), collate, batch_size=64, progress=False), **FROZEN}
    test = feats["test"] if "test" in feats else (None, None)
    lp = tuned_linear_probe(*feats["train"], *feats["validation"], *test)
    out = {"validation": lp["validation_accuracy"], "C": lp["C"], "eval_s": time.perf_counter() - t0}
    if "test" in feats:
        out["test"] = lp["accuracy"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


HISTORY = [  # how the shipped settings were reached (runs kept under runs/text_semi_tune*, runs/text_semi_paper_thresholds)
    "* Tuned on the validation split (supervised-only row, seed 0): only the head's learning-rate scale "
    "`classifier_lr_scale` — 1 (60 steps): 0.288; 20 (60 steps): 0.387; 100 (40 steps): 0.410. With 1 the randomly "
    "initialised head barely moves at MiniLM's learning rate (training loss still 1.6 of ln 20 = 3.0 after 60 steps).",
    "* First full attempt with the papers' thresholds (FixMatch τ = 0.95, UDA β = 0.8), μ = 2, classifier_lr_scale 20, "
    "seed 0: the mask rate stayed 0.000 for all 40 steps in both, so both trained exactly the supervised loss "
    "(test 0.419 and 0.419 vs supervised 0.422; the frozen reference 0.481). The switch to FreeMatch's self-adaptive "
    "thresholds (momentum 0.9, an EMA over ~10 steps) and to β = 0 (every UDA target kept) was made on that training "
    "mask rate; it was not validated at the final scale of 100, and μ went from 2 to 1 to fit the time budget. Test "
    "numbers of that attempt were seen before the change: read the table above as one setting fixed in advance, "
    "not a tuned one.",
    "* Not tuned at all: learning rate 1e-4, steps 40, B = 8, the noise probabilities (0.1 each), UDA's T = 0.4, "
    "max_seq_length 32.",
]


READING = [
    "* At this budget neither semi-supervised row beats the supervised-only baseline on the same labeled batches, and "
    "none beats a logistic regression on the frozen start's features: 40 steps read 320 unlabeled paragraphs (a tenth "
    "of the unlabeled set once), far from the papers' hundreds of thousands of steps. The table is an honest small-"
    "budget measurement of this implementation, not a reproduction of the papers' gains.",
    "* FixMatch with FreeMatch thresholds: the threshold starts at 1/C = 0.05, so at step 10 (seed 0) 97% of the "
    "unlabeled rows were already pseudo-labeled while the head was right on 6% of that step's labeled rows (the "
    "baseline's: 22%); "
    "those hard, mostly wrong labels pull the classifier away (its supervised loss ends at 1.0-1.4 vs 0.3-0.4 "
    "for the baseline). Confirmation bias, the failure FixMatch's high τ exists to prevent.",
    "* UDA with every target kept (β = 0) keeps soft, sharpened targets (T = 0.4): it is hurt less (-0.04) and its "
    "spread over seeds is closer to the baseline's.",
    "* Cost: a step of either reads B labeled + μB strong rows with gradient and μB weak rows without; at μ = 1 that "
    "is 1.8x the supervised step's wall time here (printed by the command).",
]


def page(results: dict, args, total_s: float) -> str:
    """docs/results/text_semi.md (total_s: this invocation's wall time; the page reports recorded per-run times)."""
    col = "test"
    spent = sum(r.get("train_s", 0.0) + r.get("eval_s", 0.0) for per_seed in results.values() for r in per_seed)
    rows = {name: {col: [r[col] for r in per_seed]} for name, per_seed in results.items()}
    extra = {name: {"train wall s": f"{mean_std([r['train_s'] for r in per_seed])[0]:.0f}",
                    "final mask rate": cell([r["mask_rate"] for r in per_seed]) if per_seed[0].get("mask_rate") is not None else ""}
             for name, per_seed in results.items() if "train_s" in per_seed[0]}
    base = results["supervised only (λ_u = 0)"]
    deltas = [f"* {name} minus supervised only, test: {cell([a[col] - b[col] for a, b in zip(results[name], base)])}"
              for name in ("FixMatch", "UDA")]
    budget = [f"| {n} | " + " | ".join(str(v) for v in budget_of(n, args)) + " |" for n in ("text_fixmatch_topics", "text_uda_topics")]
    return "\n".join([
        "# Text FixMatch and UDA: python_docs_topics with 4 labels per class", "",
        "Regenerated (reusing finished runs under `--out`) by:", "",
        "```bash", "OMP_NUM_THREADS=1 python benchmarks/bench_text_semi.py --out runs/text_semi --docs", "```", "",
        f"Machine: {args.machine}. Training + scoring the nine trained runs took {spent / 60:.0f} min of wall time in "
        "all (recorded per run; the command reuses finished runs); the frozen reference adds about a minute.", "",
        "Task: 20 classes, the stdlib package a paragraph documents (data_cards/python_docs.md); 4 labeled paragraphs "
        "per class (80 labels, drawn class-balanced by each seed), the other 3430 training paragraphs unlabeled (label "
        "column removed). Score: test accuracy of the model's own classifier (`classify`), mean ± std over seeds "
        f"{', '.join(map(str, args.seeds))} (sample std); seed k fixes the labeled subset, the batches and the head's "
        "init, and the three trained rows of one seed share them (the supervised row trains on exactly the same "
        "labeled batches). The test split is read once per run; see below for what was chosen how. "
        "All rows start from all-MiniLM-L6-v2 and read a paragraph's first 32 tokens. The reference row fits a "
        "logistic regression (C chosen on validation) on the frozen start's mean-pooled features of the same 80 rows.",
        "", "## Test split", "",
        markdown_table(rows, [col], first="method", extra=extra), "",
        "## Differences (paired by seed)", "", *deltas, "",
        "## Reading", "", *READING, "",
        "## Budgets (the shipped recipes)", "",
        "| recipe | steps | labeled batch B | mu | labeled per class | learning rate | threshold | noise | head lr scale |",
        "|---|---|---|---|---|---|---|---|---|", *budget, "",
        "## How the settings were chosen", "", *HISTORY, ""])


def budget_of(name: str, args) -> list:
    r = recipe(name, 0, [], args.overrides)
    m = r.model
    return [r.train.max_steps, r.train.batch_size, m.get("mu"), m.get("labels_per_class"), r.train.learning_rate,
            m.get("threshold"), m.get("noise"), m.get("classifier_lr_scale")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/text_semi"))
    parser.add_argument("--split", choices=("test", "validation"), default="test",
                        help="validation: tune (never reads test); test: the reported numbers")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--rows", nargs="*", default=[*ROWS, REFERENCE], choices=[*ROWS, REFERENCE], metavar="ROW")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="RECIPE:KEY=VALUE", dest="sets")
    parser.add_argument("--docs", action="store_true", help="write docs/results/text_semi.md (test split only)")
    parser.add_argument("--machine", default="2 shared CPU cores (x86_64, busy with other work), no GPU, OMP_NUM_THREADS=1")
    args = parser.parse_args()
    args.overrides = {}
    for s in args.sets:
        name, _, kv = s.partition(":")
        args.overrides.setdefault(name, []).append(kv)
    splits = ("validation", "test") if args.split == "test" else ("validation",)
    data = {s: topics(s) for s in splits}
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:  # seed-major: a partial command still gives every row of the seeds it finished
        for row in args.rows:
            r = reference(seed, args, data) if row == REFERENCE else run_row(row, seed, args, data)
            results.setdefault(row, []).append(r)
            print(f"seed {seed} {row}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in r.items()), flush=True)
    total = time.perf_counter() - t0
    for row, per_seed in results.items():
        print(f"{row}: " + ", ".join(f"{s} {cell([r[s] for r in per_seed])}" for s in splits if s in per_seed[0]))
    base = results.get("supervised only (λ_u = 0)")
    for row in ("FixMatch", "UDA"):
        if base and row in results:
            ratio = mean_std([r["train_s"] for r in results[row]])[0] / mean_std([r["train_s"] for r in base])[0]
            print(f"{row}: training time / supervised-only training time = {ratio:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results-{args.split}.json").write_text(json.dumps(results, indent=1))
    if args.docs and args.split == "test":
        (ROOT / "docs" / "results" / "text_semi.md").write_text(page(results, args, total))
    print(f"total wall {total:.0f} s")


if __name__ == "__main__":
    main()
