"""Audio results table on spoken_words: CPC vs MFCC / log-mel vs CPC at random init, speaker and word probes, 3 seeds.

For each seed: train recipes/cpc_spoken_words.yaml (its shipped budget, `train.seed` = the seed) through the
one training loop (or reuse the finished run under --out), embed spoken_words train / validation / test whole
(no crop) and score the frozen utterance features on two targets, speaker (48) and word (30), with
  * a linear probe whose C is chosen on the validation split for EVERY feature set
    (multissl.evaluation.linear_probe.tuned_linear_probe); the test split is read once, for the chosen C;
  * k-NN (k = 20, T = 0.1, cosine, fitted on train) on features standardised with the train split's statistics.
The same network at its initialisation (same seed: the weights training started from) is scored the same way,
and so are three parameter-free baselines (deterministic: one value each): the CPC paper's MFCC baseline
(13 MFCCs mean-pooled over the clip), MFCC mean + std (26-d) and log-mel mean (40 bands).

    OMP_NUM_THREADS=1 python benchmarks/bench_audio_table.py                              # report: test split, 3 seeds
    OMP_NUM_THREADS=1 python benchmarks/bench_audio_table.py --split validation --seeds 0   # tuning (no test read)

With `--split test` (default) it writes docs/results/audio.md and docs/results/audio.png when the runs are the
table's own (the default --out) or --docs is given; another --out leaves the page alone. Runs are kept under
--out and reused when their final/ exists (--retrain trains again). The first call also builds spoken_words
with espeak-ng (cached under $MULTISSL_CACHE).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SEEDS = (0, 1, 2)
TARGETS = ("speaker", "word")
K, TEMPERATURE = 20, 0.1
# C grid of the tuned probe for every feature set: linear_probe.C_GRID widened upwards, because the low-dimensional
# hand-crafted features (13-40 d) chose its top value (10) on validation and need little regularisation.
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
BASELINES = ("MFCC (mean, 13-d)", "MFCC (mean+std, 26-d)", "log-mel (mean, 40-d)")


class PooledFrames(torch.nn.Module):
    """A parameter-free 'model': embed(input_values [B, L], lengths [B]) -> frame features pooled per clip [B, F]."""

    def __init__(self, kind: str, with_std: bool = False):
        super().__init__()
        self.kind, self.with_std = kind, with_std

    def embed(self, input_values: torch.Tensor, lengths: torch.Tensor, **_: object) -> torch.Tensor:
        from multissl.modalities.audio.crops import frame_mask
        from multissl.modalities.audio.features import log_mel, masked_mean, mfcc

        feats, frames = (mfcc if self.kind == "mfcc" else log_mel)(input_values, lengths)  # [B, T, F], [B]
        mean = masked_mean(feats, frames)  # [B, F]
        if not self.with_std:
            return mean
        w = frame_mask(frames.clamp(1, feats.shape[1]), feats.shape[1]).to(feats.dtype).unsqueeze(-1)  # [B, T, 1]
        var = ((feats - mean[:, None]) ** 2 * w).sum(1) / w.sum(1)
        return torch.cat([mean, var.sqrt()], dim=1)  # [B, 2F]


def baselines() -> dict[str, torch.nn.Module]:
    """The hand-crafted feature sets, by table row name."""
    return dict(zip(BASELINES, (PooledFrames("mfcc"), PooledFrames("mfcc", with_std=True), PooledFrames("logmel"))))


def features(model, collate, splits: dict) -> dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """{split: (features [N, D], {target: labels [N]})}: every clip embedded whole by the eval collator."""
    from multissl.evaluation.features import extract_features, label_tensor

    out = {}
    for name, ds in splits.items():
        x, _ = extract_features(model, ds, collate, label_column=None, batch_size=64, progress=False)
        out[name] = (x, {t: label_tensor(ds, t) for t in TARGETS})
    return out


def scores(feats: dict, split: str) -> dict[str, float]:
    """Per target: tuned linear probe and k-NN accuracy on `split` (validation while tuning, test for the report)."""
    from multissl.evaluation.knn import knn_accuracy
    from multissl.evaluation.linear_probe import tuned_linear_probe

    (xtr, ytr), (xva, yva) = feats["train"], feats["validation"]
    xs, ys = feats[split]
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-6)  # k-NN on standardised features: no dimension dominates cosine
    out = {}
    for t in TARGETS:
        test = () if split == "validation" else (xs, ys[t])
        probe = tuned_linear_probe(xtr, ytr[t], xva, yva[t], *test, grid=C_GRID)
        out[f"{t} probe"] = probe["validation_accuracy"] if split == "validation" else probe["accuracy"]
        out[f"{t} C"] = probe["C"]
        out[f"{t} k-NN"] = knn_accuracy((xtr - mu) / sd, ytr[t], (xs - mu) / sd, ys[t], k=K, temperature=TEMPERATURE)
    out["dim"] = int(xtr.shape[1])
    return out


def run_seed(seed: int, args, splits: dict) -> dict:
    """Train (or reuse) CPC at one seed; score its random init and the trained encoder."""
    from _runs import train_or_reuse

    from multissl.data.batches import seed_everything
    from multissl.models.cpc import make_cpc_collator
    from multissl.models.loading import load_model
    from multissl.registry import get_method
    from multissl.training import load_recipe
    from multissl.training.loop import build_config, build_model

    recipe = load_recipe(args.recipe, [f"train.seed={seed}", "train.progress=false", "eval={}", *args.set])
    spec = get_method("cpc")
    config = build_config(spec, recipe.model, recipe.source)
    collate = make_cpc_collator(config, train=False)
    seed_everything(seed)  # what train() does first: this is the initialisation training starts from
    row = {"seed": seed, "split": args.split, "steps": recipe.train.max_steps, "batch_size": recipe.train.batch_size}
    t0 = time.perf_counter()
    row["random"] = scores(features(build_model(spec, config).eval(), collate, splits), args.split)
    run = Path(args.out) / f"cpc-seed{seed}"
    seconds = train_or_reuse(recipe, run, args.retrain)
    fresh = seconds is not None
    row["train_reused"] = not fresh
    if seconds is None:  # reused: the time recorded when it was trained
        seconds = json.loads((run / "bench_time.json").read_text())["train_s"] if (run / "bench_time.json").exists() else None
    else:
        (run / "bench_time.json").write_text(json.dumps({"train_s": seconds}))
    row["train_s"] = seconds
    row["trained"] = scores(features(load_model(run / "final").eval(), collate, splits), args.split)
    row["eval_s"] = time.perf_counter() - t0 - (seconds if fresh else 0.0)  # embedding + probes, both models
    return row


def table(base: dict, rows: list[dict]) -> tuple[str, dict]:
    """Markdown table (baselines | random init | CPC) and the per-seed values behind the plot."""
    from _report import cell, markdown_table

    cols = [f"{t} {p}" for t in TARGETS for p in ("probe", "k-NN")]
    md_rows, extra = {}, {}
    for name, r in base.items():
        md_rows[f"{name} (deterministic)"] = {c: [r[c]] for c in cols}
        extra[f"{name} (deterministic)"] = {"dim": str(r["dim"]), "C (speaker, word)": f"{r['speaker C']:g}, {r['word C']:g}"}
    for kind, label in (("random", "CPC random init"), ("trained", "CPC trained")):
        name = f"{label} ({len(rows)} seeds)"
        md_rows[name] = {c: [r[kind][c] for r in rows] for c in cols}
        extra[name] = {"dim": str(rows[0][kind]["dim"]) if rows else "",
                       "C (speaker, word)": "; ".join(f"{r[kind]['speaker C']:g}, {r[kind]['word C']:g}" for r in rows)}
        if kind == "trained":
            extra[name]["train s / seed"] = cell([r["train_s"] for r in rows if r.get("train_s")], 0)
    short = lambda n: n.replace(" (deterministic)", "").replace(f" ({len(rows)} seeds)", "")  # noqa: E731
    plot = {short(n): {c: v[c] for c in ("speaker probe", "word probe")} for n, v in md_rows.items()}
    return markdown_table(md_rows, cols, first="features", extra=extra), plot


def page(md: str, base: dict, rows: list[dict], args, timing: dict, machine: str) -> str:
    """docs/results/audio.md: what was run, on what, the table, the plot and the must-show verdict from the numbers."""
    from _report import mean_std

    cpc, _ = mean_std([r["trained"]["speaker probe"] for r in rows])
    mfcc = base[BASELINES[0]]["speaker probe"]
    best_name = max(base, key=lambda n: base[n]["speaker probe"])
    verdict = (f"CPC trained {cpc:.3f} vs MFCC {mfcc:.3f} on the speaker probe: CPC is "
               f"{'above' if cpc > mfcc else 'NOT above'} MFCC; the best hand-crafted features ({best_name}) reach "
               f"{base[best_name]['speaker probe']:.3f}.")
    steps = f"{rows[0]['steps']} steps × batch {rows[0]['batch_size']}" if rows else "—"
    train_s = [r["train_s"] for r in rows if r.get("train_s")]
    eval_s = [r["eval_s"] for r in rows if r.get("eval_s")]
    per_seed = (f"training {mean_std(train_s)[0]:.0f} s / seed, embedding + probes of both CPC models "
                f"{mean_std(eval_s)[0]:.0f} s / seed" if train_s and eval_s else "")
    overrides = f" with `--set {' '.join(args.set)}`" if args.set else ""
    reused = (f", not counting {timing['reused_training_s']:.0f} s of training reused from an identical earlier run"
              if timing.get("reused_training_s") else "")
    return f"""# Audio results: CPC on spoken_words

Generated by `OMP_NUM_THREADS=1 python benchmarks/bench_audio_table.py`{overrides} (from nothing: it builds
`spoken_words` with espeak-ng if the cache has none, trains `recipes/cpc_spoken_words.yaml` once per seed and reuses
finished runs under `{args.out}`). Data: `spoken_words` (data_cards/spoken_words.md): 48 espeak-ng speakers × 30
words, per-clip room reverberation and babble / coloured noise at 5–20 dB SNR; train 2,880 / validation 1,440 /
test 1,440 clips, split by take. Chance: 1/48 = 0.021 (speaker), 1/30 = 0.033 (word).

Protocol: every clip embedded whole and mean-pooled over its frames (CPC: the context c_t); a logistic-regression
probe on standardised features whose C is chosen on the validation split from {list(C_GRID)} for **every** feature
set and target (`tuned_linear_probe`; test read once, for the chosen C), and k-NN (k = {K}, T = {TEMPERATURE},
cosine on train-standardised features). CPC rows: mean ± std over seeds {[r['seed'] for r in rows]}; "random init"
is the same network at the weights training started from. MFCC / log-mel rows are deterministic (one value).

Budget: {steps} per seed (`recipes/cpc_spoken_words.yaml`); {per_seed}. Machine: 2 CPU cores shared with 3
other engineers' jobs (load average about 7), no GPU ({machine}). Wall time of the command that computed these
numbers: {timing['wall_s'] / 60:.0f} min{reused} (plus about 5 min to build spoken_words on first use). Finished runs
and probe results under `{args.out}` are reused on later calls, which then only rewrite this page.

{md}

![speaker and word probes, mean ± std over seeds](audio.png)

**Must-show (issue 12).** {verdict} How the recipe was tuned on validation, and why CPC's speaker features
may lag here: docs/audio.md, "How the recipe was tuned".
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "cpc_spoken_words.yaml"))
    parser.add_argument("--out", default="runs/audio_table", help="run folders + results-<split>.json go here")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--split", choices=("validation", "test"), default="test",
                        help="validation while tuning the recipe; test (read once per number) for the report")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides while tuning")
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "results"), help="where audio.md / audio.png go (test split)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    from multissl.data import load_dataset_by_name
    from multissl.modalities.audio.collators import AudioCollator

    splits = {s: load_dataset_by_name("spoken_words", split=s) for s in ("train", "validation", "test")}
    if args.split == "validation":
        splits.pop("test")  # tuning never reads the test takes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base_file = out / f"baselines-{args.split}.json"
    computed = not base_file.exists() or args.retrain  # anything scored in this call (else it only rewrites the page)
    if not computed:
        base = json.loads(base_file.read_text())
    else:  # whole clips, padded to the MFCC window (400 samples) at least
        collate = AudioCollator(sample_rate=16000, min_samples=400, train=False)
        base = {name: scores(features(m, collate, splits), args.split) for name, m in baselines().items()}
        base_file.write_text(json.dumps(base, indent=2))
    for name, r in base.items():
        print(f"{name} [{args.split}]: speaker probe {r['speaker probe']:.3f} (C={r['speaker C']:g}) "
              f"word probe {r['word probe']:.3f} (C={r['word C']:g})", flush=True)
    results_file = out / f"results-{args.split}.json"
    rows = json.loads(results_file.read_text()) if results_file.exists() else []
    reused_train_s = 0.0
    for seed in args.seeds:
        if any(r["seed"] == seed for r in rows) and not args.set and not args.retrain:
            continue
        computed = True
        r = run_seed(seed, args, splits)
        reused_train_s += r["train_s"] if r.get("train_reused") else 0.0
        rows = [x for x in rows if x["seed"] != seed] + [r]
        results_file.write_text(json.dumps(rows, indent=2))
        print(f"CPC seed {seed} [{args.split}]: speaker probe {r['trained']['speaker probe']:.3f} "
              f"(random {r['random']['speaker probe']:.3f}), word probe {r['trained']['word probe']:.3f} "
              f"(random {r['random']['word probe']:.3f}); train {r['train_s'] or 0:.0f}s, eval {r['eval_s']:.0f}s", flush=True)
    rows = sorted((r for r in rows if r["seed"] in args.seeds), key=lambda r: r["seed"])
    md, plot = table(base, rows)
    wall = time.perf_counter() - t_start
    wall_file = out / f"wall-{args.split}.json"  # the wall time of the invocation that computed the numbers
    if computed or not wall_file.exists():
        wall_file.write_text(json.dumps({"wall_s": wall, "reused_training_s": reused_train_s}))
    timing = json.loads(wall_file.read_text())
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), {platform.python_version()}"
    print(md)
    print(f"wall time {wall:.0f}s ({machine})")
    from _report import page_wanted

    if args.split == "test" and page_wanted(sys.argv[1:], args.out, parser.get_default("out")):
        from _report import bar_chart

        docs = Path(args.docs)
        bar_chart(docs / "audio.png", plot, ["speaker probe", "word probe"],
                  "spoken_words (test): linear probe, C tuned on validation, mean ± std",
                  reference={"chance (word)": 1 / 30})
        (docs / "audio.md").write_text(page(md, base, rows, args, timing, machine))
        print(f"wrote {docs / 'audio.png'} and {docs / 'audio.md'}")

if __name__ == "__main__":
    main()
