"""Linear probes on frozen utterance features for ONE CPC run: CPC vs MFCC vs the same encoder at random init.

A quick check on the small shipped `spoken_digits` (24 speakers, clean); the results table with headroom, 3 seeds
and k-NN is benchmarks/bench_audio_table.py on `spoken_words`. Trains CPC with recipes/cpc_spoken_digits.yaml (or
reuses a trained run), then fits multinomial logistic regression on the train split with C chosen on the
validation split for every feature set and target (multissl.evaluation.linear_probe.tuned_linear_probe: test
read once), for target speaker and target word. Paper (LibriSpeech speaker ID): CPC 97.4, MFCC 17.6, random 1.87.

    OMP_NUM_THREADS=1 python benchmarks/bench_cpc_probe.py --output-dir runs/bench_cpc_probe
    python benchmarks/bench_cpc_probe.py --model runs/bench_cpc_probe/final      # probe only
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    """Train (unless --model), extract features for the three feature sets, probe, print a table and JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "cpc_spoken_digits.yaml"))
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides, e.g. train.max_steps=300")
    p.add_argument("--output-dir", default="runs/bench_cpc_probe")
    p.add_argument("--model", default=None, help="a trained CPC folder (skips training)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--C", default="auto", help="inverse L2 strength of the probes: 'auto' (default) chooses it per feature "
                                               "set and target on the validation split; or a fixed number")
    p.add_argument("--encoder-rows", action="store_true", help="also probe mean-pooled z (encoder output) features")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from multissl.data import load_dataset_by_name
    from multissl.evaluation.features import extract_features, label_tensor
    from multissl.evaluation.linear_probe import linear_probe_accuracy, tuned_linear_probe
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
    splits = {s: load_dataset_by_name(dataset, split=s, **recipe.dataset_args) for s in ("train", "validation", "test")}
    collate = make_cpc_collator(trained.config, train=False)
    targets = ("speaker", "word")
    labels = {(s, t): label_tensor(ds, t) for s, ds in splits.items() for t in targets}
    results: dict = {"model": str(model_dir), "train_seconds": train_s, "recipe": recipe.to_dict(), "probe_C": args.C}
    for name, model in feature_sets.items():
        feats = {s: extract_features(model, ds, collate, label_column=None, batch_size=64, progress=False)[0]
                 for s, ds in splits.items()}
        results[name] = {"dim": int(feats["train"].shape[1])}
        for t in targets:
            fit, val, test = ((feats[s], labels[(s, t)]) for s in ("train", "validation", "test"))
            if args.C == "auto":
                r = tuned_linear_probe(*fit, *val, *test)
            else:
                r = linear_probe_accuracy(*fit, *test, C=float(args.C))
            results[name][t] = round(100 * r["accuracy"], 1)
            results[name][f"C_{t}"] = r["C"]
    n_speakers = len(set(labels[("train", "speaker")].tolist()))
    print(f"\nlinear probe, test accuracy % ({dataset}: {len(splits['train'])} train / {len(splits['validation'])} validation / "
          f"{len(splits['test'])} test clips, "
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
