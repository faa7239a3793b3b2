"""What the glyphs encoders keep besides the letter: effective rank, top-component share, polarity and texture.

For every finished run of benchmarks/bench_vision_glyphs.py (default runs/vision_glyphs: the shipped 2400-step
recipes, 3 seeds) and for the ResNet at its random init (the simclr recipe's initialisation at each seed), the frozen
`embed` features of the glyphs train and validation splits are computed and, on validation:

  * effective rank (RankMe, Garrido et al. 2023) and the share of variance on the first principal component;
  * "polarity share": the share of variance along the line between the means of dark-letter and light-letter images
    (glyphs draws the letter's polarity by a coin flip; no augmentation of the recipes changes it);
  * linear probes (C = 1, train -> validation) for the polarity and for the background texture kind (3 classes),
    the nuisances recomputed from the dataset's seed (multissl/data/glyph_nuisances.py).

No training, and the test split is never read. Writes docs/results/vision-spectrum.md and .png:

    OMP_NUM_THREADS=1 python benchmarks/bench_vision_spectrum.py
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
COLUMNS = ["effective rank", "top-PC share", "polarity share", "polarity probe", "texture probe"]


def measure(feats: dict, nuisances: dict) -> dict[str, float]:
    """The COLUMNS for one encoder: feats {split: (x [N, D], labels [N])}, nuisances {split: {name: array [N]}}."""
    from multissl.evaluation.linear_probe import linear_probe_accuracy
    from multissl.evaluation.spectrum import component_shares, direction_share, effective_rank

    xtr, xva = feats["train"][0], feats["validation"][0]
    dark_tr, dark_va = (torch.as_tensor(nuisances[s]["letter_dark"]) for s in ("train", "validation"))
    tex_tr, tex_va = (torch.as_tensor(nuisances[s]["texture"]) for s in ("train", "validation"))
    return {"effective rank": effective_rank(xva), "top-PC share": float(component_shares(xva, k=1)[0]),
            "polarity share": direction_share(xva, dark_va),
            "polarity probe": linear_probe_accuracy(xtr, dark_tr.long(), xva, dark_va.long())["accuracy"],
            "texture probe": linear_probe_accuracy(xtr, tex_tr, xva, tex_va)["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/vision_glyphs", help="bench_vision_glyphs.py's --out folder")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--docs", default=str(ROOT / "docs" / "results"), help="where vision-spectrum.md / .png go")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import bench_vision_glyphs as vg

    runs = Path(args.runs)
    methods = [m for m in ["supervised", *vg.METHODS] if all((runs / f"{m}-seed{s}" / "final" / "config.json").is_file()
                                                              for s in args.seeds)]
    if not methods:
        raise SystemExit(f"no finished runs for seeds {args.seeds} in {runs}: run benchmarks/bench_vision_glyphs.py first")

    from _report import bar_chart, markdown_table

    from multissl.data import load_dataset_by_name
    from multissl.data.batches import seed_everything
    from multissl.data.glyph_nuisances import glyph_nuisances
    from multissl.models.loading import load_model
    from multissl.registry import get_method
    from multissl.training.loop import build_config, build_model

    t0 = time.perf_counter()
    splits = {s: load_dataset_by_name("glyphs", split=s) for s in ("train", "validation")}
    nuisances = {s: glyph_nuisances(s) for s in splits}
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, measured: dict[str, float]) -> None:  # one seed's COLUMNS into the row's per-seed lists
        for k, v in measured.items():
            rows.setdefault(name, {}).setdefault(k, []).append(v)

    spec = get_method("simclr")
    for seed in args.seeds:  # the ResNet every method but MAE and the tile/colour nets starts from
        config = build_config(spec, vg.glyphs_recipe("simclr", seed, []).model, "simclr_glyphs.yaml")
        seed_everything(seed)
        add("ResNet (random init)", measure(vg.features(build_model(spec, config), config, spec, splits), nuisances))
    for method in methods:
        spec = get_method(method)
        for seed in args.seeds:
            model = load_model(runs / f"{method}-seed{seed}" / "final")
            m = measure(vg.features(model, model.config, spec, splits), nuisances)
            add(method, m)
            print(method, seed, {k: round(v, 3) for k, v in m.items()}, flush=True)
    md = markdown_table(rows, COLUMNS, first=f"features ({len(args.seeds)} seeds)")
    print(md)
    wall = time.perf_counter() - t0
    print(f"wall time {wall:.0f}s")
    docs = Path(args.docs)
    bar_chart(docs / "vision-spectrum.png", {n: {c: r[c] for c in ("top-PC share", "polarity share")} for n, r in rows.items()},
              ["top-PC share", "polarity share"], "glyphs validation features: share of variance on one direction",
              ylabel="share of feature variance")
    (docs / "vision-spectrum.md").write_text(page(md, runs, args.seeds, wall))
    print(f"wrote {docs / 'vision-spectrum.md'} and {docs / 'vision-spectrum.png'}")


def page(md: str, runs: Path, seeds: list[int], wall: float) -> str:
    return f"""# Vision on glyphs: what the features keep besides the letter

Written by `OMP_NUM_THREADS=1 python benchmarks/bench_vision_spectrum.py` (do not edit by hand) from the encoders of
`{runs}` (docs/results/vision.md's runs: 2400 steps × 256, seeds {', '.join(map(str, seeds))}); no training, validation
split only (1040 images of 5 fonts), test split never read. Wall time {wall:.0f} s on the shared 2-core CPU box.

* **effective rank**: RankMe (Garrido et al. 2023) of the validation features, between 1 and their width (128 for
  the ResNet methods). **top-PC share**: the share of the (centred) variance on the first principal component.
* **polarity share**: the share of the variance along the line between the mean feature of dark-letter images and
  that of light-letter images. Glyphs draws the polarity by a coin flip per image, and no op of the recipes'
  augmentations (crop, colour jitter, grayscale, blur) changes it, so two views of an image always share it.
* **polarity probe / texture probe**: logistic regression (C = 1, features standardised on train) from the frozen
  features to the polarity (2 classes, chance 0.5) and to the background texture kind (smooth noise, gradient,
  stripes; chance 1/3), trained on train, scored on validation. Nuisances: multissl/data/glyph_nuisances.py.

{md}

![top-PC and polarity shares, mean ± std over seeds](vision-spectrum.png)

How to read it: every encoder, random ones included, can tell the polarity (the probe), so decodability is not the
point; what differs is how much of the feature space it takes. Where one direction carries most of the variance and
that direction is the polarity, the method has learned a feature two views share rather than the letter: docs/results.md,
"Why BYOL and DINO stay low".
"""


if __name__ == "__main__":
    main()
