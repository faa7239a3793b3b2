"""Linear probes on frozen utterance features, the CPC paper's protocol: CPC vs MFCC vs the same encoder at random init.

Trains CPC with the default recipe (or reuses a trained run), then fits multinomial logistic
regression (multissl.evaluation.linear_probe_accuracy) on the train split and scores the test split,
for target speaker and target word. Paper (LibriSpeech speaker ID): CPC 97.4, MFCC 17.6, random 1.87.

    OMP_NUM_THREADS=1 python benchmarks/bench_cpc_probe.py --output-dir runs/bench_cpc_probe
    python benchmarks/bench_cpc_probe.py --model runs/bench_cpc_probe/final      # probe only
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

C_GRID = (0.01, 0.1, 1.0, 10.0)


def choose_C(feats: torch.Tensor, labels: torch.Tensor) -> float:
    """The probe's C from C_GRID with the best 5-fold cross-validated accuracy on the train split (feats [N, D])."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = {C: cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000)),
                                 feats.double().numpy(), labels.numpy(), cv=folds).mean() for C in C_GRID}
    return max(scores, key=scores.get)


def main() -> None:
    """Train (unless --model), extract features for the three feature sets, probe, print a table and JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "cpc_spoken_digits.yaml"))
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides, e.g. train.max_steps=300")
    p.add_argument("--output-dir", default="runs/bench_cpc_probe")
    p.add_argument("--model", default=None, help="a trained CPC folder (skips training)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--C", default="1.0", help="inverse L2 strength of the probes (1.0 = `multissl eval linear-probe`'s default), "
                                              "or 'cv': picked per feature set and target by 5-fold CV on the train split")
    p.add_argument("--encoder-rows", action="store_true", help="also probe mean-pooled z (encoder output) features")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from multissl.data import load_dataset_by_name
    from multissl.evaluation.features import extract_features, label_tensor
    from multissl.evaluation.linear_probe import linear_probe_accuracy
    from multissl.modalities.audio.features import PooledMFCC
    from multissl.models.cpc import CPCModel, make_cpc_collator
    from multissl.training.config import load_recipe
    from multissl.training.loop import train

    recipe = load_recipe(args.recipe, args.set)
    recipe.eval = {}
    train_s = None
    if args.model is None:
        t0 = time.perf_counter()
        result = train(recipe, args.output_dir)
        train_s = time.perf_counter() - t0
        model_dir = result.final_dir
    else:
        model_dir = Path(args.model)
    trained = CPCModel.from_pretrained(model_dir).eval()
    torch.manual_seed(recipe.train.seed)  # the random-init baseline: same architecture, same seed as the run's init
    random_init = CPCModel(trained.config).eval()
    feature_sets = {"CPC": trained, "MFCC": PooledMFCC(trained.config.sampling_rate), "random init": random_init}
    if args.encoder_rows:  # also the mean-pooled encodings z (before the GRU), trained and at random init
        for name, m in (("CPC z", trained), ("random z", random_init)):
            twin = CPCModel(m.config.__class__.from_dict({**m.config.to_dict(), "embed_layer": "encoder"})).eval()
            twin.load_state_dict(m.state_dict())
            feature_sets[name] = twin

    dataset = recipe.dataset or "spoken_digits"
    splits = {s: load_dataset_by_name(dataset, split=s, **recipe.dataset_args) for s in ("train", "test")}
    collate = make_cpc_collator(trained.config, train=False)
    targets = ("speaker", "word")
    labels = {(s, t): label_tensor(ds, t) for s, ds in splits.items() for t in targets}
    results: dict = {"model": str(model_dir), "train_seconds": train_s, "recipe": recipe.to_dict(), "probe_C": args.C}
    for name, model in feature_sets.items():
        feats = {s: extract_features(model, ds, collate, label_column=None, batch_size=64, progress=False)[0]
                 for s, ds in splits.items()}
        results[name] = {"dim": int(feats["train"].shape[1])}
        for t in targets:
            C = choose_C(feats["train"], labels[("train", t)]) if args.C == "cv" else float(args.C)
            r = linear_probe_accuracy(feats["train"], labels[("train", t)], feats["test"], labels[("test", t)], C=C)
            results[name][t] = round(100 * r["accuracy"], 1)
            results[name][f"C_{t}"] = C
    n_speakers = len(set(labels[("train", "speaker")].tolist()))
    print(f"\nlinear probe, test accuracy % ({dataset}: {len(splits['train'])} train / {len(splits['test'])} test clips, "
          f"{n_speakers} speakers; chance {100 / n_speakers:.1f} / 10.0)")
    print(f"{'features':<12} {'dim':>5} {'speaker':>8} {'word':>6}   probe C (speaker, word)")
    for name in feature_sets:
        r = results[name]
        print(f"{name:<12} {r['dim']:>5} {r['speaker']:>8.1f} {r['word']:>6.1f}   {r['C_speaker']:g}, {r['C_word']:g}")
    cpc, mfcc, rnd = (results[n]["speaker"] for n in ("CPC", "MFCC", "random init"))
    print(f"speaker ID ratio CPC / MFCC = {cpc / mfcc:.2f}x; ordering CPC > MFCC > random: {cpc > mfcc > rnd}")
    print(json.dumps({k: v for k, v in results.items() if k != "recipe"}))


if __name__ == "__main__":
    main()
