"""Metric learning on glyphs: retrieval among letters never trained on, every loss vs random init vs softmax vs a bound.

Every row trains recipes/metric_glyphs.yaml (the same ResNet + 64-d embedding, letters A-P of the train fonts,
400 steps x 64 images) with `--set model.loss=<loss>` and that loss's knobs (ROWS), at `train.seed` = each seed,
then scores leave-one-out R@1, R@8 and MAP@R (cosine on `embed`) among letters Q-Z of the test fonts: classes
and typefaces the model never saw. Beside them:
  * random init: the same network at the weights its training started from (arcface's build, same seed);
  * softmax (A-P): plain softmax cross-entropy on A-P through the metric method's `center` loss with
    center_weight = 0 (a Linear classifier on the embedding; the usual metric-learning baseline);
  * supervised (A-Z, bound): the `supervised` method on all 26 letters of the train fonts (it has seen labels of
    Q-Z, in other fonts), same 400 x 64 budget.

    OMP_NUM_THREADS=1 python benchmarks/bench_metric_retrieval.py --seeds 0 1 2                  # test table, 3 seeds
    OMP_NUM_THREADS=1 python benchmarks/bench_metric_retrieval.py --split validation --seeds 0 --rows cosface \\
        --set cosface:model.margin=0.2                                                          # tuning

With `--split test` (default) it writes docs/results/metric.md and metric.png when the runs are the table's own
(the default --out) or --docs is given; another --out leaves the page alone. Runs live under --out, named by
row, a hash of their overrides and the seed, and are reused when final/ exists (so a validation run is the
test run of the same settings: the split only changes what is scored). Knobs were tuned on validation only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SEEDS = (0, 1, 2)
TRAIN_CLASSES = tuple(range(16))  # A..P; Q..Z (16..25) are retrieved
SUPERVISED = ["train.max_steps=400", "train.warmup_steps=40", "train.batch_size=64", "train.log_every=50",
              "train.save_every=0", "train.num_workers=0"]  # the metric recipe's budget; one process, like every other row
# row id -> (label, recipe stem, overrides). Knobs: the recipe's s = 16 for the class-weight heads (16 classes);
# each loss's own default otherwise (triplet's margin is set because the recipe's 0.3 is arcface's).
ROWS: dict[str, tuple[str, str, list[str]]] = {
    "arcface": ("arcface", "metric_glyphs", ["model.loss=arcface", "model.scale=16.0", "model.margin=0.3"]),
    "subcenter_arcface": ("sub-center arcface (K=3)", "metric_glyphs",
                          ["model.loss=subcenter_arcface", "model.scale=16.0", "model.margin=0.3", "model.sub_centers=3"]),
    "cosface": ("cosface", "metric_glyphs", ["model.loss=cosface", "model.scale=16.0", "model.margin=0.35"]),
    "center": ("softmax + center", "metric_glyphs", ["model.loss=center", "model.center_weight=0.01"]),
    # 16 training classes give at most 16 pairs a batch: 32-row micro-batches, 2 of them per step keeps 64 images.
    # l2_reg chosen on validation (seed 0): Sohn's 0.002 held the raw inner products small (R@1 0.44 vs 0.62 at 0).
    "n_pair": ("n-pair", "metric_glyphs", ["model.loss=n_pair", "model.l2_reg=0.0", "train.batch_size=32",
                                           "train.gradient_accumulation_steps=2"]),
    # mining chosen on validation (seed 0): batch-hard collapsed (R@1 0.180, random init's level), semi-hard 0.357,
    # all triplets averaged over the violating ones 0.730.
    "triplet": ("triplet (all triplets)", "metric_glyphs", ["model.loss=triplet", "model.margin=0.2",
                                                            "model.triplet_mining=all"]),
    "supcon": ("supcon", "metric_glyphs", ["model.loss=supcon", "model.loss_temperature=0.1"]),
    "softmax": ("softmax (A-P)", "metric_glyphs", ["model.loss=center", "model.center_weight=0.0"]),
    "supervised": ("supervised (A-Z, bound)", "supervised_glyphs", SUPERVISED),
}
RANDOM = "random"  # the random-init row: arcface's network before training
COLUMNS = {"R@1": "recall_at_1", "R@8": "recall_at_8", "MAP@R": "map_at_r"}


def run_tag(overrides: list[str]) -> str:
    """8 hex digits naming a list of overrides (order kept): a run folder is reused only for the same settings."""
    return hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]


def parse_sets(items: list[str], rows: dict = ROWS) -> dict[str, list[str]]:
    """'ROW:KEY=VALUE' items -> {row: [KEY=VALUE, ...]}; a ValueError names an unknown row or a malformed item."""
    out: dict[str, list[str]] = {}
    for item in items:
        row, sep, kv = item.partition(":")
        if not sep or "=" not in kv:
            raise ValueError(f"--set items look like ROW:KEY=VALUE (e.g. cosface:model.margin=0.2); got {item!r}")
        if row not in rows:
            raise ValueError(f"--set {item!r}: unknown row {row!r}; rows: {', '.join(rows)}")
        out.setdefault(row, []).append(kv)
    return out


def chance_recall_at_1(counts: list[int]) -> float:
    """Expected leave-one-out R@1 of a random ranking with `counts` rows per class: mean over queries of (n_c - 1) / (N - 1)."""
    n = sum(counts)
    if n < 2 or any(c < 1 for c in counts):
        raise ValueError(f"counts must be positive class sizes summing to >= 2; got {counts}")
    return sum(c * (c - 1) for c in counts) / (n * (n - 1))


def summarise(results: list[dict], order: list[str]) -> tuple[str, dict]:
    """Markdown table (rows in `order`, mean ± std over seeds of R@1 / R@8 / MAP@R) and {label: {column: values}} to plot."""
    from _report import cell, markdown_table

    md_rows, extra, plot = {}, {}, {}
    for row in order:
        rs = sorted((r for r in results if r["row"] == row), key=lambda r: r["seed"])
        if not rs:
            continue
        label = "random init" if row == RANDOM else ROWS[row][0]
        md_rows[label] = {c: [r[key] for r in rs] for c, key in COLUMNS.items()}
        plot[label] = md_rows[label]
        times = [r["train_s"] for r in rs if r.get("train_s")]
        extra[label] = {"seeds": ", ".join(str(r["seed"]) for r in rs),
                        "train s / seed": cell(times, 0) if times else "",
                        "steps × batch": f"{rs[0]['steps']} × {rs[0]['batch']}" if row != RANDOM else ""}
    return markdown_table(md_rows, list(COLUMNS), first="embedding (mean ± std over seeds)", extra=extra), plot


def near_random(results: list[dict], within: float = 0.05) -> list[str]:
    """Labels of trained rows whose mean R@1 is at most `within` above random init's mean R@1 (learned nothing that transfers)."""
    def mean_r1(row: str) -> float | None:
        values = [r["recall_at_1"] for r in results if r["row"] == row]
        return sum(values) / len(values) if values else None

    base = mean_r1(RANDOM)
    if base is None:
        return []
    return [ROWS[row][0] for row in ROWS if (m := mean_r1(row)) is not None and m <= base + within]


def settings_list(order: list[str]) -> str:
    """One Markdown bullet per trained row: its recipe and overrides."""
    return "\n".join(f"  * {ROWS[r][0]}: `recipes/{ROWS[r][1]}.yaml` + `{' '.join(ROWS[r][2])}`" for r in order if r in ROWS)


def default_tags() -> dict[str, str]:
    """{row: run_tag of its settings in ROWS} ('' for random init): the runs the test table reports."""
    return {RANDOM: "", **{row: run_tag(spec[2]) for row, spec in ROWS.items()}}


def validation_table(results: list[dict]) -> str:
    """Every setting scored on validation (Q-Z of the validation fonts), one line each: what tuning saw."""
    order = [RANDOM, *ROWS]
    lines = ["| row | recipe overrides | reported | seed | R@1 | R@8 | MAP@R |", "|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (order.index(r["row"]) if r["row"] in order else len(order), r["tag"], r["seed"])):
        sets = "(the arcface network, untrained)" if r["row"] == RANDOM else f"`{' '.join(r.get('settings', r['overrides']))}`"
        mark = "yes" if default_tags().get(r["row"]) == r["tag"] else "no"
        lines.append(f"| {r['row']} | {sets} | {mark} | {r['seed']} | {r['recall_at_1']:.3f} | {r['recall_at_8']:.3f} "
                     f"| {r['map_at_r']:.3f} |")
    return "\n".join(lines)


def page(md: str, seeds: list[int], order: list[str], chance: float, validation: str, flat: list[str]) -> str:
    """docs/results/metric.md: how it was run, the table, the plot and what tuning saw."""
    one = len(seeds) == 1
    return f"""# Metric learning on glyphs: retrieval among letters and fonts never trained on

Written by `OMP_NUM_THREADS=1 python benchmarks/bench_metric_retrieval.py --seeds {' '.join(map(str, seeds))}` (do not edit by hand;
finished runs under `runs/metric_table/` are reused).

* Data: `glyphs` at 32 px (data_cards/glyphs.md). Training: letters A-P of the 12 train fonts. Scored: letters Q-Z of
  the 6 test fonts (600 images, 60 per letter), classes and typefaces no metric-learning row saw.
* Protocol (Musgrave et al. 2020): every image queries the other 599 by cosine similarity of `embed` (the L2-normalised
  64-d embedding; backbone features for the `supervised` row); R@k = some same-letter image among the k nearest,
  MAP@R = mean average precision over the first R = 59 neighbours. Chance R@1 = {chance:.3f}.
* Budget, every trained row: 400 steps × 64 images, AdamW lr 2e-3, weight decay 1e-4, 20 warm-up steps, one process,
  `train.seed` = the seed; seeds {', '.join(map(str, seeds))}{' (one seed: ± 0.000 is not a spread)' if one else ''}.
  Settings per row:
{settings_list(order)}
* Knobs were varied on the validation split only (Q-Z of 5 other fonts; every setting tried is in the table at the end:
  a row with a single line there was not tuned); the test split was read once per reported number.
* "random init": the arcface network at the weights its training started from. "supervised (A-Z, bound)" saw labels of
  Q-Z (in the train fonts), so it is an upper reference, not a competitor; "softmax (A-P)" is the plain classifier
  trained on A-P only, the usual metric-learning baseline.
* Machine: a shared 2-core CPU box, no GPU, 1 thread, other jobs running (wall seconds per seed are noisy).

{md}

Rows within 0.05 R@1 of random init (nothing learned that transfers to Q-Z): {', '.join(flat) or 'none'}.

![R@1 and MAP@R on Q-Z of the test fonts, mean ± std over seeds](metric.png)

## Validation (what tuning saw; Q-Z of the validation fonts, 400 images)

{validation}
"""


def run_one(row: str, seed: int, out: Path, eval_ds, overrides: list[str], retrain: bool) -> dict:
    """Train (or reuse) one row at one seed and score retrieval on Q-Z of eval_ds."""
    from _runs import train_or_reuse

    from multissl.evaluation.metric_eval import evaluate_retrieval
    from multissl.models.loading import load_model
    from multissl.training import load_recipe

    label, stem, base = ROWS[row]
    sets = [*base, *overrides]
    run = out / f"{row}-{run_tag(sets)}-seed{seed}"
    recipe = load_recipe(ROOT / "recipes" / f"{stem}.yaml", [*sets, f"train.seed={seed}", "train.progress=false", "eval={}"])
    seconds = train_or_reuse(recipe, run, retrain)
    timing = run / "bench_time.json"
    if seconds is None:
        seconds = json.loads(timing.read_text())["train_s"] if timing.exists() else None
    else:
        timing.write_text(json.dumps({"train_s": seconds}))
    res = evaluate_retrieval(load_model(run / "final"), eval_ds, exclude_classes=TRAIN_CLASSES, ks=(1, 8))
    return {"row": row, "tag": run_tag(sets), "overrides": overrides, "settings": sets, "seed": seed, "train_s": seconds,
            "steps": recipe.train.max_steps, "batch": recipe.train.batch_size * recipe.train.gradient_accumulation_steps,
            **{k: res[k] for k in COLUMNS.values()}}


def random_init(seed: int, eval_ds) -> dict:
    """The arcface row's network at its initialisation for `seed`, scored like the trained rows."""
    from multissl.data.batches import seed_everything
    from multissl.evaluation.metric_eval import evaluate_retrieval
    from multissl.registry import get_method
    from multissl.training import load_recipe
    from multissl.training.loop import build_config, build_model

    recipe = load_recipe(ROOT / "recipes" / "metric_glyphs.yaml", [*ROWS["arcface"][2], f"train.seed={seed}"])
    spec = get_method("metric")
    config = build_config(spec, recipe.model, recipe.source)
    seed_everything(seed)  # what train() does first
    res = evaluate_retrieval(build_model(spec, config), eval_ds, exclude_classes=TRAIN_CLASSES, ks=(1, 8))
    return {"row": RANDOM, "tag": "", "overrides": [], "seed": seed, **{k: res[k] for k in COLUMNS.values()}}


def build_parser() -> argparse.ArgumentParser:
    """The command line (also parsed by the test of the command docs/results/metric.md shows)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "metric_table"), help="run folders + results-<split>.json")
    parser.add_argument("--rows", nargs="*", choices=[RANDOM, *ROWS], default=[RANDOM, *ROWS])
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--split", choices=("validation", "test"), default="test",
                        help="validation while tuning; test (read once per number) for the report")
    parser.add_argument("--set", nargs="*", default=[], metavar="ROW:KEY=VALUE",
                        help="an extra recipe override for one row while tuning, e.g. cosface:model.margin=0.2")
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "results"), help="where metric.md / metric.png go (test split)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    extra = parse_sets(args.set)
    import torch

    torch.set_num_threads(1)
    from multissl.data import load_dataset_by_name
    from multissl.data.class_split import label_column_tensor, select_classes

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    eval_ds = load_dataset_by_name("glyphs", split=args.split)
    results_file = out / f"results-{args.split}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else []
    t0 = time.perf_counter()
    for row in args.rows:
        overrides = extra.get(row, [])
        tag = "" if row == RANDOM else run_tag([*ROWS[row][2], *overrides])
        for seed in args.seeds:
            if any((r["row"], r["tag"], r["seed"]) == (row, tag, seed) for r in results) and not args.retrain:
                continue
            r = random_init(seed, eval_ds) if row == RANDOM else run_one(row, seed, out, eval_ds, overrides, args.retrain)
            results = [x for x in results if (x["row"], x["tag"], x["seed"]) != (row, tag, seed)] + [r]
            results_file.write_text(json.dumps(results, indent=2))
            print(f"{row} {' '.join(overrides)} seed {seed} [{args.split}]: R@1 {r['recall_at_1']:.3f} "
                  f"R@8 {r['recall_at_8']:.3f} MAP@R {r['map_at_r']:.3f} train {r.get('train_s') or 0:.0f}s", flush=True)
    # The report uses each row's default settings only (tuning variants stay in the json and the validation table).
    tags = default_tags()
    chosen = [r for r in results if r["row"] in args.rows and r["seed"] in args.seeds and r["tag"] == tags[r["row"]]]
    md, plot = summarise(chosen, [RANDOM, *ROWS])
    print(md)
    print(f"wall time {time.perf_counter() - t0:.0f}s")
    from _report import page_wanted

    if args.split == "test" and page_wanted(sys.argv[1:], args.out, build_parser().get_default("out")):
        from _report import bar_chart

        held = select_classes(eval_ds, "label", [c for c in range(26) if c not in TRAIN_CLASSES])
        chance = chance_recall_at_1(torch.bincount(label_column_tensor(held, "label"))[16:].tolist())
        validation_file = out / "results-validation.json"
        validation = validation_table(json.loads(validation_file.read_text())) if validation_file.exists() else "(none run)"
        docs = Path(args.docs)
        bar_chart(docs / "metric.png", {k: {c: v[c] for c in ("R@1", "MAP@R")} for k, v in plot.items()}, ["R@1", "MAP@R"],
                  "glyphs: retrieval among unseen letters Q-Z of unseen fonts, mean ± std over seeds",
                  ylabel="test R@1 / MAP@R", reference={"chance R@1": chance})
        (docs / "metric.md").write_text(page(md, sorted(args.seeds), [*ROWS], chance, validation, near_random(chosen)))
        print(f"wrote {docs / 'metric.png'} and {docs / 'metric.md'}")


if __name__ == "__main__":
    main()
