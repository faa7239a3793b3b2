"""The model card (README.md in the Hugging Face Hub's format) written into every `final/` and every export.

YAML front matter (built with huggingface_hub's ModelCardData, so the Hub parses it): library_name, tags, datasets,
license (the data card's), pipeline_tag, metrics and a model-index with the values of eval.json when present. The body
says what the folder is, how to load it (with the loader the folder was tested with), which output is the feature
multissl's `embed` returns, the preprocessing, the intended use, the training recipe and the training data's licence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multissl.atomic import atomic_write_text
from multissl.registry import DATASETS

REPO_ROOT = Path(__file__).resolve().parents[2]  # data_cards/ lives beside the package in a source checkout
METRIC_KEYS = ("accuracy", "spearman", "perplexity", "recall_at_1", "recall_at_5", "recall_at_10", "map")
BOOKKEEPING = {"protocol", "dataset", "method", "model", "label_column", "split", "split_train", "n_train", "n_scored",
               "feature_dim", "num_classes", "train_accuracy", "n_iter"}
TASK_BY_MODALITY = {"image": "image-classification", "text": "text-classification", "audio": "audio-classification",
                    "image-text": "image-classification"}


@dataclass
class CardContext:
    """Where a model came from: the run's recipe (recipe.yaml as a dict), its eval.json, its dataset name."""

    recipe: dict | None = None
    eval_results: dict | None = None
    dataset: str | None = None


@dataclass
class CardUsage:
    """How the folder is loaded and which output is the feature (filled in by models/export.py)."""

    library_name: str = "transformers"
    pipeline_tag: str | None = None
    tags: list[str] = field(default_factory=list)
    load: str = ""  # a python snippet
    feature: str = ""  # one or two sentences: which output equals multissl's embed
    preprocessing: str = ""


def data_card_license(dataset: str | None) -> tuple[str | None, str | None]:
    """(licence id, data card path) from data_cards/<dataset>.md's front matter; (None, None) when there is no card."""
    if not dataset or "/" in dataset or "\\" in dataset:
        return None, None
    card = REPO_ROOT / "data_cards" / f"{dataset}.md"
    if not card.is_file():
        return None, None
    match = re.match(r"---\n(.*?)\n---", card.read_text(), re.S)
    meta = yaml.safe_load(match.group(1)) if match else {}
    lic = (meta or {}).get("license")
    if lic == "other" and meta.get("license_name"):
        lic = f"other ({meta['license_name']})"
    return lic, f"data_cards/{dataset}.md"


def _eval_rows(eval_results: dict | None) -> list[tuple[str, str, str, float, str]]:
    """(protocol, split, metric, value, settings) for every numeric metric of eval.json."""
    rows = []
    for protocol, entry in (eval_results or {}).items():
        if not isinstance(entry, dict):
            continue
        settings = ", ".join(f"{k}={v}" for k, v in entry.items()
                             if k not in BOOKKEEPING and k not in METRIC_KEYS and isinstance(v, (int, float, str)))
        for key in METRIC_KEYS:
            value = entry.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((str(protocol), str(entry.get("split", "?")), key, float(value), settings))
    return rows


def card_metadata(method: str, modality: str, usage: CardUsage, context: CardContext, model_name: str) -> str:
    """The YAML front matter (without the --- lines)."""
    from huggingface_hub import EvalResult, ModelCardData

    lic, _ = data_card_license(context.dataset)
    builtin = context.dataset if context.dataset and not ("/" in context.dataset or "\\" in context.dataset) else None
    rows = _eval_rows(context.eval_results)
    results = [EvalResult(task_type=TASK_BY_MODALITY.get(modality, "other"), dataset_type=builtin or "local",
                          dataset_name=builtin or "local data", dataset_split=split, metric_type=metric,
                          metric_value=round(value, 6), metric_name=f"{protocol} {metric} ({settings})".replace(" ()", ""))
               for protocol, split, metric, value, settings in rows]
    license_id = lic if lic and not lic.startswith("other (") else ("other" if lic else None)
    extra = {"license_name": lic[len("other ("):-1]} if lic and lic.startswith("other (") else {}
    data = ModelCardData(library_name=usage.library_name, tags=["multissl", method, *usage.tags, "self-supervised-learning"],
                         datasets=[builtin] if builtin else None, license=license_id,
                         metrics=sorted({r[2] for r in rows}) or None, pipeline_tag=usage.pipeline_tag,
                         model_name=model_name if results else None, eval_results=results or None, **extra)
    return data.to_yaml()


def render_model_card(method: str, modality: str, description: str, usage: CardUsage, context: CardContext,
                      *, what: str) -> str:
    """The whole README.md: front matter + body. `what` says what the folder holds (final model or export)."""
    dataset = context.dataset or "(unknown dataset)"
    name = f"multissl-{method}-{Path(dataset).name}"
    lines = [f"---\n{card_metadata(method, modality, usage, context, name)}\n---", "",
             f"# {method} on {dataset}", "", f"{description}. Trained with multissl (self-supervised learning on Hugging Face "
             "models, one Accelerate loop).", "", "## What this folder is", "", what, "", "## How to use", "",
             "```python", usage.load.strip(), "```", ""]
    if usage.feature:
        lines += ["## The feature", "", usage.feature, ""]
    if usage.preprocessing:
        lines += ["## Preprocessing", "", usage.preprocessing, ""]
    lines += ["## Intended use", "",
              f"Frozen {modality} features for k-NN, linear probes and retrieval on data like the training data, and as a "
              "starting point for fine-tuning; research and teaching. The models multissl's recipes train are small and "
              "CPU-sized, trained on small datasets: measure them on your own data before relying on them, and do not use "
              "them for decisions about people.", ""]
    rows = _eval_rows(context.eval_results)
    if rows:
        lines += ["## Evaluation", "", "| protocol | split | metric | value | settings |", "|---|---|---|---|---|"]
        lines += [f"| {p} | {s} | {m} | {v:.4f} | {st} |" for p, s, m, v, st in rows]
        lines += ["", "(from the run's eval.json: the recipe's end-of-run evaluation)", ""]
    lines += ["## Training data", ""]
    lic, card = data_card_license(context.dataset)
    if card:
        lines += [f"`{dataset}`, licence **{lic}** (data card: `{card}` in the multissl repository).", ""]
    elif context.dataset in DATASETS:  # a built-in dataset, installed without the repository's data_cards/
        lines += [f"`{dataset}`, a multissl built-in dataset: its licence is in `data_cards/{dataset}.md` in the multissl "
                  "repository.", ""]
    else:
        lines += [f"`{dataset}`: no multissl data card; its licence is the data owner's (add it to this card).", ""]
    if context.recipe:
        lines += ["## Training recipe", "", "```yaml", yaml.safe_dump(context.recipe, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


def write_model_card(out_dir: str | Path, text: str, atomic: bool = False) -> Path:
    """Write README.md into out_dir (atomic=True: temp file + rename, for a folder that already exists)."""
    path = Path(out_dir) / "README.md"
    if atomic:
        return atomic_write_text(path, text)
    path.write_text(text)
    return path


def load_context(model_dir: str | Path, dataset: str | None = None) -> CardContext:
    """The card context of a run's final/ folder: ../recipe.yaml and ../eval.json when they are there."""
    import json

    run = Path(model_dir).resolve().parent
    recipe: dict[str, Any] | None = None
    if (run / "recipe.yaml").is_file():
        recipe = yaml.safe_load((run / "recipe.yaml").read_text()) or None
    results = json.loads((run / "eval.json").read_text()) if (run / "eval.json").is_file() else None
    return CardContext(recipe=recipe, eval_results=results, dataset=dataset or (recipe or {}).get("dataset"))
