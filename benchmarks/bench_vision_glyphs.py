"""Vision results table on glyphs: every vision method vs its random init vs the supervised bound, 3 seeds.

For each method and seed: train recipes/<method>_glyphs.yaml (its shipped budget, `train.seed` = the seed)
through the one training loop, then embed glyphs train / validation / test with the method's eval collator
and score the frozen features with
  * k-NN (k = 20, T = 0.1, fitted on train) and
  * a linear probe whose C is chosen on the validation split (tuned_linear_probe); the test split is read
    once, for the chosen C.
The same network at its initialisation (same seed: the weights training started from) is scored the same way
(the "random init" column), and the `supervised` method (same ResNet, cross-entropy on all train labels,
recipes/supervised_glyphs.yaml) gives the upper bound. Test fonts are never seen in train or validation.

    OMP_NUM_THREADS=1 python benchmarks/bench_vision_glyphs.py                          # tables on test, 3 seeds
    OMP_NUM_THREADS=1 python benchmarks/bench_vision_glyphs.py --split validation --seeds 0 --methods simclr   # tuning

With `--split test` (default) it writes docs/results/vision.md and vision.png when the runs are the table's own
(the default --out) or --name / --docs is given; a job into another --out (one method, one seed) leaves the page
alone. Runs are kept under --out and reused when their final/ exists (delete the folder, or pass --retrain, to train again). `--set all:KEY=V`
changes every method's recipe, e.g. the table at the former budget, a quarter of the shipped one
(docs/results/vision-600.md; its runs are bench_finetune.py's encoders):

    OMP_NUM_THREADS=1 python benchmarks/bench_vision_glyphs.py --set all:train.max_steps=600 all:train.warmup_steps=40 \
        --out runs/vision_glyphs_600 --name vision-600
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
METHODS = ["simclr", "moco", "byol", "dino", "mae", "rotation", "jigsaw", "relative_patch", "inpainting", "colorization"]
SEEDS = (0, 1, 2)
K, TEMPERATURE = 20, 0.1


def features(model, config, spec, splits: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (features [N, D], labels [N])} with the method's deterministic eval collator."""
    from multissl.evaluation.features import extract_features

    collate = spec.model_class.make_collator(config, train=False)
    return {name: extract_features(model, ds, collate, progress=False) for name, ds in splits.items()}


def scores(feats: dict, split: str) -> dict[str, float]:
    """k-NN and tuned-probe accuracy on `split` (validation while tuning, test for the report)."""
    from multissl.evaluation.knn import knn_accuracy
    from multissl.evaluation.linear_probe import tuned_linear_probe

    (xtr, ytr), (xva, yva) = feats["train"], feats["validation"]
    xs, ys = feats[split]
    knn = knn_accuracy(xtr, ytr, xs, ys, num_classes=26, k=K, temperature=TEMPERATURE)
    if split == "validation":
        probe = tuned_linear_probe(xtr, ytr, xva, yva)
        return {"knn": float(knn), "linear-probe": probe["validation_accuracy"], "C": probe["C"]}
    probe = tuned_linear_probe(xtr, ytr, xva, yva, xs, ys)
    return {"knn": float(knn), "linear-probe": probe["accuracy"], "C": probe["C"]}


def glyphs_recipe(method: str, seed: int, overrides: list[str]):
    """recipes/<method>_glyphs.yaml at `seed`, quiet, with the --set overrides for that method."""
    from multissl.training import load_recipe

    return load_recipe(ROOT / "recipes" / f"{method}_glyphs.yaml",
                       [f"train.seed={seed}", "train.progress=false", "eval={}", *overrides])


def run_one(method: str, seed: int, out: Path, split: str, splits: dict, overrides: list[str], retrain: bool) -> dict:
    """Train (or reuse) one method at one seed; score its random init and its trained encoder."""
    from _runs import train_or_reuse

    from multissl.data.batches import seed_everything
    from multissl.models.loading import load_model
    from multissl.registry import get_method
    from multissl.training.loop import build_config, build_model

    recipe = glyphs_recipe(method, seed, overrides)
    spec = get_method(method)
    config = build_config(spec, recipe.model, recipe.source)
    seed_everything(seed)  # what train() does first: this is the initialisation training starts from
    row = {"method": method, "seed": seed, "split": split, "steps": recipe.train.max_steps,
           "batch_size": recipe.train.batch_size}
    row["random"] = scores(features(build_model(spec, config), config, spec, splits), split)
    run = out / f"{method}-seed{seed}"
    seconds = train_or_reuse(recipe, run, retrain)
    if seconds is None:  # reused: the time recorded when it was trained
        seconds = json.loads((run / "bench_time.json").read_text())["train_s"] if (run / "bench_time.json").exists() else None
    else:
        (run / "bench_time.json").write_text(json.dumps({"train_s": seconds}))
    row["train_s"] = seconds
    trained = load_model(run / "final")
    row["trained"] = scores(features(trained, trained.config, spec, splits), split)
    return row


def table(rows: list[dict]) -> tuple[str, dict]:
    """Markdown table (random init | method | supervised) and the per-seed values behind the plot.

    Each trained row also gets its linear-probe gain over the same seed's random init (paired by seed: mean ± std,
    and mean / std, the issue's "more than 3 std" test) and its probe as a share of the supervised bound's mean.
    """
    from _report import cell, markdown_table, mean_std

    order = ["supervised", *METHODS]
    by = {}
    for r in sorted(rows, key=lambda r: (order.index(r["method"]) if r["method"] in order else len(order), r["seed"])):
        by.setdefault(r["method"], []).append(r)
    bound = mean_std([r["trained"]["linear-probe"] for r in by["supervised"]])[0] if "supervised" in by else None
    plot_rows, md_rows, extra = {}, {}, {}
    for method, rs in by.items():
        name = "supervised (bound)" if method == "supervised" else method
        for kind in ("random", "trained"):
            if method == "supervised" and kind == "random":
                continue
            label = f"{name} (random init)" if kind == "random" else name
            md_rows[label] = {c: [r[kind][c] for r in rs] for c in ("knn", "linear-probe")}
            extra[label] = {"train s / seed": cell([r["train_s"] for r in rs if r.get("train_s")], 0) if kind == "trained" else "",
                            "steps × batch": f"{rs[0]['steps']} × {rs[0]['batch_size']}" if kind == "trained" else "",
                            "probe − random init (paired)": "", "% of bound": ""}
            if kind == "trained" and method != "supervised":
                gains = [r["trained"]["linear-probe"] - r["random"]["linear-probe"] for r in rs]
                m, s = mean_std(gains)
                ratio = f" ({m / s:+.1f} std)" if s > 0 else ""
                extra[label]["probe − random init (paired)"] = f"{m:+.3f} ± {s:.3f}{ratio}"
            if kind == "trained" and bound:
                extra[label]["% of bound"] = f"{100 * mean_std(md_rows[label]['linear-probe'])[0] / bound:.0f}%"
        plot_rows[method] = {"random init": [r["random"]["linear-probe"] for r in rs],
                             "trained": [r["trained"]["linear-probe"] for r in rs]}
    return markdown_table(md_rows, ["knn", "linear-probe"], first="features (n seeds)", extra=extra), plot_rows


def method_overrides(items: list[str], method: str) -> list[str]:
    """The KEY=VALUE overrides of `--set` items that apply to `method`: 'METHOD:KEY=V' and 'all:KEY=V'.

    A malformed item is one error line naming it, before anything trains.
    """
    out = []
    for item in items:
        target, sep, override = item.partition(":")
        if not sep or "=" not in override:
            raise SystemExit(f"--set {item!r}: expected METHOD:KEY=VALUE or all:KEY=VALUE")
        if target in (method, "all"):
            out.append(override)
    return out


def drop_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option` and its value (both the '--opt V' and the '--opt=V' forms)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def page(md: str, rows: list[dict], command: str = "", name: str = "vision") -> str:
    """docs/results/<name>.md: what was run (`command`: the arguments), how, on what machine, the table, the plot."""
    seeds = sorted({r["seed"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    budget = sorted({(r["steps"], r["batch_size"]) for r in rows})
    overridden = " and the command's `--set` overrides" if "--set" in command.split() else ""
    return f"""# Vision on glyphs: random init | method | supervised bound

Written by `OMP_NUM_THREADS=1 python benchmarks/bench_vision_glyphs.py{command and ' ' + command}` (do not edit by hand).

* Data: `glyphs` at 32 px (data_cards/glyphs.md): train 4992 images of 12 fonts, validation 1040 of 5 other fonts,
  test 1560 of 6 further fonts never seen in training or validation. Chance 1/26 = 0.038.
* Budget, the same for every method: {', '.join(f'{s} steps x {b} images' for s, b in budget)}, AdamW, one process,
  each method's `recipes/<method>_glyphs.yaml` with `train.seed` = the seed{overridden}. Seeds: {', '.join(map(str, seeds))}
  ({len(seeds)} per row{'' if len(seeds) > 1 else ': a single seed, so ± 0.000 is not a spread'}).
* Protocol: frozen `embed` features; k-NN with k = 20, T = 0.1 fitted on train; linear probe with C chosen on the
  validation split from (0.001, 0.01, 0.1, 1, 10), then the test split read once. "random init" is the same network at
  the weights its training started from. "probe − random init (paired)": trained minus random-init probe per seed,
  mean ± std over seeds and, in brackets, mean / std. "% of bound": the probe's mean over the supervised bound's.
* Machine: a shared 2-core CPU box, no GPU, 1 thread per run, other jobs running (times are wall seconds per seed and
  noisy).
* Methods measured: {', '.join(methods)}.

{md}

![linear probe per method, random init vs trained]({name}.png)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vision_glyphs", help="run folders + results.json go here")
    parser.add_argument("--methods", nargs="*", default=METHODS + ["supervised"])
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--split", choices=("validation", "test"), default="test",
                        help="validation while tuning recipes; test (read once per number) for the report")
    parser.add_argument("--set", nargs="*", default=[], metavar="METHOD:KEY=VALUE",
                        help="recipe override for one method (simclr:model.loss_temperature=0.5) or for all of them "
                             "(all:train.max_steps=2400)")
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "results"), help="where NAME.md / NAME.png go (test split)")
    parser.add_argument("--name", default="vision", help="the page's and the plot's file name in --docs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    unknown = sorted({m for m in args.methods if m not in METHODS + ["supervised"]})
    if unknown:
        raise SystemExit(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(METHODS + ['supervised'])}")
    per_method = {m: method_overrides(args.set, m) for m in args.methods}

    from multissl.data import load_dataset_by_name

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {s: load_dataset_by_name("glyphs", split=s) for s in ("train", "validation", "test")}
    if args.split == "validation":
        splits.pop("test")  # tuning never reads the test fonts
    results_file = out / f"results-{args.split}.json"
    rows = json.loads(results_file.read_text()) if results_file.exists() else []
    done = {(r["method"], r["seed"]) for r in rows}
    t0 = time.perf_counter()
    for method in args.methods:
        overrides = per_method[method]
        for seed in args.seeds:
            if (method, seed) in done and not args.retrain:
                from _runs import check_reusable

                # the row was scored from this run: reused only if the run matches the recipe asked for (overrides too)
                check_reusable(glyphs_recipe(method, seed, overrides), out / f"{method}-seed{seed}")
                continue
            r = run_one(method, seed, out, args.split, splits, overrides, args.retrain)
            rows = [x for x in rows if (x["method"], x["seed"]) != (method, seed)] + [r]
            results_file.write_text(json.dumps(rows, indent=2))
            print(f"{method} seed {seed} [{args.split}]: probe {r['trained']['linear-probe']:.3f} (random "
                  f"{r['random']['linear-probe']:.3f}) knn {r['trained']['knn']:.3f} (random {r['random']['knn']:.3f}) "
                  f"train {r['train_s'] or 0:.0f}s", flush=True)
    rows = [r for r in rows if r["method"] in args.methods and r["seed"] in args.seeds]
    md, plot_rows = table(rows)
    print(md)
    print(f"wall time {time.perf_counter() - t0:.0f}s")
    from _report import page_wanted

    if args.split == "test" and page_wanted(sys.argv[1:], args.out, parser.get_default("out"), ("--name", "--docs")):
        from _report import bar_chart

        docs = Path(args.docs)
        bar_chart(docs / f"{args.name}.png", plot_rows, ["random init", "trained"],
                  "glyphs (test fonts unseen): linear probe, C tuned on validation, mean ± std over seeds",
                  reference={"chance": 1 / 26})
        command = shlex.join(drop_option(sys.argv[1:], "--docs"))  # --docs says where the page goes, not what it holds
        (docs / f"{args.name}.md").write_text(page(md, rows, command, args.name))
        print(f"wrote {docs / (args.name + '.png')} and {docs / (args.name + '.md')}")


if __name__ == "__main__":
    main()
