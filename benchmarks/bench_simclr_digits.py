"""SimCLR encoder vs the same architecture at random init on digits: k-NN and linear-probe accuracy.

Run: python benchmarks/bench_simclr_digits.py [--run-dir runs/simclr] [--retrain]
Trains recipes/simclr_digits.yaml into --run-dir unless its final/ exists (or --retrain), then
evaluates the trained and a freshly initialised model (same config, seed 0) with the same protocols.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from _runs import train_or_reuse  # benchmarks/ is on sys.path when a script here runs

from multissl.evaluation import evaluate_model
from multissl.registry import get_method
from multissl.training import build_config, build_model, load_recipe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="recipes/simclr_digits.yaml")
    ap.add_argument("--run-dir", default="runs/simclr")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    run = Path(args.run_dir)
    train_s = train_or_reuse(recipe, run, args.retrain)
    spec = get_method(recipe.method)
    torch.manual_seed(recipe.train.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        build_model(spec, build_config(spec, recipe.model)).save_pretrained(tmp)
        for name, folder in (("random init", tmp), ("SimCLR", str(run / "final"))):
            knn = evaluate_model(folder, "digits", "knn", k=20, temperature=0.1)["accuracy"]
            lin = evaluate_model(folder, "digits", "linear-probe")["accuracy"]
            rows.append((name, knn, lin))
    print(f"recipe={args.recipe} steps={recipe.train.max_steps} batch={recipe.train.batch_size} train_s={train_s}")
    print("| encoder | k-NN (k=20, T=0.1) | linear probe |\n|---|---|---|")
    for name, knn, lin in rows:
        print(f"| {name} | {knn:.4f} | {lin:.4f} |")
    print(json.dumps({n: {"knn": k, "linear_probe": lp} for n, k, lp in rows}))


if __name__ == "__main__":
    main()
