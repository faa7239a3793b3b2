"""Fine-tuning protocol on glyphs (SimCLR paper, 1% / 10% of the labels): a self-supervised encoder fine-tuned end to
end with a linear head vs the same ResNet from random init, same labeled rows, same budget (`multissl finetune`).

Encoders: the 600-step vision table's runs, runs/vision_glyphs_600/<method>-seedS (docs/results/vision-600.md; train
them with its command, benchmarks/bench_vision_glyphs.py --set all:train.max_steps=600 all:train.warmup_steps=40
--out runs/vision_glyphs_600 --name vision-600).
Seed S pairs encoder S with label seed S and training seed S; a method without encoder S uses encoder 0 (printed).
Budget: 200 steps, batch 64 (1%: the 52 labeled rows), AdamW, cosine, 20 warm-up steps, the supervised recipe's crops.

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py tune     # learning-rate grid, validation split, seed 0
    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py report   # test split once, seeds 0-2 -> docs/results/finetune.png

The scratch arm does not depend on the encoder (same ResNet, labels, budget, seeds), so the second method's runs
score the first's (`--scratch-from`, checked identical). Each fine-tuning is a folder under runs/finetune/ holding
finetune.json; a finished one is read, not retrained, so an interrupted benchmark continues where it stopped.
Prints a table of mean ± std over seeds and, per fraction, the ratio of fine-tuned to from-scratch accuracy (paired
by seed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import bar_chart, markdown_table, mean_std  # noqa: E402

FRACTIONS = (0.01, 0.1)
# The grid; each fraction gets a fourth point at the side where its best of the first three was at the edge (1%: the
# smallest rate with 600-step encoders; 10%: the largest).
TUNE_LRS = {0.01: (1.25e-4, 5e-4, 2e-3, 8e-3), 0.1: (5e-4, 2e-3, 8e-3, 2e-2)}
# The tune grid's pick on validation: the best mean of the two arms' accuracies (docs/results/finetune.md).
CHOSEN_LR = {0.01: 5e-4, 0.1: 8e-3}
SEEDS = (0, 1, 2)
RUNS = ROOT / "runs" / "finetune"
ENCODERS = ROOT / "runs" / "vision_glyphs_600"  # measured with the former 600-step budget


def _encoder(method: str, seed: int) -> tuple[Path, int]:
    """(encoder run folder, its seed): seed S's run, or seed 0's when S's is not there."""
    for s in (seed, 0):
        path = ENCODERS / f"{method}-seed{s}"
        if (path / "final" / "config.json").is_file():
            return path, s
    raise FileNotFoundError(f"no finished {method} run in {ENCODERS} (train it with the command of docs/results/vision-600.md)")


def _run(method: str, fraction: float, seed: int, lr: float, split: str, out: Path,
         scratch_from: Path | None = None) -> dict:
    """One `multissl finetune` (both arms, or the pretrained arm + scratch_from's scratch arm), or its saved result."""
    if (out / "finetune.json").is_file():
        return json.loads((out / "finetune.json").read_text())
    from multissl.training.finetune import finetune

    encoder, used = _encoder(method, seed)
    if used != seed:
        print(f"{method}: no encoder for seed {seed}; using seed {used}'s with label/training seed {seed}", flush=True)
    return finetune(encoder, "glyphs", out, label_fraction=fraction, label_seed=seed, seed=seed, split=split,
                    learning_rate=lr, max_steps=200, batch_size=64, num_workers=1, progress=False,
                    resume=(out / "pretrained").exists(), scratch_from=scratch_from)


def tune() -> None:
    """The learning-rate grid on the validation split (SimCLR encoder 0, seed 0), both arms."""
    print("| labels | lr | SimCLR fine-tuned | from scratch |\n|---|---|---|---|")
    for fraction in FRACTIONS:
        for lr in TUNE_LRS[fraction]:
            r = _run("simclr", fraction, 0, lr, "validation", RUNS / "tune" / f"simclr-f{fraction}-lr{lr:g}")
            print(f"| {fraction:.0%} | {lr:g} | {r['pretrained']['accuracy']:.3f} | {r['scratch']['accuracy']:.3f} |",
                  flush=True)


def report(methods: list[str]) -> None:
    """The test split, read once per (method, fraction, seed), mean ± std over SEEDS; the bar chart."""
    rows: dict[str, dict[str, list[float]]] = {}
    ratios: dict[str, dict[str, str]] = {}
    results = []
    for method in methods:
        for fraction in FRACTIONS:
            col = f"{fraction:.0%} labels"
            for seed in SEEDS:
                # The scratch arm depends on the architecture, labels, budget and seeds only, not on the encoder: the
                # first method's is reused (finetune checks the recipes are identical).
                first = RUNS / "report" / f"{methods[0]}-f{fraction}-s{seed}"
                r = _run(method, fraction, seed, CHOSEN_LR[fraction], "test",
                         RUNS / "report" / f"{method}-f{fraction}-s{seed}", None if method == methods[0] else first)
                results.append(r)
                rows.setdefault(f"{method} fine-tuned", {}).setdefault(col, []).append(r["pretrained"]["accuracy"])
                if method == methods[0]:
                    rows.setdefault("from scratch", {}).setdefault(col, []).append(r["scratch"]["accuracy"])
                print(f"{method} {col} seed {seed}: fine-tuned {r['pretrained']['accuracy']:.4f}, scratch "
                      f"{r['scratch']['accuracy']:.4f}", flush=True)
            pre, scratch = rows[f"{method} fine-tuned"][col], rows["from scratch"][col]
            m, s = mean_std([p / q for p, q in zip(pre, scratch)])
            ratios.setdefault(f"{method} fine-tuned", {})[f"ratio {col}"] = f"{m:.2f} ± {s:.2f}"
    columns = [f"{f:.0%} labels" for f in FRACTIONS]
    print(markdown_table(rows, columns, first="glyphs test fonts, classifier accuracy", extra=ratios))
    (RUNS / "report").mkdir(parents=True, exist_ok=True)
    (RUNS / "report" / "results-test.json").write_text(json.dumps(results, indent=2))
    bar_chart(ROOT / "docs" / "results" / "finetune.png", rows, columns,
              "fine-tuned vs from scratch, 1% / 10% labels (glyphs test, 3 seeds)",
              reference={"chance": 1 / 26})


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("tune", "report"))
    p.add_argument("--methods", nargs="+", default=["simclr", "rotation"], help="encoders to fine-tune (report)")
    args = p.parse_args()
    tune() if args.mode == "tune" else report(args.methods)


if __name__ == "__main__":
    main()
