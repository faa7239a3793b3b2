"""Headroom of the `glyphs` dataset: the vision methods' ResNet at random init vs the same ResNet trained supervised.

Random init: pooled features of the untrained DEFAULT_RESNET backbone -> standardised multinomial logistic
regression (scikit-learn L-BFGS), C picked on the validation split, test accuracy read once.
Supervised bound: the same backbone (same seed, so the same initial weights) + a linear head, trained with
cross-entropy and Adam on the train split (no augmentation; images normalised like the eval transform);
the learning rate is picked on validation with seed 0, the epoch per seed is the one with the best
validation accuracy, and its test accuracy is read once. Mean ± std over 3 seeds, wall time, and the
ratio supervised / random. Test fonts never appear in train or validation (data_cards/glyphs.md).
Also writes a preview grid (one row per split: train, validation, test) to --preview.

    OMP_NUM_THREADS=1 python benchmarks/bench_glyphs_headroom.py
    OMP_NUM_THREADS=1 python benchmarks/bench_glyphs_headroom.py --preview-only --preview glyphs_preview.png

The first command is the benchmark (preview in runs/glyphs_preview.png); measured at 7 minutes wall,
4.5 CPU minutes, on a shared 2-core machine, plus about 15 s the first time to render and cache the
dataset. It printed random init 0.192 ± 0.009 vs supervised 0.950 ± 0.008 (4.96x). The second
command only writes the grid.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

C_GRID = (0.01, 0.1, 1.0, 10.0)
LR_GRID = (1e-3, 3e-3)
SEEDS = (0, 1, 2)


def preview_grid(splits: dict, out: Path, per_row: int = 16, zoom: int = 3) -> Path:
    """Save a PNG with the first `per_row` images of each split, one row per split, upscaled `zoom` times."""
    from PIL import Image

    rows = [np.concatenate([np.asarray(im) for im in ds[:per_row]["image"]], axis=1) for ds in splits.values()]
    grid = np.concatenate(rows, axis=0)  # [splits * S, per_row * S, 3]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * zoom, grid.shape[0] * zoom), Image.NEAREST).save(out)
    return out


def to_tensors(ds, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels [N, 3, S, S] through the library's eval transform, labels [N])."""
    from multissl.modalities.image.transforms import eval_transform, to_rgb

    transform = eval_transform(image_size)
    pixels = torch.stack([transform(to_rgb(im)) for im in ds["image"]])
    return pixels, torch.tensor(ds["label"], dtype=torch.long)


def new_backbone(seed: int):
    """The vision methods' default ResNet at the random initialisation of `seed`."""
    from multissl.models.common.backbones import build_backbone
    from multissl.models.common.vision import DEFAULT_RESNET

    torch.manual_seed(seed)
    return build_backbone(DEFAULT_RESNET)


@torch.no_grad()
def features(backbone, pixels: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Frozen pooled features [N, D] in eval mode."""
    from multissl.models.common.backbones import vision_features

    backbone.eval()
    return torch.cat([vision_features(backbone, pixels[i:i + batch]) for i in range(0, len(pixels), batch)])


def probe(train: tuple, val: tuple, test: tuple) -> dict:
    """Logistic regression on standardised features; C chosen on validation; test read once with that C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train[0].double().numpy())
    xtr, xva, xte = (scaler.transform(x.double().numpy()) for x in (train[0], val[0], test[0]))
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(xtr, train[1].numpy()) for c in C_GRID}
    val_acc = {c: fits[c].score(xva, val[1].numpy()) for c in C_GRID}
    best = max(C_GRID, key=lambda c: (val_acc[c], -c))
    return {"C": best, "val": val_acc[best], "test": fits[best].score(xte, test[1].numpy())}


@torch.no_grad()
def accuracy(model, pixels: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> float:
    """Top-1 accuracy of a classifier in eval mode."""
    model.eval()
    preds = torch.cat([model(pixels[i:i + batch]).argmax(-1) for i in range(0, len(pixels), batch)])
    return float((preds == labels).float().mean())


class Classifier(torch.nn.Module):
    """Backbone pooled features [B, D] -> linear head -> logits [B, 26]."""

    def __init__(self, backbone, dim: int, num_classes: int):
        super().__init__()
        self.backbone, self.head = backbone, torch.nn.Linear(dim, num_classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        from multissl.models.common.backbones import vision_features

        return self.head(vision_features(self.backbone, pixels))


def supervised(seed: int, lr: float, epochs: int, train: tuple, val: tuple, batch: int = 128) -> dict:
    """Train backbone + head with Adam/cross-entropy; keep the epoch with the best validation accuracy."""
    backbone = new_backbone(seed)
    dim = features(backbone, train[0][:2]).shape[1]
    model = Classifier(backbone, dim, 26)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best = {"val": -1.0}
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train[0]), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(train[0][idx]), train[1][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_acc = accuracy(model, *val)
        if val_acc > best["val"]:
            best = {"val": val_acc, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best.pop("state"))
    best["model"] = model
    return best


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10, help="max epochs; the best one is picked on validation")
    parser.add_argument("--preview", type=Path, default=Path("runs/glyphs_preview.png"))
    parser.add_argument("--preview-only", action="store_true", help="write the preview grid and stop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from multissl.data.glyphs import load_glyphs

    t0 = time.perf_counter()
    splits = {s: load_glyphs(s, image_size=args.image_size) for s in ("train", "validation", "test")}
    print(f"data: {', '.join(f'{s} {len(d)}' for s, d in splits.items())} at {args.image_size}px "
          f"(loaded in {time.perf_counter() - t0:.1f}s; the first run also renders and caches it); "
          f"preview -> {preview_grid(splits, args.preview)}")
    if args.preview_only:
        return
    train, val, test = (to_tensors(splits[s], args.image_size) for s in ("train", "validation", "test"))

    t_rand = time.perf_counter()
    rand = []
    for seed in SEEDS:
        backbone = new_backbone(seed)
        r = probe(*((features(backbone, x), y) for x, y in (train, val, test)))
        print(f"random init seed {seed}: C={r['C']} val {r['val']:.3f} test {r['test']:.3f}")
        rand.append(r["test"])
    t_rand = time.perf_counter() - t_rand

    t_sup = time.perf_counter()
    tried = {lr: supervised(SEEDS[0], lr, args.epochs, train, val) for lr in LR_GRID}
    for lr, r in tried.items():
        print(f"supervised lr={lr:g} seed {SEEDS[0]}: best val {r['val']:.3f} at epoch {r['epoch']}")
    lr = max(LR_GRID, key=lambda v: tried[v]["val"])
    sup = []
    for seed in SEEDS:
        r = tried[lr] if seed == SEEDS[0] else supervised(seed, lr, args.epochs, train, val)
        r["test"] = accuracy(r["model"], *test)
        print(f"supervised seed {seed}: lr={lr:g} epoch {r['epoch']} val {r['val']:.3f} test {r['test']:.3f}")
        sup.append(r["test"])
    t_sup = time.perf_counter() - t_sup

    print(f"\nglyphs {args.image_size}px, test fonts unseen, {len(SEEDS)} seeds (mean ± std):")
    print(f"  random-init ResNet + linear probe : {mean_std(rand)}   ({t_rand:.0f}s)")
    print(f"  supervised ResNet (upper bound)   : {mean_std(sup)}   ({t_sup:.0f}s)")
    print(f"  ratio supervised / random         : {statistics.mean(sup) / statistics.mean(rand):.2f}x")
    print(f"  chance                            : {1 / 26:.3f};  total wall time {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
