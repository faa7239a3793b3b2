"""Vision SSL results table: every vision method + SimCLR, same budget on digits, vs the same architecture at random init.

For each method: train recipes/<method>_digits.yaml through the one training loop (same steps and batch size for all),
then embed digits train/test with the method's eval collator and report k-NN and linear-probe test accuracy of the
trained encoder and of the *same* model at its random initialisation (same seed: the weights training started from),
training wall time, and the mean per-dimension std of the L2-normalised test embeddings (near 0 = collapse).
MAE also writes its reconstruction grid (reconstructions.png) into its run folder.

    OMP_NUM_THREADS=1 python benchmarks/bench_vision_table.py --out runs/vision_table
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

METHODS = ["simclr", "rotation", "jigsaw", "relative_patch", "inpainting", "colorization", "moco", "byol", "dino", "mae"]
ROOT = Path(__file__).resolve().parents[1]


def embedding_std(feats: torch.Tensor) -> float:
    """Mean over dimensions of the std over samples of L2-normalised features [N, D] (0 = every image maps to one point)."""
    return float(F.normalize(feats, dim=-1).std(0).mean())


def score(model, spec, config, train_ds, test_ds, k: int) -> dict:
    """k-NN and linear-probe test accuracy + embedding std of `model`'s frozen features."""
    from multissl.evaluation.features import extract_features
    from multissl.evaluation.knn import knn_accuracy
    from multissl.evaluation.linear_probe import linear_probe_accuracy

    collate = spec.model_class.make_collator(config, train=False)
    xtr, ytr = extract_features(model, train_ds, collate, progress=False)
    xte, yte = extract_features(model, test_ds, collate, progress=False)
    knn = knn_accuracy(xtr, ytr, xte, yte, num_classes=10, k=k, temperature=0.1)
    lp = linear_probe_accuracy(xtr, ytr, xte, yte)["accuracy"]
    return {"knn": float(knn), "linear_probe": lp, "emb_std": embedding_std(xte), "dim": int(xte.shape[1])}


def run_method(name: str, out: Path, steps: int, batch_size: int, k: int, train_ds, test_ds,
               extra: list[str] | None = None) -> dict:
    """Train one method with the shared budget and score trained vs random-init features."""
    from transformers import AutoModel

    from multissl.data.batches import seed_everything
    from multissl.registry import get_method
    from multissl.training import load_recipe, train
    from multissl.training.loop import build_config, build_model

    overrides = [f"train.max_steps={steps}", f"train.batch_size={batch_size}", "train.progress=false",
                 "train.save_every=0", "eval={}"] + list(extra or [])
    recipe = load_recipe(ROOT / "recipes" / f"{name}_digits.yaml", overrides)
    spec = get_method(name)
    config = build_config(spec, recipe.model, recipe.source)
    seed_everything(recipe.train.seed)  # exactly what train() does first: this is the initialisation it starts from
    random_model = build_model(spec, config)
    row = {"method": name, "steps": steps, "batch_size": batch_size}
    row["random"] = score(random_model, spec, config, train_ds, test_ds, k)
    run_dir = out / name
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(recipe, run_dir)
    row["train_s"], row["train_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    row["final_loss"] = result.losses[-1] if result.losses else None
    trained = AutoModel.from_pretrained(result.final_dir)
    row["trained"] = score(trained, spec, trained.config, train_ds, test_ds, k)
    if hasattr(trained, "on_train_end"):  # MAE: reconstruction grid of test images
        batch = spec.model_class.make_collator(trained.config, train=False)([dict(image=im) for im in test_ds[:8]["image"]])
        trained.on_train_end(run_dir, batch)
    return row


def markdown(rows: list[dict]) -> str:
    """The results table as markdown."""
    head = ("| method | encoder | k-NN acc (random init) | linear probe (random init) | emb. std (random init) "
            "| train CPU s (wall s) | beats random on linear probe |\n|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        t, z = r["trained"], r["random"]
        enc = "ViT 4x128" if r["method"] == "mae" else "ResNet 32-64-128"
        lines.append(f"| {r['method']} | {enc} | {t['knn']:.3f} ({z['knn']:.3f}) | {t['linear_probe']:.3f} "
                     f"({z['linear_probe']:.3f}) | {t['emb_std']:.4f} ({z['emb_std']:.4f}) | {r['train_cpu_s']:.0f} ({r['train_s']:.0f}) "
                     f"| {'yes' if t['linear_probe'] > z['linear_probe'] else 'NO'} |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vision_table", help="run folders + results.json + table.md go here")
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per method (the shared budget)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--k", type=int, default=20, help="neighbours for k-NN")
    parser.add_argument("--set", nargs="*", default=[], metavar="METHOD:KEY=VALUE",
                        help="recipe override for one method, e.g. mae:model.mask_ratio=0.6")
    parser.add_argument("--render", nargs="*", metavar="RESULTS_JSON",
                        help="only print the markdown table of saved results.json files (concatenated), no training")
    args = parser.parse_args()
    if args.render:
        print(markdown([row for path in args.render for row in json.loads(Path(path).read_text())]))
        return
    torch.set_num_threads(1)

    from multissl.data import load_dataset_by_name

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; pass a new --out")
    out.mkdir(parents=True, exist_ok=True)
    train_ds, test_ds = load_dataset_by_name("digits", split="train"), load_dataset_by_name("digits", split="test")
    rows, t0 = [], time.perf_counter()
    for name in args.methods:
        extra = [item.split(":", 1)[1] for item in args.set if item.split(":", 1)[0] == name]
        rows.append(run_method(name, out, args.steps, args.batch_size, args.k, train_ds, test_ds, extra))
        r = rows[-1]
        print(f"{name}: lp {r['trained']['linear_probe']:.3f} (random {r['random']['linear_probe']:.3f}) "
              f"knn {r['trained']['knn']:.3f} (random {r['random']['knn']:.3f}) std {r['trained']['emb_std']:.4f} "
              f"train {r['train_s']:.0f}s (cpu {r['train_cpu_s']:.0f}s)", flush=True)
        (out / "results.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (out / "table.md").write_text(table)
    print(table)
    print(f"total wall time {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
