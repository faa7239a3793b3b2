"""The recipe's `eval:` section: checked against the data before the first step, run on final/ after the last.

An entry that names no scored `split` scores the validation split when the data has one, else test: a recipe
is tuned on validation, and the test split is read on purpose (`split: test`, or `multissl eval`) for a number
that is reported. Settings an entry does not give are `multissl eval`'s defaults (PROTOCOL_DEFAULTS).
"""
from __future__ import annotations

from pathlib import Path

from multissl.training.config import Recipe


def eval_jobs(recipe: Recipe, dataset_name: str) -> list[tuple[str, str, dict]]:
    """(protocol, dataset, evaluate_model kwargs with the scored split resolved) per entry of the recipe's `eval:`.

    Entries that would score the training data itself are dropped (see default_split): a user's own folder
    with only a train split trains, and says why nothing is evaluated, instead of failing.
    """
    jobs = []
    for protocol, kwargs in recipe.eval.items():
        kwargs = dict(kwargs or {})
        data = kwargs.pop("dataset", dataset_name)
        if data == dataset_name:  # evaluate on the data the run was trained on, with the same loader arguments
            kwargs.setdefault("dataset_args", dict(recipe.dataset_args))
        if "split" not in kwargs:
            split = default_split(protocol, data, kwargs.get("dataset_args"))
            if split is None:
                continue
            kwargs["split"] = split
        jobs.append((protocol, data, kwargs))
    return jobs


def default_split(protocol: str, data: str, dataset_args: dict | None) -> str | None:
    """The split an entry that names none scores: validation when the data has it, else test, else None.

    None happens when a recipe written for a built-in dataset is pointed at a folder of one's own with
    `--set dataset=DIR` (only train/ or no split folders). The run still trains; this prints one line on
    how to get an evaluation (add validation/ or test/ sub-folders, or score later with `multissl eval`).
    Each split is probed at most once (probing loads the data).
    """
    from multissl.evaluation.defaults import REPORT_SPLIT, TUNE_SPLIT
    from multissl.evaluation.protocols import has_split

    for split in (TUNE_SPLIT, REPORT_SPLIT):
        if has_split(data, split, dataset_args):
            return split
    print(f"eval {protocol} skipped: {data!r} has no {TUNE_SPLIT!r} or {REPORT_SPLIT!r} split to score (add "
          f"{TUNE_SPLIT}/ or {REPORT_SPLIT}/ sub-folders, or give eval.{protocol}.split); the run trains all the same",
          flush=True)
    return None


def describe_job(protocol: str, data: str, kwargs: dict, split_given: bool) -> str:
    """One line: what is fitted, what is scored (and why that split), and the protocol's settings."""
    from multissl.evaluation.defaults import PROTOCOL_DEFAULTS

    settings = ", ".join(f"{k}={kwargs.get(k, v)}" for k, v in PROTOCOL_DEFAULTS[protocol].items())
    why = "as the recipe says" if split_given else \
        "the default: validation when the data has it, else test" if kwargs["split"] == "validation" else \
        f"the default: {data!r} has no validation split"
    return (f"eval {protocol} on {data}: fit on {kwargs.get('split_train', 'train')!r}, score {kwargs['split']!r} "
            f"({why}); {settings}")


def check_eval(recipe: Recipe, dataset_name: str) -> None:
    """Fail before the first step if the `eval:` section cannot run on its data (missing split or label column)."""
    if not recipe.eval:
        return
    from multissl.evaluation.protocols import check_evaluation

    for protocol, data, kwargs in eval_jobs(recipe, dataset_name):
        check_evaluation(data, protocol, **kwargs)


def evaluate_run(recipe: Recipe, final_dir: Path, dataset_name: str) -> dict:
    """End-of-run evaluation declared in the recipe's `eval:` section (k-NN / linear probe): {protocol: result dict}.

    Prints one line per entry naming the fitted and scored splits and the settings; each result dict (eval.json)
    records them too.
    """
    if not recipe.eval:
        return {}
    from multissl.evaluation import evaluate_model

    results = {}
    for protocol, data, kwargs in eval_jobs(recipe, dataset_name):
        print(describe_job(protocol, data, kwargs, split_given="split" in (recipe.eval[protocol] or {})), flush=True)
        results[protocol] = evaluate_model(str(final_dir), data, protocol, **kwargs)
    return results
