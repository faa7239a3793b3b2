"""Text results table: frozen features on python_docs_topics (which stdlib package a paragraph documents).

Rows: the tiny MLM architecture at random init | MLM trained | GPT trained | SimCSE from that MLM | supervised
tiny BERT (the bound for those rows: that random init trained with cross-entropy on all labels, the MLM's budget) |
MiniLM (all-MiniLM-L6-v2, the start) | SimCSE from MiniLM | supervised MiniLM (its bound: all labels, 5x SimCSE's
steps, see recipes/supervised_topics_minilm.yaml) | TF-IDF (non-neural reference). Columns: weighted k-NN
(k=20, T=0.07, cosine) and a linear probe whose C is chosen on the validation split
(multissl.evaluation.linear_probe.tuned_linear_probe); the test split is read once per number. Trained rows
are mean ± std over training seeds 0, 1, 2 (random init: the init of each seed); MiniLM's start and TF-IDF are
deterministic (one value). Every encoder embeds a paragraph's first 128 tokens, mean-pooled over real tokens.
Runs go to <out>/<row>-seed<k>/ and are reused when finished (benchmarks/_runs.py), as are their scores
(<out>/scores/*.json), so an interrupted command picks up where it stopped. Writes <out>/results.json and, with
--docs, docs/results/text.md and docs/results/text.png.

    OMP_NUM_THREADS=1 python benchmarks/bench_text_table.py --out runs/text_table --docs

`--split validation` scores on the validation split only (never reads test): what recipes are tuned with.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import bar_chart, markdown_table  # noqa: E402
from _runs import train_or_reuse  # noqa: E402

SEEDS = (0, 1, 2)
EVAL_TOKENS = 128  # every encoder reads the first 128 tokens of a paragraph (MLM/GPT block_size; 99% of them fit)
K, KNN_TEMPERATURE = 20, 0.07
RECIPES = ("bert_mlm_python_docs", "gpt_python_docs", "simcse_from_mlm", "simcse_minilm", "supervised_topics_tiny_bert",
           "supervised_topics_minilm")


def topics(split: str):
    """python_docs_topics rows of `split`, shortest first: batches then pad little (order does not change a score)."""
    from multissl.data.python_docs_topics import load_python_docs_topics

    ds = load_python_docs_topics(split)
    return ds.add_column("n", [len(t) for t in ds["text"]]).sort("n").remove_columns(["n"])


def eval_collator(model):
    """The method's eval collator, reading EVAL_TOKENS tokens (SimCSE trains shorter than it is evaluated)."""
    config = copy.deepcopy(model.config)
    if hasattr(config, "max_seq_length"):
        config.max_seq_length = EVAL_TOKENS
    if getattr(config, "block_size", EVAL_TOKENS) != EVAL_TOKENS:
        raise ValueError(f"block_size {config.block_size} != {EVAL_TOKENS}: rows would read different lengths")
    return type(model).make_collator(config, train=False)


def features(model, data: dict) -> dict:
    """{split: (features [N, D], labels [N])} of the frozen model."""
    from multissl.evaluation.features import extract_features

    collate = eval_collator(model)
    return {s: extract_features(model, ds, collate, batch_size=64, progress=False) for s, ds in data.items()}


def score(feats: dict, read_test: bool) -> dict:
    """k-NN and C-tuned linear probe on validation; on test (read once, with the validation-chosen C) if read_test."""
    from multissl.evaluation.knn import knn_accuracy
    from multissl.evaluation.linear_probe import tuned_linear_probe

    (xtr, ytr), (xva, yva) = feats["train"], feats["validation"]
    classes = int(ytr.max()) + 1
    out = {"knn_validation": knn_accuracy(xtr, ytr, xva, yva, classes, k=K, temperature=KNN_TEMPERATURE)}
    test = feats["test"] if read_test else (None, None)
    lp = tuned_linear_probe(xtr, ytr, xva, yva, *test)
    out.update(lp_validation=lp["validation_accuracy"], C=lp["C"], dim=int(xtr.shape[1]))
    if read_test:
        out["knn_test"] = knn_accuracy(xtr, ytr, *test, classes, k=K, temperature=KNN_TEMPERATURE)
        out["lp_test"] = lp["accuracy"]
    return out


def tfidf_features(data: dict) -> dict:
    """TF-IDF (word 1-2 grams, 5000 most frequent with min_df 2, sublinear tf) fitted on train, as dense [N, 5000]."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=5000, sublinear_tf=True)
    vec.fit(data["train"]["text"])
    return {s: (torch.tensor(vec.transform(ds["text"]).toarray(), dtype=torch.float32), torch.tensor(ds["label"]))
            for s, ds in data.items()}


class Bench:
    """Trains (or reuses) runs under `out` and caches each feature set's scores in out/scores/<key>.json."""

    def __init__(self, out: Path, data: dict, read_test: bool, retrain: bool, overrides: dict[str, list[str]]):
        self.out, self.data, self.read_test, self.retrain, self.overrides = out, data, read_test, retrain, overrides

    def scored(self, key: str, make_feats) -> dict:
        """Scores of one feature set, computed once per split mode (a finished key is read back)."""
        path = self.out / "scores" / f"{key}-{'test' if self.read_test else 'validation'}.json"
        if path.is_file() and not self.retrain:
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        result = score(make_feats(), self.read_test)
        result["eval_s"] = time.perf_counter() - t0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
        return result

    def recipe(self, name: str, seed: int, extra: list[str] = ()):
        """recipes/<name>.yaml with seed, quiet progress and the --set overrides for that recipe."""
        from multissl.training import load_recipe

        sets = [f"train.seed={seed}", "train.progress=false", "train.save_every=0", *extra, *self.overrides.get(name, [])]
        return load_recipe(ROOT / "recipes" / f"{name}.yaml", sets)

    def trained(self, name: str, seed: int, extra: list[str] = ()) -> tuple[Path, float]:
        """The run folder of recipe `name` at `seed` (trained now or reused) and its training wall seconds."""
        run = self.out / f"{name}-seed{seed}"
        seconds = train_or_reuse(self.recipe(name, seed, extra), run, self.retrain)
        if seconds is not None:
            (run / "train_seconds.json").write_text(json.dumps(seconds))
        return run, json.loads((run / "train_seconds.json").read_text())

    def random_init(self, seed: int):
        """The MLM recipe's model exactly as training at `seed` starts from it (same seeding as the loop)."""
        from multissl.data.batches import seed_everything
        from multissl.registry import get_method
        from multissl.training.loop import build_config, build_model

        recipe = self.recipe("bert_mlm_python_docs", seed)
        spec = get_method(recipe.method)
        config = build_config(spec, recipe.model, recipe.source)
        seed_everything(seed)
        return build_model(spec, config)


def load(run: Path):
    """The trained model of a run folder."""
    from multissl.models.loading import load_model

    return load_model(run / "final")


def exported_encoder(enc: Path, make_model) -> str:
    """`enc`, an HF encoder + tokenizer folder: exported from make_model() unless a finished export is already there."""
    if not (enc / "config.json").is_file():
        make_model().save_encoder(enc)
    return str(enc)


def mlm_encoder(run: Path) -> str:
    """The MLM run's exported encoder (what simcse_from_mlm.yaml's backbone_path names)."""
    return exported_encoder(run / "encoder", lambda: load(run))


def random_bert_encoder(bench: Bench, seed: int) -> str:
    """The MLM recipe's random init at `seed`, exported (the supervised tiny-BERT bound starts here)."""
    return exported_encoder(bench.out / f"random_bert-seed{seed}" / "encoder", lambda: bench.random_init(seed))


def minilm_start():
    """SimCSE's model at step 0 from the MiniLM recipe: the real all-MiniLM-L6-v2 with the recipe's pooler."""
    from multissl.registry import get_method
    from multissl.training import load_recipe
    from multissl.training.loop import build_config, build_model

    recipe = load_recipe(ROOT / "recipes" / "simcse_minilm.yaml")
    spec = get_method("simcse")
    return build_model(spec, build_config(spec, recipe.model, recipe.source))


ROW_ORDER = ("random-init BERT", "MLM (trained)", "GPT (trained)", "SimCSE from MLM", "supervised tiny BERT (bound)",
             "MiniLM (start)", "SimCSE from MiniLM", "supervised MiniLM (bound)", "TF-IDF")


def run_all(bench: Bench, seeds: tuple[int, ...], only: tuple[str, ...] = ROW_ORDER) -> dict:
    """{row: {"k-NN": [...], "linear probe": [...], "... (validation)": [...], "train_s": [...], "eval_s": [...]}}."""
    rows: dict[str, dict[str, list[float]]] = {}

    def add(row: str, key: str, make_feats, seconds: float | None = None) -> None:
        result = bench.scored(key, make_feats)
        cell = rows.setdefault(row, {})
        for col, name in (("k-NN", "knn_test"), ("linear probe", "lp_test"), ("k-NN (validation)", "knn_validation"),
                          ("linear probe (validation)", "lp_validation"), ("eval_s", "eval_s")):
            if name in result:
                cell.setdefault(col, []).append(result[name])
        if seconds is not None:
            cell.setdefault("train_s", []).append(seconds)
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
        print(f"{row} [{key}]: {json.dumps(shown)}" + (f" train {seconds:.0f}s" if seconds is not None else ""), flush=True)

    def trained_row(row: str, name: str, seed: int, extra: list[str] = ()) -> None:
        run, secs = bench.trained(name, seed, extra)
        add(row, run.name, lambda: features(load(run), bench.data), secs)

    if "TF-IDF" in only:
        add("TF-IDF", "tfidf", lambda: tfidf_features(bench.data))
    if "MiniLM (start)" in only:
        add("MiniLM (start)", "minilm_start", lambda: features(minilm_start(), bench.data))
    for seed in seeds:
        if "random-init BERT" in only:
            add("random-init BERT", f"random_bert-seed{seed}", lambda: features(bench.random_init(seed), bench.data))
        if "MLM (trained)" in only or "SimCSE from MLM" in only:
            trained_row("MLM (trained)", "bert_mlm_python_docs", seed)
        if "GPT (trained)" in only:
            trained_row("GPT (trained)", "gpt_python_docs", seed)
        if "SimCSE from MLM" in only:
            encoder = mlm_encoder(bench.out / f"bert_mlm_python_docs-seed{seed}")
            trained_row("SimCSE from MLM", "simcse_from_mlm", seed, [f"model.backbone_path={encoder}"])
        if "supervised tiny BERT (bound)" in only:
            encoder = random_bert_encoder(bench, seed)
            trained_row("supervised tiny BERT (bound)", "supervised_topics_tiny_bert", seed,
                        [f"model.backbone_path={encoder}"])
        if "SimCSE from MiniLM" in only:
            trained_row("SimCSE from MiniLM", "simcse_minilm", seed)
        if "supervised MiniLM (bound)" in only:
            trained_row("supervised MiniLM (bound)", "supervised_topics_minilm", seed)
    return {r: rows[r] for r in ROW_ORDER if r in rows}


def budgets(bench: Bench) -> list[str]:
    """One Markdown table row per trained recipe: steps, batch, sequence length, lr, temperature."""
    lines = ["| recipe | steps | batch | tokens per row | learning rate | other |", "|---|---|---|---|---|---|"]
    for name in RECIPES:
        r = bench.recipe(name, 0)
        m, t = r.model, r.train
        length = m.get("block_size", m.get("max_seq_length"))
        other = ", ".join(f"{k}={m[k]}" for k in ("pooler", "loss_temperature") if k in m) or "-"
        lines.append(f"| recipes/{name}.yaml | {t.max_steps} | {t.batch_size} | {length} | {t.learning_rate:g} | {other} |")
    return lines


def delta_line(rows: dict, a: str, b: str, col: str) -> str:
    """'a - b' on `col` over the seeds (b may be a single deterministic value)."""
    from _report import mean_std

    if not rows.get(a, {}).get(col) or not rows.get(b, {}).get(col):
        return ""
    ref = sum(rows[b][col]) / len(rows[b][col])
    m, s = mean_std([v - ref for v in rows[a][col]]) if len(rows[b][col]) == 1 else mean_std(
        [x - y for x, y in zip(rows[a][col], rows[b][col])])
    return f"* {a} minus {b}, {col}: {m:+.3f} ± {s:.3f}"


def page(rows: dict, bench: Bench, chance: float, machine: str, total_s: float, seeds: tuple[int, ...]) -> str:
    """docs/results/text.md: command, machine, budgets, the test table, the validation table, deltas."""
    timing = {r: {"train wall s": f"{sum(v['train_s']) / len(v['train_s']):.0f}"} for r, v in rows.items() if v.get("train_s")}
    test_cols, val_cols = ["k-NN", "linear probe"], ["k-NN (validation)", "linear probe (validation)"]
    deltas = [delta_line(rows, a, b, c) for a, b in (("SimCSE from MiniLM", "MiniLM (start)"),
                                                      ("supervised MiniLM (bound)", "MiniLM (start)"),
                                                      ("supervised tiny BERT (bound)", "random-init BERT"),
                                                      ("MLM (trained)", "random-init BERT"),
                                                      ("GPT (trained)", "random-init BERT"), ("SimCSE from MLM", "MLM (trained)"))
              for c in test_cols]
    return "\n".join([
        "# Text results: python_docs_topics (which stdlib package a paragraph documents)", "",
        "Regenerated from nothing (reusing finished runs under `--out`) by:", "",
        "```bash", "OMP_NUM_THREADS=1 python benchmarks/bench_text_table.py --out runs/text_table --docs", "```", "",
        f"Machine: {machine}. From nothing the command takes about {total_s / 60:.0f} min of wall time "
        "(sum of every training run and every feature extraction + probe; tokenizers and the corpus cache included).", "",
        "Task: 20 classes (the top-level package of the paragraph's module, data_cards/python_docs.md), "
        f"train {len(bench.data['train'])} / validation {len(bench.data['validation'])} / test {len(bench.data['test'])} "
        f"paragraphs; majority class {chance:.3f}. Frozen features, every encoder reads the first {EVAL_TOKENS} tokens, "
        f"mean-pooled over real tokens. k-NN: k={K}, T={KNN_TEMPERATURE}, cosine. Linear probe: standardised features, "
        "logistic regression, C chosen on validation from (0.001, 0.01, 0.1, 1, 10), test read once. "
        f"Trained rows: mean ± std over training seeds {', '.join(map(str, seeds))} (one seed: ± 0.000 is no spread "
        "measured); random init: the init of those seeds; "
        "MiniLM's start and TF-IDF are deterministic (one value, ± 0). The SSL encoders pre-train on python_docs' train "
        "split only (no validation or test paragraph).", "",
        "## Test split", "",
        markdown_table(rows, test_cols, first="features", extra=timing), "",
        "![bar chart](text.png)", "",
        "train wall s: one run (seconds, mean over seeds); SimCSE from MLM: the SimCSE stage only (add the MLM's time).", "",
        "Bounds: the same backbone trained with cross-entropy on all training labels (`text_semi` with label_fraction 1, "
        "lambda_u 0), scored on its frozen features like every row. The tiny-BERT bound starts from the same seed's "
        "random init and has the MLM's budget; the MiniLM bound has 200 steps, 5x SimCSE's 40, because at 40 steps "
        "supervised fine-tuning lowered the start's features on validation (k-NN 0.849 -> 0.811; "
        "recipes/supervised_topics_minilm.yaml says what was tried).", "",
        "## Differences (paired by seed)", "", *[d for d in deltas if d], "",
        "## Budgets (the shipped recipes, unchanged by the benchmark)", "", *budgets(bench), "",
        "## Validation split (what the recipes were tuned on)", "",
        markdown_table(rows, val_cols, first="features"), "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/text_table", help="run folders, scores/ and results.json go here")
    parser.add_argument("--split", choices=("test", "validation"), default="test",
                        help="validation: tune (the test split is never read); test: the reported table")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--retrain", action="store_true", help="train and score again even where a run is finished")
    parser.add_argument("--set", nargs="*", default=[], metavar="RECIPE:KEY=VALUE",
                        help="override one recipe, e.g. simcse_minilm:train.learning_rate=1e-5")
    parser.add_argument("--rows", nargs="*", default=list(ROW_ORDER), choices=ROW_ORDER, metavar="ROW",
                        help=f"only these rows (default all): {', '.join(ROW_ORDER)}")
    parser.add_argument("--docs", action="store_true", help="write docs/results/text.md and text.png (test split only)")
    parser.add_argument("--machine", default="2 shared CPU cores (x86_64, busy with other work), no GPU, OMP_NUM_THREADS=1")
    args = parser.parse_args()
    if args.docs and args.split != "test":
        raise SystemExit("--docs reports the test split; tune with --split validation without --docs")
    torch.set_num_threads(1)
    overrides: dict[str, list[str]] = {}
    for item in args.set:
        name, _, kv = item.partition(":")
        if name not in RECIPES or "=" not in kv:
            raise SystemExit(f"--set {item!r}: expected RECIPE:KEY=VALUE with RECIPE in {RECIPES}")
        overrides.setdefault(name, []).append(kv)
    splits = ("train", "validation", "test") if args.split == "test" else ("train", "validation")
    data = {s: topics(s) for s in splits}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bench = Bench(out, data, args.split == "test", args.retrain, overrides)
    rows = run_all(bench, tuple(args.seeds), tuple(args.rows))
    wall = time.perf_counter() - t0
    total = sum(sum(v.get("train_s", [])) + sum(v.get("eval_s", [])) for v in rows.values())  # as if from nothing
    (out / f"results-{args.split}.json").write_text(json.dumps(rows, indent=1))
    cols = ["k-NN", "linear probe"] if args.split == "test" else ["k-NN (validation)", "linear probe (validation)"]
    print(markdown_table(rows, cols, first="features"))
    print(f"this command {wall:.0f}s; from nothing (all training + scoring) {total:.0f}s ({platform.machine()}, torch threads {torch.get_num_threads()})")
    if args.docs:
        labels = data["test"]["label"]
        chance = max(labels.count(c) for c in set(labels)) / len(labels)
        docs = ROOT / "docs" / "results"
        text = page(rows, bench, chance, args.machine, total, tuple(args.seeds))
        bar_chart(docs / "text.png", {r: {c: v[c] for c in cols} for r, v in rows.items()}, cols,
                  f"python_docs_topics (20 packages): frozen features, test split, mean ± std over {len(args.seeds)} seed(s)",
                  reference={"majority class": chance})
        (docs / "text.md").write_text(text + "\n")
        print(f"wrote {docs / 'text.md'} and {docs / 'text.png'}")


if __name__ == "__main__":
    main()
