"""Linear probe per encoder layer: the runs of bench_vision_table.py vs the same architecture at random init.

Pretext tasks specialise their last layers to the pretext (Gidaris et al. 2018 found RotNet's
second conv block best; Kolesnikov et al. 2019 saw the best layer vary by method), so this
probes every stage of the encoder, not only the final pooled features the main table uses.
For each run folder RUN/<method>/final: global-average-pooled output of every ResNet stage
(ViT: mean patch token after every layer), linear probe (multissl.evaluation) on digits
train -> test, for the trained model and for the random initialisation training started from
(rebuilt from RUN/<method>/recipe.yaml with the same seed, as bench_vision_table.py does).

    OMP_NUM_THREADS=1 python benchmarks/bench_vision_table.py --out runs/vision_table   # first: the runs
    OMP_NUM_THREADS=1 python benchmarks/bench_vision_layers.py runs/vision_table
    # the scale an encoder was trained at (jigsaw: 12 px tiles): resize the eval images first
    OMP_NUM_THREADS=1 python benchmarks/bench_vision_layers.py runs/vision_table --methods jigsaw --input-size 12
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F


@torch.no_grad()
def layer_features(model, dataset, collate, batch_size: int = 256,
                   input_size: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """([per-layer features [N, D_l]], labels [N]) of `model.backbone` on `dataset` (resized to input_size if set)."""
    per_layer: list[list[torch.Tensor]] = []
    labels: list[int] = []
    model.eval()
    for start in range(0, len(dataset), batch_size):
        chunk = dataset[start:start + batch_size]
        rows = [dict(zip(chunk, values)) for values in zip(*chunk.values())]
        pixels = collate(rows)["pixel_values"]  # [B, 3, S, S]
        if input_size is not None:
            pixels = F.interpolate(pixels, size=(input_size, input_size), mode="bilinear", antialias=True)
        hidden = model.backbone(pixel_values=pixels, output_hidden_states=True).hidden_states
        # hidden[0] is the stem / patch embedding: not a learned stage worth probing separately
        pooled = [h.mean((2, 3)) if h.dim() == 4 else h[:, 1:].mean(1) for h in hidden[1:]]
        if not per_layer:
            per_layer = [[] for _ in pooled]
        for acc, feats in zip(per_layer, pooled):
            acc.append(feats)
        labels += chunk["label"]
    return [torch.cat(parts) for parts in per_layer], torch.tensor(labels)


def probe_layers(model, spec, config, train_ds, test_ds, input_size: int | None = None) -> list[float]:
    """Linear-probe test accuracy of every layer's pooled features."""
    from multissl.evaluation.linear_probe import linear_probe_accuracy

    collate = spec.model_class.make_collator(config, train=False)
    xtr, ytr = layer_features(model, train_ds, collate, input_size=input_size)
    xte, yte = layer_features(model, test_ds, collate, input_size=input_size)
    return [linear_probe_accuracy(a, ytr, b, yte)["accuracy"] for a, b in zip(xtr, xte)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_roots", nargs="+", help="folders holding <method>/final and <method>/recipe.yaml")
    parser.add_argument("--out", default=None, help="write the rows as JSON here (default: RUN_ROOT/layers.json)")
    parser.add_argument("--methods", nargs="*", default=None, help="only these methods (default: every run found)")
    parser.add_argument("--input-size", type=int, default=None, help="resize eval images to this side first")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from transformers import AutoModel

    from multissl.data import load_dataset_by_name
    from multissl.data.batches import seed_everything
    from multissl.registry import get_method
    from multissl.training import load_recipe
    from multissl.training.loop import build_config, build_model

    train_ds, test_ds = load_dataset_by_name("digits", split="train"), load_dataset_by_name("digits", split="test")
    rows = []
    for root in map(Path, args.run_roots):
        for run in sorted(p.parent for p in root.glob("*/final")):
            recipe = load_recipe(run / "recipe.yaml", [])
            if args.methods and recipe.method not in args.methods:
                continue
            spec = get_method(recipe.method)
            config = build_config(spec, recipe.model, recipe.source)
            seed_everything(recipe.train.seed)  # the initialisation the run started from
            random_acc = probe_layers(build_model(spec, config), spec, config, train_ds, test_ds, args.input_size)
            trained = AutoModel.from_pretrained(run / "final")
            trained_acc = probe_layers(trained, spec, trained.config, train_ds, test_ds, args.input_size)
            rows.append({"method": recipe.method, "run": str(run), "trained": trained_acc, "random": random_acc})
            cells = " | ".join(f"{t:.3f} ({r:.3f})" for t, r in zip(trained_acc, random_acc))
            print(f"| {recipe.method} | {cells} | {sum(t > r for t, r in zip(trained_acc, random_acc))}/{len(trained_acc)} |",
                  flush=True)
    out = Path(args.out) if args.out else Path(args.run_roots[0]) / "layers.json"
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
